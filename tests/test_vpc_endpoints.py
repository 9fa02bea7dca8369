"""NAT-less environments: `NatGateways=None` with `VpcEndpoints=true` deploys the endpoints a Fargate
task needs to start (S3 gateway on every private route table; ecr.api, ecr.dkr, logs and ssm
interface endpoints in the private subnets with private DNS), and `None` without endpoints is
refused by the root stack's Rules before anything is created. On the local engine (moto's AWS,
our CloudFormation orchestration), through `make deploy` / `make destroy` and the real provider
binaries, as tests/test_environment.py does."""

import pytest

from conftest import engine_for_deploys, make_on
from harness.inventory import inventory
from harness.moto import REGION

BUCKET = "shop-artifacts"
STACK = "shop-dev"
INTERFACE_SERVICES = {f"com.amazonaws.{REGION}.{name}" for name in ("ecr.api", "ecr.dkr", "logs", "ssm")}
S3_SERVICE = f"com.amazonaws.{REGION}.s3"


@pytest.fixture(scope="module")
def env():
    engine = engine_for_deploys("vpc-endpoints", BUCKET)
    yield engine
    engine.stop()


make = make_on


def stack_outputs(engine, name_or_id: str) -> dict:
    described = engine.client("cloudformation").describe_stacks(StackName=name_or_id)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def network_outputs(engine) -> dict:
    nested = engine.client("cloudformation").describe_stack_resource(
        StackName=STACK, LogicalResourceId="Network")["StackResourceDetail"]["PhysicalResourceId"]
    return stack_outputs(engine, nested)


def test_nat_none_without_endpoints_is_refused_before_anything_is_created(env):
    assert inventory(env.client) == {}
    result = make(env, "deploy", "ENV=dev", "SET=NatGateways=None")
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "NatGateways is None and VpcEndpoints is false" in said
    assert "could not pull images from ECR" in said and "set VpcEndpoints=true, or NatGateways=Single" in said
    # the Rules refused the change set itself: no stack, no custom-resource request, nothing made
    assert env.requests() == []
    assert inventory(env.client) == {}


def test_nat_none_with_endpoints_deploys_the_endpoints_a_task_needs_and_no_nat(env):
    result = make(env, "deploy", "ENV=dev", "SET=NatGateways=None VpcEndpoints=true")
    assert result.returncode == 0
    assert env.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    network = network_outputs(env)
    vpc = network["VpcId"]
    ec2 = env.client("ec2")
    in_vpc = [{"Name": "vpc-id", "Values": [vpc]}]

    # no NAT gateway and so no Elastic IP
    assert network["NatGatewayIds"] == ""
    assert ec2.describe_nat_gateways(Filter=in_vpc)["NatGateways"] == []
    assert ec2.describe_addresses()["Addresses"] == []

    endpoints = {e["VpcEndpointId"]: e for e in ec2.describe_vpc_endpoints(Filters=in_vpc)["VpcEndpoints"]}
    assert set(network["VpcEndpointIds"].split(",")) == set(endpoints)
    gateways = [e for e in endpoints.values() if e["VpcEndpointType"] == "Gateway"]
    interfaces = [e for e in endpoints.values() if e["VpcEndpointType"] == "Interface"]

    # the S3 gateway endpoint on every private route table (each zone's), and a route to it in each
    private_subnets = network["PrivateSubnetIds"].split(",")
    assert len(private_subnets) == 2
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": private_subnets}])["RouteTables"]
    assert len(tables) == 2
    [s3] = gateways
    assert s3["ServiceName"] == S3_SERVICE
    assert sorted(s3["RouteTableIds"]) == sorted(t["RouteTableId"] for t in tables)
    for table in tables:
        routes = table["Routes"]
        assert [r for r in routes if r.get("GatewayId") == s3["VpcEndpointId"] and r.get("DestinationPrefixListId")], table
        assert not [r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"], table  # no way out but the endpoints

    # ecr.api, ecr.dkr, logs, ssm: one interface in each private subnet, private DNS on, behind a
    # security group that takes 443 from the tasks' group only
    assert {e["ServiceName"] for e in interfaces} == INTERFACE_SERVICES and len(interfaces) == 4
    app_group = network["AppSecurityGroupId"]
    for endpoint in interfaces:
        assert sorted(endpoint["SubnetIds"]) == sorted(private_subnets), endpoint["ServiceName"]
        assert endpoint["PrivateDnsEnabled"] is True, endpoint["ServiceName"]
        assert len(endpoint["NetworkInterfaceIds"]) == 2
        [group] = endpoint["Groups"]
        [rule] = ec2.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"][0]["IpPermissions"]
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
        assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [app_group] and rule["IpRanges"] == []

    # the service exists and, before the first image push, runs no task (README "First deploy")
    assert stack_outputs(env, STACK)["AwaitingImage"] == "shop-dev:not-pushed-yet"


def test_destroy_deletes_the_endpoints_then_the_network_and_leaves_nothing(env):
    vpc = network_outputs(env)["VpcId"]
    sent_before = len(env.requests())
    result = make(env, "destroy", "ENV=dev", "YES=1")
    assert result.returncode == 0
    deletes = {r["ResourceType"]: r for r in env.requests()[sent_before:] if r["RequestType"] == "Delete"}
    # the network's Delete found no endpoint interfaces or groups left in its VPC, and succeeded
    assert [a["Status"] for a in deletes["Custom::Network"]["Answers"]] == ["SUCCESS"]
    remaining = env.client("ec2").describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["VpcEndpoints"]
    assert [e["VpcEndpointId"] for e in remaining if e["State"] != "deleted"] == []
    assert [(r["RequestType"], r["LogicalResourceId"]) for r in env.requests() if len(r["Answers"]) != 1] == []
    assert inventory(env.client) == {}


def test_an_environment_with_nat_moves_to_endpoints_in_two_deploys_and_back_is_refused(env):
    """The migration README describes: endpoints first (the NAT still there), then NAT None; an
    update to None without endpoints is refused by the same rule, with nothing changed."""
    assert make(env, "deploy", "ENV=dev").returncode == 0  # dev.json: Single
    ec2 = env.client("ec2")
    vpc = network_outputs(env)["VpcId"]
    in_vpc = [{"Name": "vpc-id", "Values": [vpc]}]

    def live(kind):
        if kind == "nat":
            return [n for n in ec2.describe_nat_gateways(Filter=in_vpc)["NatGateways"] if n["State"] not in ("deleted", "deleting")]
        return [e for e in ec2.describe_vpc_endpoints(Filters=in_vpc)["VpcEndpoints"] if e["State"] != "deleted"]

    assert len(live("nat")) == 1 and live("endpoints") == []
    assert make(env, "deploy", "ENV=dev", "SET=VpcEndpoints=true").returncode == 0
    assert len(live("nat")) == 1 and len(live("endpoints")) == 5
    endpoint_ids = sorted(e["VpcEndpointId"] for e in live("endpoints"))
    sent_before = len(env.requests())
    assert make(env, "deploy", "ENV=dev", "SET=VpcEndpoints=true NatGateways=None").returncode == 0
    # only the network changes (its NAT goes); the endpoints stay as they were
    assert {(r["RequestType"], r["ResourceType"]) for r in env.requests()[sent_before:]} == {("Update", "Custom::Network")}
    assert live("nat") == [] and ec2.describe_addresses()["Addresses"] == []
    assert sorted(e["VpcEndpointId"] for e in live("endpoints")) == endpoint_ids
    assert network_outputs(env)["VpcId"] == vpc

    sent_before = len(env.requests())
    refused = make(env, "deploy", "ENV=dev", "SET=VpcEndpoints=false NatGateways=None")
    assert refused.returncode != 0
    assert "NatGateways is None and VpcEndpoints is false" in refused.stdout + refused.stderr
    assert env.requests()[sent_before:] == [] and len(live("endpoints")) == 5

    assert make(env, "destroy", "ENV=dev", "YES=1").returncode == 0
    assert inventory(env.client) == {}
