"""moto server on a free loopback port, started and stopped by the harness, with the AWS rules of
harness.aws_rules patched in (so the resource binaries meet them too)."""
import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from .net import free_port, wait_for_http

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    # Never probe the instance-metadata address from a test.
    "AWS_EC2_METADATA_DISABLED": "true",
}


class KnobsFile:
    """The file harness.aws_rules re-reads its knobs from at every use (LOCAL_AWS_KNOBS_FILE), so a
    test changes a knob of a running server: `with server.knobs(NAT_FAILURE="..."): ...`."""

    def __init__(self, path: Path):
        self.path = path

    def install(self, env: dict) -> None:
        """Empty the file and point the server's environment at it."""
        self._write({})
        env["LOCAL_AWS_KNOBS_FILE"] = str(self.path)

    @contextlib.contextmanager
    def changed(self, **values):
        """Knobs (names without LOCAL_AWS_) changed for the block, restored after it."""
        before = json.loads(self.path.read_text() or "{}")
        self._write({**before, **{k: str(v) for k, v in values.items()}})
        try:
            yield
        finally:
            self._write(before)

    def _write(self, values: dict) -> None:
        # Written whole, then renamed: the server never reads half a file.
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(values))
        partial.replace(self.path)


class MotoServer:
    """A moto_server subprocess. `reset()` wipes all state between tests."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / "moto.log"
        self.knobs_file = KnobsFile(log_dir / f"moto-{self.port}-knobs.json")
        self.process = None

    def start(self) -> "MotoServer":
        env = dict(os.environ)
        env.update(CREDENTIALS)
        # Managed policies must be loaded at start (attaching AWS-managed policies needs them).
        env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        env["MOTO_PORT"] = str(self.port)
        # ECS services report one running task (moto starts none): a desired count of 1 reaches
        # steady state, a higher one stays IN_PROGRESS, so both wait paths can be exercised.
        env["MOTO_ECS_SERVICE_RUNNING"] = "1"
        self.knobs_file.install(env)
        # moto_server with harness.aws_rules installed: `-m` keeps tests/harness (which holds this
        # moto.py) off sys.path, so `import moto` finds moto.
        tests = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, env.get("PYTHONPATH")]))
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harness.aws_rules", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for_http(self.url + "/moto-api/", timeout=60)
        return self

    def reset(self) -> None:
        request = urllib.request.Request(self.url + "/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).read()

    def knobs(self, **values):
        """harness.aws_rules knobs changed for a block, on the running server (KnobsFile)."""
        return self.knobs_file.changed(**values)

    def client(self, service: str, region: str = REGION):
        import boto3

        return boto3.client(
            service, endpoint_url=self.url, region_name=region,
            aws_access_key_id="testing", aws_secret_access_key="testing",
            aws_session_token="testing",
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.process:
            self.log.close()
