"""The local CloudFormation engine: moto's CloudFormation API with our own stack orchestration.

moto 5.2.5 parses templates and serves the CloudFormation API, and its resource models create the
native resources, but its orchestration cannot run our stacks (docs/local-emulator.md): custom
resources get Create only and are never waited for, FAILED is ignored, the returned physical id is
ignored, `!GetAtt Child.Outputs.X` on a nested stack fails, updates re-create child stacks and
change-set deploys lose outputs and parameter overrides. This module replaces exactly that layer,
in-process, and nothing else:

- stack operations (CreateStack, UpdateStack, DeleteStack, CreateChangeSet, ExecuteChangeSet) run
  in a worker thread with CloudFormation's statuses and per-resource events, in dependency order;
  the API call returns when the operation ends or after `api_wait` seconds (DescribeStacks and
  DescribeStackEvents show progress meanwhile);
- intrinsic functions are resolved here (Ref, GetAtt incl. `Outputs.X`, Sub, Join, Split, Select,
  If/NoValue, FindInMap, ImportValue, GetAZs, Base64, conditions); parameters are validated
  (AllowedValues, AllowedPattern, Min/MaxValue, required, unknown keys);
- updates diff each resource's *resolved* properties: unchanged resources (and nested stacks whose
  parameters did not change) are left alone; changed ones get one update; removed and replaced
  ones are deleted in the cleanup phase; a failure rolls back (create: delete what was made;
  update: revert updated resources, delete new ones);
- custom resources speak the real protocol: Create/Update/Delete events with stringified
  properties, OldResourceProperties and PhysicalResourceId, delivered to the Lambda function the
  ServiceToken names, answered on a loopback ResponseURL; FAILED fails the resource; a new
  physical id on Update is a replacement whose old id gets a Delete during cleanup;
- Lambda functions run for real: the zip moto stores is unpacked and its `bootstrap` run behind
  the Lambda Runtime API (harness.lambda_service.LocalLambda), with the function's timeout and
  environment and its role's credentials (harness.engine_iam authorizes its calls); moto's Invoke
  API is routed there too, and the functions' hand-overs go through it;
- AWS rules moto does not enforce (harness.engine_rules): physical-name limits, given or generated;
  native resources replaced when create-only properties change (new one first, old one in
  cleanup; refused for a custom name that stays); an ALB's two zones; the template's Rules.

Pinned to one moto version (MOTO_VERSION): the patched internals change between releases.
"""
import base64
import copy
import hashlib
import io
import json
import logging
import platform
import re
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional
from urllib.parse import urlparse

import moto
import yaml
from moto.awslambda import models as lambda_models
from moto.awslambda.utils import get_backend as lambda_backend
from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing as cfn_parsing
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.utils import generate_changeset_id, generate_stack_id, validate_create_change_set
from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import InvalidSubnetIdError
from moto.ec2.models import ec2_backends
from moto.s3.models import s3_backends

from . import engine_ecs, engine_events, engine_iam, engine_rules
from .moto import ACCOUNT as DEFAULT_ACCOUNT, REGION as DEFAULT_REGION
from .lambda_service import LocalLambda
from .net import QuietHTTPServer

MOTO_VERSION = "5.2.5"
log = logging.getLogger("local-engine")

NOVALUE = object()
NESTED = "AWS::CloudFormation::Stack"


class ResourceFailed(Exception):
    """A resource operation failed; the message is the event's ResourceStatusReason."""


def is_custom(resource_type: str) -> bool:
    return resource_type.startswith("Custom::") or resource_type == "AWS::CloudFormation::CustomResource"


def stringify(value: Any) -> Any:
    """CloudFormation sends every scalar in ResourceProperties as a string."""
    if isinstance(value, dict):
        return {k: stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringify(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------
# Resource objects the engine keeps in a stack (next to moto's native models)
# ---------------------------------------------------------------------------------------------
class CustomResource:
    def __init__(self, logical_id: str, resource_type: str, physical_id: str, data: Optional[dict] = None):
        self.logical_resource_id = logical_id
        self.cf_resource_type = resource_type
        self.physical_resource_id = physical_id
        self.data = data or {}

    @classmethod
    def from_answer(cls, logical_id: str, resource_type: str, answer: dict) -> "CustomResource":
        return cls(logical_id, resource_type, answer["PhysicalResourceId"], answer.get("Data"))

    def get_cfn_attribute(self, name: str) -> Any:
        if name not in self.data:
            raise ResourceFailed(f"CustomResource attribute error: Vendor response doesn't contain {name} key "
                                 f"in object {self.logical_resource_id} (keys: {sorted(self.data)})")
        return self.data[name]


class NestedStack:
    def __init__(self, logical_id: str, stack):
        self.logical_resource_id = logical_id
        self.cf_resource_type = NESTED
        self.stack = stack

    @property
    def physical_resource_id(self) -> str:
        return self.stack.stack_id

    def get_cfn_attribute(self, name: str) -> Any:
        if name.startswith("Outputs."):
            key = name.split(".", 1)[1]
            for output in self.stack.engine.outputs:
                if output.key == key:
                    return output.value
            raise ResourceFailed(f"Template error: nested stack {self.logical_resource_id} has no output {key}")
        raise ResourceFailed(f"Template error: {self.logical_resource_id} has no attribute {name}")


class StackState:
    """What the engine knows about one stack; moto's Stack object points here (stack.engine)."""

    def __init__(self, template: dict, raw_params: dict, no_echo: list, parent=None):
        self.template = template
        self.raw_params = raw_params       # effective string values, defaults included
        self.no_echo = no_echo
        self.resources: dict = {}          # logical id -> resource object
        self.props: dict = {}              # logical id -> resolved properties (None = no Properties)
        self.outputs: list = []
        self.exports: list = []
        self.imports: set = set()
        self.parent = parent


class ResourceView:
    """Stands in for moto's ResourceMap on a Stack: what the API layer reads from it."""

    def __init__(self, state: StackState):
        self._state = state

    def values(self):
        return list(self._state.resources.values())

    @property
    def resolved_parameters(self) -> dict:
        return dict(self._state.raw_params)

    @property
    def no_echo_parameter_keys(self) -> list:
        return list(self._state.no_echo)


class OutputView:
    def __init__(self, state: StackState):
        self._state = state

    def values(self):
        return list(self._state.outputs)

    @property
    def exports(self):
        return list(self._state.exports)


# ---------------------------------------------------------------------------------------------
# Intrinsic functions
# ---------------------------------------------------------------------------------------------
def dependencies(node: Any) -> set:
    """Logical ids (or parameter names) a template fragment refers to."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
                found.add(target)
            elif key == "Fn::Sub":
                text, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})
                for token in re.findall(r"\$\{([^}!][^}]*)\}", text):
                    name = token.split(".", 1)[0]
                    if name not in variables:
                        found.add(name)
                found |= dependencies(variables)
            else:
                found |= dependencies(value)
    elif isinstance(node, list):
        for item in node:
            found |= dependencies(item)
    return found


class Context:
    """Resolves a template's intrinsic functions against one stack's parameters and resources."""

    def __init__(self, engine: "Engine", stack, template: dict, values: dict, resources: dict):
        self.engine = engine
        self.stack = stack
        self.template = template
        self.values = values
        self.resources = resources
        self.region = stack.region_name
        self.account = stack.account_id
        self._conditions: dict = {}
        self.imports: set = set()
        self.pseudo = {
            "AWS::AccountId": self.account, "AWS::Region": self.region, "AWS::StackId": stack.stack_id,
            "AWS::StackName": stack.name, "AWS::URLSuffix": "amazonaws.com", "AWS::Partition": "aws",
            "AWS::NotificationARNs": [], "AWS::NoValue": NOVALUE,
        }

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise ValidationError(message=f"Template error: unresolved condition dependency {name}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.values:
            return self.values[name]
        if name in self.resources:
            return self.resources[name].physical_resource_id
        if name in (self.template.get("Resources") or {}):
            raise ResourceFailed(f"Template error: {name} is referenced before it exists (or its Condition is false)")
        raise ValidationError(message=f"Template format error: Unresolved resource dependencies [{name}] in the Resources block of the template")

    def getatt(self, target: str, attribute: str) -> Any:
        resource = self.resources.get(target)
        if resource is None:
            raise ResourceFailed(f"Template error: Fn::GetAtt on {target}, which does not exist (or its Condition is false)")
        try:
            value = resource.get_cfn_attribute(attribute)
        except ResourceFailed:
            raise
        except Exception as error:  # moto models raise their own types for unknown attributes
            raise ResourceFailed(f"the local engine (moto {MOTO_VERSION}) cannot resolve Fn::GetAtt {target}.{attribute}: {error}")
        if value is None:
            raise ResourceFailed(f"the local engine (moto {MOTO_VERSION}) has no value for Fn::GetAtt {target}.{attribute}")
        return value

    def sub(self, text: str, variables: dict) -> str:
        def replace(match):
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                value = variables[token]
            elif "." in token and token.split(".", 1)[0] not in self.pseudo:
                target, attribute = token.split(".", 1)
                value = self.getatt(target, attribute)
            else:
                value = self.ref(token)
            if isinstance(value, list):
                raise ResourceFailed(f"Template error: ${{{token}}} in Fn::Sub is a list")
            return str(value)

        return re.sub(r"\$\{([^}]*)\}", replace, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self.function(key, arg)
        out = {}
        for key, value in node.items():
            resolved = self.resolve(value)
            if resolved is not NOVALUE:
                out[key] = resolved
        return out

    def function(self, key: str, arg: Any) -> Any:
        if key == "Fn::GetAtt":
            parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
            # moto's YAML loader splits `!GetAtt A.Outputs.B` on every dot.
            target, attribute = parts[0], ".".join(str(self.resolve(p)) for p in parts[1:])
            return self.getatt(target, attribute)
        if key == "Fn::Sub":
            if isinstance(arg, list):
                text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
            else:
                text, variables = arg, {}
            return self.sub(text, variables)
        if key == "Fn::Join":
            delimiter, items = arg
            items = self.resolve(items)
            return delimiter.join(str(item) for item in items)
        if key == "Fn::Split":
            delimiter, text = arg
            return str(self.resolve(text)).split(delimiter)
        if key == "Fn::Select":
            index, items = int(self.resolve(arg[0])), self.resolve(arg[1])
            if not 0 <= index < len(items):
                raise ResourceFailed(f"Template error: Fn::Select index {index} out of bounds for {items}")
            return items[index]
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Fn::FindInMap":
            name, first, second = (self.resolve(a) for a in arg[:3])
            try:
                return self.template["Mappings"][name][first][second]
            except KeyError:
                raise ResourceFailed(f"Template error: Fn::FindInMap [{name}, {first}, {second}] has no value")
        if key == "Fn::ImportValue":
            name = self.resolve(arg)
            export = self.engine.backend(self.account, self.region).exports.get(name)
            if export is None:
                raise ResourceFailed(f"No export named {name} found.")
            self.imports.add(name)
            return export.value
        if key == "Fn::GetAZs":
            region = self.resolve(arg) or self.region
            zones = ec2_backends[self.account][region].describe_availability_zones()
            return [zone.name for zone in zones]
        if key == "Fn::Base64":
            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        raise ResourceFailed(f"the local engine does not implement {key}")


class RuleContext(Context):
    """Evaluates the template's Rules section: parameters and pseudo parameters only, with the
    rule-specific functions besides Equals/Not/And/Or/If."""

    def ref(self, name: str) -> Any:
        if name in self.pseudo or name in self.values:
            return super().ref(name)
        raise ValidationError(message=f"Template format error: Unresolved dependencies [{name}]. Rules can only refer to parameters")

    def function(self, key: str, arg: Any) -> Any:
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Fn::If"):
            return super().function(key, arg)
        if key == "Fn::Contains":
            items, value = self.resolve(arg[0]), self.resolve(arg[1])
            return str(value) in [str(item) for item in items]
        if key == "Fn::EachMemberEquals":
            items, value = self.resolve(arg[0]), self.resolve(arg[1])
            return all(str(item) == str(value) for item in items)
        if key == "Fn::EachMemberIn":
            items, allowed = self.resolve(arg[0]), [str(a) for a in self.resolve(arg[1])]
            return all(str(item) in allowed for item in items)
        if key == "Fn::RefAll":
            return [resource.id for resource in self._all(self.resolve(arg))]
        if key == "Fn::ValueOf":
            name, attribute = self.resolve(arg[0]), self.resolve(arg[1])
            kind = ((self.template.get("Parameters") or {}).get(name) or {}).get("Type", "String")
            value = self.ref(name)
            if isinstance(value, list):
                return [self._attribute(kind, item, attribute) for item in value]
            return self._attribute(kind, value, attribute)
        if key == "Fn::ValueOfAll":
            kind, attribute = self.resolve(arg[0]), self.resolve(arg[1])
            values = []
            for name, spec in (self.template.get("Parameters") or {}).items():
                if spec.get("Type") in (kind, f"List<{kind}>") and name in self.values:
                    value = self.values[name]
                    values += [self._attribute(kind, item, attribute) for item in (value if isinstance(value, list) else [value])]
            return values
        raise ValidationError(message=f"Template error: {key} cannot be used in the Rules section (or the local engine does not implement it)")

    def _all(self, kind: str) -> list:
        kind = kind[5:-1] if kind.startswith("List<") else kind
        ec2 = ec2_backends[self.account][self.region]
        found = {"AWS::EC2::VPC::Id": ec2.describe_vpcs, "AWS::EC2::Subnet::Id": ec2.describe_subnets,
                 "AWS::EC2::SecurityGroup::Id": ec2.describe_security_groups}.get(kind)
        if found is None:
            raise ValidationError(message=f"the local engine (moto {MOTO_VERSION}) cannot list values of type {kind} for a rule")
        return list(found())

    def _attribute(self, kind: str, value: str, attribute: str) -> Any:
        """Fn::ValueOf's attributes of an EC2 parameter value: VpcId, AvailabilityZone, Tags.<key>."""
        kind = kind[5:-1] if kind.startswith("List<") else kind
        resource = next((r for r in self._all(kind) if r.id == value), None)
        if resource is None:
            raise ValidationError(message=f"Parameter value {value} of type {kind} does not exist")
        if attribute.startswith("Tags."):
            return {tag["key"]: tag["value"] for tag in resource.get_tags()}.get(attribute[5:])
        fields = {"VpcId": "vpc_id", "AvailabilityZone": "availability_zone"}
        if attribute not in fields or not hasattr(resource, fields[attribute]):
            raise ValidationError(message=f"the local engine (moto {MOTO_VERSION}) cannot read {attribute} of {kind} in a rule")
        return getattr(resource, fields[attribute])


def check_rules(engine: "Engine", stack, template: dict, values: dict) -> None:
    """The template's Rules, before anything changes: a false assertion refuses the operation with
    its AssertDescription; a rule whose RuleCondition is false is skipped."""
    ctx = RuleContext(engine, stack, template, values, {})
    for name, rule in (template.get("Rules") or {}).items():
        if "RuleCondition" in rule and not ctx.resolve(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions") or []:
            if not ctx.resolve(assertion.get("Assert")):
                raise ValidationError(message=assertion.get("AssertDescription") or f"Template error: rule {name} failed")


def pending_stack(backend, name: str):
    """What a rule sees of a stack that CreateStack has not made yet."""
    return SimpleNamespace(region_name=backend.region_name, account_id=backend.account_id, stack_id="", name=name)


def generated_name(resource_type: str, stack_name: str, logical_id: str) -> str:
    """A physical name as CloudFormation makes one up, within the type's limits."""
    return engine_rules.generate_name(resource_type, stack_name, logical_id) \
        or cfn_parsing.generate_resource_name(resource_type, stack_name, logical_id)


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------
def resolve_parameters(template: dict, given: dict, previous: Optional[dict] = None,
                       use_previous: frozenset = frozenset()) -> tuple:
    """Effective raw values (strings), typed values for Ref, and NoEcho keys; ValidationError on bad input."""
    declared = template.get("Parameters") or {}
    unknown = sorted((set(given) | set(use_previous)) - set(declared))
    if unknown:
        raise ValidationError(message=f"Parameters: {unknown} do not exist in the template")
    raw, values, no_echo, missing = {}, {}, [], []
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        elif name in use_previous and previous and name in previous:
            value = previous[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            missing.append(name)
            continue
        value = "" if value is None else (",".join(map(str, value)) if isinstance(value, list) else str(value))
        kind = spec.get("Type", "String")
        problem = None
        if kind == "Number":
            try:
                number = float(value)
            except ValueError:
                problem = f"must be a number, got '{value}'"
            else:
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    problem = f"must be at least {spec['MinValue']}, got {value}"
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    problem = f"must be at most {spec['MaxValue']}, got {value}"
        items = value.split(",") if kind in ("CommaDelimitedList", "List<String>") or kind.startswith("List<") else [value]
        if "AllowedValues" in spec and not problem:
            allowed = [str(a) for a in spec["AllowedValues"]]
            if any(item not in allowed for item in items):
                problem = f"must be one of {allowed}, got '{value}'"
        if "AllowedPattern" in spec and not problem and kind == "String":
            if not re.fullmatch(spec["AllowedPattern"], value):
                problem = spec.get("ConstraintDescription") or f"must match pattern {spec['AllowedPattern']}"
        if problem:
            raise ValidationError(message=f"Parameter '{name}' {problem}")
        raw[name] = value
        values[name] = (value.split(",") if value else []) if kind.startswith("List<") or kind == "CommaDelimitedList" else value
        if spec.get("NoEcho") in (True, "true", "True"):
            no_echo.append(name)
    if missing:
        raise ValidationError(message=f"Parameters: {missing} must have values")
    return raw, values, no_echo


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !GetAtt ...), whatever node they tag:
    moto's loader returns raw nodes for a tagged mapping (`!ImportValue {Fn::Sub: ...}`)."""


def _short_form(loader, tag_suffix, node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


_TemplateLoader.add_multi_constructor("!", _short_form)
# CloudFormation reads `Version: 2012-10-17` as a string, not a date.
_TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def parse_template(body: Any) -> dict:
    if isinstance(body, dict):
        template = body
    else:
        try:
            template = yaml.load(body, Loader=_TemplateLoader)  # JSON is YAML too
        except yaml.YAMLError as error:
            raise ValidationError(message=f"Template format error: {error}")
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict) or not template["Resources"]:
        raise ValidationError(message="Template format error: At least one Resources member must be defined.")
    return template


def order(template: dict) -> list:
    """Resource logical ids in dependency order (template order breaks ties); ValidationError on a cycle."""
    resources = template["Resources"]
    deps = {}
    for name, spec in resources.items():
        wanted = dependencies(spec.get("Properties") or {})
        depends_on = spec.get("DependsOn") or []
        wanted |= set([depends_on] if isinstance(depends_on, str) else depends_on)
        deps[name] = {d for d in wanted if d in resources and d != name}
    done, result = set(), []
    while len(result) < len(resources):
        ready = [n for n in resources if n not in done and deps[n] <= done]
        if not ready:
            raise ValidationError(message=f"Circular dependency between resources: {sorted(set(resources) - done)}")
        for name in ready:
            done.add(name)
            result.append(name)
    return result


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------
class Engine:
    def __init__(self, log_dir: Path, api_wait: float = 20.0, custom_resource_timeout: float = 900.0,
                 function_env: Optional[dict] = None, async_retry_delay: float = 2.0):
        if moto.__version__ != MOTO_VERSION:
            raise RuntimeError(f"the local engine patches moto {MOTO_VERSION} internals, found moto "
                               f"{moto.__version__}: install tests/constraints.txt")
        self.log_dir = Path(log_dir)
        self.api_wait = api_wait
        self.custom_resource_timeout = custom_resource_timeout
        self.function_env = dict(function_env or {})
        self.async_retry_delay = async_retry_delay
        self.moto_url = ""
        self.pending: dict = {}        # RequestId -> {"event": threading.Event, "answers": [...]}
        self.requests: list = []       # every custom-resource request sent, with its answer
        self.responses: list = []      # every body PUT to a ResponseURL, verbatim, oldest first
        self.functions: dict = {}      # (function arn, code sha) -> LocalLambda
        self.lock = threading.RLock()
        self.control = QuietHTTPServer(("127.0.0.1", 0), self._control_handler())
        self.control_url = f"http://127.0.0.1:{self.control.server_address[1]}"

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, moto_url: str) -> "Engine":
        self.moto_url = moto_url
        self.log_dir.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self.control.serve_forever, daemon=True).start()
        self.install()
        return self

    def stop(self) -> None:
        for function in list(self.functions.values()):
            try:
                function.stop()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
        self.control.shutdown()
        self.control.server_close()

    @staticmethod
    def backend(account: str, region: str):
        return cfn_models.cloudformation_backends[account][region]

    def install(self) -> None:
        """Replace moto's stack orchestration (and Lambda invocation) with this engine's."""
        from . import engine_models

        engine_models.install()
        engine_iam.install()
        engine = self
        backend_class = cfn_models.CloudFormationBackend

        def create_stack(backend, name, template, parameters, notification_arns=None, tags=None,
                         role_arn=None, enable_termination_protection=False, timeout_in_mins=None,
                         stack_policy_body=None):
            return engine.api_create_stack(backend, name, template, parameters, tags or {})

        def update_stack(backend, name, template, role_arn, parameters, tags):
            return engine.api_update_stack(backend, name, template, parameters, tags)

        def delete_stack(backend, name_or_stack_id):
            return engine.api_delete_stack(backend, name_or_stack_id)

        def execute_change_set(backend, change_set_name, stack_name=None):
            return engine.api_execute_change_set(backend, change_set_name, stack_name)

        backend_class.create_stack = create_stack
        backend_class.update_stack = update_stack
        backend_class.delete_stack = delete_stack
        backend_class.execute_change_set = execute_change_set
        cfn_responses.CloudFormationResponse.create_change_set = _create_change_set_response(engine)
        # moto's check raises "No updates are to be performed." for UsePreviousValue-only updates
        # before reaching the backend; the engine decides that itself on the resolved values.
        cfn_responses.CloudFormationResponse._validate_different_update = lambda *a, **k: None
        cfn_responses.CloudFormationResponse._validate_status = lambda *a, **k: None

        def invoke(function, body, request_headers, response_headers):
            return engine.invoke_api(function, body, request_headers, response_headers)

        lambda_models.LambdaFunction.invoke = invoke
        # EventBridge invokes its Lambda targets asynchronously.
        engine_events.invoker = lambda function, event: engine.local_function(function).invoke_async(event)

    # -- API entry points -------------------------------------------------------------------
    def _run(self, work, stack) -> None:
        done = threading.Event()

        def target():
            try:
                work()
            except Exception as error:  # noqa: BLE001 - never leave a stack IN_PROGRESS silently
                log.exception("engine operation failed")
                stack.status = stack.status.replace("IN_PROGRESS", "FAILED") if "IN_PROGRESS" in stack.status else stack.status
                stack.stack_status_reason = f"local engine error: {error}"
            finally:
                done.set()

        threading.Thread(target=target, daemon=True, name=f"engine-{stack.name}").start()
        done.wait(self.api_wait)

    def _new_stack(self, backend, name: str, tags: dict, parent=None):
        stack_id = generate_stack_id(name, backend.region_name, backend.account_id)
        stack = cfn_models.Stack(stack_id=stack_id, name=name, template={}, parameters={},
                                 account_id=backend.account_id, region_name=backend.region_name, tags=tags)
        stack.engine = StackState({}, {}, [], parent=parent)
        stack.resource_map = ResourceView(stack.engine)
        stack.output_map = OutputView(stack.engine)
        stack.stack_status_reason = None
        if parent is not None:
            stack.parent_id = parent.stack_id
            stack.root_id = getattr(parent, "root_id", None) or parent.stack_id
        backend.stacks[stack_id] = stack
        return stack

    def api_create_stack(self, backend, name, body, parameters, tags):
        if any(s.name == name for s in backend.stacks.values()):
            raise cfn_models.AlreadyExistsException(f"Stack [{name}] already exists")
        template = parse_template(body)
        raw, values, no_echo = resolve_parameters(template, parameters)
        check_rules(self, pending_stack(backend, name), template, values)
        stack = self._new_stack(backend, name, tags)
        self._run(lambda: self.create(stack, body, template, raw, values, no_echo), stack)
        return stack

    def api_update_stack(self, backend, name, body, incoming, tags):
        stack = backend.get_stack(name)
        self._check_updatable(stack)
        template = parse_template(body)
        given = {p["ParameterKey"]: p["ParameterValue"] for p in incoming if "ParameterValue" in p}
        previous = frozenset(p["ParameterKey"] for p in incoming if p.get("UsePreviousValue"))
        raw, values, no_echo = resolve_parameters(template, given, stack.engine.raw_params, previous)
        check_rules(self, stack, template, values)
        if template == stack.engine.template and raw == stack.engine.raw_params:
            raise ValidationError(stack.name, message="No updates are to be performed.")
        self._run(lambda: self.update(stack, body, template, raw, values, no_echo), stack)
        return stack

    def api_delete_stack(self, backend, name_or_id):
        try:
            stack = backend.get_stack(name_or_id)
        except ValidationError:
            return  # deleting a stack that does not exist succeeds, as on AWS
        busy = stack.status.endswith("_IN_PROGRESS") and stack.status != "REVIEW_IN_PROGRESS"
        if stack.status == "DELETE_COMPLETE" or busy:
            return
        self._run(lambda: self.delete(stack), stack)

    def api_execute_change_set(self, backend, change_set_name, stack_name):
        change_set = backend.describe_change_set(change_set_name)
        if change_set.execution_status != "AVAILABLE":
            raise ValidationError(message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current status of [{change_set.status}]")
        stack = backend.stacks[change_set.stack_id]
        change_set.execution_status = "EXECUTE_IN_PROGRESS"
        raw, values, no_echo = change_set.engine_params
        template = change_set.template_dict

        def work():
            if change_set.change_set_type == "CREATE":
                self.create(stack, change_set.template, template, raw, values, no_echo)
            else:
                self.update(stack, change_set.template, template, raw, values, no_echo)
            ok = stack.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
            change_set.execution_status = "EXECUTE_COMPLETE" if ok else "EXECUTE_FAILED"

        self._run(work, stack)

    def _check_updatable(self, stack) -> None:
        if stack.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
            raise ValidationError(stack.stack_id, message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")

    # -- events -----------------------------------------------------------------------------
    def event(self, stack, logical_id, physical_id, resource_type, status, reason=None):
        stack.events.append(cfn_models.Event(
            stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical_id,
            physical_resource_id=physical_id or "", resource_type=resource_type,
            resource_status=status, resource_status_reason=reason, resource_properties=None))

    def stack_event(self, stack, status, reason=None):
        stack.status = status
        stack.stack_status_reason = reason
        self.event(stack, stack.name, stack.stack_id, NESTED, status, reason)

    # -- create -----------------------------------------------------------------------------
    def create(self, stack, body, template, raw, values, no_echo) -> None:
        state = stack.engine
        state.template, state.raw_params, state.no_echo = template, raw, no_echo
        stack.template, stack.template_dict = body, template
        stack.description = template.get("Description")
        self.stack_event(stack, "CREATE_IN_PROGRESS", "User Initiated")
        ctx = Context(self, stack, template, values, state.resources)
        try:
            for logical_id in order(template):
                spec = template["Resources"][logical_id]
                if spec.get("Condition") and not ctx.condition(spec["Condition"]):
                    continue
                self._create_resource(stack, ctx, logical_id, spec)
            self._finish_outputs(stack, ctx)
        except ResourceFailed as failure:
            reason = str(failure)
            self.stack_event(stack, "ROLLBACK_IN_PROGRESS", reason)
            ok = self._delete_all(stack)
            self.stack_event(stack, "ROLLBACK_COMPLETE" if ok else "ROLLBACK_FAILED", reason)
            return
        self.stack_event(stack, "CREATE_COMPLETE")

    def _create_resource(self, stack, ctx, logical_id, spec) -> Any:
        resource_type = spec["Type"]
        self.event(stack, logical_id, None, resource_type, "CREATE_IN_PROGRESS")
        props = None
        try:
            props = ctx.resolve(spec.get("Properties") or {})
            resource = self._do_create(stack, logical_id, resource_type, spec, props)
        except (ResourceFailed, ValidationError) as error:
            reason = _message(error)
            physical = getattr(error, "physical_id", None)
            if physical:  # a failed custom resource still gets its rollback Delete
                stack.engine.resources[logical_id] = CustomResource(logical_id, resource_type, physical)
                stack.engine.props[logical_id] = props
            self.event(stack, logical_id, physical, resource_type, "CREATE_FAILED", reason)
            raise ResourceFailed(f"The following resource(s) failed to create: [{logical_id}]. {reason}")
        stack.engine.resources[logical_id] = resource
        stack.engine.props[logical_id] = props
        self.event(stack, logical_id, resource.physical_resource_id, resource_type, "CREATE_COMPLETE")
        return resource

    def _do_create(self, stack, logical_id, resource_type, spec, props) -> Any:
        if is_custom(resource_type):
            answer = self.custom_request(stack, logical_id, resource_type, "Create", props)
            return CustomResource.from_answer(logical_id, resource_type, answer)
        if resource_type == NESTED:
            return NestedStack(logical_id, self._create_child(stack, logical_id, props))
        model = cfn_parsing.resource_class_from_type(resource_type)
        if model is None:
            raise ResourceFailed(f"the local engine (moto {MOTO_VERSION}) cannot create {resource_type}")
        name_property = cfn_parsing.resource_name_property_from_type(resource_type)
        name = props.get(name_property) if name_property else None
        problem = engine_rules.name_problem(resource_type, name_property, name) if name else None
        if problem:
            raise ResourceFailed(problem)
        name = name or generated_name(resource_type, stack.name, logical_id)
        if resource_type == "AWS::ElasticLoadBalancingV2::LoadBalancer":
            self._check_zones(stack, props)
        try:
            resource = model.create_from_cloudformation_json(
                name, {"Type": resource_type, "Properties": copy.deepcopy(props)}, stack.account_id,
                stack.region_name, LogicalId=logical_id, StackId=stack.stack_id, ResourceType=resource_type)
        except Exception as error:  # noqa: BLE001 - moto raises its own error types
            raise ResourceFailed(f"{resource_type} {logical_id}: {_message(error)}")
        resource.cf_resource_type = resource_type
        resource.logical_resource_id = logical_id
        self._tag(stack, logical_id, resource)
        return resource

    def _check_zones(self, stack, props) -> None:
        """An Application Load Balancer needs subnets in two Availability Zones; moto takes one."""
        if props.get("Type", "application") != "application":
            return
        subnets = list(props.get("Subnets") or []) + [m.get("SubnetId") for m in props.get("SubnetMappings") or []]
        ec2 = ec2_backends[stack.account_id][stack.region_name]
        try:
            zones = {ec2.get_subnet(subnet).availability_zone for subnet in subnets}
        except InvalidSubnetIdError:
            return  # moto refuses an unknown subnet itself
        if len(zones) < 2:
            raise ResourceFailed(engine_rules.TWO_ZONES)

    def _tag(self, stack, logical_id, resource) -> None:
        from moto.ec2.models.core import TaggedEC2Resource

        if isinstance(resource, TaggedEC2Resource):
            ec2_backends[stack.account_id][stack.region_name].create_tags([resource.physical_resource_id], {
                "aws:cloudformation:stack-name": stack.name, "aws:cloudformation:stack-id": stack.stack_id,
                "aws:cloudformation:logical-id": logical_id})

    def _finish_outputs(self, stack, ctx) -> None:
        outputs, exports = [], []
        for key, spec in (ctx.template.get("Outputs") or {}).items():
            if spec.get("Condition") and not ctx.condition(spec["Condition"]):
                continue
            value = ctx.resolve(spec.get("Value"))
            value = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            outputs.append(cfn_parsing.Output(key=key, value=value, description=spec.get("Description")))
            if spec.get("Export"):
                exports.append(cfn_parsing.Export(stack.stack_id, str(ctx.resolve(spec["Export"]["Name"])), value))
        backend = self.backend(stack.account_id, stack.region_name)
        for export in exports:
            owner = backend.exports.get(export.name)
            if owner is not None and owner.exporting_stack_id != stack.stack_id:
                raise ResourceFailed(f"Export with name {export.name} is already exported by stack {owner.exporting_stack_id}")
        for old in stack.engine.exports:
            if old.name not in {e.name for e in exports}:
                self._check_unused(backend, old.name)
                backend.exports.pop(old.name, None)
        for export in exports:
            backend.exports[export.name] = export
        stack.engine.outputs, stack.engine.exports = outputs, exports
        stack.engine.imports = set(ctx.imports)

    def _check_unused(self, backend, export_name) -> None:
        for other in backend.stacks.values():
            state = getattr(other, "engine", None)
            if state and export_name in state.imports and other.status != "DELETE_COMPLETE":
                raise ResourceFailed(f"Export {export_name} cannot be deleted as it is in use by {other.name}")

    # -- nested stacks ----------------------------------------------------------------------
    def fetch_template(self, stack, url: str) -> str:
        parts = urlparse(url)
        if parts.scheme not in ("http", "https"):
            raise ResourceFailed(f"TemplateURL '{url}' must be an S3 URL: run `aws cloudformation package` (make package) first")
        if parts.hostname in ("localhost", "127.0.0.1") or parts.hostname.startswith("s3.") or parts.hostname == "s3.amazonaws.com":
            bucket, key = parts.path.lstrip("/").split("/", 1)
        else:
            bucket, key = parts.hostname.split(".")[0], parts.path.lstrip("/")
        try:
            return s3_backends[stack.account_id]["aws"].get_object(bucket, key).value.decode()
        except Exception as error:  # noqa: BLE001
            raise ResourceFailed(f"TemplateURL {url}: {_message(error)}")

    def _child_template(self, stack, props) -> tuple:
        """(body, template, raw, values, no_echo) of a nested stack resource's properties, its
        Rules checked against `stack` (the child, or what it will be)."""
        body = self.fetch_template(stack, props.get("TemplateURL", ""))
        template = parse_template(body)
        given = {k: (",".join(v) if isinstance(v, list) else str(v)) for k, v in (props.get("Parameters") or {}).items()}
        raw, values, no_echo = resolve_parameters(template, given)
        check_rules(self, stack, template, values)
        return body, template, raw, values, no_echo

    def _create_child(self, parent, logical_id, props):
        backend = self.backend(parent.account_id, parent.region_name)
        name = cfn_parsing.generate_resource_name(NESTED, parent.name, logical_id)
        body, template, raw, values, no_echo = self._child_template(pending_stack(backend, name), props)
        child = self._new_stack(backend, name, dict(parent.tags), parent=parent)
        self.create(child, body, template, raw, values, no_echo)
        if child.status != "CREATE_COMPLETE":
            raise ResourceFailed(f"Embedded stack {child.stack_id} was not successfully created: {child.stack_status_reason}")
        return child

    # -- update -----------------------------------------------------------------------------
    def update(self, stack, body, template, raw, values, no_echo) -> None:
        state = stack.engine
        old = (stack.template, state.template, dict(state.raw_params), list(state.no_echo),
               dict(state.resources), dict(state.props), list(state.outputs), list(state.exports))
        self.stack_event(stack, "UPDATE_IN_PROGRESS", "User Initiated")
        ctx = Context(self, stack, template, values, state.resources)
        actions, cleanup = [], []
        try:
            for logical_id in order(template):
                spec = template["Resources"][logical_id]
                if spec.get("Condition") and not ctx.condition(spec["Condition"]):
                    # A resource whose condition turned false is deleted in cleanup, like a removed one.
                    state.resources.pop(logical_id, None)
                    continue
                self._update_resource(stack, ctx, logical_id, spec, old[4], old[5], actions, cleanup)
            state.template, state.raw_params, state.no_echo = template, raw, no_echo
            self._finish_outputs(stack, ctx)
        except ResourceFailed as failure:
            reason = str(failure)
            self.stack_event(stack, "UPDATE_ROLLBACK_IN_PROGRESS", reason)
            ok = self._revert(stack, actions)
            stack.template, state.template, state.raw_params, state.no_echo = old[0], old[1], old[2], old[3]
            state.resources.clear()
            state.resources.update(old[4])
            state.props.clear()
            state.props.update(old[5])
            state.outputs, state.exports = old[6], old[7]
            if ok:
                self.stack_event(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
            self.stack_event(stack, "UPDATE_ROLLBACK_COMPLETE" if ok else "UPDATE_ROLLBACK_FAILED", reason)
            return
        stack.template, stack.template_dict = body, template
        stack.description = template.get("Description")
        stack.parameters = dict(raw)
        self.stack_event(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        removed = [(lid, res) for lid, res in old[4].items() if lid not in state.resources]
        for logical_id, resource in reversed(removed):
            self._delete_resource(stack, logical_id, resource, old[1]["Resources"].get(logical_id, {}), old[5].get(logical_id))
        for logical_id, resource, props in reversed(cleanup):
            self._delete_resource(stack, logical_id, resource, template["Resources"][logical_id], props)
        for logical_id, _ in removed:
            state.props.pop(logical_id, None)
        self.stack_event(stack, "UPDATE_COMPLETE")

    def _update_resource(self, stack, ctx, logical_id, spec, old_resources, old_props, actions, cleanup):
        state = stack.engine
        resource_type = spec["Type"]
        current = old_resources.get(logical_id)
        if current is None:
            resource = self._create_resource(stack, ctx, logical_id, spec)
            actions.append(("create", logical_id, resource, None, None))
            return
        try:
            props = ctx.resolve(spec.get("Properties") or {})
        except (ResourceFailed, ValidationError) as error:
            self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_FAILED", _message(error))
            raise ResourceFailed(f"The following resource(s) failed to update: [{logical_id}]. {_message(error)}")
        if current.cf_resource_type != resource_type:
            # A new type is a new resource: create it, delete the old one during cleanup.
            del state.resources[logical_id]
            resource = self._create_resource(stack, ctx, logical_id, spec)
            actions.append(("create", logical_id, resource, None, None))
            cleanup.append((logical_id, current, old_props.get(logical_id)))
            return
        if props == old_props.get(logical_id):
            return
        if engine_rules.requires_replacement(resource_type, old_props.get(logical_id), props):
            self._replace(stack, logical_id, spec, current, old_props.get(logical_id), props, actions, cleanup)
            return
        self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_IN_PROGRESS")
        try:
            resource = self._do_update(stack, logical_id, resource_type, current, old_props.get(logical_id), props)
        except (ResourceFailed, ValidationError) as error:
            reason = _message(error)
            self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_FAILED", reason)
            if is_custom(resource_type):
                # CloudFormation rolls a failed custom resource back with an Update to the old properties.
                actions.append(("update", logical_id, current, old_props.get(logical_id), props))
            raise ResourceFailed(f"The following resource(s) failed to update: [{logical_id}]. {reason}")
        state.resources[logical_id] = resource
        state.props[logical_id] = props
        actions.append(("update", logical_id, current, old_props.get(logical_id), props))
        if resource.physical_resource_id != current.physical_resource_id and resource_type != NESTED:
            self.event(stack, logical_id, resource.physical_resource_id, resource_type, "UPDATE_COMPLETE",
                       "Requested update required the provider to create a new physical resource")
            if is_custom(resource_type):
                cleanup.append((logical_id, current, old_props.get(logical_id)))
        else:
            self.event(stack, logical_id, resource.physical_resource_id, resource_type, "UPDATE_COMPLETE")

    def _replace(self, stack, logical_id, spec, current, old_props, props, actions, cleanup) -> None:
        """A native resource whose create-only properties changed is replaced as CloudFormation does
        it: the new one first (under a new name), the old one deleted in cleanup; refused when the
        template names it and the name stays, since both cannot exist at once."""
        resource_type = spec["Type"]
        name_property = cfn_parsing.resource_name_property_from_type(resource_type)
        name = props.get(name_property) if name_property else None
        if name and name == (old_props or {}).get(name_property):
            reason = engine_rules.custom_name_replacement(name)
            self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_FAILED", reason)
            raise ResourceFailed(f"The following resource(s) failed to update: [{logical_id}]. {reason}")
        self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_IN_PROGRESS", engine_rules.REPLACING)
        try:
            resource = self._do_create(stack, logical_id, resource_type, spec, props)
        except (ResourceFailed, ValidationError) as error:
            self.event(stack, logical_id, current.physical_resource_id, resource_type, "UPDATE_FAILED", _message(error))
            raise ResourceFailed(f"The following resource(s) failed to update: [{logical_id}]. {_message(error)}")
        stack.engine.resources[logical_id] = resource
        stack.engine.props[logical_id] = props
        actions.append(("create", logical_id, resource, None, props))
        cleanup.append((logical_id, current, old_props))
        self.event(stack, logical_id, resource.physical_resource_id, resource_type, "UPDATE_COMPLETE")

    def _do_update(self, stack, logical_id, resource_type, current, old_props, props) -> Any:
        if is_custom(resource_type):
            answer = self.custom_request(stack, logical_id, resource_type, "Update", props,
                                         old_props=old_props, physical_id=current.physical_resource_id)
            return CustomResource.from_answer(logical_id, resource_type, answer)
        if resource_type == NESTED:
            self._update_child(current.stack, props)
            return current
        model = cfn_parsing.resource_class_from_type(resource_type)
        if hasattr(model.update_from_cloudformation_json, "__isabstractmethod__"):
            raise ResourceFailed(f"the local engine (moto {MOTO_VERSION}) cannot update {resource_type} {logical_id} in place")
        name_property = cfn_parsing.resource_name_property_from_type(resource_type)
        name = (props.get(name_property) if name_property else None) or getattr(current, "name", None) \
            or generated_name(resource_type, stack.name, logical_id)
        try:
            resource = model.update_from_cloudformation_json(
                original_resource=current, new_resource_name=name,
                cloudformation_json={"Type": resource_type, "Properties": copy.deepcopy(props)},
                account_id=stack.account_id, region_name=stack.region_name)
        except Exception as error:  # noqa: BLE001
            raise ResourceFailed(f"{resource_type} {logical_id}: {_message(error)}")
        resource.cf_resource_type = resource_type
        resource.logical_resource_id = logical_id
        return resource

    def _update_child(self, child, props) -> None:
        body, template, raw, values, no_echo = self._child_template(child, props)
        if template == child.engine.template and raw == child.engine.raw_params:
            return
        self.update(child, body, template, raw, values, no_echo)
        if child.status != "UPDATE_COMPLETE":
            raise ResourceFailed(f"Embedded stack {child.stack_id} was not successfully updated: {child.stack_status_reason}")

    def _revert(self, stack, actions) -> bool:
        """Undo an update's actions, newest first. True when everything was undone."""
        ok = True
        for kind, logical_id, previous, old_props, new_props in reversed(actions):
            state = stack.engine
            if kind == "create":
                ok &= self._delete_resource(stack, logical_id, previous, state.template["Resources"].get(logical_id, {}), new_props)
                continue
            resource_type = previous.cf_resource_type
            now = state.resources.get(logical_id, previous)
            self.event(stack, logical_id, now.physical_resource_id, resource_type, "UPDATE_IN_PROGRESS", "Rollback")
            try:
                if resource_type == NESTED:
                    self._update_child(now.stack, old_props)
                elif is_custom(resource_type):
                    self.custom_request(stack, logical_id, resource_type, "Update", old_props,
                                        old_props=new_props, physical_id=now.physical_resource_id)
                    if now.physical_resource_id != previous.physical_resource_id:
                        self._delete_resource(stack, logical_id, now, {}, new_props)
                else:
                    self._do_update(stack, logical_id, resource_type, now, new_props, old_props)
                self.event(stack, logical_id, previous.physical_resource_id, resource_type, "UPDATE_COMPLETE")
            except (ResourceFailed, ValidationError) as error:
                ok = False
                self.event(stack, logical_id, now.physical_resource_id, resource_type, "UPDATE_FAILED", _message(error))
        return ok

    # -- delete -----------------------------------------------------------------------------
    def delete(self, stack) -> None:
        backend = self.backend(stack.account_id, stack.region_name)
        try:
            for export in stack.engine.exports:
                self._check_unused(backend, export.name)
        except ResourceFailed as failure:
            self.stack_event(stack, "DELETE_FAILED", str(failure))
            return
        self.stack_event(stack, "DELETE_IN_PROGRESS", "User Initiated")
        if not self._delete_all(stack):
            self.stack_event(stack, "DELETE_FAILED", "The following resource(s) failed to delete: "
                             f"{sorted(stack.engine.resources)}.")
            return
        for export in stack.engine.exports:
            backend.exports.pop(export.name, None)
        stack.engine.exports, stack.engine.outputs = [], []
        self.stack_event(stack, "DELETE_COMPLETE")
        backend.stacks.pop(stack.stack_id, None)
        backend.deleted_stacks[stack.stack_id] = stack

    def _delete_all(self, stack) -> bool:
        state = stack.engine
        resources = state.template.get("Resources") or {}
        names = [n for n in (order(state.template) if resources else []) if n in state.resources]
        names += [n for n in state.resources if n not in names]
        ok = True
        for logical_id in reversed(names):
            ok &= self._delete_resource(stack, logical_id, state.resources[logical_id], resources.get(logical_id, {}),
                                        state.props.get(logical_id))
        return ok

    def _delete_resource(self, stack, logical_id, resource, spec, props) -> bool:
        resource_type = resource.cf_resource_type
        physical = resource.physical_resource_id
        if spec.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate"):
            self.event(stack, logical_id, physical, resource_type, "DELETE_SKIPPED")
            stack.engine.resources.pop(logical_id, None)
            return True
        self.event(stack, logical_id, physical, resource_type, "DELETE_IN_PROGRESS")
        try:
            if is_custom(resource_type):
                self.custom_request(stack, logical_id, resource_type, "Delete", props or {}, physical_id=physical)
            elif resource_type == NESTED:
                child = resource.stack
                if child.status != "DELETE_COMPLETE":
                    self.delete(child)
                if child.status != "DELETE_COMPLETE":
                    raise ResourceFailed(f"Embedded stack {child.stack_id} was not successfully deleted: {child.stack_status_reason}")
            else:
                self._delete_native(stack, resource, spec, props or {})
        except (ResourceFailed, ValidationError) as error:
            self.event(stack, logical_id, physical, resource_type, "DELETE_FAILED", _message(error))
            return False
        if stack.engine.resources.get(logical_id) is resource:
            del stack.engine.resources[logical_id]
        self.event(stack, logical_id, physical, resource_type, "DELETE_COMPLETE")
        return True

    def _delete_native(self, stack, resource, spec, props) -> None:
        from .engine_models import DELETERS

        resource_type = resource.cf_resource_type
        model = cfn_parsing.resource_class_from_type(resource_type)
        deleter = DELETERS.get(resource_type)
        if deleter is None and not hasattr(resource, "delete") and hasattr(model.delete_from_cloudformation_json, "__isabstractmethod__"):
            # moto would skip it silently and leave it behind; say so instead.
            raise ResourceFailed(f"the local engine (moto {MOTO_VERSION}) cannot delete {resource_type}")
        last = None
        for _ in range(3):  # retried like moto's own ordering does for dependency violations
            try:
                if deleter is not None:
                    deleter(resource, props, stack.account_id, stack.region_name)
                elif hasattr(resource, "delete"):
                    resource.delete(stack.account_id, stack.region_name)
                else:
                    model.delete_from_cloudformation_json(resource.physical_resource_id, {"Type": resource_type, **spec},
                                                          stack.account_id, stack.region_name)
                return
            except Exception as error:  # noqa: BLE001 - moto raises its own error types
                last = error
                time.sleep(0.2)
        raise ResourceFailed(f"{resource_type}: {_message(last)}")

    # -- custom resources -------------------------------------------------------------------
    def custom_request(self, stack, logical_id, resource_type, request_type, props, old_props=None,
                       physical_id=None) -> dict:
        token = props.get("ServiceToken") if isinstance(props, dict) else None
        if not token:
            raise ResourceFailed(f"{logical_id}: a custom resource needs a ServiceToken property (a Lambda function ARN)")
        try:
            function = lambda_backend(stack.account_id, stack.region_name).get_function(token)
        except Exception:  # noqa: BLE001
            raise ResourceFailed(f"{logical_id}: ServiceToken {token} is not a Lambda function in this account and region")
        request_id = str(uuid.uuid4())
        event = {
            "RequestType": request_type, "ServiceToken": token,
            "ResponseURL": f"{self.control_url}/responses/{request_id}",
            "StackId": stack.stack_id, "RequestId": request_id, "LogicalResourceId": logical_id,
            "ResourceType": resource_type, "ResourceProperties": stringify(props),
        }
        if "ServiceTimeout" in props:
            event["ServiceTimeout"] = str(props["ServiceTimeout"])
        if request_type == "Update":
            event["OldResourceProperties"] = stringify(old_props or {})
        if physical_id is not None and request_type != "Create":
            event["PhysicalResourceId"] = physical_id
        record = {"RequestType": request_type, "LogicalResourceId": logical_id, "ResourceType": resource_type,
                  "StackId": stack.stack_id, "StackName": stack.name, "RequestId": request_id,
                  "PhysicalResourceId": physical_id, "FunctionName": function.function_name,
                  "ResourceProperties": event["ResourceProperties"],
                  "OldResourceProperties": event.get("OldResourceProperties"),
                  "Answers": [], "Sent": time.time()}
        waiter = threading.Event()
        with self.lock:
            self.pending[request_id] = {"event": waiter, "record": record, "request": event}
            self.requests.append(record)
        self.local_function(function).invoke_async(event)
        timeout = float(props.get("ServiceTimeout") or self.custom_resource_timeout)
        if not waiter.wait(timeout):
            raise ResourceFailed(f"CloudFormation did not receive a response from your Custom Resource within "
                                 f"{timeout:.0f} s (function {function.function_name}, RequestId {request_id}): "
                                 f"check its log in {self.log_dir}")
        answer = self.pending[request_id]["answer"]
        if answer.get("Invalid"):
            raise ResourceFailed(f"Invalid response from {function.function_name}: {answer['Invalid']}")
        if answer["Status"] == "FAILED":
            error = ResourceFailed(f"Received response status [FAILED] from custom resource. Message returned: "
                                   f"{answer.get('Reason') or 'See the details in CloudWatch Log Stream'}")
            error.physical_id = answer.get("PhysicalResourceId") if request_type == "Create" else None
            raise error
        return answer

    def answer(self, request_id: str, body: bytes) -> tuple:
        with self.lock:
            self.responses.append({"RequestId": request_id, "Body": body.decode("utf-8", "replace")})
            pending = self.pending.get(request_id)
        if pending is None:
            return 404, {"error": f"no custom-resource request {request_id} is waiting for an answer"}
        record, request = pending["record"], pending["request"]
        problem = None
        try:
            answer = json.loads(body)
        except ValueError as error:
            answer, problem = {}, f"the body is not JSON: {error}"
        if not problem:
            if len(body) > 4096:
                problem = f"the response body is {len(body)} bytes, over CloudFormation's 4096-byte limit"
            elif answer.get("Status") not in ("SUCCESS", "FAILED"):
                problem = f"Status must be SUCCESS or FAILED, got {answer.get('Status')!r}"
            elif not answer.get("PhysicalResourceId"):
                problem = "PhysicalResourceId is missing or empty"
            else:
                for key in ("StackId", "RequestId", "LogicalResourceId"):
                    if answer.get(key) != request[key]:
                        problem = f"{key} {answer.get(key)!r} does not match the request ({request[key]!r})"
                        break
            if not problem and answer.get("Data") is not None and not isinstance(answer.get("Data"), dict):
                problem = "Data must be a JSON object"
        if problem:
            answer = dict(answer, Invalid=problem)
        with self.lock:
            record["Answers"].append({k: answer.get(k) for k in ("Status", "Reason", "PhysicalResourceId", "Invalid")}
                                     | {"DataKeys": sorted((answer.get("Data") or {}).keys()) if isinstance(answer.get("Data"), dict) else [],
                                        "At": time.time()})
            first = len(record["Answers"]) == 1
            if first:
                pending["answer"] = answer
        if first:
            pending["event"].set()
        return 200, {}

    # -- Lambda -----------------------------------------------------------------------------
    def local_function(self, function) -> LocalLambda:
        key = (function.function_arn, function.code_sha_256, function.role)
        with self.lock:
            runner = self.functions.get(key)
            if runner is not None:
                return runner
            code = getattr(function, "code_bytes", b"") or b""
            if not code:
                raise ResourceFailed(f"Lambda function {function.function_name} has no zip code in the emulator")
            folder = self.log_dir / "functions" / f"{function.function_name}-{hashlib.sha256(code).hexdigest()[:12]}"
            folder.mkdir(parents=True, exist_ok=True)
            try:
                with zipfile.ZipFile(io.BytesIO(code)) as archive:
                    archive.extract("bootstrap", folder)
            except (KeyError, zipfile.BadZipFile) as error:
                raise ResourceFailed(f"Lambda function {function.function_name}: the zip must hold an executable "
                                     f"named bootstrap (provided.al2023): {error}")
            binary = folder / "bootstrap"
            binary.chmod(0o755)
            machine = _elf_machine(binary)
            host = {"x86_64": "x86_64", "AMD64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
            if machine and host and machine != host:
                raise ResourceFailed(f"Lambda function {function.function_name} was built for {machine}; this machine "
                                     f"runs {host}: build the zips for {host} (make build without ARCH=arm64)")
            env = dict(function.environment_vars or {})
            env.update(self.function_env)
            env.update(engine_iam.credentials(function))
            # The hand-over's Invoke goes through moto's Lambda API too, so IAM sees it.
            env.update({"AWS_ENDPOINT_URL": self.moto_url, "AWS_ENDPOINT_URL_LAMBDA": self.moto_url,
                        "RESPONSE_URL_ALLOWED_PREFIXES": f"{self.control_url}/responses/"})
            runner = LocalLambda(function.function_name, binary, self.log_dir, timeout=float(function.timeout or 3),
                                 env=env, retry_delay=self.async_retry_delay).start()
            self.functions[key] = runner
            return runner

    def invoke_api(self, function, body, request_headers, response_headers):
        """moto's Invoke API, routed to the real binary."""
        payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
        payload = payload.encode() if isinstance(payload, str) else payload
        kind = request_headers.get("x-amz-invocation-type", "RequestResponse")
        invocation = self.local_function(function).invoke(payload, kind)
        if kind == "Event":
            return b""
        if invocation.outcome != "success":
            response_headers["x-amz-function-error"] = "Unhandled"
        return invocation.result

    # -- control server ---------------------------------------------------------------------
    def control_action(self, path: str, body: dict) -> tuple:
        """What a test or the demo makes happen: time passing for scheduled rules, a Spot reclaim."""
        account, region = body.get("Account", DEFAULT_ACCOUNT), body.get("Region", DEFAULT_REGION)
        if path == "/events/schedule":
            fired = engine_events.fire_schedules(account, region, float(body.get("Time") or time.time()))
            return 200, {"Fired": fired}
        if path == "/ecs/interrupt-spot":
            from moto.ecs.models import ecs_backends

            try:
                stopped = engine_ecs.interrupt_spot(ecs_backends[account][region], body["Cluster"], body["Service"])
            except (KeyError, StopIteration):
                return 404, {"error": f"no active service {body.get('Service')} in cluster {body.get('Cluster')}"}
            return 200, {"Stopped": stopped}
        return 404, {"error": "unknown path"}

    def _control_handler(self):
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, payload):
                body = json.dumps(payload, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                match = re.fullmatch(r"/responses/([0-9a-f-]+)", self.path.split("?")[0])
                if not match:
                    return self._send(404, {"error": "unknown path"})
                status, payload = engine.answer(match.group(1), body)
                self._send(status, payload)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                status, payload = engine.control_action(self.path.split("?")[0], body)
                self._send(status, payload)

            def do_GET(self):
                if self.path == "/events":
                    return self._send(200, engine_events.deliveries())
                if self.path == "/calls":
                    with engine_iam._calls_lock:
                        return self._send(200, list(engine_iam.calls))
                if self.path == "/requests":
                    with engine.lock:
                        records = [dict(r, Answers=list(r["Answers"])) for r in engine.requests]
                    return self._send(200, records)
                if self.path == "/responses":
                    with engine.lock:
                        return self._send(200, list(engine.responses))
                if self.path == "/health":
                    return self._send(200, {"moto": engine.moto_url, "functions": len(engine.functions)})
                self._send(404, {"error": "unknown path"})

        return Handler


def _create_change_set_response(engine: Engine):
    """CreateChangeSet as CloudFormation does it: UsePreviousValue resolved against the stack (or the
    defaults on CREATE), an empty change set FAILED with the message `aws cloudformation deploy`
    recognises, the resolved parameters kept for ExecuteChangeSet."""

    def create_change_set(self) -> ActionResult:
        backend = self.cloudformation_backend
        stack_name = self._get_param("StackName")
        change_set_name = self._get_param("ChangeSetName")
        validate_create_change_set(change_set_name)
        kind = self._get_param("ChangeSetType", "UPDATE")
        body = self._get_param("TemplateBody")
        url = self._get_param("TemplateURL")
        incoming = self._get_param("Parameters", [])
        tags = {item["Key"]: item["Value"] for item in self._get_param("Tags", [])}
        existing = next((s for s in backend.stacks.values() if s.name == stack_name), None)
        if kind == "CREATE" and existing is not None and existing.status != "REVIEW_IN_PROGRESS":
            raise ValidationError(message=f"Stack [{stack_name}] already exists and cannot be created again with the changeSet [{change_set_name}].")
        if kind == "UPDATE" and existing is None:
            raise ValidationError(message=f"Stack [{stack_name}] does not exist")
        if self._get_bool_param("UsePreviousTemplate", False):
            body = existing.template
        elif url:
            body = self._get_stack_from_s3_url(url)
        template = parse_template(body)
        given = {p["ParameterKey"]: p["ParameterValue"] for p in incoming if "ParameterValue" in p}
        previous = frozenset(p["ParameterKey"] for p in incoming if p.get("UsePreviousValue"))
        prior = existing.engine.raw_params if kind == "UPDATE" else None
        raw, values, no_echo = resolve_parameters(template, given, prior, previous if kind == "UPDATE" else frozenset())
        check_rules(engine, existing if kind == "UPDATE" else pending_stack(backend, stack_name), template, values)
        if kind == "UPDATE":
            engine._check_updatable(existing)
            stack = existing
        else:
            stack = existing or engine._new_stack(backend, stack_name, tags)
            if existing is None:
                engine.stack_event(stack, "REVIEW_IN_PROGRESS", "User Initiated")
        change_set_id = generate_changeset_id(change_set_name, backend.region_name, backend.account_id)
        change_set = cfn_models.ChangeSet.__new__(cfn_models.ChangeSet)
        change_set.change_set_type, change_set.change_set_id, change_set.change_set_name = kind, change_set_id, change_set_name
        change_set.stack, change_set.stack_id, change_set.stack_name = stack, stack.stack_id, stack.name
        change_set.notification_arns, change_set.description = [], self._get_param("Description")
        change_set.tags, change_set.role_arn = tags, self._get_param("RoleARN")
        change_set.template, change_set.template_dict, change_set.parameters = body, template, dict(raw)
        change_set.engine_params = (raw, values, no_echo)
        change_set.creation_time = cfn_models.utcnow()
        change_set.changes = _changes(stack, template, raw, kind)
        if kind == "UPDATE" and template == stack.engine.template and raw == stack.engine.raw_params:
            change_set.status, change_set.execution_status = "FAILED", "UNAVAILABLE"
            change_set.status_reason = ("The submitted information didn't contain changes. Submit different "
                                        "information to create a change set.")
        else:
            change_set.status, change_set.execution_status, change_set.status_reason = "CREATE_COMPLETE", "AVAILABLE", None
        backend.change_sets[change_set_id] = change_set
        return ActionResult({"Id": change_set_id, "StackId": stack.stack_id})

    return create_change_set


def _changes(stack, template, raw, kind) -> list:
    """Change-set entries: Add/Remove by logical id; Modify where the template entry changed or it
    refers (directly or through other resources) to a parameter whose value changed."""
    new = template["Resources"]
    if kind == "CREATE":
        return [cfn_models.Change("Add", name, spec["Type"]) for name, spec in new.items()]
    old = stack.engine.template.get("Resources") or {}
    changed = {k for k in set(raw) | set(stack.engine.raw_params) if raw.get(k) != stack.engine.raw_params.get(k)}
    modified = {n for n in new if n in old and new[n] != old[n]} | {n for n in new if n in old and dependencies(new[n]) & changed}
    grew = True
    while grew:
        more = {n for n in new if n in old and n not in modified and dependencies(new[n]) & modified}
        grew = bool(more)
        modified |= more
    changes = [cfn_models.Change("Add", n, s["Type"]) for n, s in new.items() if n not in old]
    changes += [cfn_models.Change("Modify", n, new[n]["Type"]) for n in new if n in modified]
    changes += [cfn_models.Change("Remove", n, s["Type"]) for n, s in old.items() if n not in new]
    return changes


def _message(error: Exception) -> str:
    for attribute in ("message", "description"):
        value = getattr(error, attribute, None)
        if isinstance(value, str) and value:
            return value
    return str(error) or type(error).__name__


def _elf_machine(path: Path) -> Optional[str]:
    with open(path, "rb") as handle:
        header = handle.read(20)
    if header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little")
    return {0x3E: "x86_64", 0xB7: "arm64"}.get(machine)
