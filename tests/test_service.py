"""Custom::FargateService through the real `service` binary against moto. moto drops the
capacity-provider strategy on CreateService and has no SimulatePrincipalPolicy, so those tests
assert on the requests the binary sent (recorded by the proxy) as well as on moto's state."""
import json

import pytest

from harness.cloudformation import Resource
from harness.images import push_image

ACCOUNT = "123456789012"
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/web-execution"
SECRET = "/app/dev/database-url"


@pytest.fixture(autouse=True)
def calls_of_this_test_only(proxy):
    """The proxy is shared by the session: each test sees only the requests it caused."""
    proxy.clear()


# The clients the tests (and tests/bench_paths.py) make the world with and look at it through.
CLIENTS = ("ec2", "ecs", "iam", "ssm", "elbv2", "application-autoscaling")


@pytest.fixture
def aws(moto):
    return {name: moto.client(name) for name in CLIENTS}


@pytest.fixture
def world(aws):
    return make_world(aws)


def make_world(aws) -> dict:
    """A VPC with two subnets, a cluster with FARGATE and FARGATE_SPOT, a secret, an execution
    role and a task definition that injects the secret."""
    ec2, ecs = aws["ec2"], aws["ecs"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    # An account that has run ECS before: the cluster's capacity providers need this role.
    aws["iam"].create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    ecs.create_cluster(clusterName="app", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    aws["iam"].create_role(RoleName="web-execution", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    aws["ssm"].put_parameter(Name=SECRET, Value="postgres://db", Type="SecureString")

    def task_definition(family="web", secret=SECRET, image="nginx"):
        return ecs.register_task_definition(
            family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            executionRoleArn=EXEC_ROLE,
            containerDefinitions=[{"name": "web", "image": image, "memory": 512, "portMappings": [{"containerPort": 80}],
                                   "secrets": [{"name": "DATABASE_URL", "valueFrom": secret}]}],
        )["taskDefinition"]["taskDefinitionArn"]

    task_definition()
    return {"vpc": vpc, "subnets": subnets, "group": group, "task_definition": task_definition}


def props(world, **extra):
    base = {
        "Cluster": "app", "ServiceName": "web", "TaskDefinition": "web:1",
        "Subnets": ",".join(world["subnets"]), "SecurityGroups": [world["group"]],
        "DesiredCount": 1, "WaitForSteadyState": False,
        "CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 1}, {"CapacityProvider": "FARGATE_SPOT", "Weight": 1}],
    }
    base.update(extra)
    return base


@pytest.fixture
def service(cfn, service_function):
    return Resource(cfn, service_function, "Service", resource_type="Custom::FargateService")


def describe(aws, name="web"):
    return aws["ecs"].describe_services(cluster="app", services=[name])["services"][0]


def sent(proxy, action):
    return [c.params for c in proxy.recorded(action=action)]


def test_a_strategy_change_updates_in_place_with_one_update_service_and_a_new_deployment(service, world, aws, proxy):
    created = service.create(props(world))
    assert created.ok, created.reason
    arn = created.physical_id
    assert arn == f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/app/web"
    create_calls = sent(proxy, "CreateService")
    assert len(create_calls) == 1
    request = create_calls[0]
    assert request["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1, "base": 0},
                                                   {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    assert request["clientToken"] == created.request_id
    assert request["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert request["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert "launchType" not in request
    before = describe(aws)

    proxy.clear()
    updated = service.update(props(world, CapacityProviderStrategy=[
        {"CapacityProvider": "FARGATE", "Weight": 1, "Base": 1}, {"CapacityProvider": "FARGATE_SPOT", "Weight": 3}]))
    assert updated.ok and updated.physical_id == arn
    assert updated.data["CapacityProviderStrategy"] == "FARGATE:1:1,FARGATE_SPOT:3:0"
    updates = sent(proxy, "UpdateService")
    assert len(updates) == 1, updates
    assert updates[0]["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1, "base": 1},
                                                      {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0}]
    assert updates[0]["forceNewDeployment"] is True
    assert "desiredCount" not in updates[0] and "taskDefinition" not in updates[0]
    assert sent(proxy, "CreateService") == [] and sent(proxy, "DeleteService") == []
    after = describe(aws)
    assert after["serviceArn"] == before["serviceArn"]
    assert after.get("createdAt") == before.get("createdAt")  # moto omits createdAt; equal either way
    assert after["capacityProviderStrategy"][1] == {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0}
    service.delete()


def test_a_desired_count_set_behind_the_stacks_back_survives_a_strategy_update(service, world, aws, proxy):
    service.create(props(world, DesiredCount=2))
    aws["ecs"].update_service(cluster="app", service="web", desiredCount=5)  # autoscaling or an operator
    proxy.clear()
    answer = service.update(props(world, DesiredCount=2, CapacityProviderStrategy=[{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]))
    assert answer.ok
    assert "desiredCount" not in sent(proxy, "UpdateService")[0]
    assert describe(aws)["desiredCount"] == 5
    assert answer.data["DesiredCount"] == "5"

    proxy.clear()
    answer = service.update(props(world, DesiredCount=3, CapacityProviderStrategy=[{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]))
    assert sent(proxy, "UpdateService")[0]["desiredCount"] == 3
    assert "capacityProviderStrategy" not in sent(proxy, "UpdateService")[0]
    assert describe(aws)["desiredCount"] == 3
    service.delete()


def test_a_desired_count_change_is_clamped_into_the_scalable_targets_range(service, world, aws, proxy):
    service.create(props(world))
    aws["application-autoscaling"].register_scalable_target(
        ServiceNamespace="ecs", ResourceId="service/app/web", ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=2, MaxCapacity=4)
    proxy.clear()
    service.update(props(world, DesiredCount=10))
    assert sent(proxy, "UpdateService")[0]["desiredCount"] == 4
    service.delete()


def test_a_new_service_starts_at_the_autoscaling_minimum_and_removing_autoscaling_returns_it_to_desired_count(
        service, world, aws, proxy):
    created = service.create(props(world, DesiredCount=1, AutoScalingMinCapacity="3"))
    assert created.ok, created.reason
    assert sent(proxy, "CreateService")[0]["desiredCount"] == 3
    assert describe(aws)["desiredCount"] == 3
    assert created.data["DesiredCount"] == "3"

    aws["ecs"].update_service(cluster="app", service="web", desiredCount=6)  # autoscaling scaled out
    proxy.clear()
    answer = service.update(props(world, DesiredCount=1, AutoScalingMinCapacity=4))
    assert answer.ok, answer.reason
    assert sent(proxy, "UpdateService") == [], "a new minimum is the scaling resource's business"
    assert describe(aws)["desiredCount"] == 6

    proxy.clear()
    answer = service.update(props(world, DesiredCount=1))
    assert answer.ok, answer.reason
    assert [call["desiredCount"] for call in sent(proxy, "UpdateService")] == [1]
    assert describe(aws)["desiredCount"] == 1
    service.delete()


def test_deleting_the_scaling_resource_returns_the_service_to_its_templates_desired_count(
        service, world, aws, cfn, scaling_function):
    assert service.create(props(world, DesiredCount=1, AutoScalingMinCapacity=3)).ok
    scaling = Resource(cfn, scaling_function, "Scaling", resource_type="Custom::ServiceScaling")
    created = scaling.create({"Cluster": "app", "ServiceName": "web", "MinCapacity": 3, "MaxCapacity": 6,
                              "ScaleOutCpuThreshold": 70, "ScaleInCpuThreshold": 30})
    assert created.ok, created.reason
    aws["ecs"].update_service(cluster="app", service="web", desiredCount=5)  # autoscaling scaled out
    deleted = scaling.delete()
    assert deleted.ok, deleted.reason
    assert describe(aws)["desiredCount"] == 1
    # A second Delete (CloudFormation retries) finds nothing to change.
    assert scaling.delete().ok
    assert describe(aws)["desiredCount"] == 1
    service.delete()


def test_a_missing_secret_parameter_fails_naming_it_and_creates_no_service(service, world, aws, proxy):
    world["task_definition"](family="broken", secret="/app/dev/missing")
    answer = service.create(props(world, TaskDefinition="broken:1"))
    assert answer.status == "FAILED"
    assert "invalid property TaskDefinition" in answer.reason
    assert "/app/dev/missing (container web, secret DATABASE_URL)" in answer.reason
    assert aws["ecs"].list_services(cluster="app")["serviceArns"] == []
    assert sent(proxy, "CreateService") == []


def test_the_execution_roles_access_to_secrets_is_simulated_and_the_existing_service_linked_role_left_alone(service, world, proxy, service_function):
    proxy.clear()
    assert service.create(props(world)).ok
    simulations = sent(proxy, "SimulatePrincipalPolicy")
    # moto answers 500 (not implemented), which the SDK retries: the same request each time.
    assert simulations and all(s == simulations[0] for s in simulations)
    assert simulations[0]["PolicySourceArn"] == EXEC_ROLE
    assert simulations[0]["ActionNames.member.1"] == "ssm:GetParameters"
    assert simulations[0]["ResourceArns.member.1"] == f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/app/dev/database-url"
    # moto has no SimulatePrincipalPolicy: the check is skipped with a warning, not a failure.
    assert "could not simulate the execution role" in service_function.logs()
    assert sent(proxy, "GetRole")[0]["RoleName"] == "AWSServiceRoleForECS"
    assert sent(proxy, "CreateServiceLinkedRole") == []
    service.delete()


REPOSITORY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/web"


def test_a_new_service_whose_image_is_not_pushed_runs_no_task_until_a_deploy_with_a_pushed_tag(service, world, moto, aws, proxy):
    ecr = moto.client("ecr")
    ecr.create_repository(repositoryName="web")
    world["task_definition"](family="web-v1", image=f"{REPOSITORY}:v1")   # web-v1:1
    world["task_definition"](family="web-v2", image=f"{REPOSITORY}:v2")   # web-v2:1
    proxy.clear()
    created = service.create(props(world, TaskDefinition="web-v1:1", DesiredCount=2))
    assert created.ok, created.reason
    assert created.data["AwaitingImage"] == "web:v1"
    assert sent(proxy, "CreateService")[0]["desiredCount"] == 0
    assert {"key": "custom-resource:awaiting-image", "value": "web:v1"} in sent(proxy, "CreateService")[0]["tags"]
    # still not pushed: an update keeps it at no task
    proxy.clear()
    again = service.update(props(world, TaskDefinition="web-v1:1", DesiredCount=3))
    assert again.ok and again.data["AwaitingImage"] == "web:v1"
    assert all("desiredCount" not in request for request in sent(proxy, "UpdateService"))
    # pushed: the next deploy runs the template's count and clears the mark
    push_image(ecr, "web", "v1")
    proxy.clear()
    running = service.update(props(world, TaskDefinition="web-v1:1", DesiredCount=3))
    assert running.ok, running.reason
    assert running.data["AwaitingImage"] == ""
    assert sent(proxy, "UpdateService")[0]["desiredCount"] == 3
    assert sent(proxy, "UntagResource")[0]["tagKeys"] == ["custom-resource:awaiting-image"]
    # a running service is not moved to an image that is not pushed: FAILED in seconds, untouched
    proxy.clear()
    refused = service.update(props(world, TaskDefinition="web-v2:1", DesiredCount=3))
    assert refused.status == "FAILED"
    assert "web:v2 is not in ECR" in refused.reason and "left untouched" in refused.reason, refused.reason
    # (the only UpdateService is CloudFormation's rollback Update, back to web-v1:1)
    assert [u.get("taskDefinition") for u in sent(proxy, "UpdateService")] in ([], ["web-v1:1"])
    assert describe(aws)["taskDefinition"].endswith("web-v1:1")
    service.delete()


def test_a_customer_managed_key_is_simulated_for_the_execution_role_too(service, world, proxy):
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    proxy.clear()
    assert service.create(props(world, SecretsKmsKeyArn=key)).ok
    decrypt = [s for s in sent(proxy, "SimulatePrincipalPolicy") if s["ActionNames.member.1"] == "kms:Decrypt"]
    assert decrypt and decrypt[0]["PolicySourceArn"] == EXEC_ROLE and decrypt[0]["ResourceArns.member.1"] == key
    service.delete()
    bad = service.create(props(world, SecretsKmsKeyArn="alias/aws/ssm"))
    assert bad.status == "FAILED" and "invalid property SecretsKmsKeyArn" in bad.reason


def test_delete_scales_to_zero_leaves_the_service_inactive_and_delete_again_succeeds(service, world, aws, proxy):
    service.create(props(world, DesiredCount=2))
    proxy.clear()
    assert service.delete().ok
    assert sent(proxy, "UpdateService")[0]["desiredCount"] == 0
    assert sent(proxy, "DeleteService")[0]["force"] is True
    assert describe(aws)["status"] == "INACTIVE"
    assert service.delete().ok


def test_waiting_for_steady_state_answers_when_the_deployment_completes(service, world, aws):
    answer = service.create(props(world, WaitForSteadyState=True))  # moto runs 1 task: steady
    assert answer.ok and answer.data["DesiredCount"] == "1"
    service.delete()


def test_a_service_that_never_settles_fails_quoting_what_it_waited_for_and_rolls_back(service, world, aws):
    answer = service.create(props(world, DesiredCount=2, WaitForSteadyState=True, ServiceTimeout=10))
    assert answer.status == "FAILED"
    assert "still waiting for service web to reach steady state" in answer.reason
    assert "1 of 2 tasks running" in answer.reason and "no service events yet" in answer.reason
    assert answer.physical_id.endswith(":service/app/web"), "the rollback Delete must find the service"
    assert describe(aws)["status"] == "INACTIVE"


def test_a_duplicate_create_makes_one_service(service, world, aws, proxy):
    proxy.clear()
    answer = service.create(props(world), deliveries=2)
    assert answer.ok
    assert len(sent(proxy, "CreateService")) == 1
    assert len(aws["ecs"].list_services(cluster="app")["serviceArns"]) == 1
    service.delete()


def test_a_target_group_that_is_not_ip_typed_is_refused(service, world, aws):
    group = aws["elbv2"].create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId=world["vpc"], TargetType="instance")
    arn = group["TargetGroups"][0]["TargetGroupArn"]
    answer = service.create(props(world, LoadBalancers=[{"TargetGroupArn": arn, "ContainerName": "web", "ContainerPort": 80}]))
    assert answer.status == "FAILED"
    assert answer.reason.startswith("Create failed: invalid property LoadBalancers[0].TargetGroupArn")
    assert "TargetType ip" in answer.reason
    assert aws["ecs"].list_services(cluster="app")["serviceArns"] == []


def test_a_load_balanced_service_sends_its_target_group_and_grace_period(service, world, aws, proxy):
    group = aws["elbv2"].create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId=world["vpc"], TargetType="ip")
    arn = group["TargetGroups"][0]["TargetGroupArn"]
    proxy.clear()
    answer = service.create(props(world, HealthCheckGracePeriodSeconds="60",
                                  LoadBalancers=[{"TargetGroupArn": arn, "ContainerName": "web", "ContainerPort": "80"}]))
    assert answer.ok, answer.reason
    request = sent(proxy, "CreateService")[0]
    assert request["loadBalancers"] == [{"targetGroupArn": arn, "containerName": "web", "containerPort": 80}]
    assert request["healthCheckGracePeriodSeconds"] == 60
    service.delete()


BAD = [
    ({"CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 0}, {"CapacityProvider": "FARGATE_SPOT", "Weight": 0}]}, "CapacityProviderStrategy"),
    ({"CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 1, "Base": 1}, {"CapacityProvider": "FARGATE_SPOT", "Weight": 1, "Base": 1}]}, "CapacityProviderStrategy"),
    ({"DesiredCount": -1}, "DesiredCount"),
    ({"AutoScalingMinCapacity": "-2"}, "AutoScalingMinCapacity"),
    ({"CapacityProviderStrategy": [{"CapacityProvider": "FARGATE_GPU", "Weight": 1}]}, "CapacityProviderStrategy[0].CapacityProvider"),
    ({"DesiredCuont": 2}, "DesiredCuont"),
    ({"Cluster": "nope"}, "Cluster"),
    ({"TaskDefinition": "ghost:7"}, "TaskDefinition"),
]


@pytest.mark.parametrize("extra,named", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_fails_naming_the_property_and_creates_nothing(service, world, aws, proxy, extra, named):
    proxy.clear()
    answer = service.create(props(world, **extra))
    assert answer.status == "FAILED"
    assert f"invalid property {named}" in answer.reason, answer.reason
    assert aws["ecs"].list_services(cluster="app")["serviceArns"] == []
    assert sent(proxy, "CreateService") == []
