"""AWS rules the local engine enforces where moto alone would accept the template
(tests/harness/engine_rules.py; docs/local-emulator.md, "AWS rules the engine enforces"): each
refusal, and the compliant template passing. Native resources only, no Lambda binaries."""
import itertools
import json

import pytest
from botocore.exceptions import ClientError

from conftest import LOGS
from harness.engine_process import EngineProcess, settle

ZONE_A, ZONE_B = "us-east-1a", "us-east-1b"
STACK_NUMBER = itertools.count()


@pytest.fixture(scope="module")
def engine():
    process = EngineProcess(LOGS / "engine-rules").start()
    yield process
    process.stop()


def deploy(cfn, name: str, resources: dict, **kwargs) -> dict:
    cfn.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": resources, **kwargs}))
    return settle(cfn, name)


def update(cfn, name: str, resources: dict, **kwargs) -> dict:
    cfn.update_stack(StackName=name, TemplateBody=json.dumps({"Resources": resources, **kwargs}))
    return settle(cfn, name)


def reasons(cfn, stack: str) -> list:
    return [e.get("ResourceStatusReason") or "" for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]]


def network(second_zone: str = ZONE_B) -> dict:
    return {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
        "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.0.0.0/24", "AvailabilityZone": ZONE_A}},
        "SubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.0.1.0/24", "AvailabilityZone": second_zone}},
    }


def load_balancer(**props) -> dict:
    return {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Properties": {"Subnets": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}], **props}}


def target_group(**props) -> dict:
    return {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "Port": 80, "Protocol": "HTTP", "TargetType": "ip", **props}}


ROLE = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}}


def function(**props) -> dict:
    return {"Type": "AWS::Lambda::Function", "Properties": {
        "Runtime": "python3.12", "Handler": "index.handler", "Role": {"Fn::GetAtt": ["Role", "Arn"]},
        "Code": {"ZipFile": "def handler(event, context):\n    return None\n"}, **props}}


# (resource type, template resources given the name, too long or malformed name, error the engine gives)
NAMED = [
    ("lb", lambda n: {**network(), "It": load_balancer(Name=n)}, "x" * 33,
     "The load balancer name '" + "x" * 33 + "' cannot be longer than '32' characters"),
    ("lb", lambda n: {**network(), "It": load_balancer(Name=n)}, "internal-shop",
     "The load balancer name 'internal-shop' cannot begin with 'internal-'"),
    ("lb", lambda n: {**network(), "It": load_balancer(Name=n)}, "shop_dev",
     "can only contain characters that are alphanumeric characters and hyphens(-)"),
    ("tg", lambda n: {**network(), "It": target_group(Name=n)}, "shop-dev-",
     "Target group name 'shop-dev-' cannot begin or end with '-'"),
    ("tg", lambda n: {**network(), "It": target_group(Name=n)}, "t" * 33,
     "Target group name '" + "t" * 33 + "' cannot be longer than '32' characters"),
    ("function", lambda n: {"Role": ROLE, "It": function(FunctionName=n)}, "f" * 65,
     "Model validation failed (#/FunctionName: failed validation constraint for keyword [pattern])"),
    ("role", lambda n: {"It": dict(ROLE, Properties=dict(ROLE["Properties"], RoleName=n))}, "r" * 65,
     "Model validation failed (#/RoleName: expected maxLength: 64, actual: 65)"),
    ("loggroup", lambda n: {"It": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": n}}}, "/ecs/shop dev",
     "Model validation failed (#/LogGroupName: failed validation constraint for keyword [pattern])"),
    ("repository", lambda n: {"It": {"Type": "AWS::ECR::Repository", "Properties": {"RepositoryName": n}}}, "Shop-Dev",
     "Model validation failed (#/RepositoryName: failed validation constraint for keyword [pattern])"),
    ("cluster", lambda n: {"It": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": n}}}, "shop.dev",
     "Cluster must match ^[a-zA-Z0-9\\-_]{1,255}$, but was shop.dev"),
]
COMPLIANT = {"lb": "s" * 32, "tg": "shop-dev-1", "function": "f" * 64, "role": "r" * 64,
             "loggroup": "/ecs/shop-dev_#1." + "l" * 400, "repository": "shop/dev-app_x", "cluster": "shop-dev_1"}


@pytest.mark.parametrize("kind,resources,bad,error", NAMED, ids=[f"{row[0]}-{i}" for i, row in enumerate(NAMED)])
def test_a_name_cloudformation_refuses_fails_the_resource_with_its_error_and_a_valid_one_is_created(engine, kind, resources, bad, error):
    cfn = engine.client("cloudformation")
    number = next(STACK_NUMBER)
    stack = deploy(cfn, f"bad-{kind}-{number}", resources(bad))
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert error in stack["StackStatusReason"]
    assert "failed to create: [It]" in stack["StackStatusReason"]
    good = deploy(cfn, f"good-{kind}-{number}", resources(COMPLIANT[kind]))
    assert good["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, good["StackName"])
    cfn.delete_stack(StackName=good["StackName"])  # the next row of this kind reuses the valid name


LONG_STACK = "a-stack-name-long-enough-to-overflow-every-generated-physical-name-" + "x" * 40


def test_generated_names_stay_within_each_types_limit_like_cloudformations(engine):
    cfn, elbv2, lam, iam = (engine.client(s) for s in ("cloudformation", "elbv2", "lambda", "iam"))
    long_id = "ALogicalIdThatIsAlsoMuchLongerThanAnyOfTheseNamesMayBe"
    resources = {**network(), f"Lb{long_id}": load_balancer(), f"Tg{long_id}": target_group(), "Role": ROLE,
                 f"Fn{long_id}": function(), f"Role{long_id}": ROLE,
                 f"Repo{long_id}": {"Type": "AWS::ECR::Repository", "Properties": {}}}
    stack = deploy(cfn, LONG_STACK, resources)
    assert stack["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, LONG_STACK)
    [lb] = [b["LoadBalancerName"] for b in elbv2.describe_load_balancers()["LoadBalancers"] if b["LoadBalancerName"].startswith("a-sta")]
    [tg] = [g["TargetGroupName"] for g in elbv2.describe_target_groups()["TargetGroups"] if g["TargetGroupName"].startswith("a-sta")]
    assert len(lb) <= 32 and len(tg) <= 32
    assert lb.startswith("a-sta-LbALo-") and tg.startswith("a-sta-TgALo-")  # 5 + 5 characters and a suffix
    [fn] = [f["FunctionName"] for f in lam.list_functions()["Functions"] if f["FunctionName"].startswith("a-stack")]
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("a-stack")]
    assert len(fn) <= 64 and "-FnALogical" in fn
    assert len(roles) == 2 and all(len(r) <= 64 for r in roles)
    [repository] = [r["repositoryName"] for r in engine.client("ecr").describe_repositories()["repositories"]
                    if r["repositoryName"].startswith("a-stack")]
    assert repository == repository.lower() and "-repoalogical" in repository


def test_replacing_a_custom_named_resource_is_refused_and_rolled_back_and_a_rename_replaces_it(engine):
    cfn = engine.client("cloudformation")
    stack = deploy(cfn, "named", {**network(), "Group": target_group(Name="named-tg")})
    assert stack["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, "named")
    stack = update(cfn, "named", {**network(), "Group": target_group(Name="named-tg", Port=8080)})
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert ("CloudFormation cannot update a stack when a custom-named resource requires replacing. "
            "Rename named-tg and update the stack again.") in stack["StackStatusReason"]
    assert [(g["TargetGroupName"], g["Port"]) for g in groups(engine, "named")] == [("named-tg", 80)]
    stack = update(cfn, "named", {**network(), "Group": target_group(Name="named-tg-2", Port=8080)})
    assert stack["StackStatus"] == "UPDATE_COMPLETE", reasons(cfn, "named")
    assert [(g["TargetGroupName"], g["Port"]) for g in groups(engine, "named")] == [("named-tg-2", 8080)]


def test_a_generated_name_resource_is_replaced_new_one_first_and_the_old_one_deleted_in_cleanup(engine):
    cfn = engine.client("cloudformation")
    deploy(cfn, "replaced", {**network(), "Group": target_group()})
    old = physical_id(cfn, "replaced", "Group")
    stack = update(cfn, "replaced", {**network(), "Group": target_group(Port=8080)})
    assert stack["StackStatus"] == "UPDATE_COMPLETE", reasons(cfn, "replaced")
    new = physical_id(cfn, "replaced", "Group")
    assert new != old
    assert [(g["TargetGroupArn"], g["Port"]) for g in groups(engine, "replaced")] == [(new, 8080)]
    events = [(e["LogicalResourceId"], e["ResourceStatus"], e["PhysicalResourceId"], e.get("ResourceStatusReason"))
              for e in cfn.describe_stack_events(StackName="replaced")["StackEvents"]][::-1]
    since = events[[e[1] for e in events].index("UPDATE_IN_PROGRESS"):]
    assert [e[:3] for e in since if e[0] == "Group"] == [
        ("Group", "UPDATE_IN_PROGRESS", old), ("Group", "UPDATE_COMPLETE", new),
        ("Group", "DELETE_IN_PROGRESS", old), ("Group", "DELETE_COMPLETE", old)]
    assert "Requested update requires the creation of a new physical resource" in next(e[3] for e in since if e[0] == "Group")
    cleanup = [e[1] for e in since].index("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
    assert [e[1] for e in since].index("DELETE_IN_PROGRESS") > cleanup


def test_a_failed_update_after_a_replacement_deletes_the_new_resource_and_keeps_the_old_one(engine):
    cfn = engine.client("cloudformation")
    logs = {"Type": "AWS::Logs::LogGroup", "DependsOn": "Group", "Properties": {"LogGroupName": "/rules/replace"}}
    deploy(cfn, "undo", {**network(), "Group": target_group(), "Logs": logs})
    old = physical_id(cfn, "undo", "Group")
    broken = dict(logs, Properties={"LogGroupName": "/rules/not valid"})
    stack = update(cfn, "undo", {**network(), "Group": target_group(Port=8080), "Logs": broken})
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert "failed to update: [Logs]" in stack["StackStatusReason"]
    assert [(g["TargetGroupArn"], g["Port"]) for g in groups(engine, "undo")] == [(old, 80)]


def test_a_task_definition_change_registers_a_new_revision_first_and_a_rollback_deregisters_it(engine):
    cfn, ecs = engine.client("cloudformation"), engine.client("ecs")

    def definition(image: str) -> dict:
        return {"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Family": "rules-td", "ContainerDefinitions": [{"Name": "app", "Image": image, "Memory": 128}]}}

    def active() -> list:
        arns = ecs.list_task_definitions(familyPrefix="rules-td", status="ACTIVE")["taskDefinitionArns"]
        return [arn.rsplit(":", 1)[1] for arn in arns]

    logs = {"Type": "AWS::Logs::LogGroup", "DependsOn": "Task", "Properties": {"LogGroupName": "/rules/td"}}
    deploy(cfn, "revisions", {"Task": definition("app:1"), "Logs": logs})
    assert update(cfn, "revisions", {"Task": definition("app:2"), "Logs": logs})["StackStatus"] == "UPDATE_COMPLETE"
    assert active() == ["2"]
    broken = dict(logs, Properties={"LogGroupName": "/rules/not valid"})
    assert update(cfn, "revisions", {"Task": definition("app:3"), "Logs": broken})["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert active() == ["2"]
    assert physical_id(cfn, "revisions", "Task").endswith(":2")


def groups(engine, stack: str) -> list:
    """The target groups in the stack's VPC (the engine is shared by this module's tests)."""
    vpc = physical_id(engine.client("cloudformation"), stack, "Vpc")
    return [g for g in engine.client("elbv2").describe_target_groups()["TargetGroups"] if g["VpcId"] == vpc]


def physical_id(cfn, stack: str, logical_id: str) -> str:
    return cfn.describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)["StackResourceDetail"]["PhysicalResourceId"]


def test_an_application_load_balancer_in_one_zone_is_refused_and_one_in_two_zones_is_created(engine):
    cfn = engine.client("cloudformation")
    stack = deploy(cfn, "one-zone", {**network(second_zone=ZONE_A), "Alb": load_balancer()})
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert "At least two subnets in two different Availability Zones must be specified" in stack["StackStatusReason"]
    stack = deploy(cfn, "two-zones", {**network(), "Alb": load_balancer()})
    assert stack["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, "two-zones")
    stack = deploy(cfn, "one-zone-nlb", {**network(second_zone=ZONE_A), "Nlb": load_balancer(Type="network")})
    assert stack["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, "one-zone-nlb")


RULES = {
    "Parameters": {"Environment": {"Type": "String", "Default": "dev"},
                   "Certificate": {"Type": "String", "Default": ""},
                   "Sizes": {"Type": "CommaDelimitedList", "Default": "small,medium"}},
    "Rules": {
        "ProdNeedsCertificate": {
            "RuleCondition": {"Fn::Equals": [{"Ref": "Environment"}, "prod"]},
            "Assertions": [{"Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Certificate"}, ""]}]},
                            "AssertDescription": "A prod environment needs a Certificate"}]},
        "KnownEnvironment": {"Assertions": [
            {"Assert": {"Fn::Contains": [["dev", "prod"], {"Ref": "Environment"}]},
             "AssertDescription": "Environment must be dev or prod"},
            {"Assert": {"Fn::And": [{"Fn::EachMemberIn": [{"Ref": "Sizes"}, ["small", "medium", "large"]]},
                                    {"Fn::Or": [{"Fn::EachMemberEquals": [{"Ref": "Sizes"}, "small"]},
                                                {"Fn::Not": [{"Fn::Equals": [{"Ref": "Environment"}, "dev"]}]},
                                                {"Fn::Contains": [{"Ref": "Sizes"}, "medium"]}]}]},
             "AssertDescription": "Sizes must be small, medium or large"}]},
    },
}
LOGS_ONLY = {"Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {}}}


def params(**values) -> list:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def test_a_false_rule_assertion_refuses_create_stack_with_its_description_and_creates_nothing(engine):
    cfn = engine.client("cloudformation")
    body = json.dumps({**RULES, "Resources": LOGS_ONLY})
    with pytest.raises(ClientError, match="A prod environment needs a Certificate") as refused:
        cfn.create_stack(StackName="rules", TemplateBody=body, Parameters=params(Environment="prod"))
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError, match="Sizes must be small, medium or large"):
        cfn.create_stack(StackName="rules", TemplateBody=body, Parameters=params(Sizes="small,huge"))
    assert "rules" not in [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]]
    cfn.create_stack(StackName="rules", TemplateBody=body, Parameters=params(Environment="prod", Certificate="arn:cert"))
    assert settle(cfn, "rules")["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, "rules")
    cfn.create_stack(StackName="rules-dev", TemplateBody=body)  # RuleCondition false: the cert rule is skipped
    assert settle(cfn, "rules-dev")["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, "rules-dev")


def test_rules_are_checked_on_update_stack_and_create_change_set_before_anything_changes(engine):
    cfn = engine.client("cloudformation")
    body = json.dumps({**RULES, "Resources": LOGS_ONLY})
    cfn.create_stack(StackName="rules-update", TemplateBody=body)
    assert settle(cfn, "rules-update")["StackStatus"] == "CREATE_COMPLETE"
    with pytest.raises(ClientError, match="Environment must be dev or prod"):
        cfn.update_stack(StackName="rules-update", TemplateBody=body, Parameters=params(Environment="test"))
    assert settle(cfn, "rules-update")["StackStatus"] == "CREATE_COMPLETE"
    with pytest.raises(ClientError, match="A prod environment needs a Certificate"):
        cfn.create_change_set(StackName="rules-update", ChangeSetName="prod", TemplateBody=body,
                              Parameters=params(Environment="prod"))
    with pytest.raises(ClientError, match="A prod environment needs a Certificate"):
        cfn.create_change_set(StackName="rules-new", ChangeSetName="first", ChangeSetType="CREATE", TemplateBody=body,
                              Parameters=params(Environment="prod"))
    assert "rules-new" not in [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]]
    cfn.create_change_set(StackName="rules-new", ChangeSetName="first", ChangeSetType="CREATE", TemplateBody=body,
                          Parameters=params(Environment="prod", Certificate="arn:cert"))
    assert cfn.describe_change_set(StackName="rules-new", ChangeSetName="first")["Status"] == "CREATE_COMPLETE"


def test_value_of_checks_the_subnets_parameter_against_the_vpc_parameter(engine):
    cfn, ec2 = engine.client("cloudformation"), engine.client("ec2")
    vpcs = [ec2.create_vpc(CidrBlock=f"10.{i}.0.0/16")["Vpc"]["VpcId"] for i in (10, 11)]
    subnets = [ec2.create_subnet(VpcId=v, CidrBlock=f"10.{i}.0.0/24")["Subnet"]["SubnetId"] for i, v in zip((10, 11), vpcs)]
    body = json.dumps({
        "Parameters": {"VpcId": {"Type": "AWS::EC2::VPC::Id"}, "Subnets": {"Type": "List<AWS::EC2::Subnet::Id>"}},
        "Rules": {"SubnetsInVpc": {"Assertions": [
            {"Assert": {"Fn::EachMemberEquals": [{"Fn::ValueOf": ["Subnets", "VpcId"]}, {"Ref": "VpcId"}]},
             "AssertDescription": "All subnets must be in the VPC"},
            {"Assert": {"Fn::EachMemberIn": [{"Fn::ValueOfAll": ["AWS::EC2::Subnet::Id", "VpcId"]},
                                              {"Fn::RefAll": "AWS::EC2::VPC::Id"}]},
             "AssertDescription": "Subnets must be in a VPC of this account"}]}},
        "Resources": LOGS_ONLY})
    with pytest.raises(ClientError, match="All subnets must be in the VPC"):
        cfn.create_stack(StackName="value-of", TemplateBody=body,
                         Parameters=params(VpcId=vpcs[0], Subnets=",".join(subnets)))
    cfn.create_stack(StackName="value-of", TemplateBody=body, Parameters=params(VpcId=vpcs[0], Subnets=subnets[0]))
    assert settle(cfn, "value-of")["StackStatus"] == "CREATE_COMPLETE", reasons(cfn, "value-of")


def test_every_generated_name_passes_the_name_check_even_from_the_longest_stack_name():
    from harness import engine_rules

    for resource_type in engine_rules.NAMES:
        for stack_name in ("s", "a" * 128, "dev-"):
            name = engine_rules.generate_name(resource_type, stack_name, "L" * 255)
            assert engine_rules.name_problem(resource_type, "Name", name) is None, (resource_type, name)
