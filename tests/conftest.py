"""Fixtures: one moto server and one local Lambda per function for the whole session, moto state
reset before every test, and a CloudFormation stand-in that checks every answer."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# cloudformation/stackctl.py holds facts the tests share (the provider functions' names).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cloudformation"))

from harness.aws_proxy import RecordingProxy  # noqa: E402
from harness.cloudformation import CloudFormation, Resource  # noqa: E402
from harness.lambda_service import LocalLambda  # noqa: E402
from harness.moto import MotoServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
if not TARGET.is_absolute():
    TARGET = ROOT / TARGET
# One log directory per pytest-xdist worker (each worker runs its own servers and engines).
LOGS = ROOT / ".tmp" / "test-logs" / os.environ.get("PYTEST_XDIST_WORKER", "main")

# Test-scale timings: a 6 s Lambda, answer 1.5 s before its deadline, poll every 0.5 s.
LAMBDA_TIMEOUT = 6.0
# The hand-over claim table (functions/custom-resource/src/handover.rs), made in moto before
# every test as provider.yaml makes it.
HANDOVER_TABLE = "custom-resource-handovers"
FUNCTION_ENV = {
    "CUSTOM_RESOURCE_POLL_INTERVAL_MS": "500",
    "CUSTOM_RESOURCE_SAFETY_MARGIN_MS": "1500",
    "CUSTOM_RESOURCE_HANDOVER_TABLE": HANDOVER_TABLE,
    "RUST_LOG": "info",
}

SCENARIOS = []


def binary(name: str, example: bool = False) -> Path:
    return TARGET / "debug" / ("examples" if example else "") / name


def engine_for_deploys(name: str, bucket: str, logs: Path = LOGS):
    """A local engine process ready for `make deploy`: the provider functions zipped from the
    debug binaries (in `engine.lambda_dir`), its own build dir and the code bucket; its logs under
    `logs`/`name`."""
    import stackctl
    from harness.engine_process import EngineProcess, zip_binary

    # The engine's functions claim hand-overs in the table provider.yaml makes, not the harness's.
    env = {k: v for k, v in FUNCTION_ENV.items() if k != "CUSTOM_RESOURCE_HANDOVER_TABLE"}
    engine = EngineProcess(logs / name, function_env=env).start()
    engine.lambda_dir = logs / f"{name}-zips" / "lambda"
    # Where `make package` writes for this engine (make_on passes it as BUILD_DIR).
    engine.build_dir = logs / f"{name}-zips" / "build"
    for function in stackctl.FUNCTIONS:
        zip_binary(binary(function), engine.lambda_dir / function / "bootstrap.zip")
    engine.client("s3").create_bucket(Bucket=bucket)
    engine.bucket = bucket
    return engine


def deploy_provider(engine, stack: str, prefix: str) -> list:
    """provider.yaml deployed as `stack` on an engine_for_deploys engine, its zips uploaded under
    `prefix`; returns the code parameters (CodeBucket, CodeKeyPrefix) for other stacks."""
    import stackctl
    from harness.engine_process import settle

    s3 = engine.client("s3")
    for function in stackctl.FUNCTIONS:
        s3.upload_file(str(engine.lambda_dir / function / "bootstrap.zip"), engine.bucket, f"{prefix}/{function}.zip")
    code = [{"ParameterKey": "CodeBucket", "ParameterValue": engine.bucket},
            {"ParameterKey": "CodeKeyPrefix", "ParameterValue": prefix}]
    cfn = engine.client("cloudformation")
    cfn.create_stack(StackName=stack, TemplateBody=(ROOT / "cloudformation/provider.yaml").read_text(),
                     Capabilities=["CAPABILITY_IAM"], Parameters=code)
    assert settle(cfn, stack)["StackStatus"] == "CREATE_COMPLETE"
    return code


def fargate_world(engine, octet: int) -> None:
    """What a Custom::FargateService needs around it: a VPC 10.<octet>.0.0/16 with subnets in two
    zones (engine.subnets) and a security group (engine.group), the ECS service-linked role, a
    FARGATE/FARGATE_SPOT cluster `app` and a task definition `web:1` whose image is pullable (not
    in this account's ECR)."""
    ec2, ecs, iam = engine.client("ec2"), engine.client("ecs"), engine.client("iam")
    vpc = ec2.create_vpc(CidrBlock=f"10.{octet}.0.0/16")["Vpc"]["VpcId"]
    engine.subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{octet}.{i}.0/24",
                                        AvailabilityZone=f"us-east-1{zone}")["Subnet"]["SubnetId"]
                      for i, zone in enumerate("ab")]
    engine.group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    ecs.create_cluster(clusterName="app", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(
        family="web", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{"name": "web", "image": "nginx", "essential": True}])


def make_on(engine, *arguments):
    """`make <arguments>` against the engine, as a person runs it (output printed for the log)."""
    import subprocess

    # Each engine packages into its own build dir: tests on other pytest workers deploy too.
    command = [os.environ.get("MAKE", "make"), "-s", "--no-print-directory", *arguments,
               f"BUCKET={engine.bucket}", f"LAMBDA_DIR={engine.lambda_dir}",
               f"BUILD_DIR={engine.build_dir}"]
    result = subprocess.run(command, cwd=ROOT, env=engine.env(), capture_output=True, text=True, timeout=600)
    print(result.stdout[-6000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="session")
def moto():
    LOGS.mkdir(parents=True, exist_ok=True)
    server = MotoServer(LOGS).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cfn():
    stand_in = CloudFormation(stack_name="harness", echo=lambda line: SCENARIOS[-1][1].append(line) if SCENARIOS else None)
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="session")
def example_function(moto, cfn):
    env = dict(FUNCTION_ENV, AWS_ENDPOINT_URL=moto.url, RESPONSE_URL_ALLOWED_PREFIXES=cfn.prefix)
    function = LocalLambda("example-resource", binary("example-resource", example=True), LOGS,
                           timeout=LAMBDA_TIMEOUT, env=env).start()
    yield function
    function.stop()


@pytest.fixture(scope="session")
def proxy(moto):
    """Records every AWS call the network/service/scaling binaries make (moto behind it)."""
    recorder = RecordingProxy(moto.url)
    yield recorder
    recorder.stop()


def _function(name, cfn, proxy, timeout=30.0, label=None, logs: Path = LOGS, **extra):
    """A provider binary as a local Lambda whose AWS calls go through `proxy`; `extra`: more
    environment."""
    env = dict(FUNCTION_ENV, AWS_ENDPOINT_URL=proxy.url, RESPONSE_URL_ALLOWED_PREFIXES=cfn.prefix, **extra)
    # Generous timeout: these tests are about AWS calls, not the deadline (tested with the example).
    return LocalLambda(f"{name}-{label}" if label else name, binary(name), logs,
                       timeout=timeout, env=env).start()


@pytest.fixture(scope="session")
def network_function(moto, cfn, proxy):
    function = _function("network", cfn, proxy)
    yield function
    function.stop()


@pytest.fixture(scope="session")
def network_function_in_a_two_zone_region(moto, cfn, proxy):
    function = _function("network", cfn, proxy, label="us-west-1", AWS_REGION="us-west-1",
                         AWS_DEFAULT_REGION="us-west-1")
    yield function
    function.stop()


@pytest.fixture(scope="session")
def network_function_short(moto, cfn, proxy):
    """The network binary with a 6 s Lambda timeout: long NAT waits span invocations."""
    function = _function("network", cfn, proxy, timeout=LAMBDA_TIMEOUT, label="short")
    yield function
    function.stop()


@pytest.fixture(scope="session")
def service_function(moto, cfn, proxy):
    function = _function("service", cfn, proxy)
    yield function
    function.stop()


@pytest.fixture(scope="session")
def scaling_function(moto, cfn, proxy):
    function = _function("scaling", cfn, proxy)
    yield function
    function.stop()


def fresh_moto(moto) -> None:
    """moto as every test finds it: all state wiped, the hand-over claim table made."""
    moto.reset()
    moto.client("dynamodb").create_table(
        TableName=HANDOVER_TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "Claim", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "Claim", "KeyType": "HASH"}])


@pytest.fixture(autouse=True)
def fresh_state(request, moto):
    fresh_moto(moto)
    SCENARIOS.append((request.node.name, []))
    yield


@pytest.fixture
def ssm(moto):
    return moto.client("ssm")


@pytest.fixture
def parameter(cfn, example_function):
    return Resource(cfn, example_function, "Parameter")


@pytest.fixture(scope="session", autouse=True)
def every_body_fits(cfn):
    """After the session: no recorded response broke the protocol."""
    yield
    assert not cfn.violations(), f"protocol violations: {cfn.violations()}"
    assert all(len(body) <= 4096 for body in cfn.all_bodies())


def pytest_terminal_summary(terminalreporter):
    if not SCENARIOS:
        return
    terminalreporter.section("lifecycle scenarios run against the emulator (as CloudFormation saw them)")
    for name, lines in SCENARIOS:
        terminalreporter.write_line(f"* {name}")
        for line in lines:
            terminalreporter.write_line(f"    {line}")


# The longest modules first. `make test` runs a module per xdist worker (--dist loadfile), in the
# order collected (--no-loadscope-reorder): test_soak.py (about 190 s on one worker, few tests)
# otherwise ran alone after the others had finished. Stable: every worker collects the same order.
LONGEST_FIRST = ("test_soak.py", "test_secrets.py", "test_task_processes.py", "test_environment.py",
                 "test_fail_fast.py", "test_engine_iam.py", "test_spot_fallback.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))
