"""Spot fallback end to end on the local engine: provider.yaml, a stack with one
Custom::FargateService (FARGATE 1 : FARGATE_SPOT 3, four tasks), and cloudformation/spot-fallback.yaml
managing it. The engine's ECS sends its events to EventBridge, whose rules deliver them to the real
spot-fallback binary (harness/engine_events.py); scheduled rules fire when a test says, with the
event time it gives, so quiet periods pass in seconds. The scenario runs in order, each test
continuing from the state the previous one left, and asserts the exact UpdateService requests the
function sent (the engine's call log), the state tag and the tasks per provider."""
import json
import shutil
import time

import pytest
import stackctl

from conftest import LOGS, deploy_provider, engine_for_deploys, fargate_world
from harness import net
from harness.engine_process import settle

BUCKET = "spot-fallback-code"
PROVIDER = "sf-provider"
SERVICE_STACK = "sf-web"
FALLBACK_STACK = "sf-fallback"
QUIET_MINUTES = 5
QUIET = QUIET_MINUTES * 60
STATE_TAG = "custom-resource:spot-fallback"
TEMPLATE_TAG = "custom-resource:template-strategy"

MIX = [{"CapacityProvider": "FARGATE", "Weight": 1}, {"CapacityProvider": "FARGATE_SPOT", "Weight": 3}]
NEW_MIX = [{"CapacityProvider": "FARGATE", "Weight": 2}, {"CapacityProvider": "FARGATE_SPOT", "Weight": 2}]


@pytest.fixture(scope="module")
def engine():
    shutil.rmtree(LOGS / "spot-fallback", ignore_errors=True)  # the log test counts this run's lines
    engine = engine_for_deploys("spot-fallback", BUCKET)
    code = deploy_provider(engine, PROVIDER, "sf")
    fargate_world(engine, 8)
    cfn = engine.client("cloudformation")
    cfn.create_stack(StackName=SERVICE_STACK, TemplateBody=service_template(MIX), Parameters=service_parameters(engine))
    assert settle(cfn, SERVICE_STACK)["StackStatus"] == "CREATE_COMPLETE"
    engine.service_arn = outputs(cfn, SERVICE_STACK)["ServiceArn"]
    cfn.create_stack(StackName=FALLBACK_STACK, Capabilities=["CAPABILITY_IAM"],
                     TemplateBody=(stackctl.ROOT / "cloudformation/spot-fallback.yaml").read_text(),
                     Parameters=code + [{"ParameterKey": "ServiceArn", "ParameterValue": engine.service_arn},
                                        {"ParameterKey": "QuietMinutes", "ParameterValue": str(QUIET_MINUTES)}])
    assert settle(cfn, FALLBACK_STACK)["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, FALLBACK_STACK)
    yield engine
    engine.stop()


def reasons(cfn, name: str) -> list:
    return [(e["LogicalResourceId"], e.get("ResourceStatusReason")) for e in cfn.describe_stack_events(StackName=name)["StackEvents"]
            if e.get("ResourceStatusReason")]


def service_template(strategy) -> str:
    return json.dumps({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "one service on a FARGATE/FARGATE_SPOT mix",
        "Parameters": {"Subnets": {"Type": "String"}, "SecurityGroup": {"Type": "String"}},
        "Resources": {"Service": {"Type": "Custom::FargateService", "Properties": {
            "ServiceToken": {"Fn::ImportValue": f"{PROVIDER}-ServiceServiceToken"},
            "Cluster": "app", "ServiceName": "web", "TaskDefinition": "web:1",
            "Subnets": {"Ref": "Subnets"}, "SecurityGroups": [{"Ref": "SecurityGroup"}],
            "DesiredCount": 4, "CapacityProviderStrategy": strategy, "WaitForSteadyState": True,
            "SpotFallback": True}}},
        "Outputs": {"ServiceArn": {"Value": {"Fn::GetAtt": ["Service", "ServiceArn"]}}},
    })


def service_parameters(engine) -> list:
    return [{"ParameterKey": "Subnets", "ParameterValue": ",".join(engine.subnets)},
            {"ParameterKey": "SecurityGroup", "ParameterValue": engine.group}]


def outputs(cfn, name: str) -> dict:
    return {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=name)["Stacks"][0].get("Outputs", [])}


def service(engine) -> dict:
    return engine.client("ecs").describe_services(cluster="app", services=["web"], include=["TAGS"])["services"][0]


def tags(engine) -> dict:
    return {t["key"]: t["value"] for t in service(engine).get("tags", [])}


def mix(engine) -> list:
    return [(i["capacityProvider"], i.get("weight", 0), i.get("base", 0)) for i in service(engine)["capacityProviderStrategy"]]


def tasks_per_provider(engine) -> dict:
    ecs = engine.client("ecs")
    arns = ecs.list_tasks(cluster="app", serviceName="web", desiredStatus="RUNNING")["taskArns"]
    counts: dict = {}
    for task in ecs.describe_tasks(cluster="app", tasks=arns)["tasks"] if arns else []:
        counts[task["capacityProviderName"]] = counts.get(task["capacityProviderName"], 0) + 1
    return counts


def fallback_updates(engine) -> list:
    """The strategies the spot-fallback function sent with UpdateService, oldest first."""
    return [[(i["capacityProvider"], i.get("weight", 0), i.get("base", 0)) for i in call["Params"]["capacityProviderStrategy"]]
            for call in engine.calls(FALLBACK_STACK, "ecs:UpdateService")]


def wait_until(condition, what: str, timeout: float = 60.0):
    return net.wait_until(condition, what, timeout=timeout, interval=0.3)


def settled(engine):
    """Waits for the function to be idle: every delivered event handled (deliveries stop growing)."""
    def quiet():
        before = len(engine.event_deliveries())
        time.sleep(2.0)
        return len(engine.event_deliveries()) == before
    wait_until(quiet, "the events to stop")
    time.sleep(1.0)


SPOT_MIX = [("FARGATE", 1, 0), ("FARGATE_SPOT", 3, 0)]


def test_the_service_runs_the_template_mix_and_carries_it_as_a_tag(engine):
    assert mix(engine) == SPOT_MIX
    assert tags(engine)[TEMPLATE_TAG] == "FARGATE:1:0 FARGATE_SPOT:3:0"
    assert STATE_TAG not in tags(engine)
    assert tasks_per_provider(engine) == {"FARGATE": 1, "FARGATE_SPOT": 3}


def test_a_spot_reclaim_without_spot_capacity_moves_the_shortfall_to_fargate_with_one_update(engine):
    engine.knobs_file._write({"SPOT_CAPACITY": "unavailable"})
    reclaimed_at = time.time()
    stopped = engine.interrupt_spot("app", "web")
    assert len(stopped) == 3
    wait_until(lambda: tasks_per_provider(engine) == {"FARGATE": 4}, "four FARGATE tasks")
    settled(engine)
    # three interruptions and one placement failure were delivered; one update was sent
    delivered = [d for d in engine.event_deliveries() if d["Outcome"] == "delivered"]
    kinds = sorted(d["DetailType"] for d in delivered)
    assert kinds == ["ECS Service Action"] + ["ECS Task State Change"] * 3, kinds
    assert fallback_updates(engine) == [[("FARGATE", 1, 4), ("FARGATE_SPOT", 3, 0)]]
    state = tags(engine)[STATE_TAG]
    assert state.startswith("fallback base=4 attempts=0 retry-at="), state
    assert tasks_per_provider(engine) == {"FARGATE": 4}
    # reported, not asserted: from the reclaim to the function's UpdateService (the engine's clocks)
    [update] = engine.calls(FALLBACK_STACK, "ecs:UpdateService")
    seconds = update["At"] - reclaimed_at
    print(f"spot fallback: UpdateService {seconds:.2f} s after the reclaim")
    with (LOGS / "spot-fallback-figures.jsonl").open("a") as figures:
        figures.write(json.dumps({"scenario": "reclaim without Spot capacity", "seconds_to_update": round(seconds, 2)}) + "\n")


def invoke_fallback(engine, event: dict) -> dict:
    name = outputs(engine.client("cloudformation"), FALLBACK_STACK)["FunctionName"]
    answer = engine.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return json.loads(answer["Payload"].read())


def test_duplicate_and_late_events_change_nothing(engine):
    interruption = {"version": "0", "id": "dup", "detail-type": "ECS Task State Change", "source": "aws.ecs",
                    "account": "123456789012", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "region": "us-east-1", "resources": [],
                    "detail": {"clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/app", "group": "service:web",
                               "stopCode": "SpotInterruption", "lastStatus": "STOPPED"}}
    for _ in range(2):
        answer = invoke_fallback(engine, interruption)
        assert answer["updated"] is False and answer["state"].startswith("fallback base=4"), answer
    early_tick = {"detail-type": "Scheduled Event", "source": "aws.events", "time": interruption["time"], "detail": {}}
    assert invoke_fallback(engine, early_tick)["why"] == "nothing to change"
    assert len(fallback_updates(engine)) == 1


def test_a_retry_while_spot_is_still_short_falls_back_again_and_backs_off(engine):
    engine.fire_schedules(time.time() + QUIET + 1)
    wait_until(lambda: len(fallback_updates(engine)) >= 2, "the retry's update")
    wait_until(lambda: "attempts=1" in tags(engine).get(STATE_TAG, ""), "the second fallback")
    settled(engine)
    assert fallback_updates(engine)[1:] == [SPOT_MIX, [("FARGATE", 1, 4), ("FARGATE_SPOT", 3, 0)]]
    state = tags(engine)[STATE_TAG]
    retry_at = int(state.split("retry-at=")[1])
    # backed off: twice the quiet period from the placement failure that ended the retry
    assert retry_at - time.time() > QUIET * 2 - 60, state
    wait_until(lambda: tasks_per_provider(engine) == {"FARGATE": 4}, "four FARGATE tasks again")


def test_a_stack_update_during_the_fallback_applies_the_new_mix_and_keeps_the_fallback(engine):
    cfn = engine.client("cloudformation")
    cfn.update_stack(StackName=SERVICE_STACK, TemplateBody=service_template(NEW_MIX), Parameters=service_parameters(engine))
    assert settle(cfn, SERVICE_STACK)["StackStatus"] == "UPDATE_COMPLETE"
    assert mix(engine) == [("FARGATE", 2, 4), ("FARGATE_SPOT", 2, 0)]
    assert tags(engine)[TEMPLATE_TAG] == "FARGATE:2:0 FARGATE_SPOT:2:0"
    assert tags(engine)[STATE_TAG].startswith("fallback base=4 attempts=1")
    assert tasks_per_provider(engine) == {"FARGATE": 4}
    assert len(fallback_updates(engine)) == 3, "the function sent nothing for the stack's update"


def test_once_spot_returns_the_retry_holds_and_the_template_mix_is_back(engine):
    engine.knobs_file._write({})
    retry_at = int(tags(engine)[STATE_TAG].split("retry-at=")[1])
    engine.fire_schedules(retry_at)
    wait_until(lambda: tags(engine).get(STATE_TAG, "").startswith("trial attempts=1"), "the retry")
    wait_until(lambda: tasks_per_provider(engine) == {"FARGATE": 2, "FARGATE_SPOT": 2}, "the new template's mix")
    engine.fire_schedules(retry_at + QUIET)
    wait_until(lambda: STATE_TAG not in tags(engine), "the state tag removed")
    assert mix(engine) == [("FARGATE", 2, 0), ("FARGATE_SPOT", 2, 0)]
    assert fallback_updates(engine) == [
        [("FARGATE", 1, 4), ("FARGATE_SPOT", 3, 0)],   # Spot reclaimed, no capacity
        SPOT_MIX,                                      # retry after the quiet period
        [("FARGATE", 1, 4), ("FARGATE_SPOT", 3, 0)],   # Spot still short: back, backed off
        [("FARGATE", 2, 0), ("FARGATE_SPOT", 2, 0)],   # retry of the updated template: it holds
    ]
    assert tasks_per_provider(engine) == {"FARGATE": 2, "FARGATE_SPOT": 2}


def test_every_change_is_one_structured_log_event(engine):
    logs = "".join(p.read_text(errors="replace") for p in engine.log_dir.glob(f"**/{FALLBACK_STACK}*.log"))
    changes = [json.loads(line) for line in logs.splitlines()
               if line.startswith("{") and "spot fallback change" in line]
    # engage, retry, back off, retry, recovered
    assert len(changes) == 5, changes
    assert {"from", "to", "strategy", "why"} <= set(changes[0].get("fields", changes[0]))


def test_without_its_lambda_permission_a_rule_delivers_nothing_and_says_why(engine):
    """The engine holds EventBridge to AWS's rule: a rule invokes a function only if the function's
    resource policy allows events.amazonaws.com from that rule's ARN."""
    name = outputs(engine.client("cloudformation"), FALLBACK_STACK)["FunctionName"]
    lam = engine.client("lambda")
    policy = json.loads(lam.get_policy(FunctionName=name)["Policy"])
    for statement in policy["Statement"]:
        lam.remove_permission(FunctionName=name, StatementId=statement["Sid"])
    updates_before, deliveries_before = len(fallback_updates(engine)), len(engine.event_deliveries())
    engine.knobs_file._write({"SPOT_CAPACITY": "unavailable"})
    try:
        assert len(engine.interrupt_spot("app", "web")) == 2
        wait_until(lambda: len(engine.event_deliveries()) > deliveries_before, "the deliveries")
        settled(engine)
    finally:
        engine.knobs_file._write({})
    new = engine.event_deliveries()[deliveries_before:]
    assert new and all(d["Outcome"].startswith("refused: the resource policy of") for d in new), new
    assert "AWS::Lambda::Permission" in new[0]["Outcome"]
    assert len(fallback_updates(engine)) == updates_before
