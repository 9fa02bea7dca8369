"""make bench, cold starts: each release binary beside a Python crhelper + boto3 handler doing the
same job, measured in the same run on the same local Lambda Runtime API (loopback only).

For each function, RUNS (BENCH_COLDSTART_RUNS, 7) fresh processes per side, and for each:
- `next_ms`: process start (just before the spawn) -> its first GET
  `/2018-06-01/runtime/invocation/next`, i.e. the init phase (the Rust side has made its SDK
  clients by then, the Python side has imported boto3/crhelper and made the same boto3 clients);
- `answer_ms`: process start -> its POST to `/invocation/<id>/response` (or `/error`) for one
  event answered without calling AWS;
- `peak_rss_mib`: VmHWM of /proc/<pid>/status right after that answer.
Medians, min and max per function and side, and python/rust ratios of the medians.

The event: for the custom resources (network, service, scaling, preflight) a CloudFormation
Delete whose PhysicalResourceId is the library's create-failed marker (provider.rs answers SUCCESS
for it before reading properties or calling AWS; tests/bench_coldstart_handler.py does the same
with crhelper), ResponseURL on this server; a run counts only if the PUT arrived with Status
SUCCESS and the event's id. spot-fallback is an EventBridge target, not a custom resource: an ECS
Service Action it ignores, and a plain boto3 handler (no crhelper) beside it; a run counts only
if the response says ignored. A run where a side did not answer is a failure, never a figure.

The Lambda environment both sides get: region, fake credentials, function name, version, 256 MB
memory, the hand-over table (so the Rust library makes its DynamoDB client, as deployed), and
AWS_ENDPOINT_URL on an unused loopback port so nothing can leave the machine. The Python side runs
`python -m awslambdaric bench_coldstart_handler.handler` in its own venv (.venv-bench, from
tests/bench-requirements.txt; BENCH_PYTHON overrides). Reproduce: `make bench`, or standalone
`.venv/bin/python tests/bench_coldstart.py` (LAMBDA_DIR as bench.py reads it).
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).parent))

from harness.net import QuietHandler, QuietHTTPServer, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_COLDSTART_RUNS", "7"))
PYTHON = Path(os.environ.get("BENCH_PYTHON") or ROOT / ".venv-bench" / "bin" / "python")
HANDLER = Path(__file__).parent / "bench_coldstart_handler.py"
TIMEOUT = 30.0  # seconds a process has to answer; then it is killed and the run fails
REGION, ACCOUNT = "us-east-1", "123456789012"
CREATE_FAILED_PREFIX = "custom-resource:create-failed:"
# The library (custom_resource::run) makes a Lambda client, and a DynamoDB one with a hand-over table.
LIBRARY_CLIENTS = ["lambda", "dynamodb"]
# function -> (its CloudFormation resource type, or None for spot-fallback; the boto3 clients
# matching the SDK clients its main.rs makes with client!).
FUNCTIONS = {
    "network": ("Custom::Network", ["ec2"] + LIBRARY_CLIENTS),
    "service": ("Custom::FargateService", ["ecs", "iam", "ssm", "elbv2", "application-autoscaling", "ecr"]
                + LIBRARY_CLIENTS),
    "scaling": ("Custom::ServiceScaling", ["application-autoscaling", "cloudwatch", "ecs", "elbv2"]
                + LIBRARY_CLIENTS),
    "preflight": ("Custom::EnvironmentPreflight", ["iam"] + LIBRARY_CLIENTS),
    "spot-fallback": (None, ["ecs"]),
}
FIGURES = ("next_ms", "answer_ms", "peak_rss_mib")


class ColdStartFailure(RuntimeError):
    """A side did not answer, or answered wrong: the run is a failure, not a figure."""


# -- pure helpers (tests/test_bench_coldstart.py) ---------------------------------------------
def vm_hwm_mib(status: str) -> float:
    """Peak resident set size in MiB from the text of /proc/<pid>/status (`VmHWM:  1234 kB`)."""
    match = re.search(r"^VmHWM:\s+(\d+)\s+kB$", status, re.MULTILINE)
    if not match:
        raise ValueError("no VmHWM line in /proc/<pid>/status")
    return round(int(match.group(1)) / 1024, 1)


def spread(values: list) -> dict:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1)}


def summarize(samples: list) -> dict:
    """Per-run samples ({figure: value}) -> {figure: {median, min, max}}."""
    return {figure: spread([sample[figure] for sample in samples]) for figure in FIGURES}


def ratios(rust: dict, python: dict) -> dict:
    """python / rust of each figure's median."""
    return {figure: round(python[figure]["median"] / rust[figure]["median"], 1) for figure in FIGURES}


def cell(figure: dict) -> str:
    """`median (min-max)`."""
    return f"{figure['median']} ({figure['min']}-{figure['max']})"


def table(result: dict) -> str:
    """The markdown table of measure()'s result: medians, (min-max) of the runs, ratios of medians."""
    head = ("| function | rust first /next ms | rust first answer ms | rust peak RSS MiB "
            "| python first /next ms | python first answer ms | python peak RSS MiB "
            "| python/rust /next | python/rust answer | python/rust RSS |")
    lines = [head, "|" + "---|" * 10]
    for function, row in result["functions"].items():
        cells = [cell(row[side][figure]) for side in ("rust", "python") for figure in FIGURES]
        cells += [row["ratio"][figure] for figure in FIGURES]
        lines.append(f"| {function} | " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def cfn_event(resource_type: str, response_url: str, request_id: str, function: str) -> dict:
    return {
        "RequestType": "Delete", "RequestId": request_id, "ResponseURL": response_url,
        "ServiceToken": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}",
        "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/bench/{uuid.uuid4()}",
        "LogicalResourceId": "Resource", "ResourceType": resource_type,
        "PhysicalResourceId": f"{CREATE_FAILED_PREFIX}{request_id}",
        "ResourceProperties": {"ServiceToken": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"},
    }


def eventbridge_event() -> dict:
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "ECS Service Action", "source": "aws.ecs",
        "account": ACCOUNT, "time": "2026-01-01T00:00:00Z", "region": REGION,
        "resources": [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/bench/web"],
        "detail": {"eventType": "INFO", "eventName": "SERVICE_STEADY_STATE",
                   "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/bench"},
    }


# -- one cold start ----------------------------------------------------------------------------
class RuntimeApi:
    """The Runtime API for one process's first invocation, plus the ResponseURL sink (PUT
    /responses/...). Records when `next` was first asked and when the answer came."""

    def __init__(self):
        self.request_id = str(uuid.uuid4())
        self.event: dict = {}
        self.next_at: Optional[float] = None
        self.answer_at: Optional[float] = None
        self.answer: Optional[tuple] = None  # ("response" | "error" | "init/error", body)
        self.put: Optional[dict] = None
        self.answered, self.stopped = threading.Event(), threading.Event()
        self.server = QuietHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()

    def _next(self, handler) -> None:
        if self.next_at is not None:  # the process asks for its second event: hold it until the end
            self.stopped.wait(TIMEOUT)
            return handler.send_bytes(410, b'{"errorMessage": "environment stopped"}')
        self.next_at = time.monotonic()
        handler.send_bytes(200, json.dumps(self.event).encode(), {
            "Content-Type": "application/json", "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(int((time.time() + 60) * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": self.event.get("ServiceToken", "arn:aws:lambda:bench"),
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0"})

    def _post(self, path: str, body: bytes) -> int:
        match = re.fullmatch(r"/2018-06-01/runtime/(?:invocation/([^/]+)/(response|error)|(init/error))", path)
        if not match:
            return 404
        if self.answer is None:
            self.answer_at = time.monotonic()
            self.answer = (match.group(2) or match.group(3), body)
            self.answered.set()
        return 202

    def _handler(self):
        api = self

        class Handler(QuietHandler):
            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.send_bytes(404)
                api._next(self)

            def do_POST(self):
                self.send_bytes(api._post(self.path, self.read_body()), b'{"status": "OK"}')

            def do_PUT(self):
                body = self.read_body()
                if not self.path.startswith("/responses/"):
                    return self.send_bytes(404)
                api.put = json.loads(body)
                self.send_bytes(200)

        return Handler


def lambda_env(function: str, api: RuntimeApi, task_root: Path, extra: dict) -> dict:
    """What a Lambda's process gets (fake credentials; every AWS endpoint an unused loopback port)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": ":UTC",
           "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
           "AWS_ACCESS_KEY_ID": "AKIDBENCHCOLDSTART00", "AWS_SECRET_ACCESS_KEY": "bench-cold-start-secret",
           "AWS_SESSION_TOKEN": "bench-cold-start-token", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
           "AWS_LAMBDA_RUNTIME_API": api.url.removeprefix("http://"),
           "AWS_LAMBDA_FUNCTION_NAME": function, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
           "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "LAMBDA_TASK_ROOT": str(task_root),
           "RUST_LOG": "info", "CUSTOM_RESOURCE_HANDOVER_TABLE": "custom-resource-handovers",
           "RESPONSE_URL_ALLOWED_PREFIXES": f"{api.url}/responses/"}
    if function == "spot-fallback":
        env.update(CLUSTER_NAME="bench", SERVICE_NAME="web", QUIET_PERIOD_MINUTES="15")
    env.update(extra)
    return env


def check_answer(api: RuntimeApi, function: str, side: str) -> None:
    """Raise ColdStartFailure unless the process answered the bench's event as it should."""
    kind, body = api.answer
    if kind != "response":
        raise ColdStartFailure(f"{side} {function} answered {kind}: {body[:500]!r}")
    if FUNCTIONS[function][0] is None:
        if "ignored" not in json.loads(body or b"null"):
            raise ColdStartFailure(f"{side} {function} did not ignore the event: {body[:500]!r}")
        return
    deadline = time.monotonic() + 5
    while api.put is None and time.monotonic() < deadline:
        time.sleep(0.01)
    put = api.put or {}
    if put.get("Status") != "SUCCESS" or put.get("PhysicalResourceId") != api.event["PhysicalResourceId"]:
        raise ColdStartFailure(f"{side} {function}: CloudFormation got {put or 'no answer'}")


def cold_start(function: str, side: str, command: list, task_root: Path, extra_env: dict, log) -> dict:
    """One fresh process: its three figures, or ColdStartFailure. The process is always killed."""
    api = RuntimeApi()
    resource_type = FUNCTIONS[function][0]
    api.event = (cfn_event(resource_type, f"{api.url}/responses/{api.request_id}", api.request_id, function)
                 if resource_type else eventbridge_event())
    env = lambda_env(function, api, task_root, extra_env)
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=task_root, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not api.answered.wait(TIMEOUT):
            raise ColdStartFailure(f"{side} {function} gave no answer within {TIMEOUT} s "
                                   f"(exit code {process.poll()}, next asked: {api.next_at is not None})")
        check_answer(api, function, side)
        peak = vm_hwm_mib(Path(f"/proc/{process.pid}/status").read_text())
    finally:
        process.kill()
        process.wait(timeout=10)
        api.stop()
    return {"next_ms": (api.next_at - started) * 1000, "answer_ms": (api.answer_at - started) * 1000,
            "peak_rss_mib": peak}


def unzip_bootstrap(zip_path: Path, into: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extract("bootstrap", into)
    binary = into / "bootstrap"
    binary.chmod(0o755)
    return binary


def measure_function(function: str, lambda_dir: Path, python: Path, runs: int, work: Path) -> dict:
    """RUNS cold starts of the release binary, then RUNS of the Python handler, for one function."""
    rust_root, python_root = work / function / "rust", work / function / "python"
    rust_root.mkdir(parents=True)
    python_root.mkdir(parents=True)
    binary = unzip_bootstrap(lambda_dir / function / "bootstrap.zip", rust_root)
    shutil.copy(HANDLER, python_root / HANDLER.name)
    clients = FUNCTIONS[function][1]
    python_env = {"BENCH_BOTO3_CLIENTS": ",".join(clients), "PYTHONPATH": str(python_root),
                  "AWS_EXECUTION_ENV": "AWS_Lambda_python3", "_HANDLER": f"{HANDLER.stem}.handler",
                  "BENCH_EVENT_KIND": "cloudformation" if FUNCTIONS[function][0] else "eventbridge"}
    sides = {"rust": ([str(binary)], rust_root, {}),
             "python": ([str(python), "-m", "awslambdaric", f"{HANDLER.stem}.handler"], python_root, python_env)}
    row: dict = {"boto3_clients": clients}
    for side, (command, task_root, extra) in sides.items():
        with open(work / f"{function}-{side}.log", "ab") as log:
            samples = [cold_start(function, side, command, task_root, extra, log) for _ in range(runs)]
        row[side] = summarize(samples)
    row["ratio"] = ratios(row["rust"], row["python"])
    return row


def measure(lambda_dir: Path, python: Path = PYTHON, runs: int = RUNS, logs: Optional[Path] = None) -> dict:
    """Every function's cold starts, both sides; the processes' output goes to `logs` (kept) or a
    temp dir. Raises ColdStartFailure when a run did not answer."""
    if not python.exists():
        raise FileNotFoundError(f"{python} does not exist: make .venv-bench/.installed (tests/bench-requirements.txt)")
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as temp:
        work = Path(temp)
        functions = {function: measure_function(function, lambda_dir, python, runs, work) for function in FUNCTIONS}
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            for log in work.glob("*.log"):
                shutil.copy(log, logs / log.name)
    return {"runs": runs, "python": python_versions(python), "functions": functions}


def python_versions(python: Path) -> dict:
    """The baseline's interpreter and package versions, as installed in its venv."""
    script = ("import sys, json; from importlib.metadata import version as v; print(json.dumps("
              "{'python': sys.version.split()[0], **{p: v(p) for p in ('boto3', 'crhelper', 'awslambdaric')}}))")
    return json.loads(subprocess.run([str(python), "-c", script], capture_output=True, text=True,
                                     check=True, timeout=60).stdout)


def main() -> int:
    from bench import LAMBDA_DIR, OUT

    result = measure(LAMBDA_DIR, logs=OUT / "coldstart")
    print(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
