"""The local engine as a process: moto server + our CloudFormation orchestration + real Lambdas.

    python tests/local_engine.py --state-file .tmp/engine/state.json --log-dir .tmp/engine

Serves AWS on a free loopback port (all services moto has; CloudFormation orchestrated by
harness.engine; ECS services scheduled by harness.engine_ecs; AWS rules moto lacks from
harness.aws_rules), writes the endpoints to the state file once ready, and runs until
SIGTERM/SIGINT, then stops every Lambda process it started.
With LOCAL_ENGINE_TASK_BINARY=<path of the app> in its environment, every ECS service task runs
as a process of that binary behind a loopback load balancer (harness/task_processes.py,
harness/balancer.py; `GET <control>/balancers` maps load balancer DNS names to URLs).
Point any AWS client at it with AWS_ENDPOINT_URL=<moto endpoint> (see `make demo`).
"""
import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

# Read by moto when its backends are first built: set before importing moto.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ.setdefault(key, value)

sys.path.insert(0, str(Path(__file__).parent))

from harness.net import free_port, wait_for_http  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0, help="moto port (default: a free one)")
    parser.add_argument("--api-wait", type=float, default=20.0,
                        help="seconds a stack API call waits for its operation before returning")
    parser.add_argument("--custom-resource-timeout", type=float, default=900.0)
    parser.add_argument("--function-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for every Lambda process")
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    from harness import aws_rules, engine_ecs, task_processes
    from harness.engine import Engine

    aws_rules.install()
    engine_ecs.install()
    port = args.port or free_port()
    os.environ["MOTO_PORT"] = str(port)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    moto_url = f"http://127.0.0.1:{port}"
    wait_for_http(moto_url + "/moto-api/", timeout=60)
    function_env = dict(item.split("=", 1) for item in args.function_env)
    engine = Engine(args.log_dir, api_wait=args.api_wait, custom_resource_timeout=args.custom_resource_timeout,
                    function_env=function_env).start(moto_url)
    if os.environ.get("LOCAL_ENGINE_TASK_BINARY"):
        task_processes.runner = task_processes.TaskProcesses(
            Path(os.environ["LOCAL_ENGINE_TASK_BINARY"]), args.log_dir, moto_url).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    args.state_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.state_file.with_suffix(".tmp")
    temporary.write_text(json.dumps({"endpoint": moto_url, "control": engine.control_url, "pid": os.getpid(),
                                     "log_dir": str(args.log_dir)}))
    temporary.replace(args.state_file)
    print(f"local engine: AWS on {moto_url}, custom-resource responses on {engine.control_url}", flush=True)
    stop.wait()
    if task_processes.runner:
        task_processes.runner.shutdown()
    engine.stop()
    server.stop()
    args.state_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
