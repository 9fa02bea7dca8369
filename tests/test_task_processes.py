"""ECS service tasks as processes of the sample app behind a loopback Application Load Balancer
(harness/task_processes.py, harness/balancer.py) on a local engine that opts in: the balancer
routes round robin over healthy tasks only (ECS replaces a task failing its health checks), a stopped task drains and gets SIGTERM, secrets from
SSM reach the process but no log line, and no task process outlives its engine.

Needs the sample app's debug binary (make binaries; ECS_APP_BINARY overrides the path)."""
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from conftest import LOGS
from harness.engine_process import APP_BINARY, EngineProcess
from harness.net import wait_until

SECRET_NAME = "/shop/test/DATABASE_URL"
SECRET_VALUE = "postgres://app:s3cr3t-7f2c@db.internal/shop"
API_KEY_NAME = "shop-test-api-key"  # a flat name, given to the container by its ARN
API_KEY_VALUE = "ak-91c3e0d2"


def app_binary() -> Path:
    if not os.access(APP_BINARY, os.X_OK):
        pytest.fail(f"no sample app binary at {APP_BINARY}: run make binaries")
    return APP_BINARY


def start_engine(name: str) -> EngineProcess:
    return EngineProcess(LOGS / name, task_binary=app_binary()).start()


def world(engine: EngineProcess, desired: int = 3) -> dict:
    """What the templates make, in API calls: a VPC with subnets in two zones, an internet-facing
    ALB whose HTTP listener forwards to an ip target group (health check /health every 15 s,
    thresholds 2/3, matcher 200-399, deregistration delay 30 s), a FARGATE/FARGATE_SPOT cluster,
    the app's SecureString parameter, an awsvpc Fargate task definition with that secret, and a
    service of `desired` tasks, FARGATE 1 : FARGATE_SPOT 1, registered with the target group."""
    ec2, elbv2, ecs = engine.client("ec2"), engine.client("elbv2"), engine.client("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24",
                                 AvailabilityZone=f"us-east-1{zone}")["Subnet"]["SubnetId"]
               for i, zone in enumerate("ab")]
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    lb = elbv2.create_load_balancer(Name="shop-test", Subnets=subnets, SecurityGroups=[group],
                                    Scheme="internet-facing", Type="application")["LoadBalancers"][0]
    target_group = elbv2.create_target_group(
        Name="shop-test", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip", HealthCheckPath="/health",
        HealthCheckIntervalSeconds=15, HealthyThresholdCount=2, UnhealthyThresholdCount=3,
        Matcher={"HttpCode": "200-399"})["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(TargetGroupArn=target_group, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "30"}])
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}])
    engine.client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    ecs.create_cluster(clusterName="shop-test", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    engine.client("ssm").put_parameter(Name=SECRET_NAME, Type="SecureString", Value=SECRET_VALUE)
    engine.client("ssm").put_parameter(Name=API_KEY_NAME, Type="SecureString", Value=API_KEY_VALUE)
    api_key_arn = f"arn:aws:ssm:us-east-1:123456789012:parameter/{API_KEY_NAME}"
    ecs.register_task_definition(
        family="shop-test", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{
            "name": "shop", "image": "public.ecr.aws/docker/library/shop:v1", "essential": True,
            "portMappings": [{"containerPort": 8080, "protocol": "tcp"}], "stopTimeout": 30,
            "environment": [{"name": "APP_ENV", "value": "test"}, {"name": "PORT", "value": "8080"},
                            {"name": "EXPECTED_SECRETS", "value": "DATABASE_URL,API_KEY,NOT_GIVEN"}],
            "secrets": [{"name": "DATABASE_URL", "valueFrom": SECRET_NAME},
                        {"name": "API_KEY", "valueFrom": api_key_arn}]}])
    ecs.create_service(
        cluster="shop-test", serviceName="shop", taskDefinition="shop-test", desiredCount=desired,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1},
                                  {"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [group]}},
        loadBalancers=[{"targetGroupArn": target_group, "containerName": "shop", "containerPort": 8080}])
    return {"dns": lb["DNSName"], "target_group": target_group}


def targets(engine, target_group: str) -> dict:
    return {t["Id"]: t for t in engine.balancers()["TargetGroups"].get(target_group, {}).get("Targets", [])}


def healthy(engine, target_group: str, count: int) -> dict:
    return wait_until(lambda: (lambda t: t if sum(x["State"] == "healthy" for x in t.values()) == count else None)(
        targets(engine, target_group)), what=f"{count} healthy targets")


def ask(url: str) -> dict:
    with urllib.request.urlopen(url + "/?format=json", timeout=10) as response:
        return json.loads(response.read())


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state


@pytest.fixture(scope="module")
def shop():
    engine = start_engine("task-processes")
    try:
        found = world(engine)
        healthy(engine, found["target_group"], 3)
        yield engine, found, engine.balancer_url(found["dns"])
    finally:
        engine.stop()


def test_the_load_balancer_spreads_requests_over_healthy_tasks_skips_one_failing_its_health_check_and_ecs_replaces_it(shop):
    engine, found, url = shop
    answers = [ask(url) for _ in range(9)]
    assert Counter(a["task_id"] for a in answers) == Counter({t: 3 for t in targets(engine, found["target_group"])})
    assert {a["capacity_provider"] for a in answers} == {"FARGATE", "FARGATE_SPOT"}
    assert {a["availability_zone"] for a in answers} == {"us-east-1a", "us-east-1b"}
    assert {a["launch_type"] for a in answers} == {"FARGATE"}

    hung = engine.task_processes()[0]
    os.kill(hung["Pid"], signal.SIGSTOP)  # its /health times out from now on
    try:
        wait_until(lambda: targets(engine, found["target_group"]).get(hung["TaskId"], {}).get("State")
                   in ("unhealthy", "draining", None), what="the hung task out of rotation")
        answered = Counter(ask(url)["task_id"] for _ in range(8))
        assert hung["TaskId"] not in answered and len(answered) == 2 and set(answered.values()) == {4}
        ecs = engine.client("ecs")
        [task] = ecs.describe_tasks(cluster="shop-test", tasks=[hung["TaskArn"]])["tasks"]
        assert task["lastStatus"] == "STOPPED" and task["stopCode"] == "ServiceSchedulerInitiated"
        assert task["stoppedReason"] == f"Task failed ELB health checks in (target-group {found['target_group']})"
        events = [e["message"] for e in ecs.describe_services(cluster="shop-test", services=["shop"])["services"][0]["events"]]
        assert any(f"(task {hung['TaskId']}) is unhealthy in (target-group" in e for e in events)
    finally:
        try:
            os.kill(hung["Pid"], signal.SIGCONT)
        except ProcessLookupError:
            pass
    healthy(engine, found["target_group"], 3)
    wait_until(lambda: hung["TaskId"] not in targets(engine, found["target_group"]), what="the hung task deregistered")
    wait_until(lambda: gone(hung["Pid"]), what="the hung task's process gone (SIGKILL after the stop timeout)")


def test_secrets_from_ssm_reach_the_task_process_environment_but_no_log_line_of_the_engine(shop):
    engine, found, url = shop
    assert ask(url)["secrets"] == {"DATABASE_URL": True, "API_KEY": True, "NOT_GIVEN": False}
    task = engine.task_processes()[0]
    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{task['Pid']}/environ").read_text().split("\0") if "=" in item)
    assert (environ["DATABASE_URL"], environ["API_KEY"]) == (SECRET_VALUE, API_KEY_VALUE)
    assert environ["APP_ENV"] == "test" and environ["BIND_ADDRESS"] == "127.0.0.1"
    assert environ["PORT"] == str(task["Port"])  # the engine's free port, not the template's 8080
    leaked = [str(p) for p in engine.log_dir.rglob("*") if p.is_file()
              and any(v.encode() in p.read_bytes() for v in (SECRET_VALUE, API_KEY_VALUE))]
    assert leaked == []
    assert "DATABASE_URL" in (engine.log_dir / "task-processes.log").read_text()  # the name is


def test_the_task_metadata_endpoint_v4_serves_the_container_and_the_task_as_fargate_and_describe_tasks_agree(shop):
    engine, found, url = shop
    task = engine.task_processes()[0]
    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{task['Pid']}/environ").read_text().split("\0") if "=" in item)
    uri = environ["ECS_CONTAINER_METADATA_URI_V4"]
    with urllib.request.urlopen(uri, timeout=5) as response:
        container = json.loads(response.read())
    with urllib.request.urlopen(uri + "/task", timeout=5) as response:
        metadata = json.loads(response.read())
    [described] = engine.client("ecs").describe_tasks(cluster="shop-test", tasks=[task["TaskArn"]])["tasks"]
    assert container["Name"] == "shop" and container["Image"] == "public.ecr.aws/docker/library/shop:v1"
    assert container["ImageID"].startswith("sha256:") and container["DockerId"].startswith(task["TaskId"])
    assert container["Labels"]["com.amazonaws.ecs.task-arn"] == task["TaskArn"]
    assert metadata["TaskARN"] == described["taskArn"] and metadata["Cluster"] == described["clusterArn"]
    assert (metadata["Family"], metadata["Revision"]) == ("shop-test", "1")
    assert metadata["AvailabilityZone"] == described["availabilityZone"]
    assert (metadata["LaunchType"], metadata["KnownStatus"], metadata["DesiredStatus"]) == ("FARGATE", "RUNNING", "RUNNING")
    assert [c["Name"] for c in metadata["Containers"]] == ["shop"]
    assert "CapacityProviderName" not in metadata  # Fargate's has none: DescribeTasks does
    assert described["capacityProviderName"] == task["CapacityProvider"] in ("FARGATE", "FARGATE_SPOT")


def test_a_task_the_scheduler_stops_is_deregistered_then_gets_sigterm_and_its_process_is_gone(shop):
    engine, found, url = shop
    ecs = engine.client("ecs")
    before = {t["TaskId"]: t for t in engine.task_processes()}
    ecs.update_service(cluster="shop-test", service="shop", desiredCount=2)
    running = ecs.list_tasks(cluster="shop-test", serviceName="shop")["taskArns"]
    [stopped] = [before[i] for i in before if not any(arn.endswith(i) for arn in running)]
    assert stopped["TaskId"] not in {ask(url)["task_id"] for _ in range(6)}  # draining at once
    wait_until(lambda: gone(stopped["Pid"]), timeout=15, what="the stopped task's process gone")
    log = (engine.log_dir / "task-processes.log").read_text()
    line = next(line for line in log.splitlines() if f"task {stopped['TaskId']} stopped" in line)
    assert "exit code 0" in line  # it exited on the SIGTERM, before the stop timeout's SIGKILL
    assert f"task {stopped['TaskId']}: no exit" not in log
    assert stopped["TaskId"] not in targets(engine, found["target_group"])
    ecs.update_service(cluster="shop-test", service="shop", desiredCount=3)
    healthy(engine, found["target_group"], 3)


def test_a_task_process_that_exits_stops_its_task_as_essential_container_exited_and_is_replaced(shop):
    engine, found, url = shop
    ecs = engine.client("ecs")
    victim = engine.task_processes()[0]
    os.kill(victim["Pid"], signal.SIGKILL)
    stopped = wait_until(lambda: [t for t in ecs.describe_tasks(cluster="shop-test", tasks=[victim["TaskArn"]])["tasks"]
                                  if t["lastStatus"] == "STOPPED"], what="the task STOPPED")
    assert stopped[0]["stopCode"] == "EssentialContainerExited"
    assert stopped[0]["containers"][0]["exitCode"] == 137  # SIGKILL, as Docker reports it
    healthy(engine, found["target_group"], 3)
    assert victim["TaskId"] not in {t["TaskId"] for t in engine.task_processes()}


def test_a_new_deployment_keeps_the_old_tasks_serving_until_the_new_ones_are_healthy(shop):
    engine, found, url = shop
    old = {t["TaskId"] for t in engine.task_processes()}
    engine.client("ecs").update_service(cluster="shop-test", service="shop", forceNewDeployment=True)
    statuses, answered = Counter(), set()
    end = time.monotonic() + 30
    while time.monotonic() < end:
        status, body = _get(url + "/?format=json")
        statuses[status] += 1
        if status == 200:
            answered.add(json.loads(body)["task_id"])
        if answered and not answered & old and len(targets(engine, found["target_group"])) == 3:
            break
    assert statuses.keys() == {200}, (statuses, engine.balancers()["TargetGroups"][found["target_group"]]["Errors"])  # never a 503 while the new targets were initial
    assert answered - old and not {t["TaskId"] for t in engine.task_processes()} & old


def test_a_task_whose_secret_parameter_is_missing_fails_to_start_naming_it_and_runs_no_process(shop):
    engine, found, url = shop
    ecs = engine.client("ecs")
    described = ecs.describe_task_definition(taskDefinition="shop-test")["taskDefinition"]
    [container] = described["containerDefinitions"]
    container["secrets"] = [{"name": "DATABASE_URL", "valueFrom": "/shop/test/NOT_THERE"}]
    ecs.register_task_definition(family="shop-missing", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                 cpu="256", memory="512", containerDefinitions=[container])
    network = ecs.describe_services(cluster="shop-test", services=["shop"])["services"][0]["networkConfiguration"]
    before = {t["TaskId"] for t in engine.task_processes()}
    ecs.create_service(cluster="shop-test", serviceName="missing", taskDefinition="shop-missing", desiredCount=1,
                       capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
                       networkConfiguration=network)
    try:
        arns = ecs.list_tasks(cluster="shop-test", serviceName="missing", desiredStatus="STOPPED")["taskArns"]
        [task] = ecs.describe_tasks(cluster="shop-test", tasks=arns[:1])["tasks"]
        assert task["stopCode"] == "TaskFailedToStart"
        assert task["stoppedReason"].startswith("ResourceInitializationError: unable to pull secrets or registry auth")
        assert "/shop/test/NOT_THERE" in task["stoppedReason"]
        assert {t["TaskId"] for t in engine.task_processes()} == before
    finally:
        ecs.delete_service(cluster="shop-test", service="missing", force=True)


def test_stopping_the_engine_stops_every_task_process_and_a_killed_engine_leaves_none_behind():
    for kill in (False, True):
        engine = start_engine(f"task-processes-{'kill' if kill else 'stop'}")
        try:
            found = world(engine, desired=2)
            healthy(engine, found["target_group"], 2)
            pids = [t["Pid"] for t in engine.task_processes()]
            assert len(pids) == 2 and not any(gone(p) for p in pids)
            if kill:
                engine.process.kill()
                engine.process.wait()
            else:
                engine.stop()
            wait_until(lambda: all(gone(p) for p in pids), timeout=10,
                       what=f"no task process left after the engine was {'killed' if kill else 'stopped'}")
        finally:
            engine.stop()


# --- the balancer on its own, with in-process targets (no engine) ---------------------------------

class _Target:
    """A loopback HTTP target: /health answers `health`, /slow takes 1 s, / names the target."""

    def __init__(self, name: str, health: int = 200):
        import threading
        from harness.net import QuietHTTPServer, QuietHandler

        target = self
        self.name, self.health = name, health

        class Handler(QuietHandler):
            def do_GET(self):
                if self.path == "/health":
                    return self.send_bytes(target.health, b"")
                if self.path == "/slow":
                    time.sleep(1.0)
                self.send_bytes(200, target.name.encode())

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy_of_two(monkeypatch):
    from harness.balancer import TargetGroupProxy

    monkeypatch.setenv("LOCAL_ENGINE_HEALTH_INTERVAL", "0.05")
    settings = {"path": "/health", "matcher": "200-399", "timeout": 5, "healthy": 2, "unhealthy": 3,
                "deregistration_delay": 30}
    targets = [_Target("a"), _Target("b")]
    proxy = TargetGroupProxy("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t/1", settings)
    for target in targets:
        proxy.register(target.name, "127.0.0.1", target.port)
    yield proxy, targets
    proxy.close()
    for target in targets:
        target.close()


def _get(url: str) -> tuple:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def _states(proxy) -> list:
    return sorted(t["State"] for t in proxy.describe())


def test_a_draining_target_gets_no_new_request_and_its_in_flight_request_completes(proxy_of_two):
    import threading

    proxy, _ = proxy_of_two
    wait_until(lambda: _states(proxy) == ["healthy", "healthy"], what="both targets healthy")
    slow: list = []
    in_flight = threading.Thread(target=lambda: slow.append(_get(proxy.url + "/slow")))
    in_flight.start()
    wait_until(lambda: any(t["InFlight"] for t in proxy.describe()), what="a request in flight")
    busy = next(t["Id"] for t in proxy.describe() if t["InFlight"])
    proxy.start_draining(busy)
    drained: list = []
    deregistering = threading.Thread(target=lambda: drained.append(proxy.deregister(busy)))
    deregistering.start()
    assert {_get(proxy.url + "/")[1] for _ in range(4)} == {"ab".replace(busy, "")}
    in_flight.join()
    deregistering.join()
    assert slow == [(200, busy)]
    assert 0.5 < drained[0] < 2.0  # until the in-flight request ended, not the 30 s delay
    assert [t["Id"] for t in proxy.describe()] == ["ab".replace(busy, "")]


def test_with_every_target_unhealthy_the_balancer_fails_open_and_with_none_healthy_yet_it_answers_503(proxy_of_two):
    proxy, targets = proxy_of_two
    for target in targets:
        target.health = 503
    wait_until(lambda: _states(proxy) == ["unhealthy", "unhealthy"], what="both targets unhealthy")
    assert {_get(proxy.url + "/")[1] for _ in range(4)} == {"a", "b"}  # fail open
    targets[0].health = 200
    wait_until(lambda: _states(proxy) == ["healthy", "unhealthy"], what="one target healthy again")
    assert {_get(proxy.url + "/")[1] for _ in range(4)} == {"a"}

    from harness.balancer import TargetGroupProxy

    os.environ["LOCAL_ENGINE_HEALTH_INTERVAL"] = "60"  # monkeypatched: restored after the test
    fresh = TargetGroupProxy(proxy.arn, proxy.settings)
    try:
        fresh.register("c", "127.0.0.1", targets[0].port)  # a new target is `initial`, unchecked
        assert _states(fresh) == ["initial"] and _get(fresh.url + "/") == (503, "")
    finally:
        fresh.close()
