"""IAM in the local engine: a provider function's AWS calls are authorized against the role the
template gives the function, and refused as AWS refuses them.

moto 5.2.5 authorizes no request (its default) or, once INITIAL_NO_AUTH_ACTION_COUNT requests have
passed, every request (the tests' clients and the aws CLI use keys no IAM user owns, so all would
fail), and its evaluator checks every action against "*". Instead:

* each Lambda process gets temporary credentials of its function's role from moto's STS
  (AssumeRole, the session named after the function, as Lambda does), not the fixed test keys
  (`credentials`, called by harness.engine when it starts the process);
* in the engine process, a request signed with the key of a role session moto's STS issued is
  authorized before moto handles it (`install` wraps BaseResponse.call_action); a request signed
  with any other key is not authorized, as before;
* the role's identity-based policies as IAM holds them at that moment count: inline policies
  (the template's Policies and AWS::IAM::Policy resources attached to it) and attached managed
  policies (`decide`): an unconditional Deny refuses, otherwise some Allow must match the action
  and the resource; actions are matched case-insensitively with * and ? wildcards;
* resources: RESOURCES derives the ARNs AWS authorizes for the calls whose ARNs follow from the
  request (Lambda Invoke, ECS services and clusters, SSM parameters, CloudWatch alarms, ECR
  repositories, SimulatePrincipalPolicy); actions without resource types (NO_RESOURCE) need a
  statement whose Resource is "*"; any other action is authorized at action level: some Allow
  statement must match it, whatever its Resource.
Not evaluated: Condition blocks (an Allow with one counts, a Deny with one does not), policy
variables, permission boundaries, session policies, SCPs, resource-based policies, the other
actions AWS checks for a call (iam:PassRole, tag-on-create permissions; tests/test_iam_actions.py
checks those statically), signatures and expiry of the keys.

Knob LOCAL_AWS_IAM=off (read when a function's process starts): the process gets the fixed test
credentials and nothing it does is authorized. Pinned to moto 5.2.5 (MOTO_VERSION).
"""
import json
import logging
import re
import threading
import time
import warnings
from typing import Callable, Iterable, NamedTuple, Optional
from urllib.parse import parse_qsl, unquote

from moto.core.exceptions import ServiceException

from . import aws_rules

MOTO_VERSION = "5.2.5"
log = logging.getLogger("local-engine")

# How long a function's role credentials last. Lambda renews them; the engine never expires them.
SESSION_SECONDS = 43200

# Credential-scope service (SigV4 signing name) -> IAM service prefix, where they differ.
PREFIXES = {"monitoring": "cloudwatch"}

# (prefix:API operation) -> the IAM action that authorizes it, where they differ. Service
# Authorization Reference, AWS Lambda: the Invoke operation is authorized by lambda:InvokeFunction
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html).
ACTIONS = {"lambda:Invoke": "lambda:InvokeFunction"}

# Actions with no resource types in the Service Authorization Reference, which says of them: "If
# there is no value for this column, you must specify all resources ("*") to which the policy
# applies in the Resource element of your policy statement."
NO_RESOURCE = ("ec2:Describe*", "elasticloadbalancing:Describe*", "application-autoscaling:Describe*",
               "ecs:DescribeTaskDefinition")

# The error each protocol answers a refusal with, and its HTTP status. EC2: "An error occurred
# (UnauthorizedOperation) ... You are not authorized to perform this operation." (status 403);
# query (IAM, ELBv2, CloudWatch): AccessDenied (403); JSON (ECS, SSM, ECR, Application Auto
# Scaling): AccessDeniedException (400); REST-JSON (Lambda): AccessDeniedException (403). A JSON
# service compatible with its query protocol (CloudWatch) answers the query code.
DENIALS = {"ec2": ("UnauthorizedOperation", 403), "query": ("AccessDenied", 403),
           "query-json": ("AccessDenied", 403), "json": ("AccessDeniedException", 400),
           "rest-json": ("AccessDeniedException", 403), "rest-xml": ("AccessDenied", 403)}
EC2_PREFIX = "You are not authorized to perform this operation. "


class Refusal(ServiceException):
    """A refused request, serialized by moto as its protocol's error (defined here: moto looks
    up the error shapes of the service a moto exception's module names)."""


class Decision(NamedTuple):
    allowed: bool
    explicit: bool = False          # refused by a Deny statement
    resource: Optional[str] = None  # the resource refused, where the engine knows it


# -- evaluation ------------------------------------------------------------------------------------
def _listed(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _matches_action(statement: dict, action: str) -> bool:
    if "NotAction" in statement:
        return not any(_wildcard(p, action, True) for p in _listed(statement["NotAction"]))
    return any(_wildcard(p, action, True) for p in _listed(statement.get("Action")))


def _matches_resource(statement: dict, resource: Optional[str]) -> bool:
    """Whether the statement covers `resource`; None (not derived): whether it covers some resource."""
    if "NotResource" in statement:
        return resource is None or not any(_wildcard(p, resource, False) for p in _listed(statement["NotResource"]))
    patterns = _listed(statement.get("Resource"))
    if resource is None:
        return bool(patterns)
    return any(_wildcard(p, resource, False) for p in patterns)


def _statements(documents: Iterable) -> list:
    found = []
    for document in documents:
        document = json.loads(document) if isinstance(document, str) else document
        found += _listed((document or {}).get("Statement"))
    return found


def decide(documents: Iterable, action: str, resources: Optional[list] = None) -> Decision:
    """IAM's answer for `action` on every one of `resources` under these policy documents (JSON
    text or dicts). resources None: the engine does not know them (action level); ["*"]: the
    action has no resource types."""
    statements = _statements(documents)
    for resource in resources or [None]:
        deny = [s for s in statements if s.get("Effect") == "Deny" and "Condition" not in s]
        for statement in deny:
            if _matches_action(statement, action) and (
                    _matches_resource(statement, resource) if resource is not None
                    else "*" in _listed(statement.get("Resource"))):
                return Decision(False, True, resource)
        allow = [s for s in statements if s.get("Effect") == "Allow"]
        if not any(_matches_action(s, action) and _matches_resource(s, resource) for s in allow):
            return Decision(False, False, resource)
    return Decision(True)


def message(principal: str, action: str, decision: Decision) -> str:
    """The refusal as IAM words it (implicit and explicit deny; sources in docs/local-emulator.md)."""
    on = f" on resource: {decision.resource}" if decision.resource not in (None, "*") else ""
    if decision.explicit:
        return f"User: {principal} is not authorized to perform: {action}{on} with an explicit deny in an identity-based policy"
    return f"User: {principal} is not authorized to perform: {action}{on} because no identity-based policy allows the {action} action"


# -- the resources of a request ----------------------------------------------------------------------
class Request(NamedTuple):
    params: dict   # JSON body, or the query string with one value per key (Names.member.1 ...)
    path: str
    region: str
    account: str

    def members(self, name: str) -> list:
        """A list parameter, from a JSON body or flattened in a query (Name.member.N / Name.N)."""
        if isinstance(self.params.get(name), list):
            return self.params[name]
        keyed = [(k, v) for k, v in self.params.items() if re.fullmatch(rf"{name}(\.member)?\.\d+", k)]
        return [v for _, v in sorted(keyed, key=lambda kv: int(kv[0].rsplit(".", 1)[1]))]

    def arn(self, service: str, resource: str, account: Optional[str] = None) -> str:
        return f"arn:aws:{service}:{self.region}:{account or self.account}:{resource}"


def _lambda_function(request: Request) -> list:
    match = re.search(r"/functions/([^/]+)/invocations", request.path)
    name = unquote(match.group(1)) if match else ""
    qualifier = request.params.get("Qualifier")
    if name.startswith("arn:"):
        arn = name
    elif ":function:" in name:  # 123456789012:function:name
        account, rest = name.split(":function:", 1)
        arn = request.arn("lambda", f"function:{rest}", account)
    else:
        arn = request.arn("lambda", f"function:{name}")
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return [arn]


def _ssm_parameters(request: Request) -> list:
    names = request.members("Names") or [request.params.get("Name", "")]
    return [n if n.startswith("arn:") else request.arn("ssm", "parameter" + (n if n.startswith("/") else "/" + n))
            for n in names]


def _ecs_cluster_name(request: Request) -> str:
    cluster = request.params.get("cluster") or "default"
    return cluster.split("cluster/", 1)[1] if cluster.startswith("arn:") else cluster


def _ecs_services(request: Request) -> list:
    names = request.members("services") or [request.params.get("service") or request.params.get("serviceName", "")]
    return [n if n.startswith("arn:") else request.arn("ecs", f"service/{_ecs_cluster_name(request)}/{n}")
            for n in names]


def _ecs_clusters(request: Request) -> list:
    return [c if c.startswith("arn:") else request.arn("ecs", f"cluster/{c}")
            for c in request.members("clusters") or ["default"]]


def _ecs_tasks(request: Request) -> list:
    return [t if t.startswith("arn:") else request.arn("ecs", f"task/{_ecs_cluster_name(request)}/{t}")
            for t in request.members("tasks")]


def _alarms(request: Request) -> list:
    names = request.members("AlarmNames") or [request.params.get("AlarmName", "")]
    return [request.arn("cloudwatch", f"alarm:{n}") for n in names]


def _repository(request: Request) -> list:
    registry = request.params.get("registryId")
    return [request.arn("ecr", f"repository/{request.params.get('repositoryName', '')}", registry)]


# IAM action -> the ARNs AWS authorizes it on, from the request (Service Authorization Reference,
# resource types of each action).
RESOURCES: dict = {
    "lambda:InvokeFunction": _lambda_function,
    "ssm:GetParameters": _ssm_parameters,
    "ssm:GetParameter": _ssm_parameters,
    "ecs:CreateService": _ecs_services,
    "ecs:UpdateService": _ecs_services,
    "ecs:DeleteService": _ecs_services,
    "ecs:DescribeServices": _ecs_services,
    "ecs:DescribeClusters": _ecs_clusters,
    # "DescribeTasks ... task*" (arn:${Partition}:ecs:${Region}:${Account}:task/${ClusterName}/${TaskId})
    "ecs:DescribeTasks": _ecs_tasks,
    "ecs:TagResource": lambda r: [r.params.get("resourceArn", "")],
    "ecs:UntagResource": lambda r: [r.params.get("resourceArn", "")],
    "cloudwatch:PutMetricAlarm": _alarms,
    "cloudwatch:DeleteAlarms": _alarms,
    "ecr:DescribeImages": _repository,
    "iam:SimulatePrincipalPolicy": lambda r: [r.params.get("PolicySourceArn", "")],
}


def resources_of(action: str, request: Request) -> Optional[list]:
    """The ARNs `action` is authorized on for this request; ["*"] for an action without resource
    types; None where the engine does not derive them."""
    if any(_wildcard(p, action, True) for p in NO_RESOURCE):
        return ["*"]
    derive: Optional[Callable] = RESOURCES.get(action)
    return derive(request) if derive else None


# -- moto ---------------------------------------------------------------------------------------------
def credentials(function) -> dict:
    """Environment for a function's process: its role's temporary credentials from moto's STS,
    or nothing (the fixed test keys stay) when LOCAL_AWS_IAM is off."""
    if not aws_rules.enforced("IAM"):
        return {}
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    session = sts_backends[function.account_id][get_partition(function.region)].assume_role(
        region_name=function.region, role_session_name=function.function_name, role_arn=function.role,
        policy=None, duration=SESSION_SECONDS, external_id=None)
    return {"AWS_ACCESS_KEY_ID": session.access_key_id, "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
            "AWS_SESSION_TOKEN": session.session_token}


def _role_documents(account: str, role_arn: str) -> list:
    """The role's identity-based policies now; none when the role no longer exists."""
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends

    try:
        role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
    except NotFoundException:
        return []
    managed = [next(v.document for v in p.versions if v.is_default) for p in role.managed_policies.values()]
    return list(role.policies.values()) + managed


def _request(response, protocol: str) -> Request:
    """The request's parameters where its protocol puts them: a JSON body (json), the form or
    query string (query, ec2), the URL query beside the path (rest-json: Lambda's Qualifier)."""
    params = dict(parse_qsl(response.parsed_url.query))
    if protocol == "json":
        try:
            # moto's DynamoDB responses hold the body already decoded.
            body = response.body if isinstance(response.body, dict) else json.loads(response.body or "{}")
            params.update(body)
        except ValueError:
            pass
    elif protocol in ("query", "query-json", "ec2"):
        params.update({k: v[0] for k, v in response.querystring.items() if isinstance(v, list) and v})
    return Request(params, response.path, response.region, response.current_account)


def authorize(response):
    """None when moto may handle the request; otherwise the refusal as (status, headers, body)."""
    from moto.core.responses import ActionResult
    from moto.core.utils import get_service_model
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    scope = re.search(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/", response.headers.get("Authorization", ""))
    if not scope:
        return None
    session = sts_backends[response.current_account][get_partition(response.region)] \
        .get_assumed_role_from_access_key(scope.group(1))
    if session is None:
        return None
    operation = f"{PREFIXES.get(scope.group(2), scope.group(2))}:{response._get_action()}"
    action = ACTIONS.get(operation, operation)
    if action == "sts:GetCallerIdentity":  # "No permissions are required to perform this operation"
        return None
    service_model = get_service_model(response.boto3_service_name)
    protocol = response.determine_response_protocol(service_model)
    request = _request(response, protocol)
    decision = decide(_role_documents(session.account_id, session.role_arn), action,
                      resources_of(action, request))
    with _calls_lock:
        calls.append({"Role": session.role_arn.split("/")[-1], "Action": action, "Params": request.params,
                      "Allowed": decision.allowed, "At": time.time()})
    if decision.allowed:
        return None
    code, status = DENIALS.get(protocol, DENIALS["query"])
    if "awsQueryCompatible" in service_model.metadata:
        code, status = DENIALS["query"]
    text = message(session.arn, action, decision)
    log.warning("IAM: refused %s: %s", code, text)
    with warnings.catch_warnings():  # moto warns that the code is no error shape of the service
        warnings.simplefilter("ignore")
        _, headers, body = response.serialized(ActionResult(Refusal(code, EC2_PREFIX + text if protocol == "ec2" else text)))
    return status, headers, body


_installed = False
# Every call a role session (a provider function) made, oldest first: what a test asserts the
# functions sent (moto's state alone hides what was asked, e.g. a strategy it drops).
calls: list = []
_calls_lock = threading.Lock()


def install() -> None:
    """Authorize role sessions' requests in this process (once)."""
    global _installed
    import moto
    from moto.core.responses import BaseResponse

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"engine_iam patches moto {MOTO_VERSION} internals, found {moto.__version__}")
    if _installed:
        return
    call_action = BaseResponse.call_action

    def authorized_call_action(self):
        return authorize(self) or call_action(self)

    BaseResponse.call_action = authorized_call_action
    _installed = True
