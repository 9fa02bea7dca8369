"""The CloudFormation template language as the local engine reads it, apart from running stacks:
YAML/JSON parsing with the short forms, parameters (types, AllowedValues, AllowedPattern,
Min/MaxValue, required, unknown names), the Rules section, intrinsic functions and conditions
(`Scope`), dependency order, and generated physical names. Unit tested in tests/test_engine.py.
Lookups into the emulated account (exports for Fn::ImportValue, zones for Fn::GetAZs, EC2 values
for rules) are the only state it reads."""
import base64
import re
from types import SimpleNamespace
from typing import Any, Callable, Optional

import yaml
from moto.cloudformation import parsing as cfn_parsing
from moto.cloudformation.exceptions import ValidationError
from moto.ec2.models import ec2_backends

from . import engine_rules

MOTO_VERSION = "5.2.5"
NOVALUE = object()


class ResourceFailed(Exception):
    """A resource operation failed; the message is the event's ResourceStatusReason."""


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


class Scope:
    """Resolves a template's intrinsic functions against one stack's parameters and resources.
    `exports(account, region)` gives the region's exports by name (for Fn::ImportValue)."""

    def __init__(self, exports: Optional[Callable], stack, template: dict, values: dict, resources: dict):
        self.exports = exports
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
            export = self.exports(self.account, self.region).get(name) if self.exports else None
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


class RuleScope(Scope):
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


def check_rules(exports: Optional[Callable], stack, template: dict, values: dict) -> None:
    """The template's Rules, before anything changes: a false assertion refuses the operation with
    its AssertDescription; a rule whose RuleCondition is false is skipped."""
    ctx = RuleScope(exports, stack, template, values, {})
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


