"""Start and stop the local engine (tests/local_engine.py) as a process, and talk to it."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

from .moto import CREDENTIALS, REGION, KnobsFile

ENGINE = Path(__file__).resolve().parent.parent / "local_engine.py"
# The sample app `make binaries` builds ($CARGO_TARGET_DIR/debug/app, as conftest.binary finds
# binaries): what an engine with task processes runs for each task. ECS_APP_BINARY overrides it.
_TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ENGINE.parent.parent / "target")
APP_BINARY = Path(os.environ.get("ECS_APP_BINARY") or (_TARGET if _TARGET.is_absolute() else ENGINE.parent.parent / _TARGET) / "debug" / "app")


class EngineProcess:
    def __init__(self, log_dir: Path, function_env: Optional[dict] = None, api_wait: float = 20.0,
                 custom_resource_timeout: float = 120.0, task_binary: Optional[Path] = None):
        self.log_dir = Path(log_dir)
        self.state_file = self.log_dir / "engine.json"
        self.function_env = dict(function_env or {})
        self.api_wait = api_wait
        self.custom_resource_timeout = custom_resource_timeout
        # Opt-in: each ECS service task runs as a process of this binary (harness/task_processes.py).
        self.task_binary = Path(task_binary) if task_binary else None
        self.process: Optional[subprocess.Popen] = None
        self.endpoint = self.control = ""
        self.knobs_file = KnobsFile(self.log_dir / "knobs.json")

    def start(self, timeout: float = 90.0) -> "EngineProcess":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.unlink(missing_ok=True)
        command = [sys.executable, str(ENGINE), "--state-file", str(self.state_file), "--log-dir", str(self.log_dir),
                   "--api-wait", str(self.api_wait), "--custom-resource-timeout", str(self.custom_resource_timeout)]
        for key, value in self.function_env.items():
            command += ["--function-env", f"{key}={value}"]
        self.log = open(self.log_dir / "engine.log", "ab")
        env = dict(os.environ, **CREDENTIALS)
        self.knobs_file.install(env)
        env.pop("LOCAL_ENGINE_TASK_BINARY", None)  # only an engine asked to runs tasks
        if self.task_binary:
            if not os.access(self.task_binary, os.X_OK):
                raise FileNotFoundError(f"no app binary at {self.task_binary}: run make binaries")
            env["LOCAL_ENGINE_TASK_BINARY"] = str(self.task_binary)
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while not self.state_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"the local engine exited with {self.process.returncode}: see {self.log_dir / 'engine.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the local engine did not start within {timeout} s: see {self.log_dir / 'engine.log'}")
            time.sleep(0.1)
        state = json.loads(self.state_file.read_text())
        self.endpoint, self.control = state["endpoint"], state["control"]
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.log.close()

    def knobs(self, **values):
        """harness.aws_rules knobs changed for a block, on the running engine (KnobsFile):
        `with engine.knobs(SPOT_CAPACITY="unavailable"): ...`."""
        return self.knobs_file.changed(**values)

    def env(self) -> dict:
        """Environment for a child process (aws CLI, make) that should talk to the engine."""
        env = dict(os.environ)
        env.update(CREDENTIALS)
        env["AWS_ENDPOINT_URL"] = self.endpoint
        return env

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            aws_session_token="testing")

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(self.control + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def fire_schedules(self, at: float) -> int:
        """Every scheduled EventBridge rule fires once, its event time `at` (epoch seconds)."""
        return self._post("/events/schedule", {"Time": at})["Fired"]

    def interrupt_spot(self, cluster: str, service: str) -> list:
        """A Spot reclaim of the service's FARGATE_SPOT tasks; returns their ids."""
        return self._post("/ecs/interrupt-spot", {"Cluster": cluster, "Service": service})["Stopped"]

    def event_deliveries(self) -> list:
        """Every EventBridge delivery to a Lambda target, oldest first, with its outcome."""
        with urllib.request.urlopen(self.control + "/events", timeout=10) as response:
            return json.loads(response.read())

    def calls(self, role_contains: str = "", action: str = "") -> list:
        """AWS calls the provider functions made (role session name, action, parameters), oldest
        first, filtered by a part of the role's name and the IAM action (e.g. "ecs:UpdateService")."""
        with urllib.request.urlopen(self.control + "/calls", timeout=10) as response:
            found = json.loads(response.read())
        return [c for c in found if role_contains in c["Role"] and (not action or c["Action"] == action)]

    def balancer_url(self, dns_name: str) -> str:
        """The loopback URL answering for a load balancer's DNS name (DescribeLoadBalancers, or
        the LoadBalancerUrl output with or without its scheme), on an engine running tasks."""
        name = dns_name.split("://", 1)[-1].split("/", 1)[0]
        with urllib.request.urlopen(self.control + "/balancers", timeout=10) as response:
            found = json.loads(response.read())["LoadBalancers"]
        if name not in found:
            raise KeyError(f"no load balancer {name} on the engine (it has {sorted(found)})")
        return found[name]

    def balancers(self) -> dict:
        """Every target group proxy: its URL and targets (Id, Port, State, InFlight, Served)."""
        with urllib.request.urlopen(self.control + "/balancers", timeout=10) as response:
            return json.loads(response.read())

    def task_processes(self) -> list:
        """The running task processes: TaskId, TaskArn, Pid, Port, Url, Log, CapacityProvider."""
        with urllib.request.urlopen(self.control + "/tasks", timeout=10) as response:
            return json.loads(response.read())

    def requests(self) -> list:
        """Every custom-resource request the engine sent, oldest first, with the answers it got."""
        with urllib.request.urlopen(self.control + "/requests", timeout=10) as response:
            return json.loads(response.read())


def settle(cfn, stack: str, timeout: float = 120) -> dict:
    """DescribeStacks until the stack is at rest (not *_IN_PROGRESS, or waiting for a change set)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        if not found["StackStatus"].endswith("_IN_PROGRESS") or found["StackStatus"] == "REVIEW_IN_PROGRESS":
            return found
        time.sleep(0.3)
    raise AssertionError(f"{stack} still in progress after {timeout} s")


def zip_binary(binary: Path, destination: Path) -> Path:
    """A Lambda zip (provided.al2023: an executable named bootstrap) from a built binary."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists() and destination.stat().st_mtime >= binary.stat().st_mtime:
        return destination
    info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = 0o755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    temporary = destination.with_suffix(".part")
    with zipfile.ZipFile(temporary, "w") as archive, open(binary, "rb") as source:
        with archive.open(info, "w", force_zip64=True) as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
    temporary.replace(destination)
    return destination
