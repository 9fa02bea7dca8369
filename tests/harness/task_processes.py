"""ECS service tasks of the local engine run as local processes of one binary (opt-in: the engine
process's LOCAL_ENGINE_TASK_BINARY=<path>; unset, the scheduler's tasks stay records only).

When the scheduler (harness/engine_ecs_scheduler.py) launches a task, `launched` starts the
binary for the task's essential container with the environment Fargate would give it, and
registers it with the target groups its service's `loadBalancers` name (harness/balancer.py);
when the scheduler stops a task (new deployment, scale-in, Spot interruption, StopTask, service
deleted), `stopped` deregisters it, then stops the process. AWS behaviour reproduced:
  * "Amazon ECS task metadata endpoint version 4" (Fargate: "Amazon ECS task metadata endpoint
    version 4 for tasks on Fargate"): ECS_CONTAINER_METADATA_URI_V4; `GET {uri}` the container's
    metadata (Name, DockerId, Image, ImageID, Labels, Networks ...), `GET {uri}/task` the task's
    (Cluster, TaskARN, Family, Revision, DesiredStatus, KnownStatus, AvailabilityZone, LaunchType
    FARGATE, Containers). Like Fargate's, it has no capacity provider: DescribeTasks has it.
  * "Pass sensitive data to an Amazon ECS container" (Systems Manager Parameter Store): each
    `secrets` item's valueFrom (a parameter name or ARN) is read, decrypted, at task start and set
    as the env var `name`, beside the container definition's `environment`. A parameter that is
    missing stops the task: TaskFailedToStart, "ResourceInitializationError: unable to pull
    secrets or registry auth: ..." (Stopped tasks error codes).
  * "Amazon ECS task lifecycle" / StopTask: a service task is first deregistered from its target
    groups and drains (ELB "Deregistration delay"), then its containers get SIGTERM, and SIGKILL
    after the container's stopTimeout (Fargate default 30 s, at most 120 s). A deployment's old
    task is deregistered only once the new tasks in its target groups passed their health checks
    ("Deploy Amazon ECS services by replacing tasks": rolling update).

Local differences: PORT is a free loopback port and BIND_ADDRESS 127.0.0.1 (awsvpc gives each
task its own address; here they share loopback), so the template's PORT is overridden; the
stopTimeout is capped at LOCAL_ENGINE_TASK_STOP_TIMEOUT seconds (default 3) and the app gets
DRAIN_SECONDS=1; moto shows the task STOPPED as soon as the scheduler stops it, while the process
drains and exits in the background; the AWS credentials are the engine's test keys (not the task
role), the endpoint is moto's. Engine only: when the container sets no EXPECTED_SECRETS, it gets
the names of its `secrets` (the sample app reports those present or absent). Only the essential
container runs (the first one, or the one its load balancer names); a process that exits on its
own stops its task with EssentialContainerExited, and a task whose target fails its health checks
past the grace period is stopped as ECS stops it; the service replaces either.
Processes never outlive the engine: each is in its own session with PR_SET_PDEATHSIG SIGKILL
(forked from one long-lived thread, since the signal follows the forking thread) and `shutdown`
stops them all. Secret values never reach a log line: the engine logs env var names only.
"""
import ctypes
import hashlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

from .balancer import Balancers
from .moto import CREDENTIALS
from .net import QuietHTTPServer, QuietHandler, free_port

runner: Optional["TaskProcesses"] = None

_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
# ECS deregisters a deployment's old tasks once its new ones pass the target group's health checks
# (rolling update, minimumHealthyPercent 100); the scheduler here stops the old tasks at once, so
# their targets keep serving until the new targets are healthy, for at most this long.
REPLACEMENT_WAIT = 10.0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def launched(task, service, task_definition) -> Optional[str]:
    """The scheduler launched `task`: start its process. Returns why it cannot start, or None."""
    return runner.launch(task, service, task_definition) if runner else None


def stopped(task) -> None:
    """The scheduler stopped `task`: drain and stop its process (in the background)."""
    if runner:
        runner.stop(task)


class _Spawner:
    """Every Popen from one long-lived thread, so PR_SET_PDEATHSIG fires only when the engine
    process dies (it is tied to the thread that forked the child)."""

    def __init__(self):
        self.jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, daemon=True, name="task-spawner").start()

    def _run(self) -> None:
        while True:
            args, kwargs, box, done = self.jobs.get()
            try:
                box.append(subprocess.Popen(*args, preexec_fn=_die_with_parent, start_new_session=True, **kwargs))
            except Exception as error:  # noqa: BLE001 - handed back to the caller
                box.append(error)
            done.set()

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        box, done = [], threading.Event()
        self.jobs.put((args, kwargs, box, done))
        done.wait()
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]


class TaskProcess:
    def __init__(self, task, container: dict, port: int, process, log_path: Path, targets: list, stop_timeout: float):
        self.task_id, self.task_arn = task.id, task.task_arn
        self.task = task
        self.container, self.port, self.process = container, port, process
        self.log_path, self.targets, self.stop_timeout = log_path, targets, stop_timeout
        self.stopping = False
        self.started = time.monotonic()
        self.service_arn = getattr(task, "_engine_service_arn", None)

    def describe(self) -> dict:
        return {"TaskId": self.task_id, "TaskArn": self.task_arn, "Pid": self.process.pid, "Port": self.port,
                "Url": f"http://127.0.0.1:{self.port}", "Log": str(self.log_path),
                "ExitCode": self.process.poll(), "Stopping": self.stopping,
                "CapacityProvider": self.task.capacity_provider_name,
                "AvailabilityZone": getattr(self.task, "availability_zone", None)}


class TaskProcesses:
    def __init__(self, binary: Path, log_dir: Path, moto_url: str):
        self.binary = Path(binary)
        self.log_dir = Path(log_dir) / "tasks"
        self.moto_url = moto_url
        self.running: dict = {}      # task id -> TaskProcess
        self.stopping: list = []     # threads draining and stopping tasks
        self.metadata: dict = {}     # task id -> {"container": {...}, "task": {...}}
        self.lock = threading.RLock()
        self.spawner = _Spawner()
        self.balancers = Balancers(Path(log_dir), on_unhealthy=self.unhealthy)
        self.metadata_server = QuietHTTPServer(("127.0.0.1", 0), _metadata_handler(self))
        self.metadata_url = f"http://127.0.0.1:{self.metadata_server.server_address[1]}"
        self.log = open(Path(log_dir) / "task-processes.log", "a", buffering=1)

    def start(self) -> "TaskProcesses":
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"LOCAL_ENGINE_TASK_BINARY={self.binary} is not an executable file: run make binaries")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self.metadata_server.serve_forever, daemon=True).start()
        return self

    def note(self, message: str) -> None:
        self.log.write(f"{time.strftime('%H:%M:%S')} {message}\n")

    # -- start ----------------------------------------------------------------------------
    def launch(self, task, service, task_definition) -> Optional[str]:
        container = _essential_container(task_definition, service)
        if container is None:
            return None
        values, failure = resolve_secrets(container, task._account_id, task.region_name)
        if failure:
            self.note(f"task {task.id}: not started: {failure}")
            return failure
        port = free_port()
        env = self.environment(task, container, port, values)
        self.metadata[task.id] = _metadata(task, task_definition, container)
        log_path = self.log_dir / f"{task.id}.log"
        with open(log_path, "ab") as log:
            process = self.spawner.popen([str(self.binary)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=str(self.log_dir))
        stop_timeout = min(float(container.get("stopTimeout") or 30),
                           float(os.environ.get("LOCAL_ENGINE_TASK_STOP_TIMEOUT") or 3))
        targets = []
        for item in service.load_balancers or []:
            if item.get("targetGroupArn") and item.get("containerName", container["name"]) == container["name"]:
                group = self.balancers.group(task._account_id, task.region_name, item["targetGroupArn"])
                if group is not None:
                    group.register(task.id, "127.0.0.1", port, getattr(task, "availability_zone", ""))
                    targets.append(group)
        record = TaskProcess(task, container, port, process, log_path, targets, stop_timeout)
        with self.lock:
            self.running[task.id] = record
        secrets = sorted(s["name"] for s in container.get("secrets") or [])
        self.note(f"task {task.id} ({task.capacity_provider_name}, {getattr(task, 'availability_zone', '')}): "
                  f"pid {process.pid} on 127.0.0.1:{port}, secrets {secrets}, {len(targets)} target group(s), "
                  f"log {log_path.name}")
        threading.Thread(target=self._watch, args=(record,), daemon=True).start()
        return None

    def environment(self, task, container: dict, port: int, secrets: dict) -> dict:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.log_dir)}
        env.update({e["name"]: str(e.get("value", "")) for e in container.get("environment") or []})
        env.setdefault("EXPECTED_SECRETS", ",".join(s["name"] for s in container.get("secrets") or []))
        env.update(secrets)
        env.update(CREDENTIALS)
        env.update({
            "PORT": str(port), "BIND_ADDRESS": "127.0.0.1", "DRAIN_SECONDS": "1",
            "ECS_CONTAINER_METADATA_URI_V4": f"{self.metadata_url}/v4/{task.id}",
            "ECS_CONTAINER_METADATA_URI": f"{self.metadata_url}/v3/{task.id}",
            "ECS_AGENT_URI": f"{self.metadata_url}/api/{task.id}",
            "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE", "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_REGION": task.region_name, "AWS_DEFAULT_REGION": task.region_name,
        })
        return env

    # -- stop -----------------------------------------------------------------------------
    def stop(self, task) -> None:
        with self.lock:
            record = self.running.get(task.id)
            if record is None or record.stopping:
                return
            record.stopping = True
        for group in record.targets:
            if not group.replacing(task.id):
                group.start_draining(task.id)  # no new request from now on
        meta = self.metadata.get(task.id)
        if meta:
            meta["task"]["DesiredStatus"] = "STOPPED"
        thread = threading.Thread(target=self._stop, args=(record, task.stopped_reason), daemon=True)
        self.stopping.append(thread)
        thread.start()

    def _stop(self, record: TaskProcess, reason: str) -> None:
        for group in record.targets:
            group.wait_for_replacements(record.task_id, REPLACEMENT_WAIT)
        drained = sum(group.deregister(record.task_id) for group in record.targets)
        process = record.process
        if process.poll() is None:
            _signal(process, signal.SIGTERM)
            try:
                process.wait(timeout=record.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL)
                process.wait()
                self.note(f"task {record.task_id}: no exit {record.stop_timeout:.0f} s after SIGTERM: SIGKILL")
        self.note(f"task {record.task_id} stopped ({reason}): drained {drained:.1f} s, exit code {process.returncode}")
        self._gone(record)

    def _gone(self, record: TaskProcess) -> None:
        with self.lock:
            self.running.pop(record.task_id, None)
        meta = self.metadata.get(record.task_id)
        if meta:
            meta["task"]["KnownStatus"] = meta["container"]["KnownStatus"] = "STOPPED"
            meta["container"]["ExitCode"] = record.process.returncode

    def _watch(self, record: TaskProcess) -> None:
        """The essential container exited on its own: ECS stops the task and replaces it."""
        code = record.process.wait()
        code = 128 - code if code < 0 else code  # as Docker reports a signal: SIGKILL is 137
        with self.lock:
            if record.stopping:
                return
            record.stopping = True
        self.note(f"task {record.task_id}: process exited with {code} on its own")
        for group in record.targets:
            group.deregister(record.task_id)
        self._gone(record)
        from . import engine_ecs_scheduler as scheduler

        with scheduler.lock:
            task = record.task
            if task.desired_status != "STOPPED":
                for container in task.containers:
                    container.exitCode = code
                scheduler.stop_task(task, "Essential container in task exited", code="EssentialContainerExited")
                from moto.ecs.models import ecs_backends

                backend = ecs_backends[task._account_id][task.region_name]
                for service in backend.services.values():
                    if service.arn == getattr(task, "_engine_service_arn", None) and service.status == "ACTIVE":
                        scheduler.schedule(backend, service)

    def unhealthy(self, target_group_arn: str, task_id: str) -> None:
        """A target failing its health checks: past the service's health check grace period
        (capped at LOCAL_ENGINE_HEALTH_CHECK_GRACE, default 3 s), ECS stops the task and the
        service starts another ("Health check grace period"; the task's stoppedReason reads
        "Task failed ELB health checks in (target-group <arn>)")."""
        from moto.ecs.models import ecs_backends

        from . import engine_ecs_scheduler as scheduler

        with self.lock:
            record = self.running.get(task_id)
            if record is None or record.stopping:
                return
        task = record.task
        backend = ecs_backends[task._account_id][task.region_name]
        with scheduler.lock:
            service = next((s for s in backend.services.values()
                            if s.arn == record.service_arn and s.status == "ACTIVE"), None)
            if service is None or task.desired_status == "STOPPED":
                return
            grace = min(float(getattr(service, "health_check_grace_period_seconds", None) or 0),
                        float(os.environ.get("LOCAL_ENGINE_HEALTH_CHECK_GRACE") or 3))
            if time.monotonic() - record.started < grace:
                return
            self.note(f"task {task_id}: unhealthy in {target_group_arn}: stopped, the service replaces it")
            scheduler._event(service, f"(service {service.name}) (task {task_id}) is unhealthy in (target-group "
                                      f"{target_group_arn}) due to (reason Health checks failed).")
            scheduler.stop_task(task, f"Task failed ELB health checks in (target-group {target_group_arn})")
            scheduler.schedule(backend, service)

    def describe(self) -> list:
        with self.lock:
            return [r.describe() for r in self.running.values()]

    def shutdown(self) -> None:
        """Engine shutdown: every task process gets SIGTERM, SIGKILL after its stop timeout."""
        with self.lock:
            records = list(self.running.values())
            for record in records:
                record.stopping = True
        for record in records:
            if record.process.poll() is None:
                _signal(record.process, signal.SIGTERM)
        for record in records:
            try:
                record.process.wait(timeout=record.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal(record.process, signal.SIGKILL)
                record.process.wait()
            self._gone(record)
        for thread in list(self.stopping):
            thread.join(timeout=10)
        self.balancers.close()
        self.metadata_server.shutdown()
        self.metadata_server.server_close()
        self.note(f"engine shutdown: {len(records)} task process(es) stopped")
        self.log.close()


def _signal(process, sig) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _essential_container(task_definition, service) -> Optional[dict]:
    containers = task_definition.container_definitions or []
    named = {item.get("containerName") for item in service.load_balancers or []}
    for container in containers:
        if container.get("name") in named:
            return container
    return next((c for c in containers if c.get("essential", True)), None)


def resolve_secrets(container: dict, account: str, region: str) -> tuple:
    """({env name: value}, failure) for the container's `secrets` from moto's SSM (valueFrom a
    parameter name or an arn:aws:ssm:...:parameter/... ARN). Values are never logged."""
    from moto.ssm.models import ssm_backends

    values, missing = {}, []
    for secret in container.get("secrets") or []:
        source = secret.get("valueFrom") or ""
        names, backend = [source], ssm_backends[account][region]
        if source.startswith("arn:"):
            _, _, _, arn_region, arn_account, resource = source.split(":", 5)
            backend = ssm_backends[arn_account or account][arn_region or region]
            # parameter/shop/dev/X names /shop/dev/X; parameter/X names X (or /X)
            rest = resource.split("parameter/", 1)[-1]
            names = ["/" + rest, rest] if "/" in rest else [rest, "/" + rest]
        parameter = None
        for name in names:
            try:
                parameter = backend.get_parameter(name) if name else None
            except Exception:  # noqa: BLE001 - a version or label that does not exist
                parameter = None
            if parameter is not None:
                break
        if parameter is None:
            missing.append(source)
        else:
            values[secret["name"]] = parameter.decrypt(parameter.value)
    if missing:
        return {}, ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
                    f"retrieval failed: unable to retrieve secrets from ssm: invalid parameters: {', '.join(missing)}")
    return values, None


def _metadata(task, task_definition, container: dict) -> dict:
    """Container and task metadata as Fargate's v4 endpoint serves them."""
    region, account = task.region_name, task._account_id
    cluster_arn = f"arn:aws:ecs:{region}:{account}:cluster/{task.cluster_name}"
    family, revision = task_definition.family, str(task_definition.revision)
    details = {d["name"]: d["value"] for a in task.attachments for d in a.get("details", [])}
    image = container.get("image", "")
    started = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    meta = {
        "DockerId": f"{task.id}-{hashlib.sha256(container['name'].encode()).hexdigest()[:10]}",
        "Name": container["name"], "DockerName": container["name"], "Image": image,
        "ImageID": "sha256:" + hashlib.sha256(image.encode()).hexdigest(),
        "Labels": {"com.amazonaws.ecs.cluster": cluster_arn, "com.amazonaws.ecs.container-name": container["name"],
                   "com.amazonaws.ecs.task-arn": task.task_arn,
                   "com.amazonaws.ecs.task-definition-family": family,
                   "com.amazonaws.ecs.task-definition-version": revision},
        "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING", "Limits": {"CPU": 2},
        "CreatedAt": started, "StartedAt": started, "Type": "NORMAL",
        "ContainerARN": f"arn:aws:ecs:{region}:{account}:container/{task.cluster_name}/{task.id}/{container['name']}",
        "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": [details.get("privateIPv4Address", "127.0.0.1")],
                      "AttachmentIndex": 0, "MACAddress": details.get("macAddress", ""),
                      "PrivateDNSName": details.get("privateDnsName", "")}],
    }
    return {"container": meta, "task": {
        "Cluster": cluster_arn, "TaskARN": task.task_arn, "Family": family, "Revision": revision,
        "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
        "Limits": {"CPU": int(task_definition.cpu or 256) / 1024, "Memory": int(task_definition.memory or 512)},
        "PullStartedAt": started, "PullStoppedAt": started,
        "AvailabilityZone": getattr(task, "availability_zone", None) or f"{region}a",
        "LaunchType": "FARGATE", "Containers": [meta]}}


def _metadata_handler(runner_: TaskProcesses):
    class Handler(QuietHandler):
        def do_GET(self):
            parts = self.path.split("?")[0].strip("/").split("/")
            meta = runner_.metadata.get(parts[1]) if len(parts) >= 2 else None
            if meta is None or parts[0] not in ("v4", "v3"):
                return self.send_json(404, {"error": f"no task metadata at {self.path}"})
            if parts[2:] == ["task"]:
                return self.send_bytes(200, json.dumps(meta["task"]).encode(), {"Content-Type": "application/json"})
            if parts[2:] == []:
                return self.send_bytes(200, json.dumps(meta["container"]).encode(), {"Content-Type": "application/json"})
            self.send_json(404, {"error": f"not served locally: {self.path}"})

    return Handler
