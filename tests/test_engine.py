"""The local engine itself (tests/harness/engine.py): CloudFormation's lifecycle rules, proven with the
real example binary deployed as a Lambda function by a template, on moto with our orchestration."""
import json

import pytest
from botocore.exceptions import ClientError

from conftest import FUNCTION_ENV, LOGS, binary
from harness.engine_process import EngineProcess, settle as wait, zip_binary

BUCKET = "engine-code"

EXAMPLE = """
AWSTemplateFormatVersion: "2010-09-09"
Description: one example parameter behind a real Lambda function
Parameters:
  Name: {Type: String, AllowedPattern: "^/[a-z/-]+$"}
  Value: {Type: String}
  FailOn: {Type: String, Default: ""}
  Size: {Type: Number, Default: 1, MinValue: 1, MaxValue: 3}
Conditions:
  InjectFailure: !Not [!Equals [!Ref FailOn, ""]]
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]
      # What the example binary calls (the engine authorizes it against this role).
      Policies:
        - PolicyName: parameter
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: [ssm:PutParameter, ssm:AddTagsToResource, ssm:GetParameter, ssm:ListTagsForResource,
                         ssm:DeleteParameter]
                Resource: !Sub arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*
  Function:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: provided.al2023
      Handler: bootstrap
      Timeout: 8
      Role: !GetAtt Role.Arn
      Code: {S3Bucket: engine-code, S3Key: example.zip}
  Parameter:
    Type: Custom::ExampleParameter
    Properties:
      ServiceToken: !GetAtt Function.Arn
      Name: !Ref Name
      Value: !Sub "${Value}-x${Size}"
      FailOn: !If [InjectFailure, !Ref FailOn, !Ref AWS::NoValue]
      DataBytes: 16
Outputs:
  ParameterName: {Value: !Ref Parameter, Description: physical id}
  Version: {Value: !GetAtt Parameter.Version, Description: from the resource's Data}
"""


@pytest.fixture(scope="module")
def engine():
    process = EngineProcess(LOGS / "engine-tests", function_env=FUNCTION_ENV).start()
    s3 = process.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    archive = zip_binary(binary("example-resource", example=True), LOGS / "zips" / "example.zip")
    s3.upload_file(str(archive), BUCKET, "example.zip")
    yield process
    process.stop()


def params(**values) -> list:
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in values.items()]


def requests_for(engine, stack_name: str) -> list:
    return [r for r in engine.requests() if r["StackName"] == stack_name]


def outputs(stack: dict) -> dict:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def reasons(cfn, stack: str) -> list:
    return [e.get("ResourceStatusReason") for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]]


def test_a_custom_resource_is_created_by_the_real_binary_and_its_data_feeds_the_outputs(engine):
    cfn, ssm = engine.client("cloudformation"), engine.client("ssm")
    cfn.create_stack(StackName="create", TemplateBody=EXAMPLE, Parameters=params(Name="/engine/create", Value="v"),
                     Capabilities=["CAPABILITY_IAM"])
    stack = wait(cfn, "create")
    assert stack["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, "create")
    assert outputs(stack)["ParameterName"] == "/engine/create"
    assert outputs(stack)["Version"] == "1"
    assert ssm.get_parameter(Name="/engine/create", WithDecryption=True)["Parameter"]["Value"] == "v-x1"
    [create] = requests_for(engine, "create")
    assert (create["RequestType"], create["ResourceType"], create["Answers"][0]["Status"]) == \
        ("Create", "Custom::ExampleParameter", "SUCCESS")
    events = [(e["LogicalResourceId"], e["ResourceStatus"]) for e in cfn.describe_stack_events(StackName="create")["StackEvents"]]
    assert events[::-1].index(("Role", "CREATE_COMPLETE")) < events[::-1].index(("Function", "CREATE_COMPLETE")) \
        < events[::-1].index(("Parameter", "CREATE_COMPLETE")) < events[::-1].index(("create", "CREATE_COMPLETE"))


def test_properties_arrive_as_strings_and_an_update_carries_the_old_ones_and_keeps_the_id(engine):
    cfn, ssm = engine.client("cloudformation"), engine.client("ssm")
    cfn.create_stack(StackName="update", TemplateBody=EXAMPLE, Parameters=params(Name="/engine/update", Value="a"))
    assert wait(cfn, "update")["StackStatus"] == "CREATE_COMPLETE"
    cfn.update_stack(StackName="update", UsePreviousTemplate=True,
                     Parameters=[{"ParameterKey": "Name", "UsePreviousValue": True},
                                 {"ParameterKey": "Value", "UsePreviousValue": True},
                                 {"ParameterKey": "Size", "ParameterValue": "2"}])
    stack = wait(cfn, "update")
    assert stack["StackStatus"] == "UPDATE_COMPLETE", reasons(cfn, "update")
    create, update = requests_for(engine, "update")
    assert create["ResourceProperties"]["DataBytes"] == "16"  # a YAML number, sent as a string
    assert "FailOn" not in create["ResourceProperties"]  # AWS::NoValue removes the key
    assert update["RequestType"] == "Update"
    assert update["PhysicalResourceId"] == "/engine/update" == update["Answers"][0]["PhysicalResourceId"]
    assert ssm.get_parameter(Name="/engine/update", WithDecryption=True)["Parameter"]["Value"] == "a-x2"
    assert outputs(stack)["Version"] == "2"


def test_an_unchanged_update_is_refused_as_no_updates_to_perform(engine):
    cfn = engine.client("cloudformation")
    cfn.create_stack(StackName="same", TemplateBody=EXAMPLE, Parameters=params(Name="/engine/same", Value="a"))
    assert wait(cfn, "same")["StackStatus"] == "CREATE_COMPLETE"
    with pytest.raises(ClientError, match="No updates are to be performed"):
        cfn.update_stack(StackName="same", UsePreviousTemplate=True,
                         Parameters=[{"ParameterKey": k, "UsePreviousValue": True} for k in ("Name", "Value")])


def test_a_new_physical_id_is_a_replacement_whose_old_resource_is_deleted_in_cleanup(engine):
    cfn, ssm = engine.client("cloudformation"), engine.client("ssm")
    cfn.create_stack(StackName="replace", TemplateBody=EXAMPLE, Parameters=params(Name="/engine/old", Value="a"))
    assert wait(cfn, "replace")["StackStatus"] == "CREATE_COMPLETE"
    cfn.update_stack(StackName="replace", UsePreviousTemplate=True, Parameters=params(Name="/engine/new", Value="a"))
    stack = wait(cfn, "replace")
    assert stack["StackStatus"] == "UPDATE_COMPLETE", reasons(cfn, "replace")
    kinds = [(r["RequestType"], r["PhysicalResourceId"]) for r in requests_for(engine, "replace")]
    assert kinds == [("Create", None), ("Update", "/engine/old"), ("Delete", "/engine/old")]
    assert outputs(stack)["ParameterName"] == "/engine/new"
    assert [p["Name"] for p in ssm.describe_parameters()["Parameters"] if p["Name"].startswith("/engine/old")] == []


def test_a_failed_update_is_rolled_back_with_an_update_back_to_the_old_properties(engine):
    cfn, ssm = engine.client("cloudformation"), engine.client("ssm")
    cfn.create_stack(StackName="rollback", TemplateBody=EXAMPLE, Parameters=params(Name="/engine/rollback", Value="a"))
    assert wait(cfn, "rollback")["StackStatus"] == "CREATE_COMPLETE"
    cfn.update_stack(StackName="rollback", UsePreviousTemplate=True,
                     Parameters=params(Name="/engine/rollback", Value="b", FailOn="Update"))
    stack = wait(cfn, "rollback")
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert "failed to update: [Parameter]" in stack["StackStatusReason"]
    create, failed, back = requests_for(engine, "rollback")
    assert (failed["RequestType"], failed["Answers"][0]["Status"]) == ("Update", "FAILED")
    assert (back["RequestType"], back["Answers"][0]["Status"]) == ("Update", "SUCCESS")
    assert ssm.get_parameter(Name="/engine/rollback", WithDecryption=True)["Parameter"]["Value"] == "a-x1"
    # the stack keeps its previous parameters and can be updated again
    current = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert current["Value"] == "a" and current["FailOn"] == ""


def test_a_failed_create_rolls_back_deleting_what_was_made_including_the_failed_resource(engine):
    cfn, lam = engine.client("cloudformation"), engine.client("lambda")
    cfn.create_stack(StackName="failcreate", TemplateBody=EXAMPLE,
                     Parameters=params(Name="/engine/failcreate", Value="a", FailOn="Create"))
    stack = wait(cfn, "failcreate")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert "Received response status [FAILED]" in stack["StackStatusReason"]
    create, delete = requests_for(engine, "failcreate")
    assert delete["RequestType"] == "Delete"
    assert delete["PhysicalResourceId"] == create["Answers"][0]["PhysicalResourceId"]
    assert delete["PhysicalResourceId"].startswith("custom-resource:create-failed:")
    assert not [f for f in lam.list_functions()["Functions"] if f["FunctionName"].startswith("failcreate-")]
    with pytest.raises(ClientError, match="ROLLBACK_COMPLETE state and can not be updated"):
        cfn.update_stack(StackName="failcreate", UsePreviousTemplate=True,
                         Parameters=params(Name="/engine/failcreate", Value="b"))


def test_bad_parameters_are_refused_up_front_naming_the_parameter(engine):
    cfn = engine.client("cloudformation")
    with pytest.raises(ClientError, match="Parameter 'Name' must match pattern"):
        cfn.create_stack(StackName="bad", TemplateBody=EXAMPLE, Parameters=params(Name="NoSlash", Value="a"))
    with pytest.raises(ClientError, match="Parameter 'Size' must be at most 3"):
        cfn.create_stack(StackName="bad", TemplateBody=EXAMPLE, Parameters=params(Name="/engine/bad", Value="a", Size=9))
    with pytest.raises(ClientError, match=r"Parameters: \['Value'\] must have values"):
        cfn.create_stack(StackName="bad", TemplateBody=EXAMPLE, Parameters=params(Name="/engine/bad"))
    with pytest.raises(ClientError, match=r"Parameters: \['Typo'\] do not exist"):
        cfn.create_stack(StackName="bad", TemplateBody=EXAMPLE, Parameters=params(Name="/engine/bad", Value="a", Typo=1))
    assert "bad" not in [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]]


def test_a_type_the_emulator_cannot_create_fails_the_stack_instead_of_being_skipped(engine):
    cfn = engine.client("cloudformation")
    template = {"Resources": {"Target": {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": {
        "ServiceNamespace": "ecs", "ResourceId": "service/c/s", "ScalableDimension": "ecs:service:DesiredCount",
        "MinCapacity": 1, "MaxCapacity": 2}}}}
    cfn.create_stack(StackName="unsupported", TemplateBody=json.dumps(template))
    stack = wait(cfn, "unsupported")
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert "cannot create AWS::ApplicationAutoScaling::ScalableTarget" in stack["StackStatusReason"]


PARENT = """
Parameters:
  Size: {Type: Number, Default: 1}
  Tag: {Type: String, Default: one}
Resources:
  First:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: http://127.0.0.1/engine-code/child.yaml
      Parameters: {Name: /engine/nested/first, Value: first, Size: !Ref Size}
  Second:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: http://127.0.0.1/engine-code/child.yaml
      Parameters: {Name: /engine/nested/second, Value: !Sub "${Tag}-${First.Outputs.Version}"}
Outputs:
  FirstName: {Value: !GetAtt First.Outputs.ParameterName}
  SecondName: {Value: !GetAtt Second.Outputs.ParameterName}
"""


def test_nested_stack_outputs_resolve_and_a_child_whose_parameters_did_not_change_is_left_alone(engine):
    cfn, s3, ssm = engine.client("cloudformation"), engine.client("s3"), engine.client("ssm")
    s3.put_object(Bucket=BUCKET, Key="child.yaml", Body=EXAMPLE.encode())
    cfn.create_stack(StackName="parent", TemplateBody=PARENT)
    stack = wait(cfn, "parent")
    assert stack["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, "parent")
    assert outputs(stack) == {"FirstName": "/engine/nested/first", "SecondName": "/engine/nested/second"}
    assert ssm.get_parameter(Name="/engine/nested/second", WithDecryption=True)["Parameter"]["Value"] == "one-1-x1"
    before = len(engine.requests())
    cfn.update_stack(StackName="parent", UsePreviousTemplate=True, Parameters=params(Tag="two", Size=1))
    assert wait(cfn, "parent")["StackStatus"] == "UPDATE_COMPLETE", reasons(cfn, "parent")
    sent = engine.requests()[before:]
    assert [(r["RequestType"], r["PhysicalResourceId"]) for r in sent] == [("Update", "/engine/nested/second")]
    children = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"].startswith("parent-")]
    assert sorted(s["StackStatus"] for s in children) == ["CREATE_COMPLETE", "UPDATE_COMPLETE"]
    cfn.delete_stack(StackName="parent")
    with pytest.raises(ClientError, match="does not exist"):
        wait(cfn, "parent")
    assert not [p for p in ssm.describe_parameters()["Parameters"] if p["Name"].startswith("/engine/nested/")]
    assert all(s["StackStatus"] == "DELETE_COMPLETE" for s in cfn.list_stacks()["StackSummaries"]
               if s["StackName"].startswith("parent"))


def test_deleting_a_stack_sends_delete_and_removes_its_resources(engine):
    cfn, ssm, iam = engine.client("cloudformation"), engine.client("ssm"), engine.client("iam")
    cfn.create_stack(StackName="delete", TemplateBody=EXAMPLE, Parameters=params(Name="/engine/delete", Value="a"))
    assert wait(cfn, "delete")["StackStatus"] == "CREATE_COMPLETE"
    stack_id = cfn.describe_stacks(StackName="delete")["Stacks"][0]["StackId"]
    cfn.delete_stack(StackName="delete")
    assert wait(cfn, stack_id)["StackStatus"] == "DELETE_COMPLETE"
    assert [r["RequestType"] for r in requests_for(engine, "delete")] == ["Create", "Delete"]
    with pytest.raises(ClientError):
        ssm.get_parameter(Name="/engine/delete")
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("delete-")]


CONDITIONAL = """
AWSTemplateFormatVersion: "2010-09-09"
Description: a queue that exists only while Keep is yes
Parameters:
  Keep: {Type: String, AllowedValues: ["yes", "no"]}
Conditions:
  KeepQueue: !Equals [!Ref Keep, "yes"]
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Condition: KeepQueue
  Topic:
    Type: AWS::SNS::Topic
"""


def test_a_resource_whose_condition_turns_false_on_update_is_deleted_and_comes_back_when_true(engine):
    cfn, sqs = engine.client("cloudformation"), engine.client("sqs")
    cfn.create_stack(StackName="conditional", TemplateBody=CONDITIONAL, Parameters=params(Keep="yes"))
    assert wait(cfn, "conditional")["StackStatus"] == "CREATE_COMPLETE"
    assert len(sqs.list_queues().get("QueueUrls", [])) == 1
    cfn.update_stack(StackName="conditional", TemplateBody=CONDITIONAL, Parameters=params(Keep="no"))
    assert wait(cfn, "conditional")["StackStatus"] == "UPDATE_COMPLETE"
    assert sqs.list_queues().get("QueueUrls", []) == []
    assert [r["LogicalResourceId"] for r in cfn.describe_stack_resources(StackName="conditional")["StackResources"]] == ["Topic"]
    cfn.update_stack(StackName="conditional", TemplateBody=CONDITIONAL, Parameters=params(Keep="yes"))
    assert wait(cfn, "conditional")["StackStatus"] == "UPDATE_COMPLETE"
    assert len(sqs.list_queues().get("QueueUrls", [])) == 1
    cfn.delete_stack(StackName="conditional")


# -- the engine's template functions on their own (no processes) ------------------------------
def resolver(values=None, resources=None, template=None):
    from types import SimpleNamespace

    from harness.template import Scope

    stack = SimpleNamespace(region_name="us-east-1", account_id="123456789012", stack_id="arn:stack/s/1", name="s")
    return Scope(None, stack, template or {"Resources": {}}, values or {}, resources or {})


def test_sub_resolves_parameters_attributes_with_dots_and_keeps_escaped_literals():
    from harness.engine import NestedStack

    from types import SimpleNamespace

    from moto.cloudformation.parsing import Output

    outputs = [Output(key="VpcId", value="vpc-1", description=None)]
    child = NestedStack("Net", SimpleNamespace(engine=SimpleNamespace(outputs=outputs)))
    ctx = resolver(values={"App": "shop"}, resources={"Net": child})
    assert ctx.resolve({"Fn::Sub": "${App}/${Net.Outputs.VpcId}/${!Literal}/${AWS::Region}"}) == \
        "shop/vpc-1/${Literal}/us-east-1"
    assert ctx.resolve({"Fn::GetAtt": ["Net", "Outputs", "VpcId"]}) == "vpc-1"  # moto's YAML split form


def test_conditions_novalue_select_split_and_join_behave_like_cloudformation():
    from harness.engine import ResourceFailed

    template = {"Resources": {}, "Conditions": {"HasCert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Cert"}, ""]}]}}}
    ctx = resolver(values={"Cert": "", "Names": ["a", "b"]}, template=template)
    assert ctx.resolve({"Port": {"Fn::If": ["HasCert", 443, {"Ref": "AWS::NoValue"}]}, "Keep": 1}) == {"Keep": 1}
    assert ctx.resolve({"Fn::Select": [1, {"Fn::Split": [",", {"Fn::Join": [",", {"Ref": "Names"}]}]}]}) == "b"
    with pytest.raises(ResourceFailed, match="out of bounds"):
        ctx.resolve({"Fn::Select": [5, {"Ref": "Names"}]})


def test_resources_are_ordered_by_their_references_and_a_cycle_is_refused():
    from harness.template import order

    template = {"Resources": {"C": {"Type": "T", "Properties": {"X": {"Fn::GetAtt": ["B", "Arn"]}}},
                              "B": {"Type": "T", "Properties": {"Y": {"Fn::Sub": "${A}"}}},
                              "A": {"Type": "T", "DependsOn": []}}}
    assert order(template) == ["A", "B", "C"]
    template["Resources"]["A"]["DependsOn"] = ["C"]
    with pytest.raises(Exception, match="Circular dependency"):
        order(template)
