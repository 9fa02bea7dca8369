"""The product end to end: cloudformation/environment.yaml with its nested stacks, deployed with the
same make targets a real account uses (package, deploy, weights, tasks, destroy), on the local
engine, with the three provider binaries as Lambda zips. The scenario runs in order: each test
continues from the state the previous one left."""
import json
import subprocess
import time

import pytest
import stackctl

from conftest import ROOT, engine_for_deploys, make_on
from harness.engine_process import settle
from harness.images import push_image
from harness.inventory import inventory

BUCKET = "shop-artifacts"
SECRET = "/shop/dev/DATABASE_URL"
STACK = "shop-dev"


@pytest.fixture(scope="module")
def env():
    engine = engine_for_deploys("environment", BUCKET)
    engine.client("ssm").put_parameter(Name=SECRET, Type="SecureString", Value="postgres://db.internal/shop")
    yield engine
    engine.stop()


make = make_on


def stack(engine) -> dict:
    return engine.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]


def outputs(engine) -> dict:
    return {o["OutputKey"]: o["OutputValue"] for o in stack(engine)["Outputs"]}


def parameters(engine) -> dict:
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack(engine)["Parameters"]}


def service(engine) -> dict:
    ecs = engine.client("ecs")
    found = outputs(engine)
    return ecs.describe_services(cluster=found["ClusterName"], services=[found["ServiceArn"]])["services"][0]


def service_tags(engine) -> list:
    ecs, found = engine.client("ecs"), outputs(engine)
    return ecs.describe_services(cluster=found["ClusterName"], services=[found["ServiceArn"]], include=["TAGS"])["services"][0].get("tags", [])


def tasks_per_provider(engine) -> dict:
    ecs, found = engine.client("ecs"), outputs(engine)
    arns = ecs.list_tasks(cluster=found["ClusterName"], serviceName="shop")["taskArns"]
    counts: dict = {}
    for task in ecs.describe_tasks(cluster=found["ClusterName"], tasks=arns)["tasks"] if arns else []:
        counts[task["capacityProviderName"]] = counts.get(task["capacityProviderName"], 0) + 1
    return counts


SET = "DesiredCount=4 MaxCount=6 SecretNames=DATABASE_URL"


def test_the_first_deploy_on_a_fresh_account_creates_everything_and_waits_for_the_image(env):
    iam = env.client("iam")
    assert "AWSServiceRoleForECS" not in {r["RoleName"] for r in iam.list_roles()["Roles"]}
    result = make(env, "deploy", "ENV=dev", f"SET={SET}")
    assert result.returncode == 0
    assert stack(env)["StackStatus"] == "CREATE_COMPLETE"
    found = outputs(env)
    assert set(found) >= {"LoadBalancerUrl", "VpcId", "ClusterName", "ServiceArn", "RepositoryUri", "NextStep",
                          "PreflightServiceToken", "NetworkServiceToken", "ServiceServiceToken", "ScalingServiceToken"}
    # the ECS service-linked role the cluster's capacity providers need was made first
    assert "AWSServiceRoleForECS" in {r["RoleName"] for r in iam.list_roles()["Roles"]}
    # no image yet: the service exists, runs nothing, autoscaling is held at 0, and the deploy
    # says exactly what to do next
    assert found["AwaitingImage"] == "shop-dev:not-pushed-yet"
    assert service(env)["desiredCount"] == 0 and tasks_per_provider(env) == {}
    assert "Next step: No image yet" in result.stdout
    assert f"docker push {found['RepositoryUri']}:v1" in result.stdout
    assert "make deploy ENV=dev SET=ImageTag=v1" in result.stdout
    # SpotFallback is off by default: no rule, no function, no role for it
    assert env.client("events").list_rules()["Rules"] == []
    assert [f for f in env.client("lambda").list_functions()["Functions"] if "SpotFallback" in f["FunctionName"]] == []
    assert [r for r in env.client("iam").list_roles()["Roles"] if "SpotFallback" in r["RoleName"]] == []
    # dev.json: two AZs behind one NAT gateway
    ec2 = env.client("ec2")
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [found["VpcId"]]}])["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2 and len(subnets) == 4
    nats = ec2.describe_nat_gateways(Filter=[{"Name": "vpc-id", "Values": [found["VpcId"]]}])["NatGateways"]
    assert [n["State"] for n in nats] == ["available"]
    assert "CREATE_COMPLETE" in result.stdout and "Network/Network" in result.stdout  # progress was shown


def test_after_the_push_a_deploy_with_the_tag_runs_the_tasks_by_the_strategy(env):
    push_image(env.client("ecr"), "shop-dev", "v1")  # what docker push does
    sent_before = len(env.requests())
    result = make(env, "deploy", "ENV=dev", f"SET={SET} ImageTag=v1")
    assert result.returncode == 0
    assert stack(env)["StackStatus"] == "UPDATE_COMPLETE"
    assert outputs(env)["AwaitingImage"] == ""
    assert "Next step" not in result.stdout
    sent = [(r["RequestType"], r["ResourceType"]) for r in env.requests()[sent_before:]]
    assert ("Update", "Custom::Network") not in sent
    # the service runs its tasks by the strategy, with the secret injected from SSM
    described = service(env)
    assert described["capacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE", "weight": 1, "base": 0},
        {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0}]
    assert described["desiredCount"] == 4
    assert tasks_per_provider(env) == {"FARGATE": 1, "FARGATE_SPOT": 3}
    definition = env.client("ecs").describe_task_definition(taskDefinition=described["taskDefinition"])["taskDefinition"]
    [container] = definition["containerDefinitions"]
    assert container["image"] == f"{outputs(env)['RepositoryUri']}:v1"
    assert [s["name"] for s in container["secrets"]] == ["DATABASE_URL"]
    assert container["secrets"][0]["valueFrom"] == "/shop/dev/DATABASE_URL"
    assert (definition["networkMode"], definition["cpu"], definition["memory"]) == ("awsvpc", "256", "512")


def test_changing_only_the_spot_weight_between_two_deploys_updates_the_service_once_and_not_the_network(env):
    arn_before = outputs(env)["ServiceArn"]
    sent_before = len(env.requests())
    result = make(env, "deploy", "ENV=dev", f"SET={SET} FargateSpotWeight=1")
    assert result.returncode == 0
    assert stack(env)["StackStatus"] == "UPDATE_COMPLETE"
    sent = env.requests()[sent_before:]
    # the preflight checks the new weights first, then the service changes; nothing else
    assert [(r["RequestType"], r["ResourceType"]) for r in sent] == [
        ("Update", "Custom::EnvironmentPreflight"), ("Update", "Custom::FargateService")]
    update = sent[1]
    assert update["PhysicalResourceId"] == arn_before == update["Answers"][0]["PhysicalResourceId"]
    changed = {k for k, v in update["ResourceProperties"].items() if update["OldResourceProperties"].get(k) != v}
    assert changed == {"CapacityProviderStrategy"}
    assert update["ResourceProperties"]["CapacityProviderStrategy"][1] == \
        {"CapacityProvider": "FARGATE_SPOT", "Weight": "1"}
    assert outputs(env)["ServiceArn"] == arn_before
    assert outputs(env)["CapacityProviderStrategy"] == "FARGATE:1:0,FARGATE_SPOT:1:0"
    assert tasks_per_provider(env) == {"FARGATE": 2, "FARGATE_SPOT": 2}


def test_a_deploy_of_a_tag_never_pushed_fails_in_seconds_naming_it_and_leaves_the_service_running(env):
    before = service(env)
    result = make(env, "deploy", "ENV=dev", f"SET={SET} FargateSpotWeight=1 ImageTag=v2")
    assert result.returncode != 0
    assert stack(env)["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert "shop-dev:v2 is not in ECR" in result.stdout + result.stderr
    after = service(env)
    assert after["taskDefinition"] == before["taskDefinition"] and after["desiredCount"] == 4
    assert tasks_per_provider(env) == {"FARGATE": 2, "FARGATE_SPOT": 2}


@pytest.mark.parametrize("change", ["VpcCidr=10.20.0.0/16", "AvailabilityZoneCount=3", "AppPort=9090"])
def test_a_fixed_network_setting_change_is_refused_before_anything_changes(env, change):
    vpc_before = outputs(env)["VpcId"]
    sent_before = len(env.requests())
    result = make(env, "deploy", "ENV=dev", f"SET={SET} FargateSpotWeight=1 ImageTag=v1 {change}")
    assert result.returncode != 0
    assert stack(env)["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert "refused before any change" in result.stdout + result.stderr
    assert change.split("=")[0] in result.stdout + result.stderr
    # only the preflight heard of it (and its rollback); the network, service and scaling did not
    sent = {(r["ResourceType"]) for r in env.requests()[sent_before:]}
    assert sent == {"Custom::EnvironmentPreflight"}
    assert outputs(env)["VpcId"] == vpc_before


def test_a_deploy_without_changes_succeeds_and_touches_nothing(env):
    sent_before = len(env.requests())
    status_before = stack(env)["StackStatus"]  # UPDATE_ROLLBACK_COMPLETE after the refusals above
    result = make(env, "deploy", "ENV=dev", f"SET={SET} FargateSpotWeight=1")
    assert result.returncode == 0
    assert env.requests()[sent_before:] == []
    assert stack(env)["StackStatus"] == status_before


def test_make_weights_is_a_console_style_update_that_keeps_every_other_parameter(env):
    before = parameters(env)
    arn_before = outputs(env)["ServiceArn"]
    sent_before = len(env.requests())
    result = make(env, "weights", "ENV=dev", "FARGATE=0", "SPOT=1", "BASE=1")
    assert result.returncode == 0
    after = parameters(env)
    assert {k: v for k, v in after.items() if before[k] != v} == {"FargateWeight": "0", "FargateBase": "1"}
    sent = env.requests()[sent_before:]
    assert [(r["RequestType"], r["LogicalResourceId"]) for r in sent] == [("Update", "Preflight"), ("Update", "Service")]
    assert sent[1]["PhysicalResourceId"] == arn_before
    assert "(same service, updated in place)" in result.stdout
    assert tasks_per_provider(env) == {"FARGATE": 1, "FARGATE_SPOT": 3}
    listing = make(env, "tasks", "ENV=dev")
    assert listing.returncode == 0 and "FARGATE 1 (25%), FARGATE_SPOT 3 (75%); 4 tasks" in listing.stdout


def test_spot_fallback_is_one_parameter_and_moves_a_spot_reclaim_to_fargate(env):
    result = make(env, "deploy", "ENV=dev", f"SET={SET} ImageTag=v1 FargateWeight=1 FargateBase=0 FargateSpotWeight=3 SpotFallback=Enabled")
    assert result.returncode == 0
    rules = {r["Name"]: r for r in env.client("events").list_rules()["Rules"]}
    assert sorted(r.get("ScheduleExpression", "pattern") for r in rules.values()) == ["pattern", "pattern", "rate(1 minute)"]
    assert "SpotFallbackFunction" in outputs(env)
    assert tasks_per_provider(env) == {"FARGATE": 1, "FARGATE_SPOT": 3}
    with env.knobs(SPOT_CAPACITY="unavailable"):
        assert len(env.interrupt_spot(outputs(env)["ClusterName"], "shop")) == 3
        end = time.monotonic() + 60
        while tasks_per_provider(env) != {"FARGATE": 4} and time.monotonic() < end:
            time.sleep(0.5)
        assert tasks_per_provider(env) == {"FARGATE": 4}
        assert [(i["capacityProvider"], i.get("base", 0)) for i in service(env)["capacityProviderStrategy"]] == \
            [("FARGATE", 4), ("FARGATE_SPOT", 0)]
    # turning it off again removes the rules, the function and its role, and ends the fallback
    result = make(env, "deploy", "ENV=dev", f"SET={SET} ImageTag=v1 SpotFallback=Disabled")
    assert result.returncode == 0
    assert env.client("events").list_rules()["Rules"] == []
    assert [f for f in env.client("lambda").list_functions()["Functions"] if "SpotFallback" in f["FunctionName"]] == []
    assert [(i["capacityProvider"], i.get("base", 0)) for i in service(env)["capacityProviderStrategy"]] == \
        [("FARGATE", 0), ("FARGATE_SPOT", 0)]
    assert "custom-resource:spot-fallback" not in {t["key"] for t in service_tags(env)}
    assert tasks_per_provider(env) == {"FARGATE": 1, "FARGATE_SPOT": 3}


def test_bad_weights_are_refused_before_anything_is_sent(env):
    sent_before = len(env.requests())
    result = make(env, "weights", "ENV=dev", "FARGATE=0", "SPOT=0")
    assert result.returncode != 0
    assert "weight" in (result.stdout + result.stderr).lower()
    assert env.requests()[sent_before:] == []


def test_make_destroy_deletes_everything_the_stack_made(env):
    sent_before = len(env.requests())
    result = make(env, "destroy", "ENV=dev", "YES=1")
    assert result.returncode == 0
    deletes = sorted(r["ResourceType"] for r in env.requests()[sent_before:])
    assert deletes == ["Custom::EnvironmentPreflight", "Custom::FargateService", "Custom::Network", "Custom::ServiceScaling"]
    # every request of the whole scenario got exactly one answer, and a valid one
    assert [(r["RequestType"], r["LogicalResourceId"]) for r in env.requests() if len(r["Answers"]) != 1] == []
    assert [a for r in env.requests() for a in r["Answers"] if a.get("Invalid")] == []
    env.client("ssm").delete_parameter(Name=SECRET)
    assert inventory(env.client) == {}


LONGEST_APP = "a" + "b2-" * 6 + "cd"   # 21 characters: ^[a-z][a-z0-9-]{1,20}$
LONGEST_ENV = "e" + "0123456789"       # 11 characters: ^[a-z][a-z0-9-]{1,10}$


def run_stackctl(engine, *arguments) -> subprocess.CompletedProcess:
    command = [str(ROOT / ".venv" / "bin" / "python"), "cloudformation/stackctl.py", *arguments]
    result = subprocess.run(command, cwd=ROOT, env=engine.env(), capture_output=True, text=True, timeout=600)
    print(result.stdout[-4000:], result.stderr[-3000:])
    return result


def test_the_longest_names_the_parameters_allow_deploy_and_destroy(env, tmp_path):
    """Every name the stacks derive from AppName and EnvironmentName (or that CloudFormation
    generates from the 33-character stack name) fits its AWS limit, which the engine enforces."""
    assert len(LONGEST_APP) == 21 and len(LONGEST_ENV) == 11
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in {
        "AppName": LONGEST_APP, "EnvironmentName": LONGEST_ENV, "VpcCidr": "10.40.0.0/16",
        "AvailabilityZoneCount": "2", "NatGateways": "Single"}.items()]
    params_file = tmp_path / "longest.json"
    params_file.write_text(json.dumps(params))
    build = tmp_path / "build"
    assert run_stackctl(env, "package", LONGEST_ENV, "--bucket", BUCKET, "--lambda-dir", str(env.lambda_dir),
                    "--params-file", str(params_file), "--build-dir", str(build)).returncode == 0
    name = f"{LONGEST_APP}-{LONGEST_ENV}"
    result = run_stackctl(env, "deploy", LONGEST_ENV, "--params-file", str(params_file), "--build-dir", str(build))
    assert result.returncode == 0
    cfn = env.client("cloudformation")
    assert cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    balancers = env.client("elbv2").describe_load_balancers()["LoadBalancers"]
    assert balancers and all(len(b["LoadBalancerName"]) <= 32 for b in balancers)
    assert all(len(r["RoleName"]) <= 64 for r in env.client("iam").list_roles()["Roles"])
    assert run_stackctl(env, "destroy", LONGEST_ENV, "--params-file", str(params_file), "--yes").returncode == 0
    assert inventory(env.client) == {}


def test_the_shared_provider_example_uses_the_exported_service_tokens_of_a_standalone_provider(env):
    cfn, s3 = env.client("cloudformation"), env.client("s3")
    for name in stackctl.FUNCTIONS:
        s3.upload_file(str(env.lambda_dir / name / "bootstrap.zip"), BUCKET, f"shared/{name}.zip")
    cfn.create_stack(StackName="fargate-provider", TemplateBody=(ROOT / "cloudformation/provider.yaml").read_text(),
                     Capabilities=["CAPABILITY_NAMED_IAM"],
                     Parameters=[{"ParameterKey": "CodeBucket", "ParameterValue": BUCKET},
                                 {"ParameterKey": "CodeKeyPrefix", "ParameterValue": "shared"}])
    assert settle(cfn, "fargate-provider")["StackStatus"] == "CREATE_COMPLETE"
    exports = {e["Name"] for e in cfn.list_exports()["Exports"]}
    assert exports == {f"fargate-provider-{kind}ServiceToken" for kind in ("Preflight", "Network", "Service", "Scaling")}

    cfn.create_stack(StackName="sandbox",
                     TemplateBody=(ROOT / "cloudformation/examples/shared-provider.yaml").read_text())
    sandbox = settle(cfn, "sandbox")
    assert sandbox["StackStatus"] == "CREATE_COMPLETE", sandbox.get("StackStatusReason")
    vpc = {o["OutputKey"]: o["OutputValue"] for o in sandbox["Outputs"]}["VpcId"]
    assert env.client("ec2").describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"] == "10.50.0.0/20"

    # an export in use keeps its stack from being deleted, as on AWS
    cfn.delete_stack(StackName="fargate-provider")
    provider = settle(cfn, "fargate-provider")
    assert provider["StackStatus"] == "DELETE_FAILED"
    assert "in use by sandbox" in provider["StackStatusReason"]

    cfn.delete_stack(StackName="sandbox")
    settle(cfn, sandbox["StackId"])
    cfn.delete_stack(StackName="fargate-provider")
    assert settle(cfn, provider["StackId"])["StackStatus"] == "DELETE_COMPLETE"
    assert inventory(env.client) == {}

