"""A local Lambda service: runs a real provider binary behind the Lambda Runtime API.

What it reproduces of AWS Lambda, because the protocol library depends on it:
- the Runtime API (`/2018-06-01/runtime/invocation/next`, `/response`, `/error`, `/init/error`)
  with a real `Lambda-Runtime-Deadline-Ms` from the configured timeout;
- the hard timeout: an invocation still running at its deadline has its process killed (no answer
  is sent for it, as on AWS) and a fresh process started;
- the Invoke API (`POST /2015-03-31/functions/<name>/invocations`) for `Event` (202, queued) and
  `RequestResponse`, so the binary's hand-over to "itself" goes through the AWS SDK;
- async retries: an `Event` invocation that errors, times out or crashes is retried up to twice
  (after `retry_delay` instead of AWS's 1-2 minutes), which is how duplicate deliveries arise.
One execution environment per function: invocations run one at a time, in order.
"""
import itertools
import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .moto import ACCOUNT, CREDENTIALS, REGION
from .net import QuietHandler, QuietHTTPServer

_counter = itertools.count(1)


@dataclass
class Invocation:
    payload: bytes
    kind: str  # "Event" or "RequestResponse"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempt: int = 1
    seq: int = field(default_factory=lambda: next(_counter))
    started: Optional[float] = None
    deadline: Optional[float] = None
    finished: Optional[float] = None
    outcome: Optional[str] = None  # success | error | timeout | crash
    result: bytes = b""
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def event(self) -> dict:
        try:
            return json.loads(self.payload)
        except ValueError:
            return {}


class LocalLambda:
    def __init__(self, name: str, binary: Path, log_dir: Path, timeout: float = 6.0,
                 env: Optional[dict] = None, async_retries: int = 2, retry_delay: float = 1.0):
        self.name = name
        self.binary = Path(binary)
        self.timeout = timeout
        self.extra_env = dict(env or {})
        self.async_retries = async_retries
        self.retry_delay = retry_delay
        # At-least-once delivery: when set, every Event invocation made through the Invoke API (a
        # hand-over) is delivered twice, under two request ids, the copy queued behind the first.
        self.duplicate_events = False
        self.arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        self.log_path = log_dir / f"{name}.log"
        self.cond = threading.Condition()
        self.queue: deque = deque()
        self.scheduled = 0
        self.current: Optional[Invocation] = None
        self.history: list = []
        self.generation = 0
        self.process: Optional[subprocess.Popen] = None
        self.stopping = False
        self.server = QuietHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "LocalLambda":
        if not self.binary.exists():
            raise FileNotFoundError(f"{self.binary} does not exist: build it first (make build)")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.log = open(self.log_path, "ab")
        with self.cond:
            self._spawn()
        threading.Thread(target=self._watchdog, daemon=True).start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.generation += 1
            self.cond.notify_all()
        self._kill()
        self.server.shutdown()
        self.server.server_close()
        self.log.close()

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CUSTOM_RESOURCE_"))}
        env.update(CREDENTIALS)
        env.update({
            "AWS_LAMBDA_RUNTIME_API": self.endpoint.removeprefix("http://"),
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local",
            # The hand-over calls Lambda: route it to this service, everything else to moto.
            "AWS_ENDPOINT_URL_LAMBDA": self.endpoint,
        })
        env.update(self.extra_env)
        return env

    def _spawn(self) -> None:
        self.generation += 1
        self.process = subprocess.Popen([str(self.binary)], env=self._env(),
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def _kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def _watchdog(self) -> None:
        while True:
            time.sleep(0.05)
            with self.cond:
                if self.stopping:
                    return
                inv = self.current
                if inv and time.monotonic() > inv.deadline:
                    # Lambda's hard timeout: the process is stopped, nothing is answered.
                    self.generation += 1
                    self._kill()
                    self._finish(inv, "timeout", b'{"errorMessage": "Task timed out"}')
                    self._spawn()
                elif self.process.poll() is not None:
                    if inv:
                        self._finish(inv, "crash", b'{"errorMessage": "Runtime exited"}')
                    self._spawn()

    # -- invocations -----------------------------------------------------------------------
    def invoke_async(self, event: dict) -> Invocation:
        return self._enqueue(Invocation(json.dumps(event).encode(), "Event"))

    def invoke(self, payload: bytes, kind: str) -> Invocation:
        """The Invoke API: `Event` is queued (returned at once), anything else is waited for."""
        inv = self._enqueue(Invocation(payload or b"{}", "Event" if kind == "Event" else "RequestResponse"))
        if inv.kind != "Event":
            inv.done.wait(self.timeout + 30)
        return inv

    def _enqueue(self, inv: Invocation) -> Invocation:
        with self.cond:
            self.queue.append(inv)
            self.history.append(inv)
            self.cond.notify_all()
        return inv

    def _finish(self, inv: Invocation, outcome: str, result: bytes) -> None:
        """Caller holds self.cond."""
        inv.outcome, inv.result, inv.finished = outcome, result, time.monotonic()
        if self.current is inv:
            self.current = None
        inv.done.set()
        if inv.kind == "Event" and outcome != "success" and inv.attempt <= self.async_retries:
            retry = Invocation(inv.payload, "Event", aws_request_id=inv.aws_request_id,
                               attempt=inv.attempt + 1)
            self.scheduled += 1

            def requeue():
                with self.cond:
                    self.scheduled -= 1
                    if not self.stopping:
                        self.queue.append(retry)
                        self.history.append(retry)
                        self.cond.notify_all()

            threading.Timer(self.retry_delay, requeue).start()
        self.cond.notify_all()

    def idle(self) -> bool:
        with self.cond:
            return not self.queue and self.current is None and self.scheduled == 0

    def wait_idle(self, timeout: float, quiet: float = 0.3) -> bool:
        """Wait until nothing is queued, running or scheduled for `quiet` seconds in a row."""
        end = time.monotonic() + timeout
        calm_since = None
        while time.monotonic() < end:
            if self.idle():
                calm_since = calm_since or time.monotonic()
                if time.monotonic() - calm_since >= quiet:
                    return True
            else:
                calm_since = None
            time.sleep(0.05)
        return False

    def invocations_for(self, request_id: str) -> list:
        """Every invocation (first, retries, hand-overs) that carried this CloudFormation RequestId."""
        with self.cond:
            return [inv for inv in self.history if inv.event.get("RequestId") == request_id]

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    # -- HTTP ------------------------------------------------------------------------------
    def _next(self, generation: int) -> Optional[Invocation]:
        with self.cond:
            while True:
                if generation != self.generation or self.stopping:
                    return None
                if self.queue and self.current is None:
                    inv = self.queue.popleft()
                    inv.started = time.monotonic()
                    inv.deadline = inv.started + self.timeout
                    self.current = inv
                    return inv
                self.cond.wait(0.2)

    def _handler_class(self):
        service = self

        class Handler(QuietHandler):
            _send = QuietHandler.send_bytes
            _body = QuietHandler.read_body

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self._send(404)
                generation = service.generation
                inv = service._next(generation)
                if inv is None:
                    return self._send(410, b'{"errorMessage": "environment stopped"}')
                deadline_ms = int((time.time() + service.timeout) * 1000)
                try:
                    self._send(200, inv.payload, {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": inv.aws_request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": service.arn,
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                    })
                except OSError:
                    pass

            def do_POST(self):
                body = self._body()
                match = re.fullmatch(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)", self.path)
                if match:
                    with service.cond:
                        inv = service.current
                        if inv is None or inv.aws_request_id != match.group(1):
                            return self._send(400, b'{"errorMessage": "no such invocation in progress"}')
                        service._finish(inv, "success" if match.group(2) == "response" else "error", body)
                    return self._send(202, b'{"status": "OK"}')
                if self.path == "/2018-06-01/runtime/init/error":
                    return self._send(202, b'{"status": "OK"}')
                match = re.fullmatch(r"/2015-03-31/functions/([^/]+)/invocations(\?.*)?", self.path)
                if match:
                    inv = service.invoke(body, self.headers.get("X-Amz-Invocation-Type", "RequestResponse"))
                    if inv.kind == "Event" and service.duplicate_events:
                        service.invoke(body, "Event")
                    if inv.kind == "Event":
                        return self._send(202, b"", {"x-amzn-RequestId": inv.aws_request_id})
                    headers = {"x-amzn-RequestId": inv.aws_request_id, "Content-Type": "application/json"}
                    if inv.outcome != "success":
                        headers["X-Amz-Function-Error"] = "Unhandled"
                    return self._send(200, inv.result, headers)
                return self._send(404)

        return Handler
