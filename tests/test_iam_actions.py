"""Every provider role grants exactly the IAM actions its function's code needs.

Pure Python, no AWS, no server, no cargo. For every crate functions/<name> that is deployed by an
AWS::Lambda::Function of cloudformation/provider.yaml (its Code S3Key ends with <binary>.zip), the
test derives the AWS operations the Rust code calls and compares them with the Allow actions of the
function's role (Role: !GetAtt X.Arn):

* operations: every `<client>.<op>()` call in the crate's src/ and in the src/ of its path
  dependencies (the shared custom-resource library hands long waits over with lambda Invoke), with
  comments, string literals and #[cfg(test)] items removed. The client a call is made on is found
  from the declared types (`ec2: aws_sdk_ec2::Client`, `let c = aws_sdk_ecs::Client::new(..)`,
  `use` aliases, getters returning a client); the method must be an operation of that SDK crate (the
  directories of ~/.cargo/registry/src/*/aws-sdk-*/src/operation/, version from Cargo.lock; waiters
  map to the operation they poll). The operation's API name comes from the SDK source, the IAM
  prefix from IAM_PREFIX, exceptions from ACTION_OVERRIDES.
* plus the actions AWS checks although the code does not call them: EXTRA_REQUIREMENTS, one dict,
  each entry with its reason and documentation source.
* granted: the Allow statements of the role's inline Policies, of AWS::IAM::Policy / RolePolicy /
  ManagedPolicy resources attached to it, and of its ManagedPolicyArns; wildcards (ec2:Describe*)
  cover what they match; an unconditional Deny removes coverage.

The failure lists, per role, the actions to add (with why) and to remove (granted, matched by no
needed action). Limits: resources and conditions of statements are not compared; a client reached
in a way the declarations do not show is reported as unattributable rather than guessed; setters
that make an extra requirement apply are looked for in the Rust fn that makes the call.
"""
import fnmatch
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from harness.rust_calls import (FUNCTIONS, binaries, crate_calls, crate_closure, crate_sources, pascal,  # tests/ is on sys.path
                                sdk_operations)
from harness.template import parse_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "cloudformation" / "provider.yaml"

# SDK crate (aws-sdk-<key>) -> IAM service prefix (Service Authorization Reference). A crate missing
# here fails the test with a message asking to add it (s3 is left out on purpose: its operations do
# not map 1:1 to actions, e.g. ListObjectsV2 -> s3:ListBucket, and would need ACTION_OVERRIDES).
IAM_PREFIX = {
    "acm": "acm",
    "applicationautoscaling": "application-autoscaling",
    "autoscaling": "autoscaling",
    "cloudformation": "cloudformation",
    "cloudwatch": "cloudwatch",
    "cloudwatchlogs": "logs",
    "dynamodb": "dynamodb",
    "ec2": "ec2",
    "ecr": "ecr",
    "ecs": "ecs",
    "efs": "elasticfilesystem",
    "elasticloadbalancing": "elasticloadbalancing",
    "elasticloadbalancingv2": "elasticloadbalancing",
    "eventbridge": "events",
    "iam": "iam",
    "kms": "kms",
    "lambda": "lambda",
    "route53": "route53",
    "secretsmanager": "secretsmanager",
    "servicediscovery": "servicediscovery",
    "sns": "sns",
    "sqs": "sqs",
    "ssm": "ssm",
    "sts": "sts",
}

# (IAM prefix, API operation) -> the actions it is authorized by, where that is not prefix:Operation.
ACTION_OVERRIDES = {
    # Lambda API reference, Invoke, and Service Authorization Reference 'Actions, resources, and
    # condition keys for AWS Lambda' (https://docs.aws.amazon.com/service-authorization/latest/
    # reference/list_awslambda.html): the Invoke operation is authorized by lambda:InvokeFunction.
    ("lambda", "Invoke"): ("lambda:InvokeFunction",),
}

@dataclass(frozen=True)
class Need:
    action: str
    reason: str
    source: str
    # Only when the Rust fn that makes the trigger call (scope "fn") or any file of the crate (scope
    # "crate") calls one of these builder setters; None: always.
    setters: tuple = None
    scope: str = "fn"


LAMBDA_LOGS = ("AWS Lambda Developer Guide, 'Sending Lambda function logs to CloudWatch Logs', Required "
               "IAM permissions (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html)")
AAS_ECS = ("Application Auto Scaling User Guide, 'Application Auto Scaling identity-based policy examples', "
           "Permissions required for API actions on target services and CloudWatch, ECS services "
           "(https://docs.aws.amazon.com/autoscaling/application/userguide/security_iam_id-based-policy-examples.html"
           "#permissions-for-ecs-services)")
AAS_SLR = ("Application Auto Scaling User Guide, 'Service-linked roles for Application Auto Scaling', "
           "Permissions required to create a service-linked role "
           "(https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-service-linked-roles.html)")
ECS_TAG_ON_CREATE = ("Amazon ECS Developer Guide, 'Grant permission to tag resources on creation' "
                     "(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/supported-iam-actions-tagging.html)")
PASS_ROLE = ("IAM User Guide, 'Grant a user permissions to pass a role to an AWS service' "
             "(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html): the role is passed "
             "by the request that names it (a task definition's roles are passed by RegisterTaskDefinition, so "
             "CreateService/UpdateService pass a role only through role/infrastructureRoleArn/roleArn)")
TARGET_TRACKING = ("target_tracking_scaling_policy_configuration", "set_target_tracking_scaling_policy_configuration")
ECS_ROLE_SETTERS = ("role", "set_role", "infrastructure_role_arn", "set_infrastructure_role_arn",
                    "role_arn", "set_role_arn")
ECS_TASK_ROLE_SETTERS = ("task_role_arn", "set_task_role_arn", "execution_role_arn", "set_execution_role_arn")

LAMBDA_DLQ = ("AWS Lambda Developer Guide, 'Adding a dead-letter queue', Execution role permissions: "
              "\"sqs:SendMessage\" for an Amazon SQS queue "
              "(https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html#invocation-dlq)")

# THE extra requirements: trigger -> actions AWS checks although the code does not call them.
# Triggers: "*" every deployed function; "*:own-log-group" every function whose template declares no
# AWS::Logs::LogGroup for it (Lambda then creates the group); "*:sqs-dead-letter-queue" every
# function whose DeadLetterConfig targets an SQS queue; otherwise an action the code calls.
EXTRA_REQUIREMENTS = {
    "*:sqs-dead-letter-queue": [
        Need("sqs:SendMessage", "Lambda sends events that failed every retry to the function's SQS "
             "dead-letter queue with its execution role", LAMBDA_DLQ),
    ],
    "*": [
        Need("logs:CreateLogStream", "Lambda writes the function's logs with its execution role", LAMBDA_LOGS),
        Need("logs:PutLogEvents", "Lambda writes the function's logs with its execution role", LAMBDA_LOGS),
    ],
    "*:own-log-group": [
        Need("logs:CreateLogGroup", "no AWS::Logs::LogGroup in the template for this function: Lambda creates it",
             LAMBDA_LOGS),
    ],
    "application-autoscaling:RegisterScalableTarget": [
        Need("iam:CreateServiceLinkedRole", "the first RegisterScalableTarget for ECS creates the "
             "AWSServiceRoleForApplicationAutoScaling_ECSService service-linked role", AAS_SLR),
        Need("ecs:DescribeServices", "required to configure Application Auto Scaling for an ECS service", AAS_ECS),
        Need("ecs:UpdateService", "required to configure Application Auto Scaling for an ECS service", AAS_ECS),
    ],
    "application-autoscaling:PutScalingPolicy": [
        Need("cloudwatch:DescribeAlarms", "a target tracking policy's CloudWatch alarms are created for it",
             AAS_ECS, setters=TARGET_TRACKING),
        Need("cloudwatch:PutMetricAlarm", "a target tracking policy's CloudWatch alarms are created for it",
             AAS_ECS, setters=TARGET_TRACKING),
    ],
    "application-autoscaling:DeleteScalingPolicy": [
        Need("cloudwatch:DeleteAlarms", "deleting a target tracking policy deletes its CloudWatch alarms",
             AAS_ECS, setters=TARGET_TRACKING, scope="crate"),
    ],
    "ecs:CreateService": [
        Need("ecs:TagResource", "CreateService with tags is authorized on ecs:TagResource too", ECS_TAG_ON_CREATE,
             setters=("tags", "set_tags")),
        Need("iam:PassRole", "the request passes an IAM role to ECS", PASS_ROLE, setters=ECS_ROLE_SETTERS),
    ],
    "ecs:UpdateService": [
        Need("iam:PassRole", "the request passes an IAM role to ECS", PASS_ROLE, setters=ECS_ROLE_SETTERS),
    ],
    "ecs:RegisterTaskDefinition": [
        Need("ecs:TagResource", "RegisterTaskDefinition with tags is authorized on ecs:TagResource too",
             ECS_TAG_ON_CREATE, setters=("tags", "set_tags")),
        Need("iam:PassRole", "the task definition names a task or execution role", PASS_ROLE,
             setters=ECS_TASK_ROLE_SETTERS),
    ],
    "ecs:RunTask": [
        Need("iam:PassRole", "the overrides name a task or execution role", PASS_ROLE, setters=ECS_TASK_ROLE_SETTERS),
    ],
}

# AWS managed policies the roles may attach, by name -> their Allow actions.
AWS_MANAGED_POLICIES = {
    # 'AWSLambdaBasicExecutionRole - AWS Managed Policy'
    # (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html)
    "AWSLambdaBasicExecutionRole": ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"),
}


# --- The template ---------------------------------------------------------------------------------

# The templates whose functions run our crates: the provider's and the Spot fallback's (their
# logical ids do not collide, so one resource map holds both).
FUNCTION_TEMPLATES = (TEMPLATE, TEMPLATE.parent / "spot-fallback.yaml")


@lru_cache(maxsize=None)
def template() -> dict:
    resources: dict = {}
    for path in FUNCTION_TEMPLATES:
        found = parse_template(path.read_text())["Resources"]
        assert not set(found) & set(resources), f"{path.name} reuses a logical id of another function template"
        resources.update(found)
    return {"Resources": resources}


def _text(value) -> str:
    """The literal text of a CloudFormation string expression (Fn::Sub/Fn::Join parts kept)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Fn::Sub":
            return _text(arg[0] if isinstance(arg, list) else arg)
        if key == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
            return str(arg[0]).join(_text(p) for p in arg[1])
    return ""


def _ref(value):
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        getatt = value.get("Fn::GetAtt")
        if isinstance(getatt, list) and getatt[1:] == ["Arn"]:
            return getatt[0]
    return None


def lambda_functions() -> dict:
    resources = template()["Resources"]
    return {name: spec for name, spec in resources.items() if spec.get("Type") == "AWS::Lambda::Function"}


def deployed_crates() -> tuple[dict, list[str], list[str]]:
    """{role logical id: [(crate dir, function logical id)]}, template problems, uncovered crates."""
    crates = {}
    for cargo in sorted(FUNCTIONS.glob("*/Cargo.toml")):
        for binary in binaries(cargo.parent):
            crates[binary] = cargo.parent
    roles, problems, covered, uncovered = {}, [], set(), []
    resources = template()["Resources"]
    for name, spec in lambda_functions().items():
        props = spec.get("Properties") or {}
        key = _text((props.get("Code") or {}).get("S3Key"))
        if not key.endswith(".zip"):
            uncovered.append(f"{name}: its code is not an S3 <binary>.zip, so its role is not checked")
            continue
        binary = key.rsplit("/", 1)[-1].removesuffix(".zip")
        if binary not in crates:
            problems.append(f"{name}: its code {key} is no functions/<crate> binary (none is named {binary})")
            continue
        role = _ref(props.get("Role"))
        if role not in resources or resources[role].get("Type") != "AWS::IAM::Role":
            problems.append(f"{name}: Role is not !GetAtt <an AWS::IAM::Role of the template>.Arn")
            continue
        roles.setdefault(role, []).append((crates[binary], name))
        covered.add(binary)
    uncovered += [f"functions/{crates[b].name} (binary {b}): no AWS::Lambda::Function of provider.yaml or spot-fallback.yaml has "
                  f"S3Key .../{b}.zip, so its role is not checked" for b in sorted(set(crates) - covered)]
    return roles, problems, uncovered


def _list(value) -> list:
    return value if isinstance(value, list) else [value] if value is not None else []


def role_statements(role: str) -> tuple[list[dict], list[str]]:
    """Every statement that applies to `role`, and what could not be evaluated."""
    resources = template()["Resources"]
    props = resources[role].get("Properties") or {}
    documents = [p.get("PolicyDocument") for p in _list(props.get("Policies"))]
    problems = []
    for name, spec in resources.items():
        kind, p = spec.get("Type"), spec.get("Properties") or {}
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and \
                any(_ref(r) == role for r in _list(p.get("Roles"))):
            documents.append(p.get("PolicyDocument"))
        elif kind == "AWS::IAM::RolePolicy" and _ref(p.get("RoleName")) == role:
            documents.append(p.get("PolicyDocument"))
    statements = [s for d in documents if isinstance(d, dict) for s in _list(d.get("Statement"))]
    for arn in _list(props.get("ManagedPolicyArns")):
        target = _ref(arn)
        if target in resources and resources[target].get("Type") == "AWS::IAM::ManagedPolicy":
            if not any(_ref(r) == role for r in _list((resources[target].get("Properties") or {}).get("Roles"))):
                statements += _list(((resources[target].get("Properties") or {}).get("PolicyDocument") or {})
                                    .get("Statement"))
            continue
        managed = _text(arn).rsplit("/", 1)[-1]
        if managed in AWS_MANAGED_POLICIES:
            statements.append({"Effect": "Allow", "Action": list(AWS_MANAGED_POLICIES[managed]), "Resource": "*"})
        else:
            problems.append(f"managed policy {_text(arn) or arn} cannot be evaluated (add it to AWS_MANAGED_POLICIES)")
    return [s for s in statements if isinstance(s, dict)], problems


def has_sqs_dead_letter_queue(function: str) -> bool:
    resources = template()["Resources"]
    target = _ref(((resources[function].get("Properties") or {}).get("DeadLetterConfig") or {}).get("TargetArn"))
    return target in resources and resources[target].get("Type") == "AWS::SQS::Queue"


def has_own_log_group(function: str) -> bool:
    resources = template()["Resources"]
    props = resources[function].get("Properties") or {}
    group = _ref((props.get("LoggingConfig") or {}).get("LogGroup"))
    if group in resources and resources[group].get("Type") == "AWS::Logs::LogGroup":
        return True
    name = _text(props.get("FunctionName"))
    return bool(name) and any(
        spec.get("Type") == "AWS::Logs::LogGroup"
        and _text((spec.get("Properties") or {}).get("LogGroupName")) == f"/aws/lambda/{name}"
        for spec in resources.values())


# --- Comparison -----------------------------------------------------------------------------------

def _matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower().replace("[", "[[]"))


# The library's calls made only by its protocol driver (the hand-over of long waits): a crate that
# uses the library without running the driver (`custom_resource::run`, e.g. spot-fallback, an
# EventBridge target) never makes them.
PROTOCOL_ONLY = ("functions/custom-resource/src/handover.rs",)


def runs_the_protocol_driver(crate_dir: Path) -> bool:
    return any("custom_resource::run(" in f.code for f in crate_sources(crate_dir))


def needed_actions(role: str, members: list) -> tuple[dict, list[str]]:
    """{action: [why]} the functions of `role` need, and the derivation problems."""
    needed, problems = {}, []

    def need(action, why):
        needed.setdefault(action, [])
        if why not in needed[action]:
            needed[action].append(why)

    for crate_dir, function in members:
        label = f"functions/{crate_dir.name}"
        calls = []
        runs_protocol = runs_the_protocol_driver(crate_dir)
        for part in crate_closure(crate_dir):
            part_calls, part_problems = crate_calls(part)
            calls += [c for c in part_calls if runs_protocol or not c.where.startswith(PROTOCOL_ONLY)]
            problems += part_problems
        if not calls:
            problems.append(f"{label}: no AWS SDK call found (is the derivation still right?)")
        called = {}
        for call in calls:
            prefix = IAM_PREFIX.get(call.service)
            if prefix is None:
                problems.append(f"{call.where}: aws-sdk-{call.service} has no IAM prefix in IAM_PREFIX")
                continue
            api = (sdk_operations(call.service) or {}).get(call.operation) or pascal(call.operation)
            note = "" if call.verified else f" (aws-sdk-{call.service} source not downloaded: not checked as an operation)"
            for action in ACTION_OVERRIDES.get((prefix, api), (f"{prefix}:{api}",)):
                need(action, f"called: {call.where} {call.receiver}.{call.operation}(){note}")
                called.setdefault(action.lower(), []).append(call)
        triggers = [("*", None)] + ([] if has_own_log_group(function) else [("*:own-log-group", None)])
        triggers += [("*:sqs-dead-letter-queue", None)] if has_sqs_dead_letter_queue(function) else []
        triggers += [(trigger, c) for trigger in EXTRA_REQUIREMENTS for c in called.get(trigger.lower(), [])]
        files = {f.rel: f for part in crate_closure(crate_dir) for f in crate_sources(part)}
        for trigger, call in triggers:
            for req in EXTRA_REQUIREMENTS.get(trigger, []):
                if req.setters:
                    setter = re.compile(r"\.\s*(?:" + "|".join(map(re.escape, req.setters)) + r")\s*\(")
                    if req.scope == "fn":
                        rel, start, end = call.fn_span
                        texts = [files[rel].code[start:end + 1]]
                    else:
                        texts = [f.code for f in crate_sources(call.crate)]
                    if not any(setter.search(t) for t in texts):
                        continue
                origin = f"{trigger} at {call.where}" if call else f"{label} is a Lambda function"
                need(req.action, f"{req.reason} [{origin}; {req.source}]")
    return needed, problems


def granted_patterns(statements: list[dict]) -> tuple[list[str], list[str], list[list[str]]]:
    allow, deny, not_action = [], [], []
    for s in statements:
        actions = [a for a in _list(s.get("Action")) if isinstance(a, str)]
        if s.get("Effect") == "Allow":
            allow += actions
            if "NotAction" in s:
                not_action.append([a for a in _list(s["NotAction"]) if isinstance(a, str)])
        elif s.get("Effect") == "Deny" and "Condition" not in s:
            deny += actions
    return allow, deny, not_action


def role_report(role: str, members: list) -> str:
    needed, problems = needed_actions(role, members)
    statements, statement_problems = role_statements(role)
    problems += statement_problems
    allow, deny, not_action = granted_patterns(statements)

    def covered(action):
        allowed = any(_matches(p, action) for p in allow) or \
            any(not any(_matches(p, action) for p in excluded) for excluded in not_action)
        return allowed and not any(_matches(p, action) for p in deny)

    add = {a: why for a, why in needed.items() if not covered(a)}
    remove = sorted({p for p in allow if not any(_matches(p, a) for a in needed)}, key=str.lower)
    if not (add or remove or problems):
        return ""
    functions = ", ".join(f"{fn} (functions/{crate.name})" for crate, fn in members)
    lines = [f"{role} — role of {functions}:"]
    if add:
        lines.append("  actions to ADD (the code needs them, the role does not allow them):")
        for action in sorted(add, key=str.lower):
            lines.append(f"    + {action}")
            lines += [f"        {why}" for why in add[action]]
    if remove:
        lines.append("  actions to REMOVE (the role allows them, no code path needs them):")
        lines += [f"    - {pattern}" for pattern in remove]
    if problems:
        lines.append("  could not derive:")
        lines += [f"    ! {p}" for p in sorted(set(problems))]
    return "\n".join(lines)


# --- Tests ----------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def fresh_state():
    """Overrides conftest's: these tests read files only, no moto server to start or reset."""
    yield


@pytest.fixture(scope="session", autouse=True)
def every_body_fits():
    """Overrides conftest's: no CloudFormation stand-in either."""
    yield


ROLES, TEMPLATE_PROBLEMS, UNCOVERED = deployed_crates()


def test_every_function_has_a_crate_and_a_template_role():
    assert not TEMPLATE_PROBLEMS, "provider.yaml functions that cannot be checked:\n" + "\n".join(TEMPLATE_PROBLEMS)
    assert ROLES, "no AWS::Lambda::Function of provider.yaml runs a functions/<crate> binary"
    for note in UNCOVERED:
        warnings.warn(note)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_role_grants_exactly_what_the_code_needs(role):
    report = role_report(role, ROLES[role])
    if UNCOVERED and report:
        report += "\n  (not checked: " + "; ".join(UNCOVERED) + ")"
    if report:
        pytest.fail("\n" + report, pytrace=False)
