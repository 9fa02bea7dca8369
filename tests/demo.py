"""make demo: one environment's whole life on the local engine, with the real templates, the real
provider zips (make build) and the same make targets a real account uses.

Starts the local engine (moto + our CloudFormation orchestration + the Lambda runtime for the zips)
on free loopback ports, then: make deploy ENV=dev on a fresh account (create, events as they
happen, outputs; no image yet, so the service waits with no task) -> push the first image and
make deploy with its tag -> make tasks -> make weights (a console-style update of the Spot weight:
same service ARN, new strategy, the preflight check then exactly one Update to the service
resource) -> make tasks -> a deploy of a tag never pushed, which fails fast naming it and leaves
the service running -> SpotFallback=Enabled, a Spot reclaim with no Spot capacity left: the
function moves the tasks to FARGATE, then (time passed on the engine's schedule) tries the mix
again once capacity is back and keeps it -> make destroy -> checks the emulator holds nothing of
the stack. Stops everything it started, also on failure.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).parent))

from conftest import ROOT, TARGET  # noqa: E402
from harness.engine_process import APP_BINARY, EngineProcess, zip_binary  # noqa: E402
from harness.images import push_image  # noqa: E402
from harness.inventory import inventory  # noqa: E402
import stackctl  # noqa: E402

BUCKET = "shop-artifacts-local"
SECRET = "/shop/dev/DATABASE_URL"
SET = "DesiredCount=4 MaxCount=6 SecretNames=DATABASE_URL"
LOGS = ROOT / ".tmp" / "demo"
# Demo-scale polling; the functions' own timeouts come from provider.yaml.
FUNCTION_ENV = {"CUSTOM_RESOURCE_POLL_INTERVAL_MS": "1000", "RUST_LOG": "info"}


class StepFailed(Exception):
    pass


def banner(number: int, text: str) -> None:
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    print(f"\n{bold}== {number}. {text}{plain}", flush=True)


def fallback_changes(engine, since: int) -> list:
    """The spot-fallback function's change events (one JSON log line each) after the first `since`."""
    stack = engine.client("cloudformation").describe_stacks(StackName="shop-dev")["Stacks"][0]
    name = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "SpotFallbackFunction")
    path = LOGS / f"{name}.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return [json.loads(line) for line in text.splitlines()
            if line.startswith("{") and '"spot fallback change"' in line][since:]


def tasks_per_provider(engine) -> dict:
    ecs = engine.client("ecs")
    arns = ecs.list_tasks(cluster="shop-dev", serviceName="shop", desiredStatus="RUNNING")["taskArns"]
    found: dict = {}
    for task in ecs.describe_tasks(cluster="shop-dev", tasks=arns)["tasks"] if arns else []:
        found[task["capacityProviderName"]] = found.get(task["capacityProviderName"], 0) + 1
    return found


def wait_for_tasks(engine, wanted: dict, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if tasks_per_provider(engine) == wanted:
            return
        time.sleep(0.5)
    raise StepFailed(f"tasks per provider did not become {wanted} within {timeout:.0f} s")


def spot_fallback(engine, make) -> None:
    """Steps 10 and 11: Spot capacity drops, the fallback covers it; capacity returns, the mix is back."""
    quiet = 15 * 60  # SpotFallbackQuietMinutes' default
    seen, mix = len(fallback_changes(engine, 0)), tasks_per_provider(engine)
    banner(10, "Spot capacity drops in every zone and Spot reclaims the service's FARGATE_SPOT tasks")
    with engine.knobs(SPOT_CAPACITY="unavailable"):
        stopped = engine.interrupt_spot("shop-dev", "shop")
        print(f"{len(stopped)} Spot tasks interrupted (stopCode SpotInterruption); ECS cannot place them on Spot again")
        wait_for_tasks(engine, {"FARGATE": 4})
        for change in fallback_changes(engine, seen):
            print(f"  spot-fallback: {change['from']} -> {change['to']}: {change['why']} (strategy {change['strategy']})")
        make("tasks", "ENV=dev")
    banner(11, "Spot capacity is back; 15 minutes pass (the engine's schedule fires with that time)")
    seen = len(fallback_changes(engine, 0))
    engine.fire_schedules(time.time() + quiet + 5)
    wait_for_tasks(engine, mix)
    engine.fire_schedules(time.time() + 2 * quiet + 10)
    end = time.monotonic() + 60
    while len(fallback_changes(engine, seen)) < 2 and time.monotonic() < end:
        time.sleep(0.5)
    for change in fallback_changes(engine, seen):
        print(f"  spot-fallback: {change['from']} -> {change['to']}: {change['why']} (strategy {change['strategy']})")
    if len(fallback_changes(engine, seen)) < 2:
        raise StepFailed("the template's mix was not restored after Spot came back")
    make("tasks", "ENV=dev")


def wait_for_healthy_targets(engine, count: int, timeout: float = 30) -> None:
    """Until the load balancer has `count` healthy targets and nothing else registered."""
    end = time.monotonic() + timeout
    states: list = []
    while time.monotonic() < end:
        groups = engine.balancers()["TargetGroups"].values()
        states = [t["State"] for group in groups for t in group["Targets"]]
        if states.count("healthy") == count == len(states):
            return
        time.sleep(0.2)
    raise StepFailed(f"the load balancer did not get {count} healthy targets within {timeout:.0f} s: {states}")


def balancer_answers(engine, requests: int = 8) -> list:
    """GET the stack's LoadBalancerUrl `requests` times (its DNS name resolved to the engine's
    loopback balancer); print and return who answered. Fails unless ≥ 2 tasks answered and each
    reported the secret present."""
    import urllib.request

    stack = engine.client("cloudformation").describe_stacks(StackName="shop-dev")["Stacks"][0]
    dns = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "LoadBalancerUrl")
    wait_for_healthy_targets(engine, sum(tasks_per_provider(engine).values()))
    url = engine.balancer_url(dns)
    print(f"{requests} requests to {dns} (served locally on {url}):")
    answers = []
    for _ in range(requests):
        with urllib.request.urlopen(url + "/?format=json", timeout=10) as response:
            answer = json.loads(response.read())
        answers.append(answer)
        secrets = ", ".join(f"{name} {'present' if there else 'ABSENT'}" for name, there in sorted(answer["secrets"].items()))
        print(f"  task {answer['task_id'][:8]}  {answer['availability_zone']}  {answer['capacity_provider']:<12}  "
              f"image tag {answer['image_tag']}  secrets: {secrets or 'none expected'}")
    mix: dict = {}
    for answer in answers:
        mix.setdefault(answer["capacity_provider"], set()).add(answer["task_id"])
    print("  tasks that answered, per capacity provider: " + ", ".join(f"{p} {len(t)}" for p, t in sorted(mix.items())))
    if len({a["task_id"] for a in answers}) < 2:
        raise StepFailed("fewer than 2 tasks answered through the load balancer")
    if not all(a["secrets"].get(SECRET.rsplit("/", 1)[-1]) for a in answers):
        raise StepFailed(f"a task reported the secret {SECRET.rsplit('/', 1)[-1]} absent")
    return answers


def debug_zips() -> Path:
    """Lambda zips of the debug binaries (make demo): the build make test shares."""
    folder = TARGET / "demo-lambda"
    for function in stackctl.FUNCTIONS:
        binary = TARGET / "debug" / function
        if binary.exists():
            zip_binary(binary, folder / function / "bootstrap.zip")
    return folder


def console_update(engine, make) -> None:
    """Step 6: the weights change sends exactly the preflight check and one service Update."""
    sent_before = len(engine.requests())
    make("weights", "ENV=dev", "FARGATE=1", "SPOT=1")
    sent = engine.requests()[sent_before:]
    print("custom-resource requests CloudFormation sent for this update:")
    for request in sent:
        answer = request["Answers"][0] if request["Answers"] else {}
        same = "same physical id" if answer.get("PhysicalResourceId") == request["PhysicalResourceId"] else "NEW physical id"
        print(f"  {request['RequestType']} {request['LogicalResourceId']} ({request['ResourceType']}) "
              f"{request['PhysicalResourceId']} -> {answer.get('Status')}, {same}")
    expected = [("Update", "Custom::EnvironmentPreflight"), ("Update", "Custom::FargateService")]
    if [(r["RequestType"], r["ResourceType"]) for r in sent] != expected:
        raise StepFailed("expected the preflight check, then exactly one Update, to the service resource")
    print("  (none to Custom::Network or Custom::ServiceScaling: their properties did not change)")


def doomed_deploy(engine, make) -> None:
    """Step 8: a deploy of a tag never pushed fails, with a FAILED custom resource naming it."""
    sent_before, failed_at = len(engine.requests()), time.monotonic()
    try:
        make("deploy", "ENV=dev", f"SET={SET} ImageTag=v2")
    except StepFailed:
        pass
    else:
        raise StepFailed("a deploy of ImageTag=v2, never pushed, succeeded")
    failed = [a for r in engine.requests()[sent_before:] for a in r["Answers"] if a.get("Status") == "FAILED"]
    if not failed:
        raise StepFailed("the deploy of ImageTag=v2 failed without a FAILED custom resource naming the cause")
    print(f"failed {time.monotonic() - failed_at:.0f} s after it started, rolled back; the cause as CloudFormation shows it:\n"
          f"  {failed[0]['Reason']}")


def nothing_left(engine) -> None:
    """Step 13: the emulator holds nothing of the environment."""
    left = inventory(engine.client)
    if left:
        for kind, ids in left.items():
            print(f"  {kind}: {ids}")
        raise StepFailed("resources left behind")
    print("nothing: no stacks, VPCs, subnets, NAT gateways, addresses, ENIs, security groups, load balancers,\n"
          "target groups, clusters, services, tasks, task definitions, repositories, functions, roles,\n"
          "log groups, alarms, scalable targets or scaling policies")


def provider_zips() -> Optional[Path]:
    """Where the provider zips are (debug ones zipped here with DEMO_ZIPS=debug), or None with
    what to run, when they or the sample app's binary are missing."""
    if os.environ.get("DEMO_ZIPS") == "debug":
        lambda_dir = debug_zips()
        print(f"deploying the debug build's binaries, zipped in {lambda_dir} (make demo-release: the release zips)")
    else:
        lambda_dir = Path(os.environ.get("LAMBDA_DIR") or TARGET / "lambda")
    missing = [f for f in stackctl.FUNCTIONS if not (lambda_dir / f / "bootstrap.zip").exists()]
    if missing:
        print(f"no provider zips for {missing} in {lambda_dir}: run make build (make demo-release does)", file=sys.stderr)
        return None
    if not os.access(APP_BINARY, os.X_OK):
        print(f"no sample app binary at {APP_BINARY}: run make binaries", file=sys.stderr)
        return None
    return lambda_dir


def main() -> int:
    lambda_dir = provider_zips()
    if lambda_dir is None:
        return 2
    # Every task runs as a process of the sample app behind a loopback load balancer.
    engine = EngineProcess(LOGS, function_env=FUNCTION_ENV, custom_resource_timeout=600, task_binary=APP_BINARY)
    started = time.monotonic()
    deployed = False

    def make(*arguments) -> None:
        command = [os.environ.get("MAKE", "make"), "-s", "--no-print-directory", *arguments,
                   f"BUCKET={BUCKET}", f"LAMBDA_DIR={lambda_dir}"]
        shown = [a for a in command[1:] if a not in ("-s", "--no-print-directory")]
        print("$ make " + " ".join(a if " " not in a else f"'{a}'" for a in shown), flush=True)
        if subprocess.run(command, cwd=ROOT, env=engine.env()).returncode != 0:
            raise StepFailed(" ".join(arguments))

    try:
        banner(1, "start the local engine")
        engine.start()
        print(f"AWS (moto 5.2.5 + our CloudFormation orchestration) on {engine.endpoint}\n"
              f"custom-resource ResponseURLs on {engine.control}; logs in {LOGS.relative_to(ROOT)}/")

        banner(2, "one-time account setup: a bucket for code and templates, the app's secret in SSM")
        engine.client("s3").create_bucket(Bucket=BUCKET)
        engine.client("ssm").put_parameter(Name=SECRET, Type="SecureString", Value="postgres://db.internal/shop")
        print(f"s3://{BUCKET}, {SECRET} (SecureString)")

        banner(3, f"first deploy on a fresh account: make deploy ENV=dev, params/dev.json plus {SET}, no image yet")
        deployed = True
        make("deploy", "ENV=dev", f"SET={SET}")

        banner(4, "push the first image (here: put into the emulated ECR repository), deploy with its tag")
        push_image(engine.client("ecr"), "shop-dev", "v1")
        print("shop-dev:v1 pushed")
        make("deploy", "ENV=dev", f"SET={SET} ImageTag=v1")

        banner(5, "make tasks ENV=dev: each task with its capacity provider; the load balancer answers")
        make("tasks", "ENV=dev")
        balancer_answers(engine)

        banner(6, "console-style update: FARGATE_SPOT weight 3 -> 1, every other parameter kept")
        console_update(engine, make)

        banner(7, "make tasks ENV=dev: tasks replaced by the new mix; the load balancer answers from them")
        make("tasks", "ENV=dev")
        balancer_answers(engine)

        banner(8, "a deploy of a tag never pushed fails fast, naming it; the running service is untouched")
        doomed_deploy(engine, make)
        make("tasks", "ENV=dev")

        banner(9, "Spot fallback: one parameter turns it on (SpotFallback=Enabled; the mix is params/dev.json's again)")
        make("deploy", "ENV=dev", f"SET={SET} ImageTag=v1 SpotFallback=Enabled")
        spot_fallback(engine, make)

        banner(12, "make destroy ENV=dev")
        make("destroy", "ENV=dev", "YES=1")
        deployed = False
        engine.client("ssm").delete_parameter(Name=SECRET)

        banner(13, "what the emulator still holds")
        nothing_left(engine)
        print(f"\ndemo complete in {time.monotonic() - started:.0f} s")
        return 0
    except StepFailed as failure:
        print(f"\ndemo failed at: {failure}. Engine log: {LOGS / 'engine.log'}; function logs: {LOGS}/*.log",
              file=sys.stderr)
        if deployed:
            subprocess.run([os.environ.get("MAKE", "make"), "-s", "--no-print-directory", "destroy", "ENV=dev", "YES=1"],
                           cwd=ROOT, env=engine.env())
        return 1
    finally:
        engine.stop()
        print("local engine stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
