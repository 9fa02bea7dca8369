"""A recording proxy between a provider binary and moto, which can also inject AWS's faults.

moto drops or ignores some request fields (see docs/local-emulator.md), so some tests assert on the
requests a binary sent rather than on moto's state. Every call is recorded with its service,
action, parameters and timing (which also shows how many calls ran concurrently).

Fault injection (for reliability soaks): `RecordingProxy.inject(FaultPlan(...))` switches a plan
on for a `with` block (`set_plan` without one). Without a plan the proxy is transparent. Under a
plan each call the plan matches (by service and operation) gets the plan's added latency, then is
either forwarded to moto or answered with a fault instead, never both: an injected fault happens
before the request reaches moto, as when AWS refuses a request before acting on it, so a retry is
always safe. The kinds, each a share (probability per call) of the plan:

  throttle      the protocol's throttling error
  server_error  HTTP 500, the protocol's internal-failure error
  unavailable   HTTP 503, the protocol's service-unavailable error
  reset         the request is read, nothing is forwarded and the connection is closed with a TCP
                RST (SO_LINGER 0) without any response

The error shapes are the ones AWS sends, chosen by the protocol of the request:

  EC2 query (service ec2: a form body, no X-Amz-Target)
      <Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors>
      <RequestID>..</RequestID></Response>, text/xml
      throttle 503 RequestLimitExceeded, server_error 500 InternalError, unavailable 503 Unavailable
      -- https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html (codes and
         the example error response), .../ec2/latest/devguide/ec2-api-throttling.html
  JSON 1.0/1.1 (an X-Amz-Target header: ecs, logs, ecr, ssm, application-autoscaling, ...)
      {"__type": "..", "message": ".."}, the request's application/x-amz-json-1.x content type,
      an x-amzn-RequestId header
      throttle 400 ThrottlingException "Rate exceeded", server_error 500 InternalFailure,
      unavailable 503 ServiceUnavailable
      -- https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html,
         the "Common Errors" page of each service's API reference (e.g. .../IAM/latest/APIReference/
         CommonErrors.html), https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html
  query XML (a form body with Action=: iam, elasticloadbalancing, monitoring, sts, cloudformation)
      <ErrorResponse xmlns="https://SERVICE.amazonaws.com/doc/VERSION/"><Error><Type>..</Type>
      <Code>..</Code><Message>..</Message></Error><RequestId>..</RequestId></ErrorResponse>, text/xml
      throttle 400 Throttling (Sender) "Rate exceeded", server_error 500 InternalFailure (Receiver),
      unavailable 503 ServiceUnavailable (Receiver)
      -- the services' CommonErrors pages, https://smithy.io/2.0/aws/protocols/aws-query-protocol.html
  rest-JSON (lambda, and any other request with neither X-Amz-Target nor a form Action)
      an x-amzn-ErrorType header naming the error, a JSON body with "message" and "Type"
      throttle 429 TooManyRequestsException {"message": "Rate Exceeded.",
      "Reason": "CallerRateLimitExceeded", "Type": "User"}, server_error 500 ServiceException,
      unavailable 503 ServiceException
      -- https://docs.aws.amazon.com/lambda/latest/api/API_ListFunctions.html (Errors) and the
         Lambda quotas page, https://smithy.io/2.0/aws/protocols/aws-restjson1-protocol.html
  (Not covered: RPC-v2 CBOR, which aws-sdk-cloudwatch >= 1.100 speaks; the workspace pins 1.99,
  which speaks query. A CBOR request would get the rest-JSON shape.)

Determinism: whether the k-th matched call of a (service, action) since the plan was set is
faulted, and with what, depends only on (seed, service, action, k) -- a hash turned into a uniform
float in [0, 1) and compared with the cumulative shares (`FaultPlan.decide`) -- so concurrency
between different operations does not change the decisions. Request ids in fault answers are
derived from the same hash.

Termination: no (service, action) is faulted more than `FaultPlan.max_consecutive` (default 4)
times in a row; after that many consecutive faults on a key, the next call on that key is
forwarded whatever the hash says (that is the only history a decision depends on). The provider
binaries' SDK makes 8 attempts per call (custom_resource::SDK_MAX_ATTEMPTS), so a call the SDK
retries always gets through, however high the shares. The bound is per key, not per logical
request: concurrent calls of one operation share it, so one of them can be the one forwarded
while another is faulted again. A client with fewer attempts (e.g. an optional check with 2) can
still fail under a plan that matches it.

The proxy binds 127.0.0.1 only and stops by itself after `max_lifetime` seconds (4 hours by
default), so a forgotten soak cannot run on.
"""
import hashlib
import http.client
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional
from urllib.parse import parse_qsl, urlparse

from .net import QuietHandler, QuietHTTPServer

_SERVICE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")
_SKIP_HEADERS = {"host", "connection", "transfer-encoding", "keep-alive", "content-length"}

THROTTLE, SERVER_ERROR, UNAVAILABLE, RESET = "throttle", "server_error", "unavailable", "reset"
KINDS = (THROTTLE, SERVER_ERROR, UNAVAILABLE, RESET)
MAX_LATENCY_MS = 60_000
DEFAULT_LIFETIME = 4 * 3600.0


@dataclass
class Call:
    service: str
    action: str
    params: dict
    started: float
    finished: float
    status: int
    # The fault injected instead of forwarding (one of KINDS), None for a forwarded call. A reset
    # call has status 0 (no response).
    fault: Optional[str] = None


def max_concurrency(calls: list) -> int:
    """The largest number of calls in flight at once, as seen by the proxy."""
    events = sorted([(c.started, 1) for c in calls] + [(c.finished, -1) for c in calls])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


@dataclass(frozen=True)
class FaultPlan:
    """Which calls fail and how: each share is a probability per matched call (sum <= 1).

    `services` (signing names: "ec2", "ecs", "iam", "lambda", ...) and `operations` (actions as
    recorded: "DescribeSubnets", "CreateService"; for rest-JSON the request path) restrict which
    calls can be faulted, None meaning all. `latency_ms` is added to every matched call before it
    is forwarded or faulted. See the module docstring for determinism and `max_consecutive`."""

    seed: int = 0
    throttle: float = 0
    server_error: float = 0
    unavailable: float = 0
    reset: float = 0
    latency_ms: int = 0
    services: Optional[frozenset] = None
    operations: Optional[frozenset] = None
    max_consecutive: int = 4

    def __post_init__(self):
        shares = self.shares()
        if any(not 0 <= share <= 1 for share in shares.values()):
            raise ValueError(f"each share must be within [0, 1]: {shares}")
        if sum(shares.values()) > 1 + 1e-9:
            raise ValueError(f"the shares add up to more than 1: {shares}")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be within [0, {MAX_LATENCY_MS}]: {self.latency_ms}")
        if self.max_consecutive < 1:
            raise ValueError(f"max_consecutive must be at least 1: {self.max_consecutive}")
        for name in ("services", "operations"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, str):
                    value = (value,)
                object.__setattr__(self, name, frozenset(value))

    def shares(self) -> dict:
        return {kind: getattr(self, kind) for kind in KINDS}

    def matches(self, service: str, action: str) -> bool:
        return ((self.services is None or service in self.services)
                and (self.operations is None or action in self.operations))

    def draw(self, service: str, action: str, k: int) -> float:
        """The uniform float in [0, 1) for call k of (service, action) under this seed."""
        digest = hashlib.sha256(f"{self.seed}\0{service}\0{action}\0{k}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def decide(self, service: str, action: str, k: int) -> Optional[str]:
        """The fault the hash picks for call k of (service, action), before the
        max_consecutive bound; None: forward."""
        u = self.draw(service, action, k)
        bound = 0.0
        for kind, share in self.shares().items():
            bound += share
            if u < bound:
                return kind
        return None

    def request_id(self, service: str, action: str, k: int) -> str:
        digest = hashlib.sha256(f"request-id\0{self.seed}\0{service}\0{action}\0{k}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass
class FaultStats:
    """What a plan did: calls it matched, how many of those were forwarded, and the faults it
    injected by kind and by (service, action). matched == forwarded + injected."""

    matched: int = 0
    forwarded: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_operation: Counter = field(default_factory=Counter)

    @property
    def injected(self) -> int:
        return sum(self.by_kind.values())


# -- error shapes ------------------------------------------------------------------------------

_EC2 = {
    THROTTLE: (503, "RequestLimitExceeded", "Request limit exceeded."),
    SERVER_ERROR: (500, "InternalError", "An internal error has occurred."),
    UNAVAILABLE: (503, "Unavailable", "The server is overloaded and can't handle the request."),
}
_JSON = {
    THROTTLE: (400, "ThrottlingException", "Rate exceeded"),
    SERVER_ERROR: (500, "InternalFailure",
                   "The request processing has failed because of an unknown error, exception or failure."),
    UNAVAILABLE: (503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
}
_QUERY = {
    THROTTLE: (400, "Throttling", "Rate exceeded", "Sender"),
    SERVER_ERROR: (500, "InternalFailure",
                   "The request processing has failed because of an unknown error, exception or failure.",
                   "Receiver"),
    UNAVAILABLE: (503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server.",
                  "Receiver"),
}
_REST_JSON = {
    THROTTLE: (429, "TooManyRequestsException",
               {"message": "Rate Exceeded.", "Reason": "CallerRateLimitExceeded", "Type": "User"}),
    SERVER_ERROR: (500, "ServiceException", {"Type": "Service", "message": "An internal error occurred."}),
    UNAVAILABLE: (503, "ServiceException",
                  {"Type": "Service", "message": "The service is temporarily unavailable."}),
}
# Query services whose namespace is http://, not https:// (as their responses carry it).
_HTTP_NAMESPACES = {"elasticloadbalancing", "monitoring", "cloudformation"}


def protocol_of(service: str, headers, form: Optional[dict]) -> str:
    """ec2, json, query or rest-json: the protocol a request speaks."""
    if headers.get("X-Amz-Target"):
        return "json"
    if form is not None and "Action" in form:
        return "ec2" if service == "ec2" else "query"
    return "rest-json"


def error_response(kind: str, protocol: str, service: str, request_id: str, headers, form) -> tuple:
    """(status, headers, body) of the AWS answer for an injected fault of `kind`."""
    if protocol == "ec2":
        status, code, message = _EC2[kind]
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
                f"</Errors><RequestID>{request_id}</RequestID></Response>")
        return status, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()
    if protocol == "query":
        status, code, message, sender = _QUERY[kind]
        version = (form or {}).get("Version", "")
        scheme = "http" if service in _HTTP_NAMESPACES else "https"
        namespace = f"{scheme}://{service}.amazonaws.com/doc/{version}/"
        body = (f'<ErrorResponse xmlns="{namespace}">\n  <Error>\n    <Type>{sender}</Type>\n'
                f"    <Code>{code}</Code>\n    <Message>{message}</Message>\n  </Error>\n"
                f"  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n")
        return status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()
    if protocol == "json":
        status, code, message = _JSON[kind]
        content_type = headers.get("Content-Type") or ""
        if not content_type.startswith("application/x-amz-json"):
            content_type = "application/x-amz-json-1.1"
        body = json.dumps({"__type": code, "message": message}, separators=(",", ":"))
        return status, {"Content-Type": content_type, "x-amzn-RequestId": request_id}, body.encode()
    status, code, fields = _REST_JSON[kind]
    response_headers = {"Content-Type": "application/json", "x-amzn-RequestId": request_id,
                        "x-amzn-ErrorType": code}
    return status, response_headers, json.dumps(fields, separators=(",", ":")).encode()


# -- the proxy ---------------------------------------------------------------------------------

class RecordingProxy:
    """Records every call, forwards it to `upstream` (moto), and under a FaultPlan injects faults.
    Binds 127.0.0.1 only; stops by itself after `max_lifetime` seconds."""

    def __init__(self, upstream: str, max_lifetime: float = DEFAULT_LIFETIME):
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.lock = threading.Lock()
        self.calls: list = []
        self.plan: Optional[FaultPlan] = None
        self.faults = FaultStats()
        self._seen: Counter = Counter()  # (service, action) -> matched calls since set_plan
        self._consecutive: Counter = Counter()  # (service, action) -> faults in a row
        self._stopping = False
        self._stopped = threading.Event()
        self.server = QuietHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._lifetime = threading.Timer(max_lifetime, self.stop)
        self._lifetime.daemon = True
        self._lifetime.start()

    def stop(self) -> None:
        """Stop serving (idempotent; also called by the lifetime timer)."""
        with self.lock:
            if self._stopping:
                return
            self._stopping = True
        self._lifetime.cancel()
        self.server.shutdown()
        self.server.server_close()
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        """True once the proxy has stopped listening."""
        return self._stopped.is_set()

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()

    def recorded(self, service: Optional[str] = None, action: Optional[str] = None) -> list:
        with self.lock:
            return [c for c in self.calls
                    if (service is None or c.service == service) and (action is None or c.action == action)]

    def set_plan(self, plan: Optional[FaultPlan]) -> FaultStats:
        """Switch to `plan` (None: no faults, the proxy is transparent). A new plan starts its
        call counts (k) and stats afresh; switching off keeps the last plan's stats readable."""
        with self.lock:
            self.plan = plan
            self._seen.clear()
            self._consecutive.clear()
            if plan is not None:
                self.faults = FaultStats()
            return self.faults

    @contextmanager
    def inject(self, plan: FaultPlan) -> Iterator[FaultStats]:
        """`with proxy.inject(FaultPlan(...)) as stats:` -- the plan for the block, off after it."""
        stats = self.set_plan(plan)
        try:
            yield stats
        finally:
            self.set_plan(None)

    def _decide(self, service: str, action: str):
        """(plan, fault or None, k) for a call -- k its index among the plan's calls of that
        (service, action) -- or (None, None, None) when no plan matches it."""
        with self.lock:
            plan = self.plan
            if plan is None or not plan.matches(service, action):
                return None, None, None
            key = (service, action)
            k = self._seen[key]
            self._seen[key] += 1
            fault = plan.decide(service, action, k)
            if fault is not None and self._consecutive[key] >= plan.max_consecutive:
                fault = None
            self._consecutive[key] = self._consecutive[key] + 1 if fault else 0
            self.faults.matched += 1
            if fault is None:
                self.faults.forwarded += 1
            else:
                self.faults.by_kind[fault] += 1
                self.faults.by_operation[key] += 1
            return plan, fault, k

    def _handler_class(self):
        proxy = self

        class Handler(QuietHandler):
            def _relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                started = time.monotonic()
                service, action, params, form = _identify(self.headers, self.path, body)
                plan, fault, index = proxy._decide(service, action)
                if plan is not None and plan.latency_ms:
                    time.sleep(plan.latency_ms / 1000)
                if fault == RESET:
                    proxy._append(Call(service, action, params, started, time.monotonic(), 0, fault))
                    self._reset()
                    return
                if fault is not None:
                    protocol = protocol_of(service, self.headers, form)
                    status, headers, payload = error_response(
                        fault, protocol, service, plan.request_id(service, action, index), self.headers, form)
                    proxy._append(Call(service, action, params, started, time.monotonic(), status, fault))
                    self._answer(status, headers.items(), payload)
                    return
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP_HEADERS}
                headers["Content-Length"] = str(len(body))
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                finished = time.monotonic()
                connection.close()
                # Recorded before answering, so a client that has its answer finds the call.
                proxy._append(Call(service, action, params, started, finished, response.status))
                self._answer(response.status, response.getheaders(), payload)

            def _answer(self, status, headers, payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _SKIP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _reset(self) -> None:
                """Close the connection with a TCP RST and no response."""
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()  # drops the file's reference, so close() really closes
                self.connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _relay

        return Handler

    def _append(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)


def _identify(headers, path, body: bytes) -> tuple:
    """(service, action, params, form) of a request; form is the parsed form body (None for a
    JSON-target request)."""
    match = _SERVICE.search(headers.get("Authorization", ""))
    service = match.group(1) if match else "?"
    target = headers.get("X-Amz-Target")
    params: dict = {}
    if target:
        action = target.rsplit(".", 1)[-1]
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        return service, action, params, None
    form = dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
    has_action = "Action" in form
    params = dict(form)
    action = params.pop("Action", None) or f"{headers.get('X-Http-Method', '')}{path}"
    return service, action, params, form if has_action else None
