"""The ECS scheduler patched into an in-process moto server: services place Fargate tasks per
capacity provider and read as steady, updates replace or rescale them, deletion stops them, and a
cluster from a template keeps its capacity providers. (No session fixtures, no binaries.)"""
import json
from collections import Counter

import boto3
import moto
import pytest
from moto.server import ThreadedMotoServer

from harness import engine_ecs
from harness.net import free_port

REGION = "us-east-1"
CLUSTER = "engine"
FARGATE_1_SPOT_3 = [
    {"capacityProvider": "FARGATE", "weight": 1},
    {"capacityProvider": "FARGATE_SPOT", "weight": 3},
]


@pytest.fixture(scope="module")
def aws():
    engine_ecs.install()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()

    def client(name):
        return boto3.client(
            name, endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    yield client
    server.stop()


@pytest.fixture(scope="module")
def ecs(aws):
    return aws("ecs")


@pytest.fixture(scope="module")
def world(aws, ecs):
    """A VPC without DNS hostnames (moto's own RunTask fails there), two subnets, a security group,
    a FARGATE/FARGATE_SPOT cluster and two revisions of an awsvpc Fargate task definition."""
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24",
                          AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        for i, zone in enumerate("ab")
    ]
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName=CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    revisions = [
        ecs.register_task_definition(
            family="app", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
            cpu="256", memory="512",
            containerDefinitions=[{"name": "app", "image": f"app:{tag}", "essential": True}],
        )["taskDefinition"]["taskDefinitionArn"]
        for tag in ("v1", "v2")
    ]
    return {"subnets": subnets, "group": group, "revisions": revisions, "ec2": ec2}


def create(ecs, world, name, desired, strategy=FARGATE_1_SPOT_3, cluster=CLUSTER, **extra):
    if strategy is not None:
        extra["capacityProviderStrategy"] = strategy
    return ecs.create_service(
        cluster=cluster, serviceName=name, taskDefinition=world["revisions"][0],
        desiredCount=desired,
        networkConfiguration={"awsvpcConfiguration": {
            "subnets": world["subnets"], "securityGroups": [world["group"]],
            "assignPublicIp": "DISABLED"}},
        **extra,
    )["service"]


def service(ecs, name, cluster=CLUSTER):
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def running_tasks(ecs, name, cluster=CLUSTER):
    arns = ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus="RUNNING")["taskArns"]
    return ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []


def per_provider(ecs, name, cluster=CLUSTER):
    return dict(Counter(task["capacityProviderName"] for task in running_tasks(ecs, name, cluster)))


def assert_steady(ecs, name, desired):
    described = service(ecs, name)
    assert (described["desiredCount"], described["runningCount"], described["pendingCount"]) == (
        desired, desired, 0)
    [deployment] = described["deployments"]
    assert deployment["status"] == "PRIMARY"
    assert deployment["rolloutState"] == "COMPLETED"
    assert (deployment["desiredCount"], deployment["runningCount"]) == (desired, desired)
    ecs.get_waiter("services_stable").wait(
        cluster=CLUSTER, services=[name], WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    return deployment


def test_install_is_idempotent_and_refuses_another_moto_version(aws, monkeypatch):
    engine_ecs.install()
    monkeypatch.setattr(moto, "__version__", "5.9.9")
    with pytest.raises(RuntimeError, match="5.2.5"):
        engine_ecs.install()


@pytest.mark.parametrize("strategy, count, expected", [
    ([("FARGATE", 1, 0), ("FARGATE_SPOT", 3, 0)], 4, {"FARGATE": 1, "FARGATE_SPOT": 3}),
    ([("FARGATE", 1, 0), ("FARGATE_SPOT", 3, 0)], 8, {"FARGATE": 2, "FARGATE_SPOT": 6}),
    ([("FARGATE", 1, 1), ("FARGATE_SPOT", 3, 0)], 5, {"FARGATE": 2, "FARGATE_SPOT": 3}),
    ([("FARGATE", 0, 2), ("FARGATE_SPOT", 1, 0)], 5, {"FARGATE": 2, "FARGATE_SPOT": 3}),
    ([("FARGATE", 0, 2), ("FARGATE_SPOT", 1, 0)], 1, {"FARGATE": 1, "FARGATE_SPOT": 0}),
    ([("FARGATE", 1, 0), ("FARGATE_SPOT", 1, 0)], 3, {"FARGATE": 2, "FARGATE_SPOT": 1}),
    ([("FARGATE_SPOT", 0, 0)], 3, {"FARGATE_SPOT": 3}),
])
def test_the_split_places_the_base_first_and_the_rest_by_weight(strategy, count, expected):
    items = [{"capacityProvider": p, "weight": w, "base": b} for p, w, b in strategy]
    assert engine_ecs.split(items, count) == expected


def test_the_create_service_answer_and_describe_show_the_strategy_given(ecs, world):
    created = create(ecs, world, "shown", 2, platformVersion="LATEST",
                     healthCheckGracePeriodSeconds=60,
                     deploymentConfiguration={"minimumHealthyPercent": 100,
                                              "maximumPercent": 200})
    expected = [
        {"capacityProvider": "FARGATE", "weight": 1, "base": 0},
        {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0},
    ]
    for answer in (created, service(ecs, "shown")):
        assert answer["capacityProviderStrategy"] == expected
        assert not answer.get("launchType")
        assert answer["platformVersion"] == "LATEST"
        assert answer["healthCheckGracePeriodSeconds"] == 60
        assert answer["deploymentConfiguration"]["maximumPercent"] == 200
        assert answer["deployments"][0]["capacityProviderStrategy"] == expected


def test_a_new_service_is_steady_at_once_with_its_tasks_running(ecs, world):
    create(ecs, world, "steady", 3)
    assert_steady(ecs, "steady", 3)
    tasks = running_tasks(ecs, "steady")
    assert len(tasks) == 3
    assert all(task["lastStatus"] == "RUNNING" for task in tasks)


def test_weights_1_and_3_split_4_tasks_1_and_3(ecs, world):
    create(ecs, world, "weights", 4)
    assert per_provider(ecs, "weights") == {"FARGATE": 1, "FARGATE_SPOT": 3}


def test_a_service_with_base_1_and_weights_1_3_runs_the_base_then_splits_the_rest_1_to_3(ecs, world):
    strategy = [
        {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
        {"capacityProvider": "FARGATE_SPOT", "weight": 3},
    ]
    create(ecs, world, "based", 5, strategy)
    assert per_provider(ecs, "based") == {"FARGATE": 2, "FARGATE_SPOT": 3}


def test_a_base_provider_with_weight_0_runs_only_its_base(ecs, world):
    strategy = [
        {"capacityProvider": "FARGATE", "weight": 0, "base": 1},
        {"capacityProvider": "FARGATE_SPOT", "weight": 1},
    ]
    create(ecs, world, "base-only", 4, strategy)
    assert per_provider(ecs, "base-only") == {"FARGATE": 1, "FARGATE_SPOT": 3}


def test_service_tasks_are_fargate_tasks_started_by_the_deployment_and_stay_running(ecs, world):
    create(ecs, world, "shape", 2)
    deployment = service(ecs, "shape")["deployments"][0]
    for _ in range(3):  # moto alone moves a described task towards STOPPED on every describe
        tasks = running_tasks(ecs, "shape")
    zones = set()
    for task in tasks:
        assert task["lastStatus"] == task["desiredStatus"] == "RUNNING"
        assert task["launchType"] == "FARGATE"
        assert task["group"] == "service:shape"
        assert task["startedBy"] == deployment["id"]
        assert task["startedBy"].startswith("ecs-svc/")
        assert task["taskDefinitionArn"] == world["revisions"][0]
        [eni] = task["attachments"]
        details = {d["name"]: d["value"] for d in eni["details"]}
        assert details["subnetId"] in world["subnets"]
        assert details["networkInterfaceId"].startswith("eni-")
        zones.add(task["availabilityZone"])
    assert zones == {f"{REGION}a", f"{REGION}b"}


def test_list_tasks_by_service_name_lists_only_that_service(ecs, world):
    create(ecs, world, "one", 1)
    create(ecs, world, "two", 2)
    assert len(ecs.list_tasks(cluster=CLUSTER, serviceName="one")["taskArns"]) == 1
    assert len(ecs.list_tasks(cluster=CLUSTER, serviceName="two")["taskArns"]) == 2


def test_changing_the_strategy_replaces_tasks_by_the_new_weights(ecs, world):
    create(ecs, world, "restrategy", 4)
    before = service(ecs, "restrategy")["deployments"][0]["id"]
    old = {task["taskArn"] for task in running_tasks(ecs, "restrategy")}
    ecs.update_service(
        cluster=CLUSTER, service="restrategy", forceNewDeployment=True,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1},
                                  {"capacityProvider": "FARGATE_SPOT", "weight": 1}],
    )
    deployment = assert_steady(ecs, "restrategy", 4)
    assert deployment["id"] != before
    new = running_tasks(ecs, "restrategy")
    assert old.isdisjoint(task["taskArn"] for task in new)
    assert per_provider(ecs, "restrategy") == {"FARGATE": 2, "FARGATE_SPOT": 2}
    stopped = ecs.describe_tasks(cluster=CLUSTER, tasks=sorted(old))["tasks"]
    assert {(t["lastStatus"], t["desiredStatus"]) for t in stopped} == {("STOPPED", "STOPPED")}


def test_a_strategy_change_alone_also_replaces_the_tasks(ecs, world):
    create(ecs, world, "restrategy-alone", 2)
    old = {task["taskArn"] for task in running_tasks(ecs, "restrategy-alone")}
    ecs.update_service(cluster=CLUSTER, service="restrategy-alone",
                       capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    assert old.isdisjoint(task["taskArn"] for task in running_tasks(ecs, "restrategy-alone"))
    assert per_provider(ecs, "restrategy-alone") == {"FARGATE_SPOT": 2}


def test_forcing_a_new_deployment_replaces_every_task(ecs, world):
    create(ecs, world, "forced", 2)
    old = {task["taskArn"] for task in running_tasks(ecs, "forced")}
    ecs.update_service(cluster=CLUSTER, service="forced", forceNewDeployment=True)
    assert_steady(ecs, "forced", 2)
    new = {task["taskArn"] for task in running_tasks(ecs, "forced")}
    assert len(new) == 2 and old.isdisjoint(new)


def test_a_new_task_definition_replaces_every_task_with_the_new_revision(ecs, world):
    create(ecs, world, "revised", 2)
    ecs.update_service(cluster=CLUSTER, service="revised", taskDefinition="app:2")
    described = service(ecs, "revised")
    assert described["taskDefinition"] == world["revisions"][1]
    assert_steady(ecs, "revised", 2)
    assert {task["taskDefinitionArn"] for task in running_tasks(ecs, "revised")} == {
        world["revisions"][1]}


def test_scaling_up_keeps_the_running_tasks_and_adds_by_weight(ecs, world):
    create(ecs, world, "scale-up", 4)
    old = {task["taskArn"] for task in running_tasks(ecs, "scale-up")}
    deployment = service(ecs, "scale-up")["deployments"][0]["id"]
    ecs.update_service(cluster=CLUSTER, service="scale-up", desiredCount=8)
    assert assert_steady(ecs, "scale-up", 8)["id"] == deployment
    assert old <= {task["taskArn"] for task in running_tasks(ecs, "scale-up")}
    assert per_provider(ecs, "scale-up") == {"FARGATE": 2, "FARGATE_SPOT": 6}


def test_scaling_down_stops_surplus_tasks(ecs, world):
    create(ecs, world, "scale-down", 8)
    old = {task["taskArn"] for task in running_tasks(ecs, "scale-down")}
    ecs.update_service(cluster=CLUSTER, service="scale-down", desiredCount=4)
    assert_steady(ecs, "scale-down", 4)
    kept = {task["taskArn"] for task in running_tasks(ecs, "scale-down")}
    assert kept <= old
    assert per_provider(ecs, "scale-down") == {"FARGATE": 1, "FARGATE_SPOT": 3}
    stopped = ecs.describe_tasks(cluster=CLUSTER, tasks=sorted(old - kept))["tasks"]
    assert len(stopped) == 4
    assert all(t["stopCode"] == "ServiceSchedulerInitiated" for t in stopped)


def test_deleting_the_service_stops_its_tasks(ecs, world):
    create(ecs, world, "deleted", 3)
    arns = [task["taskArn"] for task in running_tasks(ecs, "deleted")]
    enis = [d["value"] for t in running_tasks(ecs, "deleted") for d in t["attachments"][0]["details"]
            if d["name"] == "networkInterfaceId"]
    ecs.delete_service(cluster=CLUSTER, service="deleted", force=True)
    assert ecs.list_tasks(cluster=CLUSTER, serviceName="deleted")["taskArns"] == []
    stopped = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]
    assert {t["lastStatus"] for t in stopped} == {"STOPPED"}
    described = service(ecs, "deleted")
    assert (described["status"], described["runningCount"]) == ("INACTIVE", 0)
    remaining = world["ec2"].describe_network_interfaces(
        Filters=[{"Name": "network-interface-id", "Values": enis}])["NetworkInterfaces"]
    assert remaining == []


def test_scaling_to_0_then_deleting_leaves_no_tasks(ecs, world):
    create(ecs, world, "drained", 2)
    ecs.update_service(cluster=CLUSTER, service="drained", desiredCount=0)
    assert_steady(ecs, "drained", 0)
    assert running_tasks(ecs, "drained") == []
    ecs.delete_service(cluster=CLUSTER, service="drained")
    assert service(ecs, "drained")["status"] == "INACTIVE"


def test_a_stopped_task_is_replaced_on_the_same_provider(ecs, world):
    create(ecs, world, "replaced", 4)
    spot = next(t for t in running_tasks(ecs, "replaced")
                if t["capacityProviderName"] == "FARGATE_SPOT")
    ecs.stop_task(cluster=CLUSTER, task=spot["taskArn"], reason="spot interruption")
    remaining = {task["taskArn"] for task in running_tasks(ecs, "replaced")}
    assert spot["taskArn"] not in remaining and len(remaining) == 4
    assert per_provider(ecs, "replaced") == {"FARGATE": 1, "FARGATE_SPOT": 3}
    assert_steady(ecs, "replaced", 4)


def test_a_service_without_strategy_or_launch_type_takes_the_cluster_default(ecs, world):
    ecs.create_cluster(clusterName="defaulted", capacityProviders=["FARGATE", "FARGATE_SPOT"],
                       defaultCapacityProviderStrategy=[
                           {"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    created = create(ecs, world, "defaulted", 2, strategy=None, cluster="defaulted")
    assert created["capacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    assert per_provider(ecs, "defaulted", cluster="defaulted") == {"FARGATE_SPOT": 2}


def test_a_launch_type_service_runs_fargate_tasks_without_a_provider(ecs, world):
    create(ecs, world, "launch-type", 2, strategy=None, launchType="FARGATE")
    tasks = running_tasks(ecs, "launch-type")
    assert len(tasks) == 2
    assert all(t["launchType"] == "FARGATE" and "capacityProviderName" not in t for t in tasks)


def test_a_strategy_with_a_provider_outside_the_cluster_is_rejected(ecs, world):
    ecs.create_cluster(clusterName="spot-less", capacityProviders=["FARGATE"])
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="not associated"):
        create(ecs, world, "rejected", 1, cluster="spot-less")


def test_a_strategy_with_two_bases_is_rejected(ecs, world):
    strategy = [{"capacityProvider": "FARGATE", "weight": 1, "base": 1},
                {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 1}]
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="base"):
        create(ecs, world, "two-bases", 1, strategy)


def test_a_cluster_from_a_template_keeps_its_capacity_providers(aws, ecs):
    template = {
        "Resources": {
            "Cluster": {
                "Type": "AWS::ECS::Cluster",
                "Properties": {
                    "ClusterName": "from-template",
                    "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
                    "CapacityProviders": ["FARGATE", "FARGATE_SPOT"],
                    "DefaultCapacityProviderStrategy": [
                        {"CapacityProvider": "FARGATE", "Weight": 1, "Base": 1},
                        {"CapacityProvider": "FARGATE_SPOT", "Weight": 2},
                    ],
                },
            }
        }
    }
    aws("cloudformation").create_stack(StackName="cluster", TemplateBody=json.dumps(template))
    [cluster] = ecs.describe_clusters(clusters=["from-template"])["clusters"]
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert cluster["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
        {"capacityProvider": "FARGATE_SPOT", "weight": 2, "base": 0},
    ]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
