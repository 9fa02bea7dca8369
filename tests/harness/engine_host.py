"""The local engine's Lambda side: custom-resource requests sent to the ServiceToken's function
(the protocol in harness/protocol.py) and their answers on a loopback ResponseURL; moto's Lambda
functions run for real (harness/lambda_service.py) with their role's credentials; moto's Invoke
API routed to them; the control server tests and the demo talk to (answers, requests, AWS calls,
EventBridge deliveries, time passing for schedules, Spot reclaims, and with task processes the
load balancers' loopback URLs, `GET /balancers`, and the task processes, `GET /tasks`)."""
import hashlib
import io
import json
import platform
import re
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Optional

from moto.awslambda.utils import get_backend as lambda_backend

from . import engine_ecs, engine_events, engine_iam, protocol, task_processes
from .lambda_service import LocalLambda
from .moto import ACCOUNT as DEFAULT_ACCOUNT, REGION as DEFAULT_REGION
from .net import QuietHandler
from .template import ResourceFailed


class FunctionHost:
    """Mixed into the Engine: expects self.lock, self.pending, self.requests, self.responses,
    self.functions, self.log_dir, self.control_url, self.moto_url, self.function_env,
    self.custom_resource_timeout and self.async_retry_delay."""

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
        properties = {k: v for k, v in props.items() if k != "ServiceToken"}
        old = {k: v for k, v in (old_props or {}).items() if k != "ServiceToken"}
        event = protocol.request_event(
            request_type, service_token=token, response_url=f"{self.control_url}/responses/{request_id}",
            stack_id=stack.stack_id, request_id=request_id, logical_id=logical_id, resource_type=resource_type,
            properties=properties, old_properties=old if request_type == "Update" else None,
            physical_id=physical_id if request_type != "Create" else None)
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
        answer, problems = protocol.parse_answer(body, request)
        problem = "; ".join(problems)
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

        class Handler(QuietHandler):
            _send = QuietHandler.send_json

            def do_PUT(self):
                body = self.read_body()
                match = re.fullmatch(r"/responses/([0-9a-f-]+)", self.path.split("?")[0])
                if not match:
                    return self._send(404, {"error": "unknown path"})
                status, payload = engine.answer(match.group(1), body)
                self._send(status, payload)

            def do_POST(self):
                body = json.loads(self.read_body() or b"{}")
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
                if self.path in ("/balancers", "/tasks"):
                    runner = task_processes.runner
                    if runner is None:
                        return self._send(404, {"error": "the engine runs no task processes (LOCAL_ENGINE_TASK_BINARY unset)"})
                    if self.path == "/tasks":
                        return self._send(200, runner.describe())
                    return self._send(200, {"LoadBalancers": runner.balancers.urls(),
                                            "TargetGroups": runner.balancers.describe()})
                if self.path == "/health":
                    return self._send(200, {"moto": engine.moto_url, "functions": len(engine.functions)})
                self._send(404, {"error": "unknown path"})

        return Handler


def _elf_machine(path: Path) -> Optional[str]:
    with open(path, "rb") as handle:
        header = handle.read(20)
    if header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little")
    return {0x3E: "x86_64", 0xB7: "arm64"}.get(machine)
