"""tests/bench_paths.py's figures from hand-made proxy records (no server), and the shape of one
short operation's result through the real scaling binary. No timing thresholds: the figures are
reported by `make bench`, not asserted."""
from bench_bounds import PATHS, CriticalPath, Wait
from bench_paths import GOAL, analyse, sdk_retries, timed, wait_span, waves
from harness.aws_proxy import Call, FaultPlan
from harness.cloudformation import Resource
from test_scaling import BASE, CLIENTS, make_world


def call(action, started, finished, status=200, **params):
    return Call("ec2", action, params, started, finished, status)


def test_a_call_that_starts_after_every_call_of_the_wave_ended_opens_the_next_wave():
    calls = [call("B", 0.00, 0.05), call("A", 0.00, 0.06), call("C", 0.06, 0.11),  # C starts as A ends
             call("D", 0.12, 0.17), call("E", 0.13, 0.20), call("F", 0.19, 0.25)]  # F overlaps E: joins
    assert [[c.action for c in w] for w in waves(calls)] == [["B", "A"], ["C"], ["D", "E", "F"]]
    assert waves([]) == []


def test_the_order_calls_are_recorded_in_does_not_change_the_waves():
    calls = [call("C", 0.2, 0.3), call("A", 0.0, 0.1), call("B", 0.05, 0.12)]
    assert [[c.action for c in w] for w in waves(calls)] == [["A", "B"], ["C"]]


NAT_RECORD = [
    call("DescribeVpcs", 0.00, 0.05), call("DescribeAvailabilityZones", 0.00, 0.06),
    call("CreateVpc", 0.07, 0.12),
    call("CreateSubnet", 0.13, 0.18), call("AllocateAddress", 0.13, 0.19),
    call("CreateNatGateway", 0.20, 0.25), call("CreateRoute", 0.20, 0.26, GatewayId="igw-1"),
    # the wait: two pending polls half a second apart (each a discover round), then the one
    # that finds the NAT available
    call("DescribeSubnets", 0.75, 0.80), call("DescribeNatGateways", 0.76, 0.81),
    call("DescribeSubnets", 1.30, 1.35), call("DescribeNatGateways", 1.31, 1.36),
    call("DescribeSubnets", 1.85, 1.90), call("DescribeNatGateways", 1.86, 1.91),
    call("CreateRoute", 1.92, 1.97, NatGatewayId="nat-1"),
]


def test_the_nat_wait_runs_from_the_round_that_made_the_nats_to_the_round_that_saw_them_available():
    span = wait_span(NAT_RECORD, PATHS["network create (3 AZ, PerAz)"].wait)
    assert span["start"] == 0.26, "the end of the wave that made the NATs (the public route ends last)"
    assert span["end"] == 1.85, "the start of the observing poll's wave, not of its DescribeNatGateways"
    assert (span["polls"], span["waves"]) == (3, 2)
    assert span["observed"].started == 1.86


def test_a_poll_after_the_call_that_needs_the_condition_is_not_the_observing_one():
    later = NAT_RECORD + [call("DescribeNatGateways", 2.5, 2.55)]
    assert wait_span(later, PATHS["network create (3 AZ, PerAz)"].wait)["observed"].started == 1.86


def test_without_a_needing_call_the_last_poll_ends_the_wait_and_no_poll_means_no_wait():
    steady = Wait("service steady", ("CreateService",), "DescribeServices")
    record = [call("DescribeServices", 0.0, 0.05), call("CreateService", 0.06, 0.11),
              call("DescribeServices", 0.62, 0.67), call("DescribeServices", 1.18, 1.23)]
    span = wait_span(record, steady)
    assert (span["start"], span["end"], span["polls"], span["waves"]) == (0.11, 1.18, 2, 1)
    assert wait_span(record[:2], steady) is None, "the existence check before CreateService is no poll"
    assert wait_span(record[2:], steady) is None


def test_the_ratio_subtracts_the_wait_and_divides_by_depth_times_latency():
    path = PATHS["network create (3 AZ, PerAz)"]
    result = analyse(path, 50, sent=-0.01, answered=2.00, calls=NAT_RECORD)
    assert result["wait_s"] == 1.59 and result["wall_s"] == 2.01
    assert result["waves"] == 8 and result["waves_active"] == 6 and result["retry_waves"] == 0
    assert result["bound_s"] == 0.3 and result["active_s"] == 0.42
    assert result["ratio"] == 1.4 and result["over_goal"] and result["ratio"] > GOAL
    assert result["rounds_ratio"] == 1.0
    assert result["calls"] == len(NAT_RECORD) and result["calls_by_action"]["CreateRoute"] == 2
    assert result["timeline"][4].startswith("0.760 +0.060 (wait) ")
    # each active wave's time beyond the 50 ms latency is the emulator's
    assert round(result["emulator_s"], 3) == round(0.01 + 0.0 + 0.01 + 0.01 + 0.01 + 0.0, 3)


def test_a_call_retried_after_a_500_is_no_round_of_the_operation():
    path = CriticalPath("checks", 2, ("a", "b"), None)
    record = [call("GetParameters", 0.0, 0.05), call("SimulatePrincipalPolicy", 0.0, 0.05, status=500, Role="r"),
              call("SimulatePrincipalPolicy", 0.40, 0.45, Role="r"),
              call("CreateService", 0.46, 0.51)]
    assert [c.started for c in sdk_retries(record)] == [0.40]
    result = analyse(path, 50, sent=0.0, answered=0.52, calls=record)
    assert (result["waves_active"], result["retry_waves"], result["server_errors"]) == (3, 1, 1)
    assert result["rounds_ratio"] == 1.0
    assert result["emulator_s"] == 0.4, "the backoff before the retry and the retry itself"
    assert result["ratio_without_emulator"] == 1.2 and not result["over_goal_without_emulator"]
    assert "(retry) SimulatePrincipalPolicy" in result["timeline"][1]


def test_every_chain_has_one_entry_per_round_trip_of_its_depth():
    for name, path in PATHS.items():
        assert path.name == name and len(path.chain) == path.depth, name


def test_a_scaling_create_through_the_binary_reports_every_figure(cfn, scaling_function, moto, proxy):
    make_world({name: moto.client(name) for name in CLIENTS})
    scaling = Resource(cfn, scaling_function, "Scaling", resource_type="Custom::ServiceScaling")
    with proxy.inject(FaultPlan(latency_ms=10)):
        result = timed(proxy, 10, PATHS["scaling create"], lambda: scaling.create(dict(BASE)))
    assert result["status"] == "SUCCESS"
    assert result["calls_by_action"] == {"PutMetricAlarm": 2, "PutScalingPolicy": 2, "RegisterScalableTarget": 1}
    # each round needs the one before: the waves are the rounds, whatever the timing
    assert result["wave_sizes"] == [1, 2, 2] and result["depth"] == 3 and result["rounds_ratio"] == 1.0
    assert result["wait"] is None and result["wait_s"] == 0
    for key in ("wall_s", "bound_s", "active_s", "in_calls_s", "outside_calls_s", "emulator_s", "ratio",
                "ratio_without_emulator", "over_goal", "chain", "timeline"):
        assert key in result, key
    assert scaling.delete().ok
