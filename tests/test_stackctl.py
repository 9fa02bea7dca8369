"""cloudformation/stackctl.py against a moto server started here (not the harness fixtures), and
against botocore Stubbers where moto cannot honestly show the behaviour (UpdateStack requests are
asserted as sent, nested stack events and pagination are scripted)."""
import datetime as dt
import json
import shlex
import sys
from pathlib import Path

import boto3
import pytest
import requests
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from harness.net import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "cloudformation"))

import stackctl  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROOT_ARN = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/shop-dev/11111111-1111-1111-1111-111111111111"
CHILD_ARN = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/shop-dev-Network-ABC/22222222-2222-2222-2222-222222222222"

# A small stand-in for environment.yaml: the parameters `weights` and `deploy` care about, a
# CommaDelimitedList, and the outputs `weights` and `tasks` read.
ENVIRONMENT_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  AppName:
    Type: String
  EnvironmentName:
    Type: String
  SecretNames:
    Type: CommaDelimitedList
    Default: ""
  FargateWeight:
    Type: Number
  FargateBase:
    Type: Number
    Default: 0
  FargateSpotWeight:
    Type: Number
  CodeBucket:
    Type: String
    Default: none
Resources:
  Marker:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub /${AppName}/${EnvironmentName}/secret-names
      Type: String
      Value: !Join [",", !Ref SecretNames]
Outputs:
  ClusterName:
    Value: !Sub ${AppName}-${EnvironmentName}
  ServiceArn:
    Value: !Sub arn:aws:ecs:${AWS::Region}:${AWS::AccountId}:service/${AppName}-${EnvironmentName}/web
  CapacityProviderStrategy:
    Value: !Sub FARGATE:${FargateWeight}:${FargateBase},FARGATE_SPOT:${FargateSpotWeight}:0
"""


@pytest.fixture(scope="module")
def moto_url():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url, monkeypatch):
    """A clean moto account reached the way stackctl is told to reach any engine: AWS_ENDPOINT_URL."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return boto3.Session(region_name=REGION)


def create_environment_stack(session, **values):
    # Every parameter explicitly: moto cannot UsePreviousValue a parameter that took its default.
    params = {"AppName": "shop", "EnvironmentName": "dev", "SecretNames": "a,b", "FargateWeight": "1",
              "FargateBase": "0", "FargateSpotWeight": "3", "CodeBucket": "my-code", **values}
    cfn = session.client("cloudformation")
    cfn.create_stack(StackName="shop-dev", TemplateBody=ENVIRONMENT_TEMPLATE,
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    return cfn.describe_stacks(StackName="shop-dev")["Stacks"][0]


def record_calls(session, operation):
    """The API parameters of every `operation` call made by clients of this session."""
    calls = []
    session.events.register(f"before-parameter-build.*.{operation}",
                            lambda params, **_: calls.append(json.loads(json.dumps(params))))
    return calls


class NoAws:
    """A session that fails the test if anything is asked of AWS."""
    region_name = REGION

    def client(self, name):
        raise AssertionError(f"no {name} call expected")


class StubbedSession:
    region_name = REGION

    def __init__(self, **clients):
        self.clients = clients

    def client(self, name):
        return self.clients[name]


def stubbed(service):
    client = boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def event(event_id, seconds, logical, status, stack=ROOT_ARN, physical=None,
          rtype="AWS::CloudFormation::Stack", reason=None):
    item = {"EventId": event_id, "StackId": stack, "StackName": stack.split("/")[1],
            "LogicalResourceId": logical, "PhysicalResourceId": physical or "",
            "ResourceType": rtype, "ResourceStatus": status,
            "Timestamp": dt.datetime(2024, 5, 1, 12, 0, seconds, tzinfo=dt.timezone.utc)}
    if reason:
        item["ResourceStatusReason"] = reason
    return item


def columns(line):
    """(path, status) of a printed event line."""
    parts = line.split()
    return parts[2], parts[3]


# --- overrides and deploy -----------------------------------------------------------------------

def test_overrides_turn_the_environment_file_and_code_json_into_shell_safe_key_value_words(tmp_path, capsys):
    code = tmp_path / "code.json"
    code.write_text(json.dumps({"CodeBucket": "my-code", "CodeKeyPrefix": "shop/provider/0123abcd", "Architecture": "arm64"}))

    rc = stackctl.main(["overrides", "dev", "--code-file", str(code), "--set", "SecretNames=DB_URL,API_KEY"], session=NoAws())

    words = shlex.split(capsys.readouterr().out)
    dev = {p["ParameterKey"]: p["ParameterValue"] for p in json.loads((ROOT / "cloudformation/params/dev.json").read_text())}
    assert rc == 0
    assert words[:len(dev)] == [f"{k}={v}" for k, v in dev.items()]
    assert words[len(dev):] == ["CodeBucket=my-code", "CodeKeyPrefix=shop/provider/0123abcd",
                                "Architecture=arm64", "SecretNames=DB_URL,API_KEY"]


def test_deploy_runs_the_aws_cli_with_one_word_per_parameter_so_a_comma_list_arrives_whole(aws, tmp_path, capsys):
    template = tmp_path / "environment.packaged.yaml"
    template.write_text(ENVIRONMENT_TEMPLATE)
    params = tmp_path / "dev.json"
    params.write_text(json.dumps([{"ParameterKey": k, "ParameterValue": v} for k, v in
                                  {"AppName": "shop", "EnvironmentName": "dev", "FargateWeight": "1",
                                   "FargateSpotWeight": "3", "SecretNames": "DB_URL,API_KEY"}.items()]))
    code = tmp_path / "code.json"
    code.write_text(json.dumps({"CodeBucket": "my-code"}))

    rc = stackctl.main(["deploy", "dev", "--params-file", str(params), "--code-file", str(code),
                        "--template-file", str(template), "--set", "FargateBase=2", "--interval", "0.2"])

    out = capsys.readouterr().out
    stack = aws.client("cloudformation").describe_stacks(StackName="shop-dev")["Stacks"][0]
    values = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    joined = aws.client("ssm").get_parameter(Name="/shop/dev/secret-names")["Parameter"]["Value"]
    assert rc == 0
    assert joined == "DB_URL,API_KEY"  # !Join [",", SecretNames]: the list had both names
    assert values["FargateBase"] == "2" and values["CodeBucket"] == "my-code"
    assert "REVIEW_IN_PROGRESS" in out  # the stack's events were shown while the CLI waited
    assert out.splitlines()[-1] == "shop-dev  CREATE_COMPLETE"  # then the outputs (moto computes none here)


def test_deploy_refuses_a_value_for_a_parameter_the_template_does_not_have(tmp_path, capsys):
    template = tmp_path / "environment.packaged.yaml"
    template.write_text(ENVIRONMENT_TEMPLATE)
    code = tmp_path / "code.json"
    code.write_text("{}")

    rc = stackctl.main(["deploy", "dev", "--code-file", str(code), "--template-file", str(template),
                        "--stack-name", "shop-dev", "--set", "DesirdCount=0"], session=NoAws())

    assert rc == 2
    assert "not parameters of environment.packaged.yaml: " in capsys.readouterr().err


# --- weights ------------------------------------------------------------------------------------

def test_weights_sends_the_previous_template_and_previous_values_for_every_other_parameter(aws, capsys):
    stack = create_environment_stack(aws)
    updates = record_calls(aws, "UpdateStack")

    rc = stackctl.main(["weights", "dev", "--fargate", "1", "--spot", "1", "--base", "2", "--interval", "0.1"], session=aws)

    assert rc == 0
    assert updates == [{
        "StackName": stack["StackId"],
        "UsePreviousTemplate": True,
        "Parameters": [
            {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
            if p["ParameterKey"] not in ("FargateWeight", "FargateSpotWeight", "FargateBase")
            else {"ParameterKey": p["ParameterKey"],
                  "ParameterValue": {"FargateWeight": "1", "FargateSpotWeight": "1", "FargateBase": "2"}[p["ParameterKey"]]}
            for p in stack["Parameters"]
        ],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    }]
    out = capsys.readouterr().out
    assert "FargateWeight 1 -> 1, FargateSpotWeight 3 -> 1, FargateBase 0 -> 2" in out
    assert "CapacityProviderStrategy: FARGATE:1:0,FARGATE_SPOT:3:0 -> " in out
    assert f"ServiceArn: arn:aws:ecs:{REGION}:{ACCOUNT}:service/shop-dev/web (same service, updated in place)" in out


def test_weights_leaves_the_base_alone_when_none_is_given(aws):
    create_environment_stack(aws)
    updates = record_calls(aws, "UpdateStack")

    stackctl.main(["weights", "dev", "--fargate", "0", "--spot", "4", "--interval", "0.1"], session=aws)

    sent = {p["ParameterKey"]: p for p in updates[0]["Parameters"]}
    assert sent["FargateBase"] == {"ParameterKey": "FargateBase", "UsePreviousValue": True}
    assert sent["FargateWeight"]["ParameterValue"] == "0" and sent["FargateSpotWeight"]["ParameterValue"] == "4"


def test_weights_that_are_already_in_place_are_reported_as_nothing_to_change(capsys):
    # Stubbed: moto performs an update with unchanged values instead of refusing it.
    cfn, stub = stubbed("cloudformation")
    stub.add_response("describe_stacks", {"Stacks": [{
        "StackName": "shop-dev", "StackId": ROOT_ARN, "StackStatus": "UPDATE_COMPLETE",
        "CreationTime": dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
        "Parameters": [{"ParameterKey": "FargateWeight", "ParameterValue": "1"},
                       {"ParameterKey": "FargateSpotWeight", "ParameterValue": "3"}],
        "Outputs": [{"OutputKey": "CapacityProviderStrategy", "OutputValue": "FARGATE:1:0,FARGATE_SPOT:3:0"}]}]})
    stub.add_response("describe_stack_events", {"StackEvents": []})
    stub.add_client_error("update_stack", "ValidationError", "No updates are to be performed.")

    with stub:
        rc = stackctl.main(["weights", "dev", "--fargate", "1", "--spot", "3"], session=StubbedSession(cloudformation=cfn))

    out = capsys.readouterr().out
    assert rc == 0
    assert "nothing to change" in out
    assert "CapacityProviderStrategy: FARGATE:1:0,FARGATE_SPOT:3:0 -> FARGATE:1:0,FARGATE_SPOT:3:0" in out


@pytest.mark.parametrize("argv, message", [
    (["--fargate", "-1", "--spot", "3"], "FARGATE must be a non-negative integer, got '-1'"),
    (["--fargate", "1", "--spot", "x"], "SPOT must be a non-negative integer, got 'x'"),
    (["--fargate", "1", "--spot", "3", "--base", "1.5"], "BASE must be a non-negative integer, got '1.5'"),
    (["--fargate", "0", "--spot", "0"], "at least one weight must be greater than 0"),
    (["--fargate", "1001", "--spot", "1"], "FARGATE must be at most 1000"),
    (["--spot", "3"], "FARGATE is required"),
])
def test_weights_rejects_bad_input_naming_the_variable_before_any_aws_call(argv, message, capsys):
    rc = stackctl.main(["weights", "dev", *argv], session=NoAws())

    assert rc == 2
    assert message in capsys.readouterr().err


def test_weights_on_a_stack_without_the_mix_parameters_says_so(aws, capsys):
    aws.client("cloudformation").create_stack(
        StackName="other", TemplateBody='{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}')

    rc = stackctl.main(["weights", "dev", "--stack-name", "other", "--fargate", "1", "--spot", "1"], session=aws)

    assert rc == 2
    assert "has no parameter FargateWeight, FargateSpotWeight" in capsys.readouterr().err


def test_a_missing_stack_is_one_clear_line_not_a_traceback(aws, capsys):
    rc = stackctl.main(["outputs", "prd"])

    err = capsys.readouterr().err
    assert rc == 1
    assert err.strip() == "stackctl outputs: stack shop-prd does not exist (deploy it with `make deploy`)"


# --- tasks --------------------------------------------------------------------------------------

def test_tasks_lists_each_task_and_counts_them_per_capacity_provider(aws, capsys):
    # Tasks placed by a service, as ECS does: moto itself starts none, so the local engine's
    # scheduler (harness.engine_ecs, in this process) places them by the strategy's weights.
    from harness import engine_ecs

    engine_ecs.install()
    create_environment_stack(aws)
    ecs, ec2 = aws.client("ecs"), aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    ecs.create_cluster(clusterName="shop-dev", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(family="shop-dev", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                 cpu="256", memory="512",
                                 containerDefinitions=[{"name": "app", "image": "app:1", "memory": 512}])
    ecs.create_service(cluster="shop-dev", serviceName="web", taskDefinition="shop-dev", desiredCount=5,
                       capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 2},
                                                 {"capacityProvider": "FARGATE_SPOT", "weight": 3}],
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": []}})

    rc = stackctl.main(["tasks", "dev"], session=aws)

    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.split()[1:2] in (["FARGATE"], ["FARGATE_SPOT"])]
    assert rc == 0
    assert lines[0].startswith("service web in shop-dev: desired 5")
    assert [r[1] for r in rows] == ["FARGATE"] * 2 + ["FARGATE_SPOT"] * 3
    assert all(r[-1] == "shop-dev:1" for r in rows)  # the task definition revision
    assert lines[-1] == "FARGATE 2 (40%), FARGATE_SPOT 3 (60%); 5 tasks"


def test_tasks_pages_through_more_than_a_hundred_tasks_a_hundred_at_a_time(capsys):
    cfn, cfn_stub = stubbed("cloudformation")
    ecs, ecs_stub = stubbed("ecs")
    service_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/shop-dev/web"
    cfn_stub.add_response("describe_stacks", {"Stacks": [{
        "StackName": "shop-dev", "StackId": ROOT_ARN, "StackStatus": "UPDATE_COMPLETE",
        "CreationTime": dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
        "Outputs": [{"OutputKey": "ClusterName", "OutputValue": "shop-dev"},
                    {"OutputKey": "ServiceArn", "OutputValue": service_arn}]}]}, {"StackName": "shop-dev"})
    arns = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/shop-dev/{i:032x}" for i in range(150)]
    ecs_stub.add_response("list_tasks", {"taskArns": arns[:100], "nextToken": "page2"},
                          {"cluster": "shop-dev", "serviceName": "web", "maxResults": 100})
    ecs_stub.add_response("list_tasks", {"taskArns": arns[100:]},
                          {"cluster": "shop-dev", "serviceName": "web", "maxResults": 100, "nextToken": "page2"})
    for batch in (arns[:100], arns[100:]):
        ecs_stub.add_response("describe_tasks", {"tasks": [
            {"taskArn": arn, "lastStatus": "RUNNING", "availabilityZone": "us-east-1a",
             "capacityProviderName": "FARGATE" if arns.index(arn) < 50 else "FARGATE_SPOT",
             "taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/shop-dev:7"}
            for arn in batch]}, {"cluster": "shop-dev", "tasks": batch})
    ecs_stub.add_response("describe_services", {"services": []}, {"cluster": "shop-dev", "services": [service_arn]})

    with cfn_stub, ecs_stub:
        rc = stackctl.main(["tasks", "dev"], session=StubbedSession(cloudformation=cfn, ecs=ecs))
        ecs_stub.assert_no_pending_responses()

    lines = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert lines[-1] == "FARGATE 50 (33%), FARGATE_SPOT 100 (67%); 150 tasks"
    assert sum(1 for line in lines if "us-east-1a" in line and "shop-dev:7" in line) == 150


# --- events, wait, destroy ----------------------------------------------------------------------

def test_events_of_nested_stacks_are_printed_once_each_in_time_order_under_their_logical_id():
    cfn, stub = stubbed("cloudformation")
    r1 = event("r1", 1, "shop-dev", "CREATE_IN_PROGRESS", physical=ROOT_ARN)
    r2 = event("r2", 2, "Network", "CREATE_IN_PROGRESS", physical=CHILD_ARN)
    c1 = event("c1", 3, "shop-dev-Network-ABC", "CREATE_IN_PROGRESS", stack=CHILD_ARN, physical=CHILD_ARN)
    c2 = event("c2", 4, "Vpc", "CREATE_COMPLETE", stack=CHILD_ARN, physical="vpc-1", rtype="AWS::EC2::VPC")
    c3 = event("c3", 5, "shop-dev-Network-ABC", "CREATE_COMPLETE", stack=CHILD_ARN, physical=CHILD_ARN)
    r3 = event("r3", 6, "Network", "CREATE_COMPLETE", physical=CHILD_ARN)
    r4 = event("r4", 7, "shop-dev", "CREATE_COMPLETE", physical=ROOT_ARN)
    polls = [
        [(ROOT_ARN, [r2, r1]), (CHILD_ARN, [c1])],
        [(ROOT_ARN, [r3, r2, r1]), (CHILD_ARN, [c3, c2, c1])],
        [(ROOT_ARN, [r4, r3, r2, r1])],  # the finished nested stack is not asked again
    ]
    for poll in polls:
        for stack, events in poll:
            stub.add_response("describe_stack_events", {"StackEvents": events}, {"StackName": stack})
    lines = []
    follower = stackctl.EventFollower(cfn, ROOT_ARN, out=lines.append)

    with stub:
        for _ in polls:
            follower.poll()
        stub.assert_no_pending_responses()

    assert [columns(line) for line in lines] == [
        ("shop-dev", "CREATE_IN_PROGRESS"),
        ("Network", "CREATE_IN_PROGRESS"),
        ("Network", "CREATE_IN_PROGRESS"),  # the nested stack's own event, shown by its logical id
        ("Network/Vpc", "CREATE_COMPLETE"),
        ("Network", "CREATE_COMPLETE"),
        ("Network", "CREATE_COMPLETE"),
        ("shop-dev", "CREATE_COMPLETE"),
    ]


def test_events_since_now_skip_the_history_and_page_only_until_the_last_seen_event():
    cfn, stub = stubbed("cloudformation")
    old = [event(f"old{i}", i, "Marker", "CREATE_COMPLETE", physical="p") for i in range(3)][::-1]
    new = event("new", 10, "shop-dev", "UPDATE_IN_PROGRESS", physical=ROOT_ARN)
    stub.add_response("describe_stack_events", {"StackEvents": old}, {"StackName": "shop-dev"})
    stub.add_response("describe_stack_events", {"StackEvents": [new], "NextToken": "more"}, {"StackName": ROOT_ARN})
    stub.add_response("describe_stack_events", {"StackEvents": old}, {"StackName": ROOT_ARN, "NextToken": "more"})
    lines = []
    follower = stackctl.EventFollower(cfn, "shop-dev", out=lines.append, since_now=True)

    with stub:
        follower.prime()
        follower.poll()
        stub.assert_no_pending_responses()

    assert [columns(line) for line in lines] == [("shop-dev", "UPDATE_IN_PROGRESS")]


def test_wait_fails_with_the_first_real_cause_when_the_stack_rolls_back(capsys):
    cfn, stub = stubbed("cloudformation")
    when = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)

    def stack(status, reason=None):
        item = {"StackName": "shop-dev", "StackId": ROOT_ARN, "StackStatus": status, "CreationTime": when}
        if reason:
            item["StackStatusReason"] = reason
        return {"Stacks": [item]}

    failed = event("f", 5, "Service", "UPDATE_FAILED", physical="arn:svc", rtype="Custom::FargateService",
                   reason="Service did not reach a steady state: task failed to pull the image")
    cancelled = event("x", 6, "Scaling", "UPDATE_FAILED", physical="s", rtype="Custom::ServiceScaling",
                      reason="Resource update cancelled")
    done = event("d", 9, "shop-dev", "UPDATE_ROLLBACK_COMPLETE", physical=ROOT_ARN)
    stub.add_response("describe_stacks", stack("UPDATE_IN_PROGRESS"), {"StackName": "shop-dev"})
    stub.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": ROOT_ARN})
    stub.add_response("describe_stacks", stack("UPDATE_ROLLBACK_COMPLETE", "The following resource(s) failed to update: [Service]."),
                      {"StackName": ROOT_ARN})
    stub.add_response("describe_stack_events", {"StackEvents": [done, cancelled, failed]}, {"StackName": ROOT_ARN})

    with stub:
        rc = stackctl.main(["wait", "dev", "--interval", "0"], session=StubbedSession(cloudformation=cfn))

    err = capsys.readouterr().err
    assert rc == 1
    assert "stack shop-dev is UPDATE_ROLLBACK_COMPLETE" in err
    assert "first failure: Service UPDATE_FAILED: Service did not reach a steady state" in err


def test_destroy_deletes_the_stack_and_follows_it_to_delete_complete(aws, capsys):
    create_environment_stack(aws)

    rc = stackctl.main(["destroy", "dev", "--yes", "--interval", "0.1"], session=aws)

    out = capsys.readouterr().out
    assert rc == 0
    assert "DELETE_COMPLETE" in out.splitlines()[-1]
    assert aws.client("cloudformation").list_stacks(StackStatusFilter=["CREATE_COMPLETE"])["StackSummaries"] == []


def test_destroy_without_a_terminal_or_yes_refuses(aws, capsys, monkeypatch):
    create_environment_stack(aws)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)

    rc = stackctl.main(["destroy", "dev"], session=aws)

    assert rc == 2
    assert "pass YES=1" in capsys.readouterr().err


def test_destroy_of_a_stack_that_is_gone_is_not_an_error(aws, capsys):
    rc = stackctl.main(["destroy", "dev", "--yes"], session=aws)

    assert rc == 0
    assert "does not exist; nothing to delete" in capsys.readouterr().out
