"""IAM in the local engine (harness/engine_iam.py): every AWS call a provider function makes is
authorized against the role cloudformation/provider.yaml gives that function, and a call the role
does not allow fails as on AWS. Proven with the real provider and network binaries (the shared
provider example: provider.yaml standalone, then a stack with one Custom::Network; the preflight
binary for the hand-over of a long wait), with copies of provider.yaml that take one permission
away, with role sessions of the tests' own (one per protocol), and on the evaluator alone."""
import json
import re

import boto3
import pytest
import stackctl
from botocore.exceptions import ClientError

from conftest import FUNCTION_ENV, LOGS, ROOT, binary
from harness import engine_iam
from harness.engine_iam import Request, decide, resources_of
from harness.engine_process import EngineProcess, settle, zip_binary
from harness.inventory import inventory
from harness.moto import ACCOUNT, REGION

BUCKET = "iam-artifacts"
PROVIDER = (ROOT / "cloudformation/provider.yaml").read_text()
SANDBOX = (ROOT / "cloudformation/examples/shared-provider.yaml").read_text()
PROVIDER_LEFTOVERS = {"lambda functions", "log groups", "iam roles", "stacks", "exports"}


def start_engine(name: str, **knobs) -> EngineProcess:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in knobs.items():
            patch.setenv(key, value)
        engine = EngineProcess(LOGS / name, function_env=FUNCTION_ENV).start()
    engine.client("s3").create_bucket(Bucket=BUCKET)
    for function in stackctl.FUNCTIONS:
        archive = zip_binary(binary(function), LOGS / "zips" / "lambda" / function / "bootstrap.zip")
        engine.client("s3").upload_file(str(archive), BUCKET, f"iam/{function}.zip")
    return engine


@pytest.fixture(scope="module")
def env():
    engine = start_engine("engine-iam")
    yield engine
    engine.stop()


def edited(*changes) -> str:
    """provider.yaml with each (old, new) text replaced; each old text occurs exactly once."""
    text = PROVIDER
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


WITHOUT_DESCRIBE_ZONES = ("                  - ec2:DescribeAvailabilityZones\n", "")
WITHOUT_CREATE_SUBNET = ("                  - ec2:CreateSubnet\n", "")
WITHOUT_CREATE_VPC = ("                  - ec2:CreateVpc\n", "")
# The preflight waits 10 s for a new ECS service-linked role to propagate: with a 4 s Timeout the
# wait continues in new invocations, each handed over with lambda:InvokeFunction on itself.
SHORT_PREFLIGHT_TIMEOUT = ("      # A few IAM calls and a 10 s wait for a new service-linked role to propagate.\n"
                           "      Timeout: 60\n", "      Timeout: 4\n")
HAND_OVER_TO_ANOTHER_FUNCTION = ("            Resource: !GetAtt PreflightFunction.Arn\n",
                                 "            Resource: !GetAtt NetworkFunction.Arn\n")
PREFLIGHT = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  ProviderStackName: {Type: String}
Resources:
  Preflight:
    Type: Custom::EnvironmentPreflight
    Properties:
      ServiceToken: !ImportValue {Fn::Sub: "${ProviderStackName}-PreflightServiceToken"}
      ServiceTimeout: 120
      FargateWeight: 1
      FargateSpotWeight: 3
      DesiredCount: 2
      MinCount: 1
      MaxCount: 4
      ScaleOutCpuThreshold: 70
      ScaleInCpuThreshold: 30
      VpcCidr: 10.60.0.0/16
      AvailabilityZoneCount: 2
      AppPort: 8080
"""


def deploy(engine, provider: str, template: str, nat_gateways: str = "Single", consumer: str = SANDBOX) -> tuple:
    """The provider stack from `template`, then a stack using it (the sandbox of the shared-provider
    example by default); (provider physical ids, that stack)."""
    cfn = engine.client("cloudformation")
    cfn.create_stack(StackName=provider, TemplateBody=template, Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": "CodeBucket", "ParameterValue": BUCKET},
                                 {"ParameterKey": "CodeKeyPrefix", "ParameterValue": "iam"}])
    assert settle(cfn, provider)["StackStatus"] == "CREATE_COMPLETE"
    ids = {r["LogicalResourceId"]: r["PhysicalResourceId"]
           for r in cfn.describe_stack_resources(StackName=provider)["StackResources"]}
    parameters = {"ProviderStackName": provider, **({"NatGateways": nat_gateways} if consumer == SANDBOX else {})}
    cfn.create_stack(StackName=f"{provider}-sandbox", TemplateBody=consumer,
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
    return ids, settle(cfn, f"{provider}-sandbox", timeout=180)


def destroy(engine, provider: str, sandbox: dict) -> None:
    cfn = engine.client("cloudformation")
    cfn.delete_stack(StackName=sandbox["StackId"])
    assert settle(cfn, sandbox["StackId"], timeout=180)["StackStatus"] == "DELETE_COMPLETE"
    provider_id = cfn.describe_stacks(StackName=provider)["Stacks"][0]["StackId"]
    cfn.delete_stack(StackName=provider)
    assert settle(cfn, provider_id)["StackStatus"] == "DELETE_COMPLETE"
    assert inventory(engine.client) == {}


def failure(engine, stack: dict, resource: str = "Sandbox") -> str:
    events = engine.client("cloudformation").describe_stack_events(StackName=stack["StackId"])["StackEvents"]
    return next(e["ResourceStatusReason"] for e in events
                if e["LogicalResourceId"] == resource and e["ResourceStatus"] == "CREATE_FAILED")


def refusals(engine) -> list:
    return re.findall(r"IAM: refused .*", (engine.log_dir / "engine.log").read_text(errors="replace"))


def principal(ids: dict, kind: str = "Network") -> str:
    """A function's role session, as Lambda names it: the role, then the function."""
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{ids[kind + 'Role']}/{ids[kind + 'Function']}"


def without_ecs_service_linked_role(engine) -> None:
    """A fresh account as far as the preflight can tell: it creates the role and waits."""
    iam = engine.client("iam")
    if "AWSServiceRoleForECS" in {r["RoleName"] for r in iam.list_roles()["Roles"]}:
        iam.delete_role(RoleName="AWSServiceRoleForECS")


# -- the real provider ----------------------------------------------------------------------------
def test_the_real_roles_let_the_network_function_build_a_vpc_with_a_nat_gateway_and_delete_it(env):
    before = len(refusals(env))
    _, sandbox = deploy(env, "iam-real", PROVIDER)
    assert sandbox["StackStatus"] == "CREATE_COMPLETE", sandbox.get("StackStatusReason")
    vpc = {o["OutputKey"]: o["OutputValue"] for o in sandbox["Outputs"]}["VpcId"]
    nats = env.client("ec2").describe_nat_gateways(Filter=[{"Name": "vpc-id", "Values": [vpc]}])["NatGateways"]
    assert [n["State"] for n in nats] == ["available"]
    destroy(env, "iam-real", sandbox)
    assert refusals(env)[before:] == []


def refused_ec2(ids: dict, action: str) -> str:
    return (f"UnauthorizedOperation: You are not authorized to perform this operation. User: {principal(ids)} is not "
            f"authorized to perform: {action} because no identity-based policy allows the {action} action")


def test_a_network_role_without_ec2_describe_availability_zones_fails_the_resource_naming_the_action(env):
    ids, sandbox = deploy(env, "iam-no-zones", edited(WITHOUT_DESCRIBE_ZONES))
    assert sandbox["StackStatus"] == "ROLLBACK_COMPLETE"
    assert refused_ec2(ids, "ec2:DescribeAvailabilityZones") in failure(env, sandbox)
    # refused before anything was made: only the provider is left
    assert set(inventory(env.client)) <= PROVIDER_LEFTOVERS
    destroy(env, "iam-no-zones", sandbox)


def test_a_create_refused_after_the_vpc_was_made_is_rolled_back_leaving_nothing_behind():
    """The FAILED answer carries the VPC id (Resource::made_before_failing), so the rollback
    Delete removes the VPC and everything made in it before the refused call."""
    engine = start_engine("engine-iam-no-subnet")  # its own account: what is left behind dies with it
    try:
        ids, sandbox = deploy(engine, "iam-no-subnet", edited(WITHOUT_CREATE_SUBNET))
        assert sandbox["StackStatus"] == "ROLLBACK_COMPLETE"
        assert refused_ec2(ids, "ec2:CreateSubnet") in failure(engine, sandbox)
        assert set(inventory(engine.client)) <= PROVIDER_LEFTOVERS
    finally:
        engine.stop()


def test_a_create_refused_at_the_vpc_deletes_the_internet_gateway_made_beside_it_leaving_nothing_behind():
    """CreateVpc and CreateInternetGateway run in one round: with the VPC refused there is no
    physical id for the rollback to delete by, so the Create itself removes the gateway."""
    engine = start_engine("engine-iam-no-vpc")
    try:
        ids, sandbox = deploy(engine, "iam-no-vpc", edited(WITHOUT_CREATE_VPC))
        assert sandbox["StackStatus"] == "ROLLBACK_COMPLETE"
        assert refused_ec2(ids, "ec2:CreateVpc") in failure(engine, sandbox)
        assert set(inventory(engine.client)) <= PROVIDER_LEFTOVERS
        assert engine.client("ec2").describe_internet_gateways()["InternetGateways"] == []
    finally:
        engine.stop()


def test_a_long_wait_is_handed_over_through_lambda_invoke_which_the_role_allows_on_the_function_itself(env):
    without_ecs_service_linked_role(env)
    ids, stack = deploy(env, "iam-hand-over", edited(SHORT_PREFLIGHT_TIMEOUT), consumer=PREFLIGHT)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    assert "HANDED_OVER" in (env.log_dir / f"{ids['PreflightFunction']}.log").read_text(errors="replace")
    destroy(env, "iam-hand-over", stack)


def test_a_hand_over_the_role_allows_only_on_another_function_is_refused_naming_the_function(env):
    without_ecs_service_linked_role(env)
    ids, stack = deploy(env, "iam-hand-over-other", edited(SHORT_PREFLIGHT_TIMEOUT, HAND_OVER_TO_ANOTHER_FUNCTION),
                        consumer=PREFLIGHT)
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{ids['PreflightFunction']}"
    assert (f"Invoke: AccessDeniedException: User: {principal(ids, 'Preflight')} is not authorized to perform: "
            f"lambda:InvokeFunction on resource: {function_arn} because no identity-based policy allows the "
            f"lambda:InvokeFunction action") in failure(env, stack, "Preflight")
    destroy(env, "iam-hand-over-other", stack)


def test_with_local_aws_iam_off_a_role_without_an_action_is_not_refused():
    engine = start_engine("engine-iam-off", LOCAL_AWS_IAM="off")
    try:
        _, sandbox = deploy(engine, "iam-off", edited(WITHOUT_CREATE_SUBNET), nat_gateways="None")
        assert sandbox["StackStatus"] == "CREATE_COMPLETE", sandbox.get("StackStatusReason")
        destroy(engine, "iam-off", sandbox)
    finally:
        engine.stop()


# -- each protocol's refusal, with a role session of the test's own ------------------------------
def session_client(engine, service: str, credentials: dict):
    return boto3.client(service, endpoint_url=engine.endpoint, region_name=REGION,
                        aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                        aws_session_token=credentials["SessionToken"])


@pytest.fixture(scope="module")
def probe(env):
    """A role allowed ec2:Describe* and lambda:InvokeFunction on one function, and a session of it."""
    iam = env.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="iam-probe", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName="iam-probe", PolicyName="probe", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {"Effect": "Allow", "Action": "lambda:InvokeFunction",
         "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:allowed"}]}))
    credentials = env.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="probe")["Credentials"]
    yield credentials
    iam.delete_role_policy(RoleName="iam-probe", PolicyName="probe")
    iam.delete_role(RoleName="iam-probe")


USER = f"arn:aws:sts::{ACCOUNT}:assumed-role/iam-probe/probe"


REFUSALS = [
    ("ec2", lambda c: c.create_vpc(CidrBlock="10.9.0.0/16"), 403, "UnauthorizedOperation",
     f"You are not authorized to perform this operation. User: {USER} is not authorized to perform: ec2:CreateVpc "
     "because no identity-based policy allows the ec2:CreateVpc action"),
    ("ecs", lambda c: c.create_service(cluster="shop", serviceName="web"), 400, "AccessDeniedException",
     f"User: {USER} is not authorized to perform: ecs:CreateService on resource: "
     f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/shop/web because no identity-based policy allows the ecs:CreateService action"),
    ("lambda", lambda c: c.invoke(FunctionName="other", InvocationType="Event"), 403, "AccessDeniedException",
     f"User: {USER} is not authorized to perform: lambda:InvokeFunction on resource: "
     f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:other because no identity-based policy allows the lambda:InvokeFunction action"),
    ("iam", lambda c: c.get_role(RoleName="iam-probe"), 403, "AccessDenied",
     f"User: {USER} is not authorized to perform: iam:GetRole because no identity-based policy allows the iam:GetRole action"),
    ("ssm", lambda c: c.get_parameters(Names=["/shop/dev/DATABASE_URL"]), 400, "AccessDeniedException",
     f"User: {USER} is not authorized to perform: ssm:GetParameters on resource: "
     f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/shop/dev/DATABASE_URL because no identity-based policy allows the "
     "ssm:GetParameters action"),
    ("elbv2", lambda c: c.describe_target_groups(), 403, "AccessDenied",
     f"User: {USER} is not authorized to perform: elasticloadbalancing:DescribeTargetGroups because no "
     "identity-based policy allows the elasticloadbalancing:DescribeTargetGroups action"),
    ("cloudwatch", lambda c: c.delete_alarms(AlarmNames=["shop-high"]), 403, "AccessDenied",
     f"User: {USER} is not authorized to perform: cloudwatch:DeleteAlarms on resource: "
     f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:shop-high because no identity-based policy allows the "
     "cloudwatch:DeleteAlarms action"),
]


@pytest.mark.parametrize("service, call, status, code, text", REFUSALS, ids=[row[0] for row in REFUSALS])
def test_a_refused_call_answers_in_its_protocols_form(env, probe, service, call, status, code, text):
    with pytest.raises(ClientError) as refused:
        call(session_client(env, service, probe))
    answer = refused.value.response
    assert (answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"], answer["Error"]["Message"]) == \
        (status, code, text)


def test_what_the_role_allows_passes_and_other_keys_are_not_authorized(env, probe):
    assert session_client(env, "ec2", probe).describe_vpcs()["Vpcs"]
    assert session_client(env, "sts", probe).get_caller_identity()["Arn"] == USER
    # allowed on that function: the refusal is gone, the missing function remains
    with pytest.raises(ClientError) as missing:
        session_client(env, "lambda", probe).invoke(FunctionName="allowed", InvocationType="Event")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # the tests' own keys belong to no role session: nothing they do is authorized
    vpc = env.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    env.client("ec2").delete_vpc(VpcId=vpc)


# -- the evaluator ----------------------------------------------------------------------------------
NETWORK = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Describe", "Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"},
    {"Sid": "Build", "Effect": "Allow", "Action": ["ec2:CreateVpc", "ec2:CreateSubnet"],
     "Resource": [f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/*", f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/*"]}]}
HAND_OVER = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:net"}]}


def request(path: str = "/", **params) -> Request:
    return Request(params, path, REGION, ACCOUNT)


def test_an_action_the_role_allows_is_allowed_and_one_it_does_not_list_is_refused():
    assert decide([json.dumps(NETWORK)], "ec2:CreateVpc").allowed
    assert decide([NETWORK], "ec2:CreateSubnet").allowed
    refused = decide([NETWORK], "ec2:CreateRouteTable")
    assert (refused.allowed, refused.explicit) == (False, False)
    assert engine_iam.message("arn:aws:sts::1:assumed-role/r/f", "ec2:CreateRouteTable", refused) == (
        "User: arn:aws:sts::1:assumed-role/r/f is not authorized to perform: ec2:CreateRouteTable because no "
        "identity-based policy allows the ec2:CreateRouteTable action")
    assert not decide([], "ec2:DescribeVpcs").allowed  # a role without policies (or a deleted one)


def test_wildcards_match_actions_case_insensitively_and_resources_by_pattern():
    assert decide([NETWORK], "ec2:DescribeNatGateways", ["*"]).allowed
    assert decide([NETWORK], "EC2:describeVpcs", ["*"]).allowed
    assert not decide([NETWORK], "ec2:DeleteVpc").allowed
    assert not decide([NETWORK], "ecs:DescribeServices", ["*"]).allowed
    assert decide([HAND_OVER], "lambda:InvokeFunction", [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:net"]).allowed
    other = decide([HAND_OVER], "lambda:InvokeFunction", [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:network"])
    assert (other.allowed, other.resource) == (False, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:network")


def test_an_action_without_resource_types_needs_resource_star_and_others_need_any_matching_statement():
    scoped = {"Statement": {"Effect": "Allow", "Action": "elasticloadbalancing:DescribeTargetGroups",
                            "Resource": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/*"}}
    action = "elasticloadbalancing:DescribeTargetGroups"
    assert not decide([scoped], action, resources_of(action, request())).allowed
    # an action whose resources the engine does not derive: any resource of an Allow counts
    assert decide([NETWORK], "ec2:CreateSubnet", resources_of("ec2:CreateSubnet", request())).allowed


def test_deny_wins_not_action_allows_the_rest_and_conditions_are_not_evaluated():
    everything_but_iam = {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
    assert decide([everything_but_iam], "ec2:CreateVpc").allowed
    assert not decide([everything_but_iam], "iam:GetRole").allowed
    deny = {"Statement": [{"Effect": "Deny", "Action": "ec2:CreateVpc", "Resource": "*"}]}
    denied = decide([NETWORK, deny], "ec2:CreateVpc")
    assert (denied.allowed, denied.explicit) == (False, True)
    assert engine_iam.message("u", "ec2:CreateVpc", denied) == (
        "User: u is not authorized to perform: ec2:CreateVpc with an explicit deny in an identity-based policy")
    conditional = {"Statement": [
        {"Effect": "Allow", "Action": "iam:CreateServiceLinkedRole", "Resource": "*",
         "Condition": {"StringEquals": {"iam:AWSServiceName": "ecs.amazonaws.com"}}},
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    assert decide([conditional], "iam:CreateServiceLinkedRole").allowed


def test_the_resources_of_a_request_are_the_arns_aws_authorizes():
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:net"
    assert resources_of("lambda:InvokeFunction", request(f"/2015-03-31/functions/{arn.replace(':', '%3A')}/invocations")) == [arn]
    assert resources_of("lambda:InvokeFunction", request("/2015-03-31/functions/net/invocations", Qualifier="2")) == [arn + ":2"]
    assert resources_of("ssm:GetParameters", request(Names=["/a/b", "c"])) == [
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/a/b", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/c"]
    assert resources_of("ecs:UpdateService", request(cluster=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/shop", service="web")) == [
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/shop/web"]
    assert resources_of("cloudwatch:DeleteAlarms", request(**{"AlarmNames.member.2": "b", "AlarmNames.member.1": "a"})) == [
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:a", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:b"]
    assert resources_of("ecs:DescribeTasks", request(cluster="app", tasks=[
        "abc", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/app/def"])) == [
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/app/abc", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/app/def"]
    assert not decide([{"Statement": {"Effect": "Allow", "Action": "ecs:DescribeTasks",
                                      "Resource": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/*"}}],
                      "ecs:DescribeTasks", resources_of("ecs:DescribeTasks", request(cluster="app", tasks=["abc"]))).allowed
    assert resources_of("ec2:DescribeVpcs", request()) == ["*"]
    assert resources_of("ec2:CreateVpc", request()) is None
