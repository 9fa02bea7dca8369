"""Deploys that cannot succeed fail fast (functions/service/src/failfast.rs), end to end on the local
engine: provider.yaml deployed as a stack, then a stack with one Custom::FargateService that waits
for steady state, while the engine's scheduler makes its tasks fail the way ECS reports it
(knobs TASK_FAILURE and SPOT_CAPACITY, harness/engine_ecs.py). The circuit breaker is off and
SteadyStateTimeoutSeconds is 600, so only the fail-fast reading of ECS can end the wait early.

Each failure is measured from the engine's own timestamps (the first stopped task's stoppedAt, or
the first placement event) to the FAILED answer the engine received, printed and written to
.tmp/test-logs/fail-fast-figures.jsonl: reported, not asserted (timed assertions do not belong in
tests)."""
import json
import time

import pytest

from conftest import LOGS, deploy_provider, engine_for_deploys, fargate_world
from harness.engine_process import settle

BUCKET = "fail-fast-code"
PROVIDER = "ff-provider"
FIGURES = LOGS / "fail-fast-figures.jsonl"

ON_DEMAND_AND_SPOT = [{"CapacityProvider": "FARGATE", "Base": 1, "Weight": 1},
                      {"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]
SPOT_ONLY = [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]


@pytest.fixture(scope="module")
def engine():
    engine = engine_for_deploys("fail-fast", BUCKET)
    deploy_provider(engine, PROVIDER, "ff")
    fargate_world(engine, 9)
    yield engine
    engine.stop()


def service_template(strategy, **extra) -> str:
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "one service that waits for steady state",
        "Parameters": {"ServiceName": {"Type": "String"}, "Subnets": {"Type": "String"},
                       "SecurityGroup": {"Type": "String"}},
        "Resources": {"Service": {"Type": "Custom::FargateService", "Properties": {
            "ServiceToken": {"Fn::ImportValue": f"{PROVIDER}-ServiceServiceToken"},
            "Cluster": "app", "ServiceName": {"Ref": "ServiceName"}, "TaskDefinition": "web:1",
            "Subnets": {"Ref": "Subnets"}, "SecurityGroups": [{"Ref": "SecurityGroup"}],
            # Base 1 and weights 1:1 put 2 tasks on FARGATE and 1 on FARGATE_SPOT.
            "DesiredCount": 3, "CapacityProviderStrategy": strategy,
            "DeploymentCircuitBreaker": {"Enable": False, "Rollback": False},
            "WaitForSteadyState": True, "SteadyStateTimeoutSeconds": 600}}},
    }
    template["Resources"]["Service"]["Properties"].update(extra)
    return json.dumps(template)


def deploy(engine, name: str, strategy, **extra) -> dict:
    cfn = engine.client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=service_template(strategy, **extra), Parameters=[
        {"ParameterKey": "ServiceName", "ParameterValue": name},
        {"ParameterKey": "Subnets", "ParameterValue": ",".join(engine.subnets)},
        {"ParameterKey": "SecurityGroup", "ParameterValue": engine.group}])
    return cfn


def create_answer(engine, name: str) -> dict:
    [create] = [r for r in engine.requests() if r["StackName"] == name and r["RequestType"] == "Create"]
    assert len(create["Answers"]) == 1, create["Answers"]
    return create["Answers"][0]


def first_signal(engine, name: str) -> float:
    """When ECS first showed the cause: the first stopped task, else the first placement event."""
    ecs = engine.client("ecs")
    arns = ecs.list_tasks(cluster="app", serviceName=name, desiredStatus="STOPPED")["taskArns"]
    if arns:
        return min(t["stoppedAt"].timestamp() for t in ecs.describe_tasks(cluster="app", tasks=arns)["tasks"])
    [service] = ecs.describe_services(cluster="app", services=[name])["services"]
    return min(e["createdAt"].timestamp() for e in service["events"] if "unable to place" in e["message"])


def report(name: str, cause: str, seconds: float) -> None:
    print(f"fail fast: {cause}: FAILED {seconds:.1f} s after the first fatal signal")
    with FIGURES.open("a") as figures:
        figures.write(json.dumps({"scenario": name, "cause": cause, "seconds": round(seconds, 2)}) + "\n")


def reason_of(cfn, name: str) -> str:
    events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    return next(e["ResourceStatusReason"] for e in events
                if e["LogicalResourceId"] == "Service" and e["ResourceStatus"] == "CREATE_FAILED")


FATAL = {
    "image": ("TaskFailedToStart|CannotPullContainerError: pull image manifest has been retried 5 time(s): "
              "failed to resolve ref docker.io/library/nginx:nope: not found",
              "CannotPullContainerError", "Push the image"),
    "secret": ("TaskFailedToStart|ResourceInitializationError: unable to pull secrets or registry auth: "
               "execution resource retrieval failed: unable to retrieve secrets from ssm: AccessDeniedException",
               "unable to retrieve secrets from ssm", "ssm:GetParameters"),
    "crash": ("EssentialContainerExited|Essential container in task exited|1",
              "container web exited with code 1", "read its logs"),
    "health": ("ServiceSchedulerInitiated|Task failed container health checks",
               "Task failed container health checks", "health check path"),
}


@pytest.mark.parametrize("case", sorted(FATAL))
def test_a_task_failure_waiting_cannot_fix_fails_the_deploy_quoting_it_and_the_rollback_removes_the_service(
        engine, case):
    knob, quoted, advice = FATAL[case]
    name = f"ff-{case}"
    with engine.knobs(TASK_FAILURE=knob):
        cfn = deploy(engine, name, ON_DEMAND_AND_SPOT)
        stack = settle(cfn, name, timeout=300)
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    answer = create_answer(engine, name)
    assert answer["Status"] == "FAILED"
    assert f"the deployment of service {name} cannot succeed: task " in answer["Reason"], answer["Reason"]
    assert quoted in answer["Reason"] and advice in answer["Reason"], answer["Reason"]
    assert answer["Reason"] in reason_of(cfn, name)
    report(name, case, answer["At"] - first_signal(engine, name))
    [service] = engine.client("ecs").describe_services(cluster="app", services=[name])["services"]
    assert service["status"] != "ACTIVE", "the rollback Delete removed the service"


def test_with_fail_fast_off_the_wait_answers_once_the_circuit_breaker_has_rolled_back(engine):
    name = "ff-no-fail-fast"
    knob = FATAL["crash"][0]
    with engine.knobs(TASK_FAILURE=knob):
        cfn = deploy(engine, name, ON_DEMAND_AND_SPOT, FailFast=False,
                     DeploymentCircuitBreaker={"Enable": True, "Rollback": True})
        stack = settle(cfn, name, timeout=300)
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    answer = create_answer(engine, name)
    assert answer["Status"] == "FAILED"
    assert "cannot succeed: task" not in answer["Reason"], "fail fast was off"
    print(answer["Reason"])
    assert "circuit breaker" in answer["Reason"].lower() or "rolled back" in answer["Reason"].lower(), answer["Reason"]


def test_no_capacity_on_any_provider_of_the_strategy_fails_the_deploy_naming_it(engine):
    name = "ff-spot-only"
    with engine.knobs(SPOT_CAPACITY="unavailable"):
        cfn = deploy(engine, name, SPOT_ONLY)
        stack = settle(cfn, name, timeout=300)
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    answer = create_answer(engine, name)
    assert answer["Status"] == "FAILED"
    assert "placement attempts reported" in answer["Reason"], answer["Reason"]
    assert "Capacity is unavailable at this time" in answer["Reason"]
    assert "Add FARGATE to the strategy" in answer["Reason"]
    report(name, "no capacity", answer["At"] - first_signal(engine, name))


def test_spot_capacity_short_for_a_while_with_on_demand_in_the_mix_keeps_waiting_and_succeeds(engine):
    name = "ff-spot-short"
    with engine.knobs(SPOT_CAPACITY="unavailable"):
        cfn = deploy(engine, name, ON_DEMAND_AND_SPOT)
        deadline = time.monotonic() + 60
        while not [r for r in engine.requests() if r["StackName"] == name] and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(6)  # a dozen polls of the wait with Spot short
        [service] = engine.client("ecs").describe_services(cluster="app", services=[name])["services"]
        assert any("Capacity is unavailable" in e["message"] for e in service["events"])
        assert service["runningCount"] == 2, "the on-demand tasks run"
    stack = settle(cfn, name, timeout=300)
    assert stack["StackStatus"] == "CREATE_COMPLETE", reason_of(cfn, name)
    assert create_answer(engine, name)["Status"] == "SUCCESS"
    cfn.delete_stack(StackName=name)
    assert settle(cfn, stack["StackId"])["StackStatus"] == "DELETE_COMPLETE"
