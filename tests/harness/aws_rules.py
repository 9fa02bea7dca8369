"""AWS rules moto 5.2.5 does not keep, patched into both local AWSes: the per-resource harness
server (harness.moto runs `python -m harness.aws_rules -H HOST -p PORT`) and the local engine
process. Each rule is on by default; its LOCAL_AWS_* knob, read when the rule applies, changes it
or switches it off for diagnosis:

  * NAT gateways are `pending` for the first LOCAL_AWS_NAT_PENDING_DESCRIBES (2) describes that
    return them, then `available`; deleted ones are `deleting` as long, then `deleted` (moto: at
    once; AWS: minutes). 0 restores moto's.
  * LOCAL_AWS_NAT_FAILURE=<code> (default empty): NAT gateways created while it is set end in
    `failed` instead of `available`, with that FailureCode and AWS's message, their address
    disassociated and their interface gone (AWS: "InsufficientFreeAddressesInSubnet", ...).
  * CreateNatGateway with a ClientToken already used returns the NAT made with it, whatever its
    state (moto: a new NAT every time; AWS: idempotent on the token).
  * Elastic IPs: LOCAL_AWS_EIP_QUOTA (5) per region, AllocateAddress beyond it fails with
    AddressLimitExceeded, DescribeAccountAttributes reports the quota (moto: no limit, reports 5).
  * CreateCluster tries to create the ECS service-linked role, as ECS does, and with capacity
    providers fails unless the role already existed (moto: no role needed).
    LOCAL_AWS_ECS_SERVICE_LINKED_ROLE=off restores moto's.
  * CreateServiceLinkedRole names the ECS role AWSServiceRoleForECS (moto: AWSServiceRoleForecs)
    and refuses a second one with AWS's InvalidInput (moto: EntityAlreadyExists).
  * us-west-1 shows zone usw1-az2, which Fargate does not offer, as us-west-1b (an account whose
    zones are usw1-az3 and usw1-az2; moto shows usw1-az3 and usw1-az1), so the Fargate zone rule of
    harness.engine_ecs (LOCAL_AWS_FARGATE_ZONES) can be met outside Windows.
The scheduler rules (image pulls, Fargate zones, Spot capacity, task failures) live in harness.engine_ecs, which reads its knobs
through `enforced` here.

Knobs come from the environment, overridden by the JSON object in the file LOCAL_AWS_KNOBS_FILE
names (keys without the LOCAL_AWS_ prefix), re-read at every use: a test changes a knob of a
running server with `MotoServer.knobs(...)`.
"""
import json
import os
import re

EXPECTED_MOTO_VERSION = "5.2.5"
ECS_SERVICE_LINKED_ROLE = "AWSServiceRoleForECS"

# Zone ids in which Fargate runs no tasks, by operating system family. "Supported Regions for
# Amazon ECS on AWS Fargate" lists for Linux "us-west-1 (usw1-az1 & usw1-az3 only)" and
# "ap-northeast-1 (apne1-az1, apne1-az2, & apne1-az4 only)"; for Windows also "us-east-1
# (use1-az1, use1-az2, use1-az4, use1-az5, & use1-az6 only)" and "ca-central-1 (cac1-az1 &
# cac1-az2 only)".
FARGATE_UNSUPPORTED_ZONE_IDS = {
    "LINUX": frozenset({"usw1-az2", "apne1-az3"}),
    "WINDOWS": frozenset({"usw1-az2", "apne1-az3", "use1-az3", "cac1-az4"}),
}

_installed = False


def knob(name: str, default: str) -> str:
    overrides = {}
    path = os.environ.get("LOCAL_AWS_KNOBS_FILE")
    if path and os.path.exists(path):
        try:
            with open(path) as file:
                overrides = json.load(file)
        except ValueError:
            overrides = {}  # a test is rewriting it; the next use reads it whole
    value = overrides.get(name, os.environ.get(f"LOCAL_AWS_{name}", default))
    return str(value).strip()


def enforced(name: str) -> bool:
    """A rule is on unless its LOCAL_AWS_<name> knob says off (off, 0, false, no)."""
    return knob(name, "on").lower() not in ("off", "0", "false", "no")


def install() -> None:
    """Patch moto (once; later calls do nothing). Call before the server answers a request."""
    global _installed
    import moto

    if moto.__version__ != EXPECTED_MOTO_VERSION:
        raise RuntimeError(f"aws_rules patches moto {EXPECTED_MOTO_VERSION} internals, found "
                           f"{moto.__version__}: re-check the patches and update the pin")
    if _installed:
        return
    _patch_nat_gateway_states()
    _patch_nat_gateway_client_tokens()
    _patch_elastic_ip_quota()
    _patch_ecs_service_linked_role()
    _patch_service_linked_role_names()
    _zone_without_fargate_in_us_west_1()
    _installed = True


# --- NAT gateways: pending, deleting -------------------------------------------------------------


def _patch_nat_gateway_states() -> None:
    """moto creates a NAT `available` and deletes it to `deleted` at once, so a caller's wait for
    either never runs. Here each describe that returns a NAT in `pending` (`deleting`) counts, and
    the one after LOCAL_AWS_NAT_PENDING_DESCRIBES of them shows `available` (`deleted`)."""
    from moto.ec2.models.nat_gateways import NatGatewayBackend

    create, delete, describe = (NatGatewayBackend.create_nat_gateway,
                                NatGatewayBackend.delete_nat_gateway,
                                NatGatewayBackend.describe_nat_gateways)
    settled = {"pending": "available", "deleting": "deleted"}

    def transitional(nat_gateway, state: str) -> None:
        if int(knob("NAT_PENDING_DESCRIBES", "2")) > 0:
            nat_gateway.state = state
            nat_gateway._aws_rules_describes = 0

    def create_nat_gateway(self, *args, **kwargs):
        nat_gateway = create(self, *args, **kwargs)
        transitional(nat_gateway, "pending")
        nat_gateway._aws_rules_failure = knob("NAT_FAILURE", "")
        if nat_gateway._aws_rules_failure and nat_gateway.state == "available":
            fail(self, nat_gateway)
        return nat_gateway

    def delete_nat_gateway(self, nat_gateway_id):
        nat_gateway = delete(self, nat_gateway_id)
        transitional(nat_gateway, "deleting")
        return nat_gateway

    def describe_nat_gateways(self, filters, nat_gateway_ids):
        # Count every describe that names the NAT, whatever state it filters on, so a caller
        # waiting with Filter state=available still sees it become available.
        unfiltered = {k: v for k, v in (filters or {}).items() if k != "state"}
        for nat_gateway in describe(self, unfiltered, nat_gateway_ids):
            if nat_gateway.state in settled:
                if nat_gateway._aws_rules_describes >= int(knob("NAT_PENDING_DESCRIBES", "2")):
                    nat_gateway.state = settled[nat_gateway.state]
                    if nat_gateway.state == "available" and getattr(nat_gateway, "_aws_rules_failure", ""):
                        fail(self, nat_gateway)
                else:
                    nat_gateway._aws_rules_describes += 1
        return describe(self, filters, nat_gateway_ids)

    NatGatewayBackend.create_nat_gateway = create_nat_gateway
    NatGatewayBackend.delete_nat_gateway = delete_nat_gateway
    NatGatewayBackend.describe_nat_gateways = describe_nat_gateways


# "NAT gateway creation fails" / FailureCode, FailureMessage in the EC2 API reference (NatGateway):
# the gateway shows `failed` with the code and message, keeps no address and no interface.
NAT_FAILURE_MESSAGES = {
    "InsufficientFreeAddressesInSubnet": "Subnet has insufficient free addresses to create this NAT gateway",
    "Gateway.NotAttached": "Network vpc-xxxxxxxx has no Internet gateway attached",
    "InternalError": "Network interface eni-xxxxxxxx, created and used internally by this NAT gateway is in an invalid state. Please try again.",
}


def fail(backend, nat_gateway) -> None:
    code = nat_gateway._aws_rules_failure
    nat_gateway.state = "failed"
    nat_gateway.failure_code = code
    nat_gateway.failure_message = NAT_FAILURE_MESSAGES.get(code, f"NAT gateway creation failed: {code}")
    for address in backend.addresses:
        if address.eni is not None and address.eni.id == nat_gateway._eni.id:
            address.eni = None
            address.association_id = None
    for entry in nat_gateway.address_set:
        entry.pop("associationId", None)
        entry.pop("networkInterfaceId", None)
        entry.pop("privateIp", None)
        entry.pop("publicIp", None)
    try:
        backend.delete_network_interface(nat_gateway._eni.id)
    except Exception:  # noqa: BLE001 - already gone
        pass


def _patch_nat_gateway_client_tokens() -> None:
    from moto.ec2.responses.nat_gateways import NatGateways
    from moto.core.responses import ActionResult

    create = NatGateways.create_nat_gateway

    def create_nat_gateway(self):
        token = self._get_param("ClientToken")
        made = getattr(self.ec2_backend, "_aws_rules_nat_tokens", None)
        if made is None:
            made = self.ec2_backend._aws_rules_nat_tokens = {}
        if token and token in made and made[token] in self.ec2_backend.nat_gateways:
            return ActionResult({"NatGateway": self.ec2_backend.nat_gateways[made[token]],
                                 "ClientToken": token})
        result = create(self)
        if token:
            made[token] = result.result["NatGateway"].id
        return result

    NatGateways.create_nat_gateway = create_nat_gateway


# --- Elastic IP quota -----------------------------------------------------------------------------


def _patch_elastic_ip_quota() -> None:
    """moto allocates addresses without limit and reports vpc-max-elastic-ips 5 whatever it does;
    AWS allows 5 per region by default and refuses the next with AddressLimitExceeded."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.elastic_ip_addresses import ElasticAddressBackend
    from moto.ec2.responses.account_attributes import AccountAttributes

    allocate, attributes = (ElasticAddressBackend.allocate_address,
                            AccountAttributes.describe_account_attributes)

    def allocate_address(self, *args, **kwargs):
        if len(self.addresses) >= int(knob("EIP_QUOTA", "5")):
            raise EC2ClientError("AddressLimitExceeded",
                                 "The maximum number of addresses has been reached.")
        return allocate(self, *args, **kwargs)

    def describe_account_attributes(self):
        result = attributes(self)
        for attribute in result.result["AccountAttributes"]:
            if attribute["AttributeName"] == "vpc-max-elastic-ips":
                attribute["AttributeValues"] = [{"AttributeValue": knob("EIP_QUOTA", "5")}]
        return result

    ElasticAddressBackend.allocate_address = allocate_address
    AccountAttributes.describe_account_attributes = describe_account_attributes


# --- ECS service-linked role ----------------------------------------------------------------------


def _iam(account_id: str, region_name: str):
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    return iam_backends[account_id][get_partition(region_name)]


def _patch_ecs_service_linked_role() -> None:
    """moto's CreateCluster needs no role. ECS "attempts to create the Amazon ECS service-linked
    role" on CreateCluster (CreateCluster API reference), and associating capacity providers needs
    that role to exist already: a fresh account's first CreateCluster with capacity providers fails
    (and leaves the role behind, so a retry succeeds). Patched in the backend, so the
    AWS::ECS::Cluster template model meets it too."""
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.iam.exceptions import NotFoundException

    original = EC2ContainerServiceBackend.create_cluster

    def create_cluster(self, cluster_name, tags=None, cluster_settings=None, configuration=None,
                       capacity_providers=None, default_capacity_provider_strategy=None,
                       service_connect_defaults=None):
        if enforced("ECS_SERVICE_LINKED_ROLE"):
            iam = _iam(self.account_id, self.region_name)
            try:
                iam.get_role(ECS_SERVICE_LINKED_ROLE)
            except NotFoundException:
                iam.create_service_linked_role(
                    "ecs.amazonaws.com", "Role to enable Amazon ECS to manage your cluster.", None)
                if capacity_providers:
                    raise InvalidParameterException(
                        "Unable to assume the service linked role. Please verify that the ECS "
                        "service linked role exists.")
        return original(self, cluster_name, tags, cluster_settings, configuration,
                        capacity_providers, default_capacity_provider_strategy,
                        service_connect_defaults)

    EC2ContainerServiceBackend.create_cluster = create_cluster


def _patch_service_linked_role_names() -> None:
    """moto derives the role name from the service prefix (ecs -> AWSServiceRoleForecs) and answers
    a second CreateServiceLinkedRole with EntityAlreadyExists; AWS names it AWSServiceRoleForECS and
    answers InvalidInput "Service role name ... has been taken in this account"."""
    from moto.iam import models as iam_models
    from moto.iam.exceptions import EntityAlreadyExists, InvalidInput

    iam_models.SERVICE_NAME_CONVERSION["ecs"] = "ECS"
    original = iam_models.IAMBackend.create_service_linked_role

    def create_service_linked_role(self, service_name, description, suffix):
        try:
            return original(self, service_name, description, suffix)
        except EntityAlreadyExists as error:
            # moto 5.2.5: "Role with name <name> already exists."
            name = re.search(r"Role with name (\S+) already exists", error.message).group(1)
            raise InvalidInput(f"Service role name {name} has been taken in this account, "
                               "please try a different suffix.") from None

    iam_models.IAMBackend.create_service_linked_role = create_service_linked_role


# --- zones ----------------------------------------------------------------------------------------


def _zone_without_fargate_in_us_west_1() -> None:
    from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend

    zone = next(z for z in RegionsAndZonesBackend.zones["us-west-1"] if z.name == "us-west-1b")
    zone.zone_id = "usw1-az2"


if __name__ == "__main__":
    install()
    from moto.server import main

    main()
