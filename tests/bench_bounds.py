"""The critical paths tests/bench_paths.py measures: each operation's dependency depth in AWS round
trips, derived from the code by hand, with the chain that justifies it (one entry per round trip)
and the wait it contains. Pure data; tests/test_bench_paths.py checks it against the records.
"""
from dataclasses import dataclass
from typing import Callable, Optional


# --- the dependency chains (derived from the code, by hand) -----------------------------------

@dataclass(frozen=True)
class Wait:
    """A wait of an operation: `begun_by` starts it (the last such call's end), `checked_by` polls
    it, `needed_by` (None: nothing, the answer follows) is the first call that needs it over."""

    name: str
    begun_by: tuple
    checked_by: str
    needed_by: Optional[Callable] = None


@dataclass(frozen=True)
class CriticalPath:
    """An operation's critical path: its dependency depth in AWS round trips, the chain that
    justifies it (one entry per round trip), its wait, and the calls the code makes one after
    the other although nothing orders them (read from the code, file:line)."""

    name: str
    depth: int
    chain: tuple
    wait: Optional[Wait]
    sequential: tuple = ()


def _route_to_nat(call) -> bool:
    return call.action in ("CreateRoute", "ReplaceRoute") and bool(call.params.get("NatGatewayId"))


NAT_AVAILABLE = Wait("NAT available", ("CreateNatGateway",), "DescribeNatGateways", _route_to_nat)

PATHS = {
    "network create (3 AZ, PerAz)": CriticalPath(
        "network create (3 AZ, PerAz)", 6, (
            "DescribeVpcs + DescribeInternetGateways (what this request already made: a redelivery "
            "must not make a second VPC) + DescribeAvailabilityZones + DescribeAccountAttributes "
            "+ DescribeAddresses (the Elastic IP quota: nothing may be created before it is known "
            "to fit; its inputs depend on no answer, the count needed is AvailabilityZoneCount)",
            "CreateVpc + CreateInternetGateway (need the lookup)",
            "CreateSubnet x6 + CreateRouteTable x4 + AllocateAddress x3 (tagged with the VPC id) "
            "+ ModifyVpcAttribute x2 + AttachInternetGateway + CreateTags (need the VPC id)",
            "CreateNatGateway x3 (needs its public subnet, its address, the gateway attached) "
            "+ AssociateRouteTable x6 + ModifySubnetAttribute x3 + CreateRoute public",
            "[wait: NAT pending -> available] DescribeNatGateways that reports them available",
            "CreateRoute x3, private -> NAT (never a route to a pending NAT)",
        ), NAT_AVAILABLE),
    "NAT layout change (3 AZ, Single -> PerAz)": CriticalPath(
        "NAT layout change (3 AZ, Single -> PerAz)", 5, (
            "discover: DescribeVpcs/Subnets/RouteTables/NatGateways/Addresses/InternetGateways "
            "+ DescribeAccountAttributes + DescribeAddresses (the quota's inputs; only the "
            "comparison needs the discovered state)",
            "AllocateAddress x2 (the zones without a NAT or a spare address, from discover)",
            "CreateNatGateway x2 (need the addresses)",
            "[wait: NAT pending -> available] DescribeNatGateways that reports them available",
            "ReplaceRoute x2, private -> the zone's new NAT",
        ), NAT_AVAILABLE),
    "service create (WaitForSteadyState)": CriticalPath(
        "service create (WaitForSteadyState)", 4, (
            "DescribeClusters + DescribeTaskDefinition + GetRole (AWSServiceRoleForECS) "
            "+ DescribeServices (does the service exist already)",
            "GetParameters + SimulatePrincipalPolicy (need the task definition's secrets and "
            "execution role; DescribeImages for ECR images, none here)",
            "CreateService (needs every check passed, the image plan and the existence check)",
            "[wait: steady state] DescribeServices that reports it steady",
        ), Wait("service steady", ("CreateService",), "DescribeServices")),
    "service strategy update (WaitForSteadyState)": CriticalPath(
        "service strategy update (WaitForSteadyState)", 4, (
            "DescribeClusters + DescribeTaskDefinition + GetRole + DescribeServices (the service's "
            "tags: awaiting image, Spot fallback, the recorded template)",
            "GetParameters + SimulatePrincipalPolicy",
            "UpdateService + TagResource (the template's strategy recorded: needs only the "
            "DescribeServices tags and the properties)",
            "[wait: steady state] DescribeServices that reports it steady",
        ), Wait("service steady", ("UpdateService",), "DescribeServices"), (
            "functions/service/src/resource.rs:617 record_template (TagResource) runs after "
            "UpdateService at resource.rs:607 although it needs only the tags read at :555 and the "
            "properties (ordered so the tag follows an accepted update; a failed update is rolled "
            "back by CloudFormation with an Update that records the old strategy again)",
        )),
    "scaling create": CriticalPath(
        "scaling create", 3, (
            "RegisterScalableTarget",
            "PutScalingPolicy x2 (a policy needs its scalable target)",
            "PutMetricAlarm x2 (need the policies' ARNs)",
        ), None),
}
