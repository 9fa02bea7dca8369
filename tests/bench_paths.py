"""The critical-path part of `make bench`: how close each long operation comes to the time its AWS
round trips must take, how quickly a wait answers once its condition holds, and how fast a doomed
deploy fails.

`measure(workdir, latency_ms=50)` drives the real debug binaries the way the pytest scenarios do
(tests/test_network.py, test_service.py, test_scaling.py: a moto server behind the recording proxy,
the CloudFormation stand-in sending the events), with the proxy adding `latency_ms` to every AWS
call (a FaultPlan with latency and no faults), and returns a dict (`python tests/bench_paths.py`
prints it as JSON; a table goes to stderr). Loopback only; every operation has a timeout and every
server and process it starts is stopped before it returns.

Before each operation moto is reset (conftest.fresh_moto), the world around the resource is made
as the scenario's fixture makes it (test_service.make_world, test_scaling.make_world), and every
region backend the operation uses is warmed with one direct read (`warm`): moto builds a backend at
its first request (EC2's took 1.1 s), which is no round trip of the operation.

Per operation:
  wall_s         request sent by the stand-in -> its answer received (Answer.received_at)
  calls          AWS calls the binary made in between, from the proxy's record (the world around
                 the resource is made with moto clients that bypass the proxy, so none of those)
  waves          sequential rounds observed (`waves`): calls sorted by start; a call that starts
                 after every call of the current wave has ended opens a new wave, any other call
                 joins it. Overlap merges, so a wave count is a lower bound on the sequential
                 round trips (a dependent call that starts while an unrelated one is in flight
                 hides in its wave). `waves_active` leaves out the pending polls inside the wait;
                 `retry_waves` counts the waves that only repeat a call moto answered 5xx (the
                 SDK's retry: moto has no SimulatePrincipalPolicy), not rounds of the operation.
  wait_s         the wait (`wait_span`), in whole waves: the polls are the calls of the checking
                 action that start after the call that began the wait ended; the one that found
                 the condition true is the last before the first call that needs it (or the last
                 one). The wait runs from the end of the wave before the first poll to the start
                 of the observing poll's wave: sleeping the poll interval and the pending polls
                 are not round trips of the dependency chain; the poll that finds the condition
                 true is one, and is counted in the depth.
  depth          the fewest sequential round trips the operation needs given its data
                 dependencies, derived from the code (PATHS: each with its chain)
  bound_s        depth x latency
  ratio          (wall_s - wait_s) / bound_s, flagged over GOAL (1.3x): `over_goal`.
  active_s = wall_s - wait_s = in_calls_s (the active waves, first start to last end of each)
                 + outside_calls_s (the binary, the Lambda runtime API, the answer's PUT, gaps)
  emulator_s     what the active waves took beyond the added latency (moto's own time: it
                 answers concurrent calls one after the other, 17 of them took 0.18 s), plus the
                 retry-only waves with the SDK's backoff before them
  ratio_without_emulator  (active_s - emulator_s) / bound_s: the ratio against an AWS that
                 answers in exactly the latency; `over_goal_without_emulator`
  rounds_ratio   rounds (active waves that are not retry-only) / depth: the structural part
  sequential_in_code  calls the code makes one after the other although nothing orders them
                 (read from the code, file:line): why rounds exceed the depth

Wait responsiveness (`wait_responsiveness`): from the moment the awaited condition became true to
the answer, against the poll interval the functions were given (CUSTOM_RESOURCE_POLL_INTERVAL_MS
of conftest.FUNCTION_ENV). How the condition becomes true depends on the harness:
  * NAT available (harness.aws_rules): moto's NAT gateways are `pending` for
    LOCAL_AWS_NAT_PENDING_DESCRIBES describes, then `available` -- a count of polls, not a time.
    To measure responsiveness the knob is held high and set to 0 at a chosen moment T, half a
    poll interval after a pending check ended (the expected phase of a condition that turns true
    at a random time): from T the next describe reports the NAT available. Measured from T.
  * service steady, moto harness (what test_service.py uses; MOTO_ECS_SERVICE_RUNNING=1 in
    harness.moto): moto reports one running task and the rollout COMPLETED from CreateService
    on (and keeps it through a forced new deployment), so a DesiredCount-1 service is steady
    the moment CreateService / UpdateService returns. Measured from that call's end.
  * service steady, local engine (harness.engine_ecs*, what test_fail_fast.py uses): a service
    whose FARGATE_SPOT task cannot be placed (knob SPOT_CAPACITY=unavailable) waits with its
    on-demand tasks running; the knob is restored at T and the next DescribeServices places the
    Spot task and completes the rollout. Measured from T (engine clock; no added latency there).

Fail fast (`fail_fast`): test_fail_fast.py's scenarios on the local engine (its helpers imported,
not copied): a missing image (CannotPullContainerError) and no Spot capacity for a Spot-only
strategy, from the first fatal signal ECS showed to the FAILED answer.
"""
import argparse
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).parent))
from conftest import FUNCTION_ENV, ROOT, _function, fresh_moto  # noqa: E402
from harness.aws_proxy import FaultPlan, RecordingProxy  # noqa: E402
from harness.cloudformation import CloudFormation, Resource  # noqa: E402
from harness.moto import MotoServer  # noqa: E402

GOAL = 1.3
POLL_INTERVAL_S = int(FUNCTION_ENV["CUSTOM_RESOURCE_POLL_INTERVAL_MS"]) / 1000
OPERATION_TIMEOUT = 120.0  # seconds for one operation's answer (the stand-in raises after it)
HOLD = 1_000_000  # NAT_PENDING_DESCRIBES that keeps NAT gateways pending until released


from bench_bounds import PATHS, CriticalPath, Wait  # noqa: E402


# --- the figures from a proxy record (pure) ---------------------------------------------------

def waves(calls: list) -> list:
    """The calls grouped into sequential rounds: sorted by start, a call that starts after every
    call of the current wave has ended (started >= the wave's latest end) opens a new wave; any
    other joins the current one (and may extend its end)."""
    result, end = [], None
    for call in sorted(calls, key=lambda c: (c.started, c.finished)):
        if result and call.started < end:
            result[-1].append(call)
            end = max(end, call.finished)
        else:
            result.append([call])
            end = call.finished
    return result


def wait_span(calls: list, wait: Wait) -> Optional[dict]:
    """Where `wait` lies in a record, in whole waves (module docstring): the polls are the calls
    of `wait.checked_by` that start after the last call of `wait.begun_by` ended; the one that found
    the condition true is the last poll before the first call of `wait.needed_by` (or the last
    poll). The wait runs from the end of the wave before the first poll's wave to the start of
    the observing poll's wave; `waves` are those in between (the pending polls). None when the
    record shows no wait (nothing began it, or no poll followed)."""
    begun = [c for c in calls if c.action in wait.begun_by]
    if not begun:
        return None
    begun_end = max(c.finished for c in begun)
    polls = sorted((c for c in calls if c.action == wait.checked_by and c.started >= begun_end),
                   key=lambda c: c.started)
    if not polls:
        return None
    if wait.needed_by is not None:
        needing = [c.started for c in calls if wait.needed_by(c) and c.started > polls[0].started]
        if needing:
            polls = [c for c in polls if c.started < min(needing)]
    grouped = waves(calls)
    index = {id(c): i for i, wave in enumerate(grouped) for c in wave}
    first, last = index[id(polls[0])], index[id(polls[-1])]
    start = max((c.finished for wave in grouped[:first] for c in wave), default=polls[0].started)
    end = min(c.started for c in grouped[last])
    return {"start": start, "end": end, "seconds": max(0.0, end - start), "polls": len(polls),
            "waves": last - first, "observed": polls[-1]}


def sdk_retries(calls: list) -> list:
    """The calls that repeat the previous call of the same action and parameters after it was
    answered 5xx: the SDK's retries (moto has no SimulatePrincipalPolicy and answers 500)."""
    last: dict = {}
    found = []
    for call in sorted(calls, key=lambda c: c.started):
        key = (call.service, call.action, json.dumps(call.params, sort_keys=True, default=str))
        if key in last and last[key].status >= 500:
            found.append(call)
        last[key] = call
    return found


def analyse(path: CriticalPath, latency_ms: int, sent: float, answered: float, calls: list) -> dict:
    """The figures of one operation (module docstring) from its proxy record."""
    latency = latency_ms / 1000
    wall = answered - sent
    span = wait_span(calls, path.wait) if path.wait else None
    waited = span["seconds"] if span else 0.0
    grouped = waves(calls)

    def start(w):
        return min(c.started for c in w)

    def duration(w):
        return max(c.finished for c in w) - start(w)

    active = [w for w in grouped if not span or not span["start"] <= start(w) < span["end"]]
    retried = {id(c) for c in sdk_retries(calls)}
    retry_only = [w for w in active if all(id(c) in retried for c in w)]
    rounds = [w for w in active if w not in retry_only]
    previous_end = {id(w): max((c.finished for v in grouped if start(v) < start(w) for c in v), default=sent)
                    for w in retry_only}
    in_calls = sum(duration(w) for w in active)
    emulator = (sum(max(0.0, duration(w) - latency) for w in rounds)
                + sum(start(w) - previous_end[id(w)] + duration(w) for w in retry_only))
    bound = path.depth * latency
    ratio = (wall - waited) / bound if bound else None
    net = (wall - waited - emulator) / bound if bound else None
    return {
        "operation": path.name,
        "wall_s": round(wall, 3),
        "calls": len(calls),
        "calls_by_action": dict(sorted(Counter(c.action for c in calls).items())),
        "server_errors": sum(1 for c in calls if c.status >= 500),
        "waves": len(grouped),
        "waves_active": len(active),
        "retry_waves": len(retry_only),
        "wave_sizes": [len(w) for w in active],
        # Every wave: offset of its first start from the request (s), its duration (s), its calls.
        "timeline": [f"{start(w) - sent:.3f} +{duration(w):.3f} "
                     + ("(wait) " if w not in active else "(retry) " if w in retry_only else "")
                     + ",".join(f"{a}x{n}" if n > 1 else a for a, n in sorted(Counter(c.action for c in w).items()))
                     for w in grouped],
        "wait": None if not span else {
            "name": path.wait.name, "seconds": round(waited, 3), "polls": span["polls"],
            "pending_poll_waves": span["waves"]},
        "wait_s": round(waited, 3),
        "depth": path.depth,
        "chain": list(path.chain),
        "bound_s": round(bound, 3),
        "active_s": round(wall - waited, 3),
        "in_calls_s": round(in_calls, 3),
        "outside_calls_s": round(wall - waited - in_calls, 3),
        "emulator_s": round(emulator, 3),
        "ratio": round(ratio, 2) if ratio is not None else None,
        "ratio_without_emulator": round(net, 2) if net is not None else None,
        "rounds_ratio": round(len(rounds) / path.depth, 2),
        "over_goal": bool(ratio is not None and ratio > GOAL),
        "over_goal_without_emulator": bool(net is not None and net > GOAL),
        "sequential_in_code": list(path.sequential),
    }


def responsiveness(wait: str, harness: str, how: str, condition_true: float, answered: float,
                   observed: Optional[float] = None) -> dict:
    """Condition true -> answer, against the poll interval; `observed` (same clock) the start of
    the poll that saw it, splitting the lag into noticing it and finishing after it."""
    lag = answered - condition_true
    result = {"wait": wait, "harness": harness, "condition_true": how, "lag_s": round(lag, 3),
              "poll_interval_s": POLL_INTERVAL_S, "within_poll_interval": lag <= POLL_INTERVAL_S}
    if observed is not None:
        result["noticed_after_s"] = round(observed - condition_true, 3)
        result["answered_after_notice_s"] = round(answered - observed, 3)
    return result


# --- driving the binaries -----------------------------------------------------------------------

def timed(proxy: RecordingProxy, latency_ms: int, path: CriticalPath, send: Callable) -> dict:
    """Run `send` (one request through the stand-in, answered) and analyse what `proxy` saw
    between the request and its answer; `_calls` and `_answered` keep the record."""
    proxy.clear()
    sent = time.monotonic()
    answer = send()
    calls = [c for c in proxy.recorded() if sent <= c.started <= answer.received_at]
    result = analyse(path, latency_ms, sent, answer.received_at, calls)
    result["status"] = answer.status
    if not answer.ok:
        result["reason"] = answer.reason
    result["_calls"], result["_answered"] = calls, answer.received_at
    return result


class Bench:
    """moto, the recording proxy (adding the latency), the stand-in and one local Lambda per
    provider function, all on loopback; `close()` stops them all."""

    def __init__(self, workdir: Path, latency_ms: int):
        self.workdir, self.latency_ms = Path(workdir), latency_ms
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.moto = self.proxy = self.cfn = None
        self.functions = {}
        try:
            self.moto = MotoServer(workdir).start()
            self.proxy = RecordingProxy(self.moto.url, max_lifetime=3600)
            self.proxy.set_plan(FaultPlan(latency_ms=latency_ms))
            self.cfn = CloudFormation(stack_name="bench")
            for name in ("network", "service", "scaling"):
                self.functions[name] = _function(name, self.cfn, self.proxy, label="bench", logs=workdir)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for function in self.functions.values():
            function.stop()
        for part in (self.cfn, self.proxy, self.moto):
            if part is not None:
                part.stop()

    def resource(self, function: str, logical_id: str, resource_type: str) -> Resource:
        return Resource(self.cfn, self.functions[function], logical_id, resource_type=resource_type,
                        wait=OPERATION_TIMEOUT)

    def timed(self, path: CriticalPath, send: Callable) -> dict:
        return timed(self.proxy, self.latency_ms, path, send)

    def background(self, send: Callable) -> tuple:
        """`send` in a thread: (thread, box) where box gets "answer" or "error"."""
        box: dict = {}

        def run():
            try:
                box["answer"] = send()
            except BaseException as error:  # noqa: BLE001 - reported by the caller
                box["error"] = error

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, box

    def until(self, condition: Callable, what: str, timeout: float = OPERATION_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = condition()
            if found:
                return found
            time.sleep(0.01)
        raise TimeoutError(f"{what}: not within {timeout} s")

    def nat_flip(self, send: Callable, nats: int) -> tuple:
        """Run `send` (an operation that makes `nats` NAT gateways) with the NATs held pending,
        make them available half a poll interval after a pending check ended, and return
        (answer, T, record) -- T the monotonic time from which describes report them available."""
        self.proxy.clear()
        with self.moto.knobs(NAT_PENDING_DESCRIBES=HOLD):
            thread, box = self.background(send)
            self.until(lambda: len(self.proxy.recorded("ec2", "CreateNatGateway")) >= nats,
                       "the NAT gateways made")
            made_end = max(c.finished for c in self.proxy.recorded("ec2", "CreateNatGateway"))
            pending = self.until(lambda: [c for c in self.proxy.recorded("ec2", "DescribeNatGateways")
                                          if c.started >= made_end], "a pending check")
            time.sleep(max(0.0, pending[0].finished + POLL_INTERVAL_S / 2 - time.monotonic()))
            with self.moto.knobs(NAT_PENDING_DESCRIBES=0):
                flipped = time.monotonic()
                thread.join(OPERATION_TIMEOUT + 30)
        if thread.is_alive() or "error" in box:
            raise RuntimeError(f"the operation did not answer: {box.get('error')}")
        return box["answer"], flipped, self.proxy.recorded()


# A cheap read per service, made directly on moto (not through the proxy) after a reset: moto
# builds a region's backend at its first request (EC2's took 1.1 s here), which is no round trip.
WARM = {
    "ec2": ("describe_vpcs", {}),
    "application-autoscaling": ("describe_scalable_targets", {"ServiceNamespace": "ecs"}),
    "cloudwatch": ("describe_alarms", {}),
    "ecs": ("list_clusters", {}),
    "iam": ("list_roles", {}),
    "ssm": ("describe_parameters", {}),
}


def warm(moto, *services: str) -> None:
    for service in services:
        method, arguments = WARM[service]
        getattr(moto.client(service), method)(**arguments)


def _public(result: dict) -> dict:
    return {k: v for k, v in result.items() if not k.startswith("_")}


def _network(bench: Bench, operations: list, waits: list) -> None:
    path = PATHS["network create (3 AZ, PerAz)"]
    fresh_moto(bench.moto)
    warm(bench.moto, "ec2")
    network = bench.resource("network", "Network", "Custom::Network")
    created = bench.timed(path, lambda: network.create({"Name": "bench", "AvailabilityZoneCount": 3,
                                                        "NatGateways": "PerAz"}))
    operations.append(_public(created))

    path = PATHS["NAT layout change (3 AZ, Single -> PerAz)"]
    fresh_moto(bench.moto)
    warm(bench.moto, "ec2")
    network = bench.resource("network", "Network", "Custom::Network")
    single = network.create({"Name": "bench", "AvailabilityZoneCount": 3, "NatGateways": "Single"})
    assert single.ok, single.reason
    changed = bench.timed(path, lambda: network.update({"Name": "bench", "AvailabilityZoneCount": 3,
                                                        "NatGateways": "PerAz"}))
    operations.append(_public(changed))

    # Responsiveness: the same two operations, the NATs made available at a chosen moment.
    fresh_moto(bench.moto)
    warm(bench.moto, "ec2")
    network = bench.resource("network", "Network", "Custom::Network")
    answer, flipped, record = bench.nat_flip(lambda: network.create(
        {"Name": "bench", "AvailabilityZoneCount": 3, "NatGateways": "PerAz"}), nats=3)
    waits.append(_nat_responsiveness("network create (3 AZ, PerAz)", answer, flipped, record))
    fresh_moto(bench.moto)
    warm(bench.moto, "ec2")
    network = bench.resource("network", "Network", "Custom::Network")
    assert network.create({"Name": "bench", "AvailabilityZoneCount": 3, "NatGateways": "Single"}).ok
    answer, flipped, record = bench.nat_flip(lambda: network.update(
        {"Name": "bench", "AvailabilityZoneCount": 3, "NatGateways": "PerAz"}), nats=2)
    waits.append(_nat_responsiveness("NAT layout change (3 AZ, Single -> PerAz)", answer, flipped, record))


def _nat_responsiveness(operation: str, answer, flipped: float, record: list) -> dict:
    if not answer.ok:
        raise RuntimeError(f"{operation} failed: {answer.reason}")
    polls = [c for c in record if c.action == "DescribeNatGateways" and c.started >= flipped]
    observed = min((c.started for c in polls), default=None)
    result = responsiveness("NAT available", "moto (harness.aws_rules)",
                            "NAT_PENDING_DESCRIBES set to 0 half a poll interval after a pending check",
                            flipped, answer.received_at, observed)
    result["operation"] = operation
    return result


def _service(bench: Bench, operations: list, waits: list) -> None:
    import test_service

    fresh_moto(bench.moto)
    world = test_service.make_world({name: bench.moto.client(name) for name in test_service.CLIENTS})
    warm(bench.moto, "ec2", "ecs", "iam", "ssm")
    service = bench.resource("service", "Service", "Custom::FargateService")
    path = PATHS["service create (WaitForSteadyState)"]
    created = bench.timed(path, lambda: service.create(test_service.props(world, WaitForSteadyState=True)))
    operations.append(_public(created))
    waits.append(_steady_in_moto(path, created))
    path = PATHS["service strategy update (WaitForSteadyState)"]
    updated = bench.timed(path, lambda: service.update(test_service.props(
        world, WaitForSteadyState=True, CapacityProviderStrategy=[
            {"CapacityProvider": "FARGATE", "Weight": 1, "Base": 1},
            {"CapacityProvider": "FARGATE_SPOT", "Weight": 3}])))
    operations.append(_public(updated))
    waits.append(_steady_in_moto(path, updated))


def _steady_in_moto(path: CriticalPath, result: dict) -> dict:
    calls = result["_calls"]
    changed = max(c.finished for c in calls if c.action in path.wait.begun_by)
    span = wait_span(calls, path.wait)
    entry = responsiveness("service steady", "moto (MOTO_ECS_SERVICE_RUNNING=1, test_service.py)",
                           f"steady as {'/'.join(path.wait.begun_by)} returns (moto: rollout COMPLETED, "
                           "1 of 1 running, from the start)", changed, result["_answered"],
                           span["observed"].started if span else None)
    entry["operation"] = path.name
    # Read from the code: settle answers Pending right after the change without checking
    # (functions/service/src/resource.rs:418), and the library sleeps a whole poll interval
    # before every check (functions/custom-resource/src/provider.rs:744-755).
    entry["why"] = ("a service already steady is first checked one poll interval after the change "
                    "(service/src/resource.rs:418 pending without a check; custom-resource/src/"
                    "provider.rs:744-755 sleeps before each check)")
    return entry


def _scaling(bench: Bench, operations: list) -> None:
    import test_scaling

    fresh_moto(bench.moto)
    test_scaling.make_world({name: bench.moto.client(name) for name in test_scaling.CLIENTS})
    warm(bench.moto, "application-autoscaling", "cloudwatch")
    scaling = bench.resource("scaling", "Scaling", "Custom::ServiceScaling")
    operations.append(_public(bench.timed(PATHS["scaling create"], lambda: scaling.create(dict(test_scaling.BASE)))))


def _on_the_engine(workdir: Path, waits: list) -> list:
    """test_fail_fast.py's doomed deploys, timed as it times them, and a service-steady wait whose
    condition turns true at a known moment, on one local engine."""
    import test_fail_fast as ff
    from conftest import deploy_provider, engine_for_deploys, fargate_world
    from harness.engine_process import settle

    figures = []
    engine = engine_for_deploys("bench-paths-engine", ff.BUCKET, logs=workdir)
    try:
        deploy_provider(engine, ff.PROVIDER, "ff")
        fargate_world(engine, 9)
        for cause, name, knobs, strategy in (
                ("missing image", "bench-ff-image", {"TASK_FAILURE": ff.FATAL["image"][0]}, ff.ON_DEMAND_AND_SPOT),
                ("no Spot capacity", "bench-ff-spot-only", {"SPOT_CAPACITY": "unavailable"}, ff.SPOT_ONLY)):
            with engine.knobs(**knobs):
                cfn = ff.deploy(engine, name, strategy)
                stack = settle(cfn, name, timeout=300)
            answer = ff.create_answer(engine, name)
            figures.append({
                "cause": cause, "harness": "local engine (no added latency)",
                "seconds": round(answer["At"] - ff.first_signal(engine, name), 2),
                "measured": "first fatal signal (first stopped task's stoppedAt, else the first "
                            "'unable to place' event) -> FAILED answer",
                "status": answer["Status"], "stack": stack["StackStatus"],
                "reason": (answer.get("Reason") or "")[:300]})

        name = "bench-steady"
        with engine.knobs(SPOT_CAPACITY="unavailable"):
            cfn = ff.deploy(engine, name, ff.ON_DEMAND_AND_SPOT)
            deadline = time.monotonic() + OPERATION_TIMEOUT
            while not [r for r in engine.requests() if r["StackName"] == name] and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3 * POLL_INTERVAL_S)  # a few polls with Spot short
        restored = time.time()
        stack = settle(cfn, name, timeout=300)
        answer = ff.create_answer(engine, name)
        entry = responsiveness("service steady", "local engine (harness.engine_ecs, no added latency)",
                               "SPOT_CAPACITY restored; the next DescribeServices places the Spot task",
                               restored, answer["At"])
        entry.update(operation="service create (engine, FARGATE base 1 + FARGATE_SPOT)",
                     status=answer["Status"], stack=stack["StackStatus"])
        waits.append(entry)
    finally:
        engine.stop()
    return figures


def measure(workdir: Path, latency_ms: int = 50, *, engine: bool = True,
            parts: tuple = ("network", "service", "scaling")) -> dict:
    """Every figure of the module docstring, with `latency_ms` added to each AWS call; logs in
    `workdir`. `engine=False` skips the local-engine part (fail fast, the engine's steady wait);
    `parts` picks the resources measured."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    operations, waits, fail_fast = [], [], []
    started = time.monotonic()
    bench = Bench(workdir, latency_ms)
    try:
        if "network" in parts:
            _network(bench, operations, waits)
        if "service" in parts:
            _service(bench, operations, waits)
        if "scaling" in parts:
            _scaling(bench, operations)
        violations = bench.cfn.violations()
    finally:
        bench.close()
    if engine:
        fail_fast = _on_the_engine(workdir, waits)
    return {
        "latency_ms": latency_ms,
        "poll_interval_s": POLL_INTERVAL_S,
        "goal_ratio": GOAL,
        "operations": operations,
        "over_goal": [op["operation"] for op in operations if op["over_goal"]],
        "wait_responsiveness": waits,
        "fail_fast": fail_fast,
        "protocol_violations": [str(v) for v in violations],
        "seconds": round(time.monotonic() - started, 1),
    }


def table(result: dict) -> str:
    lines = [f"critical paths, {result['latency_ms']} ms per AWS call (goal <= {result['goal_ratio']}x the bound)",
             f"{'operation':<46} {'wall s':>7} {'calls':>5} {'waves':>5} {'depth':>5} {'wait s':>6} "
             f"{'bound s':>7} {'ratio':>6} {'net':>6} {'rounds':>6}"]
    for op in result["operations"]:
        flag = ("  OVER" if op["over_goal"] else "") + (" (net OVER)" if op["over_goal_without_emulator"] else "")
        lines.append(f"{op['operation']:<46} {op['wall_s']:>7.2f} {op['calls']:>5} "
                     f"{op['waves_active']:>5} {op['depth']:>5} {op['wait_s']:>6.2f} {op['bound_s']:>7.2f} "
                     f"{op['ratio']:>6.2f} {op['ratio_without_emulator']:>6.2f} {op['rounds_ratio']:>6.2f}{flag}")
    lines.append(f"wait responsiveness (poll interval {result['poll_interval_s']} s)")
    for w in result["wait_responsiveness"]:
        lines.append(f"  {w['wait']:<15} {w['operation']:<46} {w['lag_s']:>6.2f} s  ({w['harness']})")
    if result["fail_fast"]:
        lines.append("fail fast (first fatal signal -> FAILED)")
        for f in result["fail_fast"]:
            lines.append(f"  {f['cause']:<20} {f['seconds']:>6.2f} s  {f['status']}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / ".tmp" / "bench-paths")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--no-engine", action="store_true", help="skip fail fast and the engine's wait")
    arguments = parser.parse_args()
    result = measure(arguments.workdir, arguments.latency_ms, engine=not arguments.no_engine)
    print(table(result), file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
