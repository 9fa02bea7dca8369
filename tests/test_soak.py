"""Every resource's whole lifecycle (create, update in place, update with replacement, delete)
through the real binaries while the proxy in front of moto answers a share of their AWS calls
the way AWS does when it throttles or fails (harness.aws_proxy.FaultPlan): every answer must be
the one it would be without faults, sent exactly once (the CloudFormation stand-in fails a second
answer), and nothing may be left after Delete. Also 30 services updated at once, as CloudFormation
runs independent resources, under throttling: all succeed and their retries do not march in step.

SOAK_ROUNDS (default 1) repeats each lifecycle with a new seed each round; `make soak` runs more
rounds and writes the figures (tests/soak.py prints them)."""
import json
import os
import statistics
import threading
import time
from collections import Counter

import pytest

from conftest import LOGS, _function
from harness.aws_proxy import FaultPlan
from harness.cloudformation import Resource

ROUNDS = int(os.environ.get("SOAK_ROUNDS", "1"))
# The acceptance mix: 35% of calls throttled, 5% answered 500.
THROTTLE, SERVER_ERROR = 0.35, 0.05
# Every operation's figures, for `make soak` (tests/soak.py reads this file).
FIGURES = LOGS / "soak-figures.jsonl"


def plan(seed: int, **shares) -> FaultPlan:
    return FaultPlan(seed=seed, throttle=shares.get("throttle", THROTTLE),
                     server_error=shares.get("server_error", SERVER_ERROR))


def record(resource: str, seed: int, operations: list, stats, proxy, left: list) -> None:
    """One lifecycle's figures, appended to FIGURES."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as out:
        out.write(json.dumps({
            "resource": resource, "seed": seed, "operations": operations,
            "calls": len(proxy.recorded()), "faults": dict(stats.by_kind), "retries": stats.injected,
            "left": left,
        }) + "\n")


def timed(results: list, cfn, name: str, call):
    """Runs one request, noting its time, its answer and how many answers its RequestId got."""
    started = time.monotonic()
    answer = call()
    answers = sum(len(got) for key, got in cfn.answers.items() if key.endswith("|" + answer.request_id))
    results.append({"request": name, "seconds": round(time.monotonic() - started, 3),
                    "status": answer.status, "answers": answers})
    assert answer.ok, f"{name} answered {answer.status} under faults: {answer.reason}"
    return answer


# --- network --------------------------------------------------------------------------------------


def network_footprint(ec2) -> list:
    default = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")}
    left = [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["VpcId"] not in default]
    left += [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]]
    left += [n["NatGatewayId"] for n in ec2.describe_nat_gateways()["NatGateways"]
             if n["State"] in ("pending", "available")]
    left += [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]
             if not any(a["VpcId"] in default for a in g.get("Attachments", []))]
    return left


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_the_network_lifecycle_succeeds_once_per_request_under_throttling_and_500s(
        cfn, network_function, moto, proxy, round_):
    ec2 = moto.client("ec2")
    network = Resource(cfn, network_function, "Network", resource_type="Custom::Network")
    seed, results = 100 + round_, []
    proxy.clear()
    with proxy.inject(plan(seed)) as stats:
        timed(results, cfn, "create", lambda: network.create(
            {"Name": "dev", "AvailabilityZoneCount": 3, "NatGateways": "PerAz"}))
        timed(results, cfn, "update-in-place", lambda: network.update(
            {"Name": "dev2", "AvailabilityZoneCount": 3, "NatGateways": "Single",
             "Tags": [{"Key": "team", "Value": "b"}]}))
        timed(results, cfn, "update-replacement", lambda: network.update(
            {"Name": "dev2", "AvailabilityZoneCount": 2, "NatGateways": "Single", "CidrBlock": "10.1.0.0/16"}))
        assert network.cleanup_answer.ok
        timed(results, cfn, "delete", network.delete)
    left = network_footprint(ec2)
    record("network", seed, results, stats, proxy, left)
    assert stats.by_kind["throttle"] > 0 and stats.by_kind["server_error"] > 0, "no faults were injected"
    assert left == [], "left behind after Delete"


# --- service --------------------------------------------------------------------------------------


def service_world(moto) -> dict:
    ec2, ecs, iam = moto.client("ec2"), moto.client("ecs"), moto.client("iam")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    ecs.create_cluster(clusterName="app", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(
        family="web", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{"name": "web", "image": "nginx", "memory": 512, "portMappings": [{"containerPort": 80}]}])
    return {"subnets": ",".join(subnets), "group": group}


def service_props(world, name="web", **extra) -> dict:
    return {"Cluster": "app", "ServiceName": name, "TaskDefinition": "web:1", "Subnets": world["subnets"],
            "SecurityGroups": [world["group"]], "DesiredCount": 1, "WaitForSteadyState": False,
            "CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 1},
                                         {"CapacityProvider": "FARGATE_SPOT", "Weight": 1}], **extra}


def active_services(moto) -> list:
    ecs = moto.client("ecs")
    arns = ecs.list_services(cluster="app")["serviceArns"]
    if not arns:
        return []
    return [s["serviceName"] for s in ecs.describe_services(cluster="app", services=arns)["services"]
            if s["status"] == "ACTIVE"]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_the_service_lifecycle_succeeds_once_per_request_under_throttling_and_500s(
        cfn, service_function, moto, proxy, round_):
    world = service_world(moto)
    service = Resource(cfn, service_function, "Service", resource_type="Custom::FargateService")
    seed, results = 200 + round_, []
    proxy.clear()
    with proxy.inject(plan(seed)) as stats:
        timed(results, cfn, "create", lambda: service.create(service_props(world)))
        timed(results, cfn, "update-in-place", lambda: service.update(service_props(world, CapacityProviderStrategy=[
            {"CapacityProvider": "FARGATE", "Weight": 1, "Base": 1}, {"CapacityProvider": "FARGATE_SPOT", "Weight": 3}])))
        timed(results, cfn, "update-replacement", lambda: service.update(service_props(world, name="web2")))
        assert service.cleanup_answer.ok
        timed(results, cfn, "delete", service.delete)
    left = active_services(moto)
    record("service", seed, results, stats, proxy, left)
    assert stats.injected > 0, "no faults were injected"
    assert left == [], "left behind after Delete"


# --- scaling --------------------------------------------------------------------------------------


def scaling_state(moto) -> tuple:
    aas, cw = moto.client("application-autoscaling"), moto.client("cloudwatch")
    return (aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"],
            aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"],
            cw.describe_alarms()["MetricAlarms"])


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_the_scaling_lifecycle_succeeds_once_per_request_under_throttling_and_500s(
        cfn, scaling_function, moto, proxy, round_):
    world = service_world(moto)
    ecs = moto.client("ecs")
    for name in ("web", "web2"):
        ecs.create_service(cluster="app", serviceName=name, taskDefinition="web:1", desiredCount=1,
                           networkConfiguration={"awsvpcConfiguration": {
                               "subnets": world["subnets"].split(","), "securityGroups": [world["group"]]}})
    scaling = Resource(cfn, scaling_function, "Scaling", resource_type="Custom::ServiceScaling")
    base = {"Cluster": "app", "ServiceName": "web", "MinCapacity": 1, "MaxCapacity": 4}
    seed, results = 300 + round_, []
    proxy.clear()
    with proxy.inject(plan(seed)) as stats:
        timed(results, cfn, "create", lambda: scaling.create(
            dict(base, TargetTracking=[{"Metric": "CPUUtilization", "TargetValue": 50}])))
        timed(results, cfn, "update-in-place", lambda: scaling.update(dict(base, MaxCapacity=6, ScaleOutCpuThreshold=60)))
        timed(results, cfn, "update-replacement", lambda: scaling.update(dict(base, ServiceName="web2")))
        assert scaling.cleanup_answer.ok
        timed(results, cfn, "delete", scaling.delete)
    left = [item for found in scaling_state(moto) for item in found]
    record("scaling", seed, results, stats, proxy, left)
    assert stats.injected > 0, "no faults were injected"
    assert left == [], "left behind after Delete"


# --- preflight (never replaced: its fixed settings are refused, not replaced) ------------------------


@pytest.fixture(scope="module")
def preflight_function(cfn, proxy):
    function = _function("preflight", cfn, proxy)
    yield function
    function.stop()


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_the_preflight_lifecycle_succeeds_once_per_request_under_throttling_and_500s(
        cfn, preflight_function, moto, proxy, round_):
    preflight = Resource(cfn, preflight_function, "Preflight", resource_type="Custom::EnvironmentPreflight")
    settings = {"FargateWeight": 1, "FargateSpotWeight": 1, "DesiredCount": 1, "MinCount": 1, "MaxCount": 4,
                "ScaleOutCpuThreshold": 75, "ScaleInCpuThreshold": 25, "VpcCidr": "10.0.0.0/16",
                "AvailabilityZoneCount": 2, "AppPort": 80}
    seed, results = 400 + round_, []
    proxy.clear()
    with proxy.inject(plan(seed)) as stats:
        created = timed(results, cfn, "create", lambda: preflight.create(settings))
        timed(results, cfn, "update-in-place", lambda: preflight.update(dict(settings, FargateSpotWeight=3, MaxCount=6)))
        timed(results, cfn, "delete", preflight.delete)
    record("preflight", seed, results, stats, proxy, [])
    assert created.data["EcsServiceLinkedRole"] == "AWSServiceRoleForECS"
    assert stats.injected > 0, "no faults were injected"
    roles = moto.client("iam").list_roles(PathPrefix="/aws-service-role/")["Roles"]
    assert [r["RoleName"] for r in roles] == ["AWSServiceRoleForECS"], "made once, kept after Delete"


# --- 30 services at once --------------------------------------------------------------------------

CONCURRENT = 30


@pytest.fixture(scope="module")
def service_functions(cfn, proxy):
    """One service function per resource: CloudFormation runs independent resources in parallel,
    each in its own Lambda execution environment."""
    functions = [_function("service", cfn, proxy, label=f"c{i}") for i in range(CONCURRENT)]
    yield functions
    for function in functions:
        function.stop()


def retries(calls: list) -> list:
    """(backoff, start) of each retry: the next call of a faulted request (same service, action
    and parameters), how long after the fault it came and when it started."""
    delays, ordered = [], sorted(calls, key=lambda c: c.started)
    for i, call in enumerate(ordered):
        if not call.fault:
            continue
        key = (call.service, call.action, json.dumps(call.params, sort_keys=True))
        for later in ordered[i + 1:]:
            if (later.service, later.action, json.dumps(later.params, sort_keys=True)) == key:
                delays.append((later.started - call.finished, later.started))
                break
    return delays


def test_thirty_services_updated_at_once_under_throttling_all_succeed_and_their_retries_spread_out(
        cfn, service_functions, moto, proxy):
    world = service_world(moto)
    services = [Resource(cfn, f, f"Service{i}", resource_type="Custom::FargateService")
                for i, f in enumerate(service_functions)]
    for i, service in enumerate(services):
        assert service.create(service_props(world, name=f"web{i}")).ok
    proxy.clear()
    answers, errors = {}, []

    def update(i: int) -> None:
        try:
            answers[i] = services[i].update(service_props(world, name=f"web{i}", CapacityProviderStrategy=[
                {"CapacityProvider": "FARGATE", "Weight": 1, "Base": 1}, {"CapacityProvider": "FARGATE_SPOT", "Weight": 3}]))
        except Exception as error:  # noqa: BLE001 - reported below with the service it belongs to
            errors.append((i, repr(error)))

    with proxy.inject(FaultPlan(seed=7, throttle=THROTTLE, services=frozenset({"ecs"}))) as stats:
        threads = [threading.Thread(target=update, args=(i,)) for i in range(CONCURRENT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
    assert not errors, errors
    assert sorted(answers) == list(range(CONCURRENT))
    failed = {i: a.reason for i, a in answers.items() if not a.ok}
    assert not failed, failed
    updates = [c for c in proxy.recorded("ecs", "UpdateService") if not c.fault]
    assert len({c.params["service"] for c in updates}) == CONCURRENT, "each service updated once"
    assert Counter(c.params["service"] for c in updates).most_common(1)[0][1] == 1
    retried = retries(proxy.recorded("ecs"))
    assert stats.by_kind["throttle"] >= CONCURRENT // 3 and len(retried) >= CONCURRENT // 3
    # Jittered backoff: the retries after a burst of throttling do not come back in step.
    backoffs = [backoff for backoff, _ in retried]
    assert statistics.pstdev(backoffs) > 0.1, sorted(backoffs)
    buckets = Counter(round(start, 1) for _, start in retried)
    assert buckets.most_common(1)[0][1] <= len(retried) // 3, f"retries in step: {buckets.most_common(3)}"
    for service in services:
        assert service.delete().ok
    assert active_services(moto) == []
