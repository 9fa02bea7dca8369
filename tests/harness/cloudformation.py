"""A CloudFormation stand-in for custom resources.

It sends the events CloudFormation sends (shapes as documented, every scalar property turned into a
string, ServiceToken added), serves the pre-signed ResponseURL on loopback, records every PUT, and
fails a request that gets zero answers or more than one. `Resource` follows CloudFormation's
lifecycle rules: Update carries OldResourceProperties and the current physical id; a replacement is
followed by the cleanup Delete of the old id; a failed Create is rolled back with a Delete of the id
the failure carried; a failed Update is rolled back with an Update back to the old properties.
"""
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional
from urllib.parse import quote, unquote

from . import protocol
from .lambda_service import LocalLambda
from .moto import ACCOUNT, REGION
from .net import QuietHandler, QuietHTTPServer

# How long the stand-in waits for the answer to one request. CloudFormation waits up to the
# resource's ServiceTimeout (an hour by default); under injected faults one AWS call may back off
# for 71 s and a network Create with NAT waits spans hand-overs, so five minutes, which still
# bounds a test whose function never answers.
ANSWER_WAIT = 300.0


class ProtocolViolation(AssertionError):
    """The function broke the custom-resource protocol (no answer, two answers, bad body)."""


@dataclass
class Answer:
    status: str
    reason: Optional[str]
    physical_id: str
    data: dict
    no_echo: bool
    body: bytes
    request_id: str
    received_at: float

    @property
    def ok(self) -> bool:
        return self.status == "SUCCESS"


class CloudFormation:
    def __init__(self, stack_name: str = "demo", echo: Callable[[str], None] = lambda line: None):
        self.stack_name = stack_name
        self.stack_id = (f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack_name}/"
                         f"{uuid.uuid4()}")
        self.echo = echo
        self.lock = threading.Condition()
        self.answers: dict = {}  # key -> [Answer]
        self.failed_puts: dict = {}  # key -> count of PUTs answered with an error
        self.fail_next: dict = {}  # key -> number of PUTs to answer with 503 first
        self.requests: list = []  # (event, [Answer]) per request sent
        self.server = QuietHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.prefix = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- events ----------------------------------------------------------------------------
    def event(self, function: LocalLambda, request_type: str, logical_id: str, properties: dict,
              physical_id: Optional[str] = None, old_properties: Optional[dict] = None,
              resource_type: str = "Custom::ExampleParameter", request_id: Optional[str] = None,
              response_prefix: Optional[str] = None) -> dict:
        request_id = request_id or str(uuid.uuid4())
        key = f"{self.stack_id}|{logical_id}|{request_id}"
        url = ((response_prefix or self.prefix) + "responses/" + quote(key, safe="")
               + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=7200&X-Amz-Signature=local")
        return protocol.request_event(
            request_type, service_token=function.arn, response_url=url, stack_id=self.stack_id,
            request_id=request_id, logical_id=logical_id, resource_type=resource_type,
            properties=properties, physical_id=physical_id, old_properties=old_properties)

    @staticmethod
    def key_of(event: dict) -> str:
        return f"{event['StackId']}|{event['LogicalResourceId']}|{event['RequestId']}"

    def send(self, function: LocalLambda, event: dict, wait: Optional[float] = None) -> Answer:
        """Deliver `event` once and return its one answer. Raises ProtocolViolation on zero
        answers within `wait` seconds or a second answer before the function goes quiet."""
        wait = ANSWER_WAIT if wait is None else wait
        key = self.key_of(event)
        with self.lock:
            before = len(self.answers.get(key, []))
        function.invoke_async(event)
        end = time.monotonic() + wait
        with self.lock:
            while len(self.answers.get(key, [])) == before:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise ProtocolViolation(
                        f"no answer to {event['RequestType']} {event['LogicalResourceId']} "
                        f"(RequestId {event['RequestId']}) within {wait} s")
                self.lock.wait(remaining)
        # Let the function (and any retry or hand-over) finish, then count again.
        function.wait_idle(timeout=function.timeout * 4 + 10)
        time.sleep(0.2)
        with self.lock:
            got = self.answers.get(key, [])[before:]
        if len(got) != 1:
            raise ProtocolViolation(
                f"{len(got)} answers to one delivery of {event['RequestType']} "
                f"{event['LogicalResourceId']} (RequestId {event['RequestId']}): "
                + "; ".join(a.body.decode(errors='replace') for a in got))
        answer = got[0]
        self.requests.append((event, answer))
        self._show(event, answer)
        return answer

    def expect_no_answer(self, function: LocalLambda, event: dict, wait: float = 5.0) -> None:
        key = self.key_of(event)
        function.invoke_async(event)
        function.wait_idle(timeout=wait + function.timeout)
        time.sleep(0.2)
        with self.lock:
            if self.answers.get(key):
                raise ProtocolViolation(f"unexpected answer: {self.answers[key][0].body!r}")

    def answers_to(self, event: dict) -> list:
        with self.lock:
            return list(self.answers.get(self.key_of(event), []))

    def _show(self, event: dict, answer: Answer) -> None:
        verb = {"Create": "CREATE", "Update": "UPDATE", "Delete": "DELETE"}.get(event["RequestType"], "?")
        state = f"{verb}_COMPLETE" if answer.ok else f"{verb}_FAILED"
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        line = (f"{stamp}  {event['LogicalResourceId']:<12} {event['ResourceType']:<26} "
                f"{state:<16} {answer.physical_id}")
        if answer.reason:
            reason = answer.reason if len(answer.reason) <= 240 else answer.reason[:200] + " ... " + answer.reason[-40:]
            line += f"\n{'':>10}reason: {reason}"
        self.echo(line)

    # -- the ResponseURL -------------------------------------------------------------------
    def _record(self, key: str, body: bytes) -> int:
        with self.lock:
            if self.fail_next.get(key, 0) > 0:
                self.fail_next[key] -= 1
                self.failed_puts[key] = self.failed_puts.get(key, 0) + 1
                return 503
        stack_id, logical_id, request_id = key.split("|")
        parsed, problems = protocol.parse_answer(
            body, {"StackId": stack_id, "LogicalResourceId": logical_id, "RequestId": request_id})
        if not parsed:
            raise ProtocolViolation(f"response refused: {'; '.join(problems)}")
        answer = Answer(
            status=parsed.get("Status"), reason=parsed.get("Reason"),
            physical_id=parsed.get("PhysicalResourceId"), data=parsed.get("Data") or {},
            no_echo=bool(parsed.get("NoEcho")), body=body, request_id=request_id,
            received_at=time.monotonic(),
        )
        with self.lock:
            self.answers.setdefault(key, []).append(answer)
            if problems:
                self.answers.setdefault("__violations__", []).append((key, problems))
            self.lock.notify_all()
        return 200

    def violations(self) -> list:
        with self.lock:
            return list(self.answers.get("__violations__", []))

    def all_bodies(self) -> list:
        with self.lock:
            return [a.body for k, v in self.answers.items() if k != "__violations__" for a in v]

    def _handler_class(self):
        stand_in = self

        class Handler(QuietHandler):
            def do_PUT(self):
                body = self.read_body()
                match = re.fullmatch(r"/responses/([^?]+)(\?.*)?", self.path)
                if not match:
                    status = 404
                else:
                    key = unquote(match.group(1))
                    try:
                        status = stand_in._record(key, body)
                    except ProtocolViolation as error:
                        with stand_in.lock:
                            stand_in.answers.setdefault("__violations__", []).append((key, [str(error)]))
                        status = 400
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


class Resource:
    """One custom resource in a stack, driven through CloudFormation's lifecycle."""

    def __init__(self, cfn: CloudFormation, function: LocalLambda, logical_id: str,
                 resource_type: str = "Custom::ExampleParameter", wait: Optional[float] = None):
        self.cfn, self.function, self.logical_id, self.resource_type = cfn, function, logical_id, resource_type
        self.wait = wait
        self.properties: Optional[dict] = None
        self.physical_id: Optional[str] = None
        self.data: dict = {}

    def _event(self, request_type, properties, **extra):
        return self.cfn.event(self.function, request_type, self.logical_id, properties,
                              resource_type=self.resource_type, **extra)

    def create(self, properties: dict, rollback: bool = True, deliveries: int = 1) -> Answer:
        """Create; on FAILED, roll back with a Delete of the id the failure carried (as
        CloudFormation does). `deliveries` > 1 redelivers the same RequestId."""
        event = self._event("Create", properties)
        answers = [self.cfn.send(self.function, wait=self.wait, event=event) for _ in range(deliveries)]
        answer = answers[0]
        for later in answers[1:]:
            assert later.status == answer.status and later.physical_id == answer.physical_id, \
                f"redelivery answered differently: {later.body!r} vs {answer.body!r}"
        if answer.ok:
            self.properties, self.physical_id, self.data = properties, answer.physical_id, answer.data
        elif rollback:
            self.rollback_answer = self.cfn.send(self.function, wait=self.wait, event=self._event("Delete", properties, physical_id=answer.physical_id))
            assert self.rollback_answer.ok, f"rollback Delete failed: {self.rollback_answer.reason}"
        return answer

    def update(self, properties: dict, rollback: bool = True) -> Answer:
        """Update; a new physical id is followed by the cleanup Delete of the old one; a FAILED
        update is rolled back with an Update to the old properties."""
        old_properties, old_id = self.properties, self.physical_id
        event = self._event("Update", properties, physical_id=old_id, old_properties=old_properties)
        answer = self.cfn.send(self.function, wait=self.wait, event=event)
        if answer.ok:
            self.properties, self.data = properties, answer.data
            if answer.physical_id != old_id:
                self.physical_id = answer.physical_id
                self.cleanup_answer = self.cfn.send(self.function, wait=self.wait, event=self._event("Delete", old_properties, physical_id=old_id))
                assert self.cleanup_answer.ok, f"cleanup Delete failed: {self.cleanup_answer.reason}"
        elif rollback:
            self.rollback_answer = self.cfn.send(self.function, wait=self.wait, event=self._event(
                "Update", old_properties, physical_id=old_id, old_properties=properties))
            assert self.rollback_answer.ok, f"rollback Update failed: {self.rollback_answer.reason}"
            assert self.rollback_answer.physical_id == old_id, "rollback changed the physical id"
        return answer

    def delete(self) -> Answer:
        return self.cfn.send(self.function, wait=self.wait, event=self._event("Delete", self.properties, physical_id=self.physical_id))
