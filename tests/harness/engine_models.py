"""Native resource models moto 5.2.5 gets wrong from a template, fixed for the local engine.

Each patch closes one gap our templates hit; moto's own API paths are left alone.
- AWS::ECS::TaskDefinition: moto keeps only family, containers, volumes and memory from the
  template, so a Fargate task definition comes out as `bridge` without cpu, roles or
  requiresCompatibilities (our service's preflight then rightly refuses it). Its update compares
  PascalCase template keys with stored camelCase ones and always re-registers. Here every property
  goes to RegisterTaskDefinition, and an update registers a new revision only when the resolved
  properties changed (CloudFormation replaces task definitions: new ARN, old one deregistered).
- NAT gateways: moto marks a deleted NAT `deleted` but keeps its network interface (and the
  address association) forever; AWS releases both, so a deleted VPC would leave an orphan ENI.
- ECR repositories: moto ignores EmptyOnDelete (a stack delete fails once images were pushed).
- AWS::Lambda::Permission: moto adds the statement but returns an object without a physical id
  (the engine cannot record it) and never removes the statement; here it gets the
  `<function>|<statement id>` id and its delete removes the statement.
- Deletes moto does not implement for our types (it skips them silently, leaving the cluster,
  listeners, target groups and task definitions behind after a stack delete): DELETERS below.
"""
from typing import Any

import moto
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ecs import models as ecs_models
from moto.moto_api._internal import mock_random

MOTO_VERSION = "5.2.5"


def _task_definition_arguments(properties: dict) -> dict:
    def camel(value: Any) -> Any:
        return remap_nested_keys(value, pascal_to_camelcase) if value is not None else None

    def text(value: Any) -> Any:
        return None if value is None else str(value)

    tags = [{"key": t["Key"], "value": t["Value"]} for t in properties.get("Tags") or []]
    return {
        "family": properties.get("Family") or f"task-definition-{int(mock_random.random() * 10**6)}",
        "container_definitions": camel(properties.get("ContainerDefinitions") or []),
        "volumes": camel(properties.get("Volumes") or []),
        "network_mode": properties.get("NetworkMode"),
        "tags": tags or None,
        "placement_constraints": camel(properties.get("PlacementConstraints")),
        "requires_compatibilities": properties.get("RequiresCompatibilities"),
        "cpu": text(properties.get("Cpu")),
        "memory": text(properties.get("Memory")),
        "task_role_arn": properties.get("TaskRoleArn"),
        "execution_role_arn": properties.get("ExecutionRoleArn"),
        "runtime_platform": camel(properties.get("RuntimePlatform")),
        "ipc_mode": properties.get("IpcMode"),
        "pid_mode": properties.get("PidMode"),
        "ephemeral_storage": camel(properties.get("EphemeralStorage")),
    }


def _create_task_definition(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    backend = ecs_models.ecs_backends[account_id][region_name]
    definition = backend.register_task_definition(**_task_definition_arguments(cloudformation_json["Properties"]))
    definition._template_properties = cloudformation_json["Properties"]
    return definition


def _update_task_definition(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
    properties = cloudformation_json["Properties"]
    if getattr(original_resource, "_template_properties", None) == properties:
        return original_resource
    backend = ecs_models.ecs_backends[account_id][region_name]
    definition = backend.register_task_definition(**_task_definition_arguments(properties))
    definition._template_properties = properties
    backend.deregister_task_definition(original_resource.arn)
    return definition


def _delete_cluster(resource, props, account_id, region_name):
    ecs_models.ecs_backends[account_id][region_name].delete_cluster(resource.name)


def _deregister_task_definition(resource, props, account_id, region_name):
    ecs_models.ecs_backends[account_id][region_name].deregister_task_definition(resource.arn)


def _delete_listener(resource, props, account_id, region_name):
    from moto.elbv2.models import elbv2_backends

    elbv2_backends[account_id][region_name].delete_listener(resource.arn)


def _delete_target_group(resource, props, account_id, region_name):
    from moto.elbv2.models import elbv2_backends

    elbv2_backends[account_id][region_name].delete_target_group(resource.arn)


def _delete_repository(resource, props, account_id, region_name):
    # moto ignores EmptyOnDelete and refuses to delete a repository holding images.
    from moto.ecr.models import ecr_backends

    force = str(props.get("EmptyOnDelete", "false")).lower() == "true"
    ecr_backends[account_id][region_name].delete_repository(resource.name, force=force)


def _delete_vpc_endpoint(resource, props, account_id, region_name):
    # moto has no template delete for endpoints; its API delete drops an interface endpoint's ENIs
    # and a gateway endpoint's routes, as AWS does.
    from moto.ec2.models import ec2_backends

    ec2_backends[account_id][region_name].delete_vpc_endpoints([resource.id])


class _Permission:
    """An AWS::Lambda::Permission as the engine records it."""

    def __init__(self, function_name: str, statement_id: str):
        self.function_name, self.statement_id = function_name, statement_id
        self.physical_resource_id = f"{function_name}|{statement_id}"


def _create_permission(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    import json

    from moto.awslambda.utils import get_backend

    properties = dict(cloudformation_json["Properties"])
    statement_id = properties.pop("StatementId", None) or f"{kwargs.get('LogicalId', 'Permission')}-{mock_random.get_random_hex(8)}"
    function = get_backend(account_id, region_name).get_function(properties["FunctionName"])
    function.policy.add_statement(raw=json.dumps(dict(properties, StatementId=statement_id)))
    return _Permission(function.function_name, statement_id)


def _delete_permission(resource, props, account_id, region_name):
    from moto.awslambda.utils import get_backend

    try:
        get_backend(account_id, region_name).get_function(resource.function_name).policy.del_statement(resource.statement_id)
    except Exception:  # noqa: BLE001 - the function (and its policy) may be gone already
        pass


# resource type -> delete(resource, resolved properties, account_id, region_name), used by the
# engine instead of moto's own.
DELETERS = {
    "AWS::ECR::Repository": _delete_repository,
    "AWS::ECS::Cluster": _delete_cluster,
    "AWS::ECS::TaskDefinition": _deregister_task_definition,
    "AWS::EC2::VPCEndpoint": _delete_vpc_endpoint,
    "AWS::Lambda::Permission": _delete_permission,
    "AWS::ElasticLoadBalancingV2::Listener": _delete_listener,
    "AWS::ElasticLoadBalancingV2::TargetGroup": _delete_target_group,
}


def _patch_nat_gateway_delete() -> None:
    from moto.ec2.models.nat_gateways import NatGatewayBackend

    original = NatGatewayBackend.delete_nat_gateway
    if getattr(original, "_engine", False):
        return

    def delete_nat_gateway(self, nat_gateway_id):
        nat_gateway = original(self, nat_gateway_id)
        eni = getattr(nat_gateway, "_eni", None)
        if eni is not None:
            for address in self.addresses:
                if getattr(address, "eni", None) is eni:
                    address.eni = None
                    address.association_id = None
            self.enis.pop(eni.id, None)
        return nat_gateway

    delete_nat_gateway._engine = True
    NatGatewayBackend.delete_nat_gateway = delete_nat_gateway


def install() -> None:
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"engine_models patches moto {MOTO_VERSION}, found {moto.__version__}")
    _patch_nat_gateway_delete()
    ecs_models.TaskDefinition.create_from_cloudformation_json = classmethod(_create_task_definition)
    from moto.awslambda import models as lambda_models

    lambda_models.Permission.create_from_cloudformation_json = classmethod(_create_permission)
    ecs_models.TaskDefinition.update_from_cloudformation_json = classmethod(_update_task_definition)
