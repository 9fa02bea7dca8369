"""AWS rules the local engine enforces where moto would accept what CloudFormation refuses.

One home for the facts (limits, patterns, create-only properties, error texts); harness.engine
applies them. Sources for every row: docs/local-emulator.md, "AWS rules the engine enforces".
"""
import random
import re
import string
from dataclasses import dataclass
from typing import Callable, Optional


def handler_message(text: str, service: str) -> str:
    """How CloudFormation reports a service refusing a resource handler's call."""
    return f'Resource handler returned message: "{text} (Service: {service}, Status Code: 400)" (HandlerErrorCode: InvalidRequest)'


def model_validation(pointer: str, problem: str) -> str:
    """How CloudFormation reports properties failing the resource type's registry schema."""
    return f"Model validation failed (#/{pointer}: {problem})"


@dataclass(frozen=True)
class NameRule:
    """A resource type's physical-name limits, for names given in the template and names
    CloudFormation generates (stack name and logical id, cut to fit, plus a random suffix)."""
    max_length: int
    pattern: str  # a valid name matches it (re.search)
    refuse: Callable[["NameRule", str, str], Optional[str]]  # (rule, property, name) -> error or None
    min_length: int = 1
    part_length: Optional[int] = None  # ELBv2: keep this many characters of stack name and logical id
    suffix_length: int = 12
    lower_case: bool = False


def _schema(rule: NameRule, prop: str, name: str) -> Optional[str]:
    """A name the registry schema constrains (maxLength/minLength/pattern): refused before any API call."""
    if len(name) > rule.max_length:
        return model_validation(prop, f"expected maxLength: {rule.max_length}, actual: {len(name)}")
    if len(name) < rule.min_length:
        return model_validation(prop, f"expected minLength: {rule.min_length}, actual: {len(name)}")
    return _schema_pattern(rule, prop, name)


def _schema_pattern(rule: NameRule, prop: str, name: str) -> Optional[str]:
    """A name whose limits the registry schema states in its pattern only (Lambda: {1,64})."""
    if not re.search(rule.pattern, name):
        return model_validation(prop, "failed validation constraint for keyword [pattern]")
    return None


def _elbv2(subject: str, characters: str, reserved_prefix: Optional[str] = None):
    """ELBv2 names are checked by the service (the registry schema has no limits)."""
    def refuse(rule: NameRule, prop: str, name: str) -> Optional[str]:
        if len(name) > rule.max_length:
            problem = f"cannot be longer than '{rule.max_length}' characters"
        elif not re.search(rule.pattern, name):
            problem = f"can only contain characters that are alphanumeric characters {characters} hyphens(-)"
        elif name.startswith("-") or name.endswith("-"):
            problem = "cannot begin or end with '-'"
        elif reserved_prefix and name.startswith(reserved_prefix):
            problem = f"cannot begin with '{reserved_prefix}'"
        else:
            return None
        return handler_message(f"{subject} '{name}' {problem}", "ElasticLoadBalancingV2")
    return refuse


def _ecs(rule: NameRule, prop: str, name: str) -> Optional[str]:
    """The ECS service checks cluster names (the registry schema has no limits)."""
    if len(name) <= rule.max_length and re.search(rule.pattern, name):
        return None
    return handler_message(f"Cluster must match ^[a-zA-Z0-9\\-_]{{1,{rule.max_length}}}$, but was {name}", "Ecs")


NAMES = {
    "AWS::ElasticLoadBalancingV2::LoadBalancer": NameRule(
        32, r"^[A-Za-z0-9-]+$", _elbv2("The load balancer name", "and", "internal-"), part_length=5, suffix_length=13),
    "AWS::ElasticLoadBalancingV2::TargetGroup": NameRule(
        32, r"^[A-Za-z0-9-]+$", _elbv2("Target group name", "or"), part_length=5, suffix_length=13),
    "AWS::Lambda::Function": NameRule(
        64, r"^([a-zA-Z0-9_-]{1,64}|arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:function:[a-zA-Z0-9_-]{1,64})$",
        _schema_pattern),
    "AWS::IAM::Role": NameRule(64, r"^[\w+=,.@-]+$", _schema),
    "AWS::Logs::LogGroup": NameRule(512, r"^[.\-_/#A-Za-z0-9]{1,512}\Z", _schema),
    "AWS::ECR::Repository": NameRule(
        256, r"^(?=.{2,256}$)([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*)$", _schema,
        min_length=2, lower_case=True),
    "AWS::ECS::Cluster": NameRule(255, r"^[a-zA-Z0-9\-_]+$", _ecs),
}


def name_problem(resource_type: str, prop: str, name: str) -> Optional[str]:
    """The error CloudFormation gives for this physical name, or None when it is valid."""
    rule = NAMES.get(resource_type)
    return rule.refuse(rule, prop, str(name)) if rule else None


def generate_name(resource_type: str, stack_name: str, logical_id: str) -> Optional[str]:
    """The physical name CloudFormation makes up when the template gives none, within the type's
    limits; None for types without a rule here (moto's generator is good enough for them)."""
    rule = NAMES.get(resource_type)
    if rule is None:
        return None
    suffix = "".join(random.choices(string.ascii_uppercase + string.digits, k=rule.suffix_length))
    if rule.part_length:
        stack_part, logical_part = stack_name[:rule.part_length], logical_id[:rule.part_length]
    else:
        budget = rule.max_length - len(suffix) - 2
        logical_part = logical_id[:max(budget // 2, budget - len(stack_name))]
        stack_part = stack_name[:budget - len(logical_part)]
    name = f"{stack_part.strip('-')}-{logical_part}-{suffix}"
    return name.lower() if rule.lower_case else name


# Properties whose change makes CloudFormation replace the resource ("Update requires: Replacement";
# the createOnlyProperties of each type's registry schema).
REPLACEMENT = {
    "AWS::ElasticLoadBalancingV2::LoadBalancer": {"Name", "Type", "Scheme"},
    "AWS::ElasticLoadBalancingV2::TargetGroup": {"Name", "Port", "Protocol", "ProtocolVersion", "VpcId", "TargetType",
                                                 "IpAddressType"},
    "AWS::ElasticLoadBalancingV2::Listener": {"LoadBalancerArn"},
    "AWS::EC2::SecurityGroup": {"GroupDescription", "GroupName", "VpcId"},
    "AWS::ECS::Cluster": {"ClusterName"},
    # Every property but Tags: a new revision first, the old one deregistered in cleanup (or the new
    # one on rollback).
    "AWS::ECS::TaskDefinition": {"Family", "ContainerDefinitions", "Cpu", "EnableFaultInjection", "ExecutionRoleArn",
                                 "InferenceAccelerators", "Memory", "NetworkMode", "PlacementConstraints",
                                 "ProxyConfiguration", "RequiresCompatibilities", "RuntimePlatform", "TaskRoleArn",
                                 "Volumes", "PidMode", "IpcMode", "EphemeralStorage"},
    "AWS::ECR::Repository": {"RepositoryName", "EncryptionConfiguration"},
    "AWS::Logs::LogGroup": {"LogGroupName"},
    "AWS::Lambda::Function": {"FunctionName", "PackageType", "TenancyConfig"},
    "AWS::IAM::Role": {"RoleName", "Path"},
}


def requires_replacement(resource_type: str, old: Optional[dict], new: dict) -> bool:
    old = old or {}
    return any(old.get(p) != new.get(p) for p in REPLACEMENT.get(resource_type, ()))


def custom_name_replacement(name: str) -> str:
    return f"CloudFormation cannot update a stack when a custom-named resource requires replacing. Rename {name} and update the stack again."


REPLACING = "Requested update requires the creation of a new physical resource; hence creating one."

TWO_ZONES = handler_message("At least two subnets in two different Availability Zones must be specified",
                            "ElasticLoadBalancingV2")
