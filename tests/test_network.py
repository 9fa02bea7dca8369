"""Custom::Network through the real `network` binary against moto's EC2, with every EC2 request
recorded by the proxy in front of moto."""
import json

import pytest

from harness.aws_proxy import max_concurrency
from harness.cloudformation import Resource


def footprint(ec2) -> dict:
    """What exists outside the default VPC (moto creates one per region)."""
    default = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")}
    vpcs = [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["VpcId"] not in default]
    return {
        "vpcs": sorted(vpcs),
        "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["VpcId"] not in default),
        "route_tables": sorted(t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]
                               if t["VpcId"] not in default),
        # Failed NAT gateways hold nothing and EC2 removes them (about an hour later).
        "nat_gateways": sorted(n["NatGatewayId"] for n in ec2.describe_nat_gateways()["NatGateways"]
                               if n["State"] not in ("deleted", "deleting", "failed")),
        "addresses": sorted(a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]),
        "internet_gateways": sorted(
            g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]
            if not any(a["VpcId"] in default for a in g.get("Attachments", []))),
    }


EMPTY = {k: [] for k in ("vpcs", "subnets", "route_tables", "nat_gateways", "addresses", "internet_gateways")}


@pytest.fixture
def ec2(moto):
    return moto.client("ec2")


@pytest.fixture
def network(cfn, network_function):
    return Resource(cfn, network_function, "Network", resource_type="Custom::Network")


def private_routes(ec2, data) -> dict:
    """Private route table id -> the NAT its default route uses (None when it has none)."""
    tables = ec2.describe_route_tables(RouteTableIds=data["PrivateRouteTableIds"].split(","))["RouteTables"]
    result = {}
    for table in tables:
        default = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        result[table["RouteTableId"]] = default[0].get("NatGatewayId") if default else None
    return result


def test_create_then_nat_layout_single_peraz_none_single_in_place_then_delete_leaves_nothing(network, ec2):
    created = network.create({"Name": "dev", "AvailabilityZoneCount": 3})
    assert created.ok, created.reason
    vpc_id = created.physical_id
    data = created.data
    assert data["VpcId"] == vpc_id and data["VpcCidrBlock"] == "10.0.0.0/16"
    assert data["AvailabilityZones"] == "us-east-1a,us-east-1b,us-east-1c"
    zone_ids = {z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    assert data["AvailabilityZoneIds"] == ",".join(zone_ids[z] for z in data["AvailabilityZones"].split(","))
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]}
    private = data["PrivateSubnetIds"].split(",")
    public = data["PublicSubnetIds"].split(",")
    assert [subnets[s]["AvailabilityZone"] for s in private] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert [subnets[s]["CidrBlock"] for s in private] == ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"]
    assert [subnets[s]["CidrBlock"] for s in public] == ["10.0.128.0/20", "10.0.144.0/20", "10.0.160.0/20"]
    assert all(subnets[s]["MapPublicIpOnLaunch"] for s in public)
    vpc_attributes = [ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=a) for a in ("enableDnsSupport", "enableDnsHostnames")]
    assert vpc_attributes[0]["EnableDnsSupport"]["Value"] and vpc_attributes[1]["EnableDnsHostnames"]["Value"]
    single = data["NatGatewayIds"]
    assert len(single.split(",")) == 1
    assert set(private_routes(ec2, data).values()) == {single}, "Single: every private subnet uses the one NAT"
    assert len(footprint(ec2)["addresses"]) == 1

    per_az = network.update({"Name": "dev", "AvailabilityZoneCount": 3, "NatGateways": "PerAz"})
    assert per_az.ok and per_az.physical_id == vpc_id
    nats = per_az.data["NatGatewayIds"].split(",")
    assert len(nats) == 3 and single in nats, "the existing NAT in the first zone is kept"
    routes = private_routes(ec2, per_az.data)
    assert [routes[t] for t in per_az.data["PrivateRouteTableIds"].split(",")] == nats
    assert len(footprint(ec2)["nat_gateways"]) == 3 and len(footprint(ec2)["addresses"]) == 3

    none = network.update({"Name": "dev", "AvailabilityZoneCount": 3, "NatGateways": "None"})
    assert none.ok and none.physical_id == vpc_id
    assert none.data["NatGatewayIds"] == ""
    assert set(private_routes(ec2, none.data).values()) == {None}
    assert footprint(ec2)["nat_gateways"] == [] and footprint(ec2)["addresses"] == []

    back = network.update({"Name": "dev", "AvailabilityZoneCount": 3, "NatGateways": "Single"})
    assert back.ok and back.physical_id == vpc_id
    assert len(back.data["NatGatewayIds"].split(",")) == 1
    assert set(private_routes(ec2, back.data).values()) == {back.data["NatGatewayIds"]}

    deleted = network.delete()
    assert deleted.ok and deleted.physical_id == vpc_id
    assert footprint(ec2) == EMPTY


def test_a_nat_change_creates_the_new_nat_before_removing_the_old_route(network, ec2, proxy):
    network.create({"Name": "dev", "AvailabilityZoneCount": 2, "NatGateways": "Single"})
    proxy.clear()
    network.update({"Name": "dev", "AvailabilityZoneCount": 2, "NatGateways": "PerAz"})
    actions = [c.action for c in sorted(proxy.recorded("ec2"), key=lambda c: c.started)]
    assert "DeleteRoute" not in actions, "private subnets must never lose their default route"
    assert actions.index("CreateNatGateway") < actions.index("ReplaceRoute")
    proxy.clear()
    network.update({"Name": "dev", "AvailabilityZoneCount": 2, "NatGateways": "Single"})
    actions = [c.action for c in sorted(proxy.recorded("ec2"), key=lambda c: c.started)]
    assert actions.index("ReplaceRoute") < actions.index("DeleteNatGateway"), "re-route before deleting a NAT"
    assert "CreateVpc" not in actions and "DeleteVpc" not in actions
    network.delete()


def test_a_cidr_change_replaces_the_vpc_and_cleanup_deletes_only_the_old_one(network, ec2):
    old = network.create({"Name": "dev", "CidrBlock": "10.0.0.0/16"})
    new = network.update({"Name": "dev", "CidrBlock": "10.1.0.0/16"})
    assert new.ok and new.physical_id != old.physical_id
    assert network.cleanup_answer.ok and network.cleanup_answer.physical_id == old.physical_id
    assert footprint(ec2)["vpcs"] == [new.physical_id]
    assert new.data["VpcCidrBlock"] == "10.1.0.0/16"
    assert len(footprint(ec2)["subnets"]) == 4 and len(footprint(ec2)["nat_gateways"]) == 1
    network.delete()
    assert footprint(ec2) == EMPTY


def test_a_name_and_tags_change_retags_in_place(network, ec2):
    created = network.create({"Name": "dev", "Tags": [{"Key": "team", "Value": "a"}, {"Key": "gone", "Value": "x"}]})
    updated = network.update({"Name": "staging", "Tags": [{"Key": "team", "Value": "b"}]})
    assert updated.ok and updated.physical_id == created.physical_id
    vpc = ec2.describe_vpcs(VpcIds=[created.physical_id])["Vpcs"][0]
    tags = {t["Key"]: t["Value"] for t in vpc["Tags"]}
    assert tags["Name"] == "staging" and tags["team"] == "b" and "gone" not in tags
    subnet = ec2.describe_subnets(SubnetIds=[updated.data["PublicSubnetIds"].split(",")[0]])["Subnets"][0]
    assert {t["Key"]: t["Value"] for t in subnet["Tags"]}["Name"] == "staging-public-us-east-1a"
    network.delete()


def test_a_name_and_tags_change_with_a_nat_change_retags_everything_after_the_nat_wait(network, ec2, proxy):
    created = network.create({"Name": "dev", "NatGateways": "Single", "Tags": [{"Key": "team", "Value": "a"}]})
    assert created.ok, created.reason
    proxy.clear()
    changed = network.update({"Name": "dev2", "NatGateways": "PerAz", "Tags": [{"Key": "team", "Value": "b"}]})
    assert changed.ok, changed.reason
    # the NAT gateways were pending for a while (the emulated AWS keeps them so), and still:
    assert any(c.action == "DescribeNatGateways" for c in proxy.recorded("ec2"))
    assert proxy.recorded("ec2", action="CreateTags"), "no retag after the NAT wait"
    vpc = created.physical_id
    tagged = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    tagged += ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    tagged += [n for n in ec2.describe_nat_gateways(Filter=[{"Name": "vpc-id", "Values": [vpc]}])["NatGateways"]
               if n["State"] in ("pending", "available")]
    for resource in tagged:
        tags = {t["Key"]: t["Value"] for t in resource.get("Tags", [])}
        if "Name" in tags:  # the main route table AWS makes is not ours
            assert tags["Name"].startswith("dev2") and tags.get("team") == "b", tags
    network.delete()


NO_ADDRESSES = "InsufficientFreeAddressesInSubnet"


def test_a_nat_gateway_that_fails_during_create_answers_failed_naming_it_and_the_rollback_leaves_nothing(
        network, ec2, moto, proxy):
    with moto.knobs(NAT_FAILURE=NO_ADDRESSES):
        answer = network.create({"Name": "dev", "AvailabilityZoneCount": 2, "NatGateways": "PerAz"})
    assert answer.status == "FAILED"
    # PerAz: each zone's NAT fails; the answer names one of them (describe order is arbitrary).
    failed = [n["NatGatewayId"] for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] == "failed"]
    assert failed and any(f"NAT gateway {nat} " in answer.reason for nat in failed), (failed, answer.reason)
    assert NO_ADDRESSES in answer.reason and "insufficient free addresses" in answer.reason
    assert answer.physical_id.startswith("vpc-"), "the rollback Delete must find the VPC"
    assert network.rollback_answer.ok
    assert footprint(ec2) == EMPTY
    assert not [c for c in proxy.recorded("ec2", action="CreateRoute") if c.params.get("NatGatewayId")], \
        "no private route to a failed NAT"


def test_a_nat_gateway_that_fails_during_a_layout_change_fails_the_update_and_the_rollback_keeps_the_network(
        network, ec2, moto):
    created = network.create({"Name": "dev", "AvailabilityZoneCount": 2, "NatGateways": "None"})
    with moto.knobs(NAT_FAILURE=NO_ADDRESSES):
        answer = network.update({"Name": "dev", "AvailabilityZoneCount": 2, "NatGateways": "Single"})
    assert answer.status == "FAILED" and NO_ADDRESSES in answer.reason
    assert answer.physical_id == created.physical_id
    assert network.rollback_answer.ok
    assert footprint(ec2)["nat_gateways"] == [] and footprint(ec2)["addresses"] == []
    assert set(private_routes(ec2, created.data).values()) == {None}
    again = network.update({"Name": "dev", "AvailabilityZoneCount": 2, "NatGateways": "Single"})
    assert again.ok, "a retry once the cause is fixed makes a new NAT gateway"
    assert len(footprint(ec2)["nat_gateways"]) == 1
    network.delete()
    assert footprint(ec2) == EMPTY


def test_nat_waits_longer_than_one_invocation_create_change_and_delete_across_hand_overs(
        cfn, network_function_short, ec2, moto):
    network = Resource(cfn, network_function_short, "Network", resource_type="Custom::Network")
    with moto.knobs(NAT_PENDING_DESCRIBES=14):
        created = network.create({"Name": "dev", "AvailabilityZoneCount": 2, "NatGateways": "Single",
                                  "Tags": [{"Key": "team", "Value": "a"}]})
        assert created.ok, created.reason
        assert len(network_function_short.invocations_for(created.request_id)) >= 2, "the wait spans invocations"
        assert set(private_routes(ec2, created.data).values()) == {created.data["NatGatewayIds"]}
        changed = network.update({"Name": "dev2", "AvailabilityZoneCount": 2, "NatGateways": "PerAz",
                                  "Tags": [{"Key": "team", "Value": "b"}]})
        assert changed.ok, changed.reason
        assert len(network_function_short.invocations_for(changed.request_id)) >= 2
        nats = changed.data["NatGatewayIds"].split(",")
        routes = private_routes(ec2, changed.data)
        assert [routes[t] for t in changed.data["PrivateRouteTableIds"].split(",")] == nats
        vpc = created.physical_id
        tagged = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
        tagged += ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
        tagged += ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"]
        for resource in tagged:
            tags = {t["Key"]: t["Value"] for t in resource.get("Tags", [])}
            if "Name" in tags:
                assert tags["Name"].startswith("dev2") and tags.get("team") == "b", tags
        deleted = network.delete()
        assert deleted.ok, deleted.reason
        assert len(network_function_short.invocations_for(deleted.request_id)) >= 2
    assert footprint(ec2) == EMPTY


def test_a_duplicate_create_finds_the_vpc_it_already_made(network, ec2):
    answer = network.create({"Name": "dev"}, deliveries=2)
    assert answer.ok
    assert footprint(ec2)["vpcs"] == [answer.physical_id]
    assert len(footprint(ec2)["subnets"]) == 4
    assert len(footprint(ec2)["internet_gateways"]) == 1
    assert len(footprint(ec2)["nat_gateways"]) == 1
    network.delete()
    assert footprint(ec2) == EMPTY


BAD_INPUTS = [
    ({"Name": "dev", "CidrBlock": "10.0.0.0/8"}, "CidrBlock"),
    ({"Name": "dev", "CidrBlock": "10.0.1.0/16"}, "CidrBlock"),
    ({"Name": "dev", "CidrBlock": "not-a-cidr"}, "CidrBlock"),
    ({"Name": "dev", "CidrBlock": "10.0.0.0/24", "AvailabilityZoneCount": 6}, "CidrBlock"),
    ({"Name": "dev", "AvailabilityZoneCount": 0}, "AvailabilityZoneCount"),
    ({"Name": "dev", "AvailabilityZoneCount": "two"}, "AvailabilityZoneCount"),
    ({"Name": "dev", "NatGateways": "Double"}, "NatGateways"),
    ({"Name": "dev", "NatGateway": "Single"}, "NatGateway"),
    ({"Name": "x" * 65}, "Name"),
]


@pytest.mark.parametrize("properties,property_name", BAD_INPUTS, ids=[b[1] + "-" + str(i) for i, b in enumerate(BAD_INPUTS)])
def test_bad_input_fails_naming_the_property_and_creates_nothing(network, ec2, properties, property_name):
    before = footprint(ec2)
    answer = network.create(properties)
    assert answer.status == "FAILED"
    assert f"invalid property {property_name}" in answer.reason, answer.reason
    assert network.rollback_answer.ok
    assert footprint(ec2) == before


def test_more_zones_than_the_region_runs_fargate_in_fails_naming_the_property(cfn, network_function_in_a_two_zone_region, moto):
    # moto's us-west-1 has two zones, us-west-1a (usw1-az3) and us-west-1b (usw1-az2); AWS runs
    # Fargate in usw1-az1 and usw1-az3 only, so one zone is usable.
    ec2 = moto.client("ec2")
    west = moto.client("ec2", region="us-west-1")
    zones = {z["ZoneName"]: z["ZoneId"] for z in west.describe_availability_zones()["AvailabilityZones"]}
    assert zones == {"us-west-1a": "usw1-az3", "us-west-1b": "usw1-az2"}
    before = footprint(west)
    network = Resource(cfn, network_function_in_a_two_zone_region, "Network", resource_type="Custom::Network")
    answer = network.create({"Name": "dev", "AvailabilityZoneCount": 2})
    assert answer.status == "FAILED"
    assert answer.reason.startswith("Create failed: invalid property AvailabilityZoneCount: this region has only 1 zone(s) that run Fargate"), answer.reason
    assert "usw1-az3 (us-west-1a)" in answer.reason
    answer = network.create({"Name": "dev", "AvailabilityZoneCount": 2, "AvailabilityZoneIds": "usw1-az3,usw1-az2"})
    assert answer.status == "FAILED"
    assert "invalid property AvailabilityZoneIds: Fargate does not run in usw1-az2 (us-west-1b)" in answer.reason
    assert footprint(west) == before
    assert footprint(ec2) == EMPTY


def test_nat_gateways_beyond_the_elastic_ip_quota_fail_before_anything_is_created(network, ec2, proxy):
    quota = int(ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])
                ["AccountAttributes"][0]["AttributeValues"][0]["AttributeValue"])
    taken = [ec2.allocate_address(Domain="vpc")["AllocationId"] for _ in range(quota - 1)]
    before = footprint(ec2)
    answer = network.create({"Name": "dev", "AvailabilityZoneCount": 3, "NatGateways": "PerAz"})
    assert answer.status == "FAILED"
    assert "invalid property NatGateways: needs 3 new Elastic IP address(es)" in answer.reason, answer.reason
    assert f"uses {quota - 1} of its {quota}" in answer.reason and "only 1 are free" in answer.reason
    assert footprint(ec2) == before
    # Single fits in the one free address
    created = network.create({"Name": "dev", "AvailabilityZoneCount": 3, "NatGateways": "Single"})
    assert created.ok, created.reason
    # and a later change to PerAz is refused the same way, leaving the network as it was
    changed = network.update({"Name": "dev", "AvailabilityZoneCount": 3, "NatGateways": "PerAz"})
    assert changed.status == "FAILED" and "needs 2 new Elastic IP" in changed.reason, changed.reason
    assert len(ec2.describe_addresses()["Addresses"]) == quota
    network.delete()
    for allocation in taken:
        ec2.release_address(AllocationId=allocation)


def test_delete_of_a_vpc_holding_a_foreign_security_group_fails_naming_it_and_deletes_nothing(network, ec2):
    created = network.create({"Name": "dev"})
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=created.physical_id)["GroupId"]
    before = footprint(ec2)
    blocked = network.delete()
    assert blocked.status == "FAILED"
    assert f"security group {group} (app)" in blocked.reason and "Delete them" in blocked.reason
    assert footprint(ec2) == before
    ec2.delete_security_group(GroupId=group)
    assert network.delete().ok
    assert footprint(ec2) == EMPTY
    assert network.delete().ok, "Delete is idempotent"


def test_three_az_per_az_create_ec2_calls_and_rounds(network, ec2, proxy, network_function, capsys):
    proxy.clear()
    created = network.create({"Name": "prod", "AvailabilityZoneCount": 3, "NatGateways": "PerAz"})
    assert created.ok
    calls = proxy.recorded("ec2")
    by_action = {}
    for call in calls:
        by_action[call.action] = by_action.get(call.action, 0) + 1
    assert by_action["CreateSubnet"] == 6 and by_action["CreateNatGateway"] == 3
    assert by_action["CreateRouteTable"] == 4 and by_action["AllocateAddress"] == 3
    assert by_action["CreateRoute"] == 4 and by_action["AssociateRouteTable"] == 6
    # Every create call carries its tags (moto keeps them, but check the request too).
    for call in calls:
        if call.action in ("CreateVpc", "CreateSubnet", "CreateRouteTable", "CreateNatGateway", "AllocateAddress"):
            assert any(k.startswith("TagSpecification.1.Tag") for k in call.params), call
    # The binary logs each round of concurrent calls; the wire must agree with it.
    rounds = [json.loads(line) for line in network_function.logs().splitlines()
              if line.startswith("{") and '"EC2 round done"' in line and created.request_id in line]
    assert sum(r["calls"] for r in rounds) == len(calls), (rounds, by_action)
    peak = max_concurrency(calls)
    summary = " -> ".join(f"{r['round']}:{r['calls']}" for r in rounds)
    with capsys.disabled():
        print(f"\n    3-AZ PerAz Create: {len(calls)} EC2 calls in {len(rounds)} sequential rounds "
              f"({summary}); up to {peak} in flight at once on the wire")
    # the work rounds, then (NAT gateways are pending for a while, as on AWS) one observe round per
    # check of the wait before the private routes go to the NATs
    kinds = [r["round"] for r in rounds]
    # the address quota is read beside the lookup (its calls need no answer of the lookup's)
    assert sorted(kinds[:2]) == ["lookup", "quota"], summary
    assert [k for k in kinds[2:] if k != "observe"] == ["vpc", "A", "B", "C"], summary
    lookup = [c for c in calls if c.action in ("DescribeVpcs", "DescribeAvailabilityZones")]
    quota = [c for c in calls if c.action in ("DescribeAccountAttributes", "DescribeAddresses")]
    assert min(c.started for c in quota) < max(c.finished for c in lookup), "quota and lookup overlap"
    assert "observe" in kinds and kinds.index("observe") > kinds.index("B"), summary
    assert peak >= 10, f"calls of one round should overlap on the wire (peak {peak})"
    network.delete()
    assert footprint(ec2) == EMPTY
