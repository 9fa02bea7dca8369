"""The sample app (app/) as a process: what its page shows from a fake ECS task metadata endpoint
v4 and a fake ecs:DescribeTasks, how it drains on SIGTERM, and that secret values never leave it.

The fake endpoint answers as Fargate does (docs: "Amazon ECS task metadata v4 JSON response for
tasks on Fargate"): `${ECS_CONTAINER_METADATA_URI_V4}` for the container, `/task` for the task,
which carries no capacity provider; the app reads that from DescribeTasks, answered here in the
ECS JSON protocol (AmazonEC2ContainerServiceV20141113.DescribeTasks).
"""
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import LOGS, TARGET
from harness.net import QuietHandler, QuietHTTPServer, free_port, wait_for_http, wait_until

APP = TARGET / "debug" / "app"
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/prod/4f1c2b7a9d0e4e51a3b2c1d0e9f8a7b6"
CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/prod-app:3f2a1b9"
SECRET_VALUE = "s3cr3t-Value-that-must-never-show"


class FakeEcs:
    """Task metadata v4 (GET) and DescribeTasks (POST) on one loopback server."""

    def __init__(self, provider="FARGATE_SPOT", metadata=True, describe_status=200):
        self.provider, self.metadata, self.describe_status = provider, metadata, describe_status
        self.describe_requests = []
        fake = self

        class Handler(QuietHandler):
            def do_GET(self):
                if not fake.metadata:
                    return self.send_bytes(404, b"no metadata")
                if self.path == "/v4/abc/task":
                    return self.send_json(200, {"Cluster": CLUSTER, "TaskARN": TASK_ARN, "Family": "prod-app",
                                                "Revision": "3", "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
                                                "AvailabilityZone": "us-east-1b", "LaunchType": "FARGATE",
                                                "Containers": [{"Name": "app", "Image": IMAGE}]})
                if self.path == "/v4/abc":
                    return self.send_json(200, {"Name": "app", "Image": IMAGE, "DockerId": "4f1c2b7a-123"})
                self.send_bytes(404)

            def do_POST(self):
                fake.describe_requests.append((self.headers.get("X-Amz-Target"), json.loads(self.read_body())))
                if fake.describe_status != 200:
                    return self.send_json(fake.describe_status, {
                        "__type": "AccessDeniedException",
                        "message": "User is not authorized to perform: ecs:DescribeTasks"})
                self.send_json(200, {"tasks": [{"taskArn": TASK_ARN, "clusterArn": CLUSTER, "launchType": "FARGATE",
                                                "capacityProviderName": fake.provider, "lastStatus": "RUNNING"}],
                                     "failures": []})

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class App:
    def __init__(self, fake=None, env=None, name="app"):
        if not APP.exists():
            pytest.fail(f"{APP} is missing: run `make binaries` first")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {"PATH": os.environ.get("PATH", ""), "BIND_ADDRESS": "127.0.0.1", "PORT": str(self.port),
                "DRAIN_SECONDS": "1", "SHUTDOWN_GRACE_SECONDS": "5", "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "AKIDLOCAL", "AWS_SECRET_ACCESS_KEY": "local", "AWS_EC2_METADATA_DISABLED": "true"}
        if fake:
            base.update(ECS_CONTAINER_METADATA_URI_V4=f"{fake.url}/v4/abc", AWS_ENDPOINT_URL=fake.url)
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}-{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([str(APP)], env={**base, **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_http(self.url + "/health", timeout=10)

    def get(self, path="/?format=json", timeout=10):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            body = response.read().decode()
            return response.status, (json.loads(body) if "format=json" in path else body)

    def status(self, path):
        try:
            return self.get(path)[0]
        except urllib.error.HTTPError as error:
            return error.code

    def answered(self, key, wanted, timeout=10.0):
        """The JSON answer once `key` reads `wanted` (the metadata fills in just after start)."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.get()[1]
            if doc[key] == wanted or time.monotonic() > deadline:
                return doc
            time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log_path).read_text()

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def run():
    started, fakes = [], []

    def start(fake_args=None, env=None, metadata=True):
        fake = FakeEcs(**(fake_args or {})) if metadata else None
        if fake:
            fakes.append(fake)
        app = App(fake, env)
        started.append(app)
        return app, fake
    yield start
    for app in started:
        app.stop()
    for fake in fakes:
        fake.close()


@pytest.mark.parametrize("provider", ["FARGATE", "FARGATE_SPOT"])
def test_the_page_shows_the_task_zone_image_tag_and_the_capacity_provider_it_runs_on(run, provider):
    app, fake = run({"provider": provider})
    doc = app.answered("capacity_provider", provider)
    assert doc["capacity_provider"] == provider
    assert (doc["task_id"], doc["availability_zone"], doc["launch_type"]) == (
        "4f1c2b7a9d0e4e51a3b2c1d0e9f8a7b6", "us-east-1b", "FARGATE")
    assert (doc["image"], doc["image_tag"]) == (IMAGE, "3f2a1b9")
    target, request = fake.describe_requests[0]
    assert target == "AmazonEC2ContainerServiceV20141113.DescribeTasks"
    assert request == {"cluster": CLUSTER, "tasks": [TASK_ARN]}, "it asks about its own task only"
    status, html = app.get("/")
    assert status == 200 and provider in html and "us-east-1b" in html
    assert app.status("/health") == 200


def test_without_task_metadata_the_page_reads_unknown_instead_of_failing(run):
    app, _ = run(metadata=False)
    doc = app.get()[1]
    assert [doc[k] for k in ("task_id", "availability_zone", "capacity_provider", "image_tag")] == ["unknown"] * 4
    assert app.get()[1]["requests"] == 2, "the counter counts page requests"
    assert "ECS_CONTAINER_METADATA_URI_V4 is not set" in app.output()


def test_a_metadata_endpoint_that_fails_leaves_the_fields_unknown_and_the_app_serving(run):
    app, _ = run({"metadata": False})
    time.sleep(1.5)
    doc = app.get()[1]
    assert doc["task_id"] == "unknown" and doc["capacity_provider"] == "unknown"
    assert app.status("/health") == 200
    assert "HTTP 404" in app.output()


def test_a_denied_describe_tasks_says_which_permission_the_task_role_lacks(run):
    app, _ = run({"describe_status": 400})
    doc = wait_until(lambda: (lambda d: d if d["capacity_provider_error"] else None)(app.get()[1]),
                     "the DescribeTasks error shown", timeout=15, interval=0.2)
    assert doc["capacity_provider"] == "unknown"
    assert "ecs:DescribeTasks" in doc["capacity_provider_error"] and "task role" in doc["capacity_provider_error"]
    assert doc["task_id"] == "4f1c2b7a9d0e4e51a3b2c1d0e9f8a7b6", "the metadata still shows"


def test_secret_values_never_appear_in_an_answer_or_the_log_only_which_names_are_set(run):
    app, _ = run(env={"EXPECTED_SECRETS": "DB_PASSWORD,API_KEY", "DB_PASSWORD": SECRET_VALUE})
    doc = app.answered("capacity_provider", "FARGATE_SPOT")
    assert doc["secrets"] == {"DB_PASSWORD": True, "API_KEY": False}
    status, html = app.get("/")
    assert "Secret DB_PASSWORD</th><td>present" in html and "Secret API_KEY</th><td>MISSING" in html
    app.process.send_signal(signal.SIGTERM)
    app.process.wait(timeout=15)
    everything = json.dumps(doc) + html + app.output()
    assert SECRET_VALUE not in everything


def test_a_request_in_flight_when_sigterm_arrives_completes_and_the_process_exits_within_its_stop_timeout(run):
    app, _ = run(env={"DRAIN_SECONDS": "1", "SHUTDOWN_GRACE_SECONDS": "10"})
    answers = {}

    def slow():
        answers["slow"] = app.get("/?format=json&delay_ms=2500", timeout=20)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)  # the slow request is being served
    sent = time.monotonic()
    app.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert app.status("/health") == 503, "draining: the target group stops sending"
    assert app.status("/?format=json") == 200, "requests are still served while the balancer drains"
    thread.join(timeout=20)
    code = app.process.wait(timeout=20)
    took = time.monotonic() - sent
    assert answers["slow"][0] == 200, "the request in flight at SIGTERM completed"
    assert code == 0
    stop_timeout = 30  # the container's stopTimeout in cloudformation/service.yaml's task definition
    assert took < stop_timeout, f"exited {took:.1f} s after SIGTERM"
    log = app.output()
    assert '"event":"draining"' in log and "every in-flight request completed" in log
