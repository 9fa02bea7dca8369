"""AWS rules moto alone does not keep, enforced by harness.aws_rules (API level: both the
per-resource harness server and the local engine) and by the ECS scheduler of harness.engine_ecs
(engine only), through boto3. Each rule is checked on by default and changed by its LOCAL_AWS_*
knob, on one more harness server and one more engine started with every knob turned."""
import json
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import LOGS
from harness import engine_ecs
from harness.engine_process import EngineProcess, settle
from harness.moto import ACCOUNT, REGION, MotoServer

KNOBS_TURNED = {
    "LOCAL_AWS_NAT_PENDING_DESCRIBES": "0",
    "LOCAL_AWS_EIP_QUOTA": "7",
    "LOCAL_AWS_ECS_SERVICE_LINKED_ROLE": "off",
    "LOCAL_AWS_ECR_PULL": "off",
    "LOCAL_AWS_FARGATE_ZONES": "off",
}
REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app"
MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
               "digest": "sha256:" + "a" * 64},
    "layers": [],
})
BREAKER = {"deploymentCircuitBreaker": {"enable": True, "rollback": True}}
NO_BREAKER = {"deploymentCircuitBreaker": {"enable": False, "rollback": False}}


def clients(endpoint: str):
    def client(service: str, region: str = REGION):
        return boto3.client(service, endpoint_url=endpoint, region_name=region,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            aws_session_token="testing")
    return client


def reset(endpoint: str) -> None:
    request = urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).read()


@pytest.fixture(scope="module")
def engine():
    with pytest.MonkeyPatch.context() as env:
        for name in KNOBS_TURNED:
            env.delenv(name, raising=False)
        process = EngineProcess(LOGS / "aws-rules").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def engine_turned():
    with pytest.MonkeyPatch.context() as env:
        for name, value in KNOBS_TURNED.items():
            env.setenv(name, value)
        process = EngineProcess(LOGS / "aws-rules-turned").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def harness_turned():
    (LOGS / "aws-rules-turned").mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as env:
        for name, value in KNOBS_TURNED.items():
            env.setenv(name, value)
        server = MotoServer(LOGS / "aws-rules-turned").start()
    yield server
    server.stop()


@pytest.fixture(params=["harness", "engine"])
def aws(request, moto):
    """A client factory on one of the two servers, its state fresh (conftest resets the harness)."""
    if request.param == "harness":
        return moto.client
    endpoint = request.getfixturevalue("engine").endpoint
    reset(endpoint)
    return clients(endpoint)


@pytest.fixture(params=["harness", "engine"])
def aws_turned(request):
    """A client factory on the harness server or the engine started with KNOBS_TURNED."""
    if request.param == "harness":
        endpoint = request.getfixturevalue("harness_turned").url
    else:
        endpoint = request.getfixturevalue("engine_turned").endpoint
    reset(endpoint)
    return clients(endpoint)


@pytest.fixture
def on_engine(engine):
    reset(engine.endpoint)
    return clients(engine.endpoint)


@pytest.fixture
def on_engine_turned(engine_turned):
    reset(engine_turned.endpoint)
    return clients(engine_turned.endpoint)


def error(call) -> tuple:
    """The (Code, Message) of the ClientError the call raises."""
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


# --- NAT gateways ---------------------------------------------------------------------------------


def nat_gateway(ec2) -> dict:
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/24")["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    return ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]


def nat_states(ec2, nat: str, times: int) -> list:
    return [ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"]
            for _ in range(times)]


def test_a_new_nat_gateway_is_pending_for_two_describes_then_available(aws):
    ec2 = aws("ec2")
    created = nat_gateway(ec2)
    assert created["State"] == "pending"
    assert nat_states(ec2, created["NatGatewayId"], 4) == [
        "pending", "pending", "available", "available"]


def test_a_deleted_nat_gateway_is_deleting_for_two_describes_then_deleted(aws):
    ec2 = aws("ec2")
    nat = nat_gateway(ec2)["NatGatewayId"]
    nat_states(ec2, nat, 3)
    assert ec2.delete_nat_gateway(NatGatewayId=nat)["NatGatewayId"] == nat
    assert nat_states(ec2, nat, 4) == ["deleting", "deleting", "deleted", "deleted"]


def test_a_describe_filtered_on_state_available_sees_the_nat_gateway_become_available(aws):
    ec2 = aws("ec2")
    nat = nat_gateway(ec2)["NatGatewayId"]
    available = [{"Name": "state", "Values": ["available"]}]
    seen = [len(ec2.describe_nat_gateways(Filters=available)["NatGateways"]) for _ in range(3)]
    assert seen == [0, 0, 1]
    assert nat_states(ec2, nat, 1) == ["available"]


def test_nat_pending_describes_0_makes_nat_gateways_available_and_deleted_at_once(aws_turned):
    ec2 = aws_turned("ec2")
    created = nat_gateway(ec2)
    nat = created["NatGatewayId"]
    assert created["State"] == "available"
    ec2.delete_nat_gateway(NatGatewayId=nat)
    assert nat_states(ec2, nat, 1) == ["deleted"]


def test_a_nat_gateway_made_while_nat_failure_is_set_ends_failed_with_the_code_and_no_address(moto):
    ec2 = moto.client("ec2")
    with moto.knobs(NAT_FAILURE="InsufficientFreeAddressesInSubnet"):
        created = nat_gateway(ec2)
    nat = created["NatGatewayId"]
    assert nat_states(ec2, nat, 3) == ["pending", "pending", "failed"]
    [failed] = ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"]
    assert failed["FailureCode"] == "InsufficientFreeAddressesInSubnet"
    assert "insufficient free addresses" in failed["FailureMessage"]
    [address] = ec2.describe_addresses()["Addresses"]
    assert not address.get("AssociationId") and not address.get("NetworkInterfaceId")
    assert ec2.describe_network_interfaces()["NetworkInterfaces"] == []


def test_nat_gateways_made_after_the_nat_failure_knob_is_unset_become_available(moto):
    ec2 = moto.client("ec2")
    with moto.knobs(NAT_FAILURE="InsufficientFreeAddressesInSubnet"):
        pass
    assert nat_states(ec2, nat_gateway(ec2)["NatGatewayId"], 3)[-1] == "available"


def test_create_nat_gateway_with_a_used_client_token_returns_the_nat_made_with_it(aws):
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/24")["Subnet"]["SubnetId"]
    allocation, second = (ec2.allocate_address(Domain="vpc")["AllocationId"] for _ in range(2))
    first, again = (ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation, ClientToken="t-1")
                    for _ in range(2))
    other = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=second, ClientToken="t-2")
    assert again["NatGateway"]["NatGatewayId"] == first["NatGateway"]["NatGatewayId"]
    assert other["NatGateway"]["NatGatewayId"] != first["NatGateway"]["NatGatewayId"]


# --- Elastic IP quota -----------------------------------------------------------------------------


def vpc_max_elastic_ips(ec2) -> str:
    attributes = ec2.describe_account_attributes()["AccountAttributes"]
    [found] = [a for a in attributes if a["AttributeName"] == "vpc-max-elastic-ips"]
    return found["AttributeValues"][0]["AttributeValue"]


def test_a_sixth_elastic_ip_fails_with_address_limit_exceeded_and_a_release_makes_room(aws):
    ec2 = aws("ec2")
    allocations = [ec2.allocate_address(Domain="vpc")["AllocationId"] for _ in range(5)]
    refused = error(lambda: ec2.allocate_address(Domain="vpc"))
    assert refused == ("AddressLimitExceeded", "The maximum number of addresses has been reached.")
    ec2.release_address(AllocationId=allocations[0])
    ec2.allocate_address(Domain="vpc")
    assert aws("ec2", region="us-west-2").allocate_address(Domain="vpc"), "the quota is per region"


def test_account_attributes_report_the_elastic_ip_quota(aws):
    assert vpc_max_elastic_ips(aws("ec2")) == "5"


def test_eip_quota_7_allows_seven_addresses_and_is_reported(aws_turned):
    ec2 = aws_turned("ec2")
    for _ in range(7):
        ec2.allocate_address(Domain="vpc")
    assert error(lambda: ec2.allocate_address(Domain="vpc"))[0] == "AddressLimitExceeded"
    assert vpc_max_elastic_ips(ec2) == "7"


# --- ECS service-linked role ----------------------------------------------------------------------

UNABLE_TO_ASSUME = ("Unable to assume the service linked role. Please verify that the ECS service "
                    "linked role exists.")


def role_names(iam) -> list:
    return [r["RoleName"] for r in iam.list_roles(PathPrefix="/aws-service-role/")["Roles"]]


def test_a_cluster_with_capacity_providers_fails_in_a_fresh_account_and_a_retry_succeeds(aws):
    ecs, iam = aws("ecs"), aws("iam")
    refused = error(lambda: ecs.create_cluster(clusterName="c", capacityProviders=["FARGATE"]))
    assert refused == ("InvalidParameterException", UNABLE_TO_ASSUME)
    assert ecs.list_clusters()["clusterArns"] == []
    assert role_names(iam) == ["AWSServiceRoleForECS"], "ECS made the role while failing"
    cluster = ecs.create_cluster(clusterName="c", capacityProviders=["FARGATE"])["cluster"]
    assert cluster["capacityProviders"] == ["FARGATE"]


def test_a_cluster_without_capacity_providers_succeeds_and_creates_the_role(aws):
    aws("ecs").create_cluster(clusterName="plain")
    assert role_names(aws("iam")) == ["AWSServiceRoleForECS"]


def test_the_ecs_service_linked_role_is_AWSServiceRoleForECS_and_a_second_one_is_refused(aws):
    iam = aws("iam")
    role = iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com")["Role"]
    assert (role["RoleName"], role["Path"]) == ("AWSServiceRoleForECS",
                                                "/aws-service-role/ecs.amazonaws.com/")
    again = error(lambda: iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com"))
    assert again == ("InvalidInput", "Service role name AWSServiceRoleForECS has been taken in "
                              "this account, please try a different suffix.")
    assert aws("ecs").create_cluster(clusterName="c", capacityProviders=["FARGATE"])


def test_a_template_cluster_with_capacity_providers_fails_its_stack_in_a_fresh_account(on_engine):
    cfn = on_engine("cloudformation")
    template = {"Resources": {"Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {
        "ClusterName": "from-template", "CapacityProviders": ["FARGATE", "FARGATE_SPOT"]}}}}
    cfn.create_stack(StackName="cluster", TemplateBody=json.dumps(template))
    assert settle(cfn, "cluster")["StackStatus"] == "ROLLBACK_COMPLETE"
    events = cfn.describe_stack_events(StackName="cluster")["StackEvents"]
    [failed] = [e for e in events if e["LogicalResourceId"] == "Cluster"
                and e["ResourceStatus"] == "CREATE_FAILED"]
    assert UNABLE_TO_ASSUME in failed["ResourceStatusReason"]


def test_ecs_service_linked_role_off_lets_a_cluster_have_providers_without_the_role(aws_turned):
    assert aws_turned("ecs").create_cluster(clusterName="c", capacityProviders=["FARGATE"])
    assert role_names(aws_turned("iam")) == []


# --- ECS scheduler: image pulls, circuit breaker --------------------------------------------------


def fargate_world(client, zones=("a",), region=REGION) -> dict:
    """The account's ECS service-linked role, a FARGATE/FARGATE_SPOT cluster, a VPC with one subnet
    per zone letter and a security group."""
    client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    client("ecs", region).create_cluster(clusterName="rules",
                                         capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ec2 = client("ec2", region)
    vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.2.{i}.0/24",
                                 AvailabilityZone=f"{region}{zone}")["Subnet"]["SubnetId"]
               for i, zone in enumerate(zones)]
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    return {"ecs": client("ecs", region), "ecr": client("ecr", region), "subnets": subnets,
            "group": group}


def task_definition(world, *images, family="app", os_family="LINUX") -> str:
    return world["ecs"].register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="1024", memory="2048",
        runtimePlatform={"operatingSystemFamily": os_family, "cpuArchitecture": "X86_64"},
        containerDefinitions=[{"name": f"c{i}", "image": image, "essential": True}
                              for i, image in enumerate(images)],
    )["taskDefinition"]["taskDefinitionArn"]


def create_service(world, name, definition, desired=1, configuration=NO_BREAKER,
                   strategy=(("FARGATE", 0, 1),)) -> dict:
    return world["ecs"].create_service(
        cluster="rules", serviceName=name, taskDefinition=definition, desiredCount=desired,
        capacityProviderStrategy=[{"capacityProvider": provider, "base": base, "weight": weight}
                                  for provider, base, weight in strategy],
        deploymentConfiguration=configuration,
        networkConfiguration={"awsvpcConfiguration": {
            "subnets": world["subnets"], "securityGroups": [world["group"]]}},
    )["service"]


def described(world, name) -> dict:
    return world["ecs"].describe_services(cluster="rules", services=[name])["services"][0]


def tasks(world, name, status="RUNNING") -> list:
    ecs = world["ecs"]
    arns = ecs.list_tasks(cluster="rules", serviceName=name, desiredStatus=status)["taskArns"]
    return ecs.describe_tasks(cluster="rules", tasks=arns)["tasks"] if arns else []


def messages(service) -> list:
    return [event["message"] for event in service["events"]]


def cannot_pull(image: str) -> str:
    return ("CannotPullContainerError: pull image manifest has been retried 1 time(s): "
            f"failed to resolve ref {image}: not found")


@pytest.mark.parametrize("desired, threshold", [(0, 3), (1, 3), (6, 3), (7, 4), (25, 13),
                                                (400, 200), (800, 200)])
def test_the_circuit_breaker_threshold_is_half_the_desired_count_rounded_up_within_3_to_200(
        desired, threshold):
    assert engine_ecs.circuit_breaker_threshold(desired) == threshold


def test_a_task_whose_tag_is_not_in_this_accounts_ecr_stops_with_cannot_pull_container_error(
        on_engine):
    world = fargate_world(on_engine)
    world["ecr"].create_repository(repositoryName="app")
    service = create_service(world, "web", task_definition(world, f"{REPOSITORY}:v1"))
    [deployment] = service["deployments"]
    assert (service["runningCount"], deployment["rolloutState"], deployment["failedTasks"]) == (
        0, "IN_PROGRESS", 1)
    [stopped] = tasks(world, "web", "STOPPED")
    assert stopped["stoppedReason"] == cannot_pull(f"{REPOSITORY}:v1")
    assert (stopped["lastStatus"], stopped["stopCode"]) == ("STOPPED", "TaskFailedToStart")
    assert tasks(world, "web") == []


def test_the_circuit_breaker_fails_the_deployment_after_three_failed_tasks(on_engine):
    world = fargate_world(on_engine)
    create_service(world, "web", task_definition(world, f"{REPOSITORY}:v1"), configuration=BREAKER)
    assert described(world, "web")["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    service = described(world, "web")
    [deployment] = service["deployments"]
    assert (deployment["rolloutState"], deployment["failedTasks"]) == ("FAILED", 3)
    assert deployment["rolloutStateReason"] == (
        "ECS deployment circuit breaker: tasks failed to start.")
    assert messages(service)[0] == (f"(service web) (deployment {deployment['id']}) deployment "
                                    "failed: tasks failed to start.")
    assert described(world, "web")["deployments"][0]["failedTasks"] == 3, "no more launches"
    assert len(tasks(world, "web", "STOPPED")) == 3


def test_putting_the_image_into_the_repository_makes_the_next_task_start(on_engine):
    world = fargate_world(on_engine)
    world["ecr"].create_repository(repositoryName="app")
    definition = task_definition(world, f"{REPOSITORY}:v1")
    create_service(world, "web", definition)
    world["ecr"].put_image(repositoryName="app", imageManifest=MANIFEST, imageTag="v1")
    service = described(world, "web")
    [deployment] = service["deployments"]
    assert (service["runningCount"], deployment["rolloutState"]) == (1, "COMPLETED")
    [running] = tasks(world, "web")
    assert running["taskDefinitionArn"] == definition


def test_an_update_to_a_missing_image_keeps_the_old_task_and_rolls_back_to_it(on_engine):
    world = fargate_world(on_engine)
    world["ecr"].create_repository(repositoryName="app")
    world["ecr"].put_image(repositoryName="app", imageManifest=MANIFEST, imageTag="v1")
    good, bad = (task_definition(world, f"{REPOSITORY}:{tag}") for tag in ("v1", "v2"))
    first = create_service(world, "web", good, configuration=BREAKER)["deployments"][0]["id"]
    [old_task] = tasks(world, "web")
    world["ecs"].update_service(cluster="rules", service="web", taskDefinition=bad)
    service = described(world, "web")
    assert [(d["status"], d["rolloutState"], d["taskDefinition"])
            for d in service["deployments"]] == [("PRIMARY", "IN_PROGRESS", bad),
                                                 ("ACTIVE", "COMPLETED", good)]
    assert service["runningCount"] == 1, "the old task runs while the new ones fail"
    service = described(world, "web")
    primary, failed = service["deployments"]
    assert (primary["status"], primary["rolloutState"], primary["taskDefinition"]) == (
        "PRIMARY", "IN_PROGRESS", good)
    assert primary["rolloutStateReason"] == (
        f"ECS deployment circuit breaker: rolling back to deploymentId {first}.")
    assert (failed["status"], failed["rolloutState"], failed["failedTasks"]) == (
        "ACTIVE", "FAILED", 3)
    assert messages(service)[0] == f"(service web) rolling back to deployment {first}."
    assert service["taskDefinition"] == good
    service = described(world, "web")
    [back] = service["deployments"]
    assert (back["rolloutState"], service["runningCount"], service["taskDefinition"]) == (
        "COMPLETED", 1, good)
    assert [t["taskArn"] for t in tasks(world, "web")] == [old_task["taskArn"]]


def test_images_outside_this_accounts_ecr_are_assumed_pullable(on_engine):
    world = fargate_world(on_engine)
    images = ("public.ecr.aws/nginx/nginx:latest", "nginx",
              f"999999999999.dkr.ecr.{REGION}.amazonaws.com/app:v1")
    assert create_service(world, "web", task_definition(world, *images))["runningCount"] == 1


def test_an_image_by_digest_starts_only_when_that_digest_is_in_the_repository(on_engine):
    world = fargate_world(on_engine)
    world["ecr"].create_repository(repositoryName="app")
    digest = world["ecr"].put_image(repositoryName="app", imageManifest=MANIFEST,
                                    imageTag="v1")["image"]["imageId"]["imageDigest"]
    assert create_service(world, "present", task_definition(world, f"{REPOSITORY}@{digest}"),
                          )["runningCount"] == 1
    other = "sha256:" + "0" * 64
    create_service(world, "absent", task_definition(world, f"{REPOSITORY}@{other}", family="b"))
    [stopped] = tasks(world, "absent", "STOPPED")
    assert stopped["stoppedReason"] == cannot_pull(f"{REPOSITORY}@{other}")


def test_ecr_pull_off_starts_a_task_whose_image_is_missing(on_engine_turned):
    world = fargate_world(on_engine_turned)
    assert create_service(world, "web", task_definition(world, f"{REPOSITORY}:v1"))[
        "runningCount"] == 1


# --- Fargate zones --------------------------------------------------------------------------------

NO_CAPACITY = ("(service web) was unable to place a task. Reason: Capacity is unavailable at this "
               "time. Please try again later or in a different availability zone.")


def zones(ec2) -> list:
    found = ec2.describe_availability_zones()["AvailabilityZones"]
    return [(z["ZoneName"], z["ZoneId"]) for z in found]


def test_us_west_1_shows_usw1_az2_where_fargate_runs_no_tasks_and_us_east_1e_is_use1_az3(aws):
    assert zones(aws("ec2", region="us-west-1")) == [("us-west-1a", "usw1-az3"),
                                                     ("us-west-1b", "usw1-az2")]
    assert ("us-east-1e", "use1-az3") in zones(aws("ec2"))


def test_a_linux_service_with_subnets_only_in_usw1_az2_places_no_task_and_fails(on_engine):
    world = fargate_world(on_engine, zones="b", region="us-west-1")
    service = create_service(world, "web", task_definition(world, "nginx"), configuration=BREAKER)
    assert service["runningCount"] == 0
    assert messages(service)[0] == NO_CAPACITY
    assert tasks(world, "web") == tasks(world, "web", "STOPPED") == []
    described(world, "web")
    [deployment] = described(world, "web")["deployments"]
    assert (deployment["rolloutState"], deployment["failedTasks"]) == ("FAILED", 3)


def test_tasks_go_only_to_the_subnets_whose_zone_offers_fargate(on_engine):
    world = fargate_world(on_engine, zones="ab", region="us-west-1")
    assert create_service(world, "web", task_definition(world, "nginx"), desired=3)[
        "runningCount"] == 3
    assert {t["availabilityZone"] for t in tasks(world, "web")} == {"us-west-1a"}


def test_a_windows_task_is_not_placed_in_use1_az3_where_a_linux_task_runs(on_engine):
    world = fargate_world(on_engine, zones="e")
    assert create_service(world, "linux", task_definition(world, "nginx"))["runningCount"] == 1
    windows = task_definition(world, "mcr.microsoft.com/windows/servercore/iis", family="win",
                              os_family="WINDOWS_SERVER_2019_CORE")
    service = create_service(world, "web", windows)
    assert (service["runningCount"], messages(service)[0]) == (0, NO_CAPACITY)


# --- capacity and task failures on demand (knobs of a running engine) ------------------------------
SPOT_AND_ON_DEMAND = (("FARGATE", 1, 1), ("FARGATE_SPOT", 0, 3))


def providers(world, name) -> list:
    return sorted(t["capacityProviderName"] for t in tasks(world, name))


def test_without_spot_capacity_spot_tasks_are_not_placed_and_on_demand_ones_run(engine, on_engine):
    world = fargate_world(on_engine, zones="ab")
    with engine.knobs(SPOT_CAPACITY="unavailable"):
        service = create_service(world, "web", task_definition(world, "nginx"), desired=4,
                                 strategy=SPOT_AND_ON_DEMAND)
        # Base 1 and weights 1:3 put 2 of 4 tasks on each provider (engine_ecs.split).
        assert (service["runningCount"], messages(service)[0]) == (2, NO_CAPACITY)
        assert providers(world, "web") == ["FARGATE", "FARGATE"]
        assert described(world, "web")["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    # Capacity is back: the next scheduler round places the Spot tasks.
    service = described(world, "web")
    assert service["runningCount"] == 4
    assert providers(world, "web") == ["FARGATE", "FARGATE", "FARGATE_SPOT", "FARGATE_SPOT"]


def test_spot_capacity_short_in_one_zone_places_spot_tasks_in_the_others(engine, on_engine):
    world = fargate_world(on_engine, zones="ab")
    with engine.knobs(SPOT_CAPACITY="us-east-1a"):
        create_service(world, "web", task_definition(world, "nginx"), desired=3,
                       strategy=(("FARGATE_SPOT", 0, 1),))
        spot = tasks(world, "web")
    assert len(spot) == 3
    assert {t["availabilityZone"] for t in spot} == {"us-east-1b"}


@pytest.mark.parametrize("knob, code, reason, exit_code", [
    ("TaskFailedToStart|ResourceInitializationError: unable to pull secrets or registry auth: "
     "execution resource retrieval failed: unable to retrieve secrets from ssm: AccessDeniedException",
     "TaskFailedToStart", "ResourceInitializationError: unable to pull secrets or registry auth: "
     "execution resource retrieval failed: unable to retrieve secrets from ssm: AccessDeniedException", 0),
    ("EssentialContainerExited|Essential container in task exited|1",
     "EssentialContainerExited", "Essential container in task exited", 1),
])
def test_a_task_failure_knob_stops_every_new_task_the_way_ecs_reports_it(
        engine, on_engine, knob, code, reason, exit_code):
    world = fargate_world(on_engine)
    with engine.knobs(TASK_FAILURE=knob):
        service = create_service(world, "web", task_definition(world, "nginx"), desired=2)
        assert service["runningCount"] == 0
        assert service["deployments"][0]["failedTasks"] == 2
        stopped = tasks(world, "web", "STOPPED")
    assert {(t["stopCode"], t["stoppedReason"]) for t in stopped} == {(code, reason)}
    assert {t["containers"][0]["exitCode"] for t in stopped} == {exit_code}
    assert {t["startedBy"] for t in stopped} == {service["deployments"][0]["id"]}
    # Unset, the next round starts the tasks.
    assert described(world, "web")["runningCount"] == 2


def test_fargate_zones_off_runs_a_task_in_usw1_az2(on_engine_turned):
    world = fargate_world(on_engine_turned, zones="b", region="us-west-1")
    assert create_service(world, "web", task_definition(world, "nginx"))["runningCount"] == 1
