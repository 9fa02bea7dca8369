"""make demo-protocol: the example resource's lifecycle on the local emulator, printed as CloudFormation
would show it. Starts moto and the local Lambda service on free loopback ports, drives the real
example binary through Create, Update, a replacement, a failed update with its rollback, a wait
that outlives one Lambda invocation, and Delete; then stops everything it started."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import FUNCTION_ENV, LAMBDA_TIMEOUT, LOGS, binary  # noqa: E402
from harness.cloudformation import CloudFormation, Resource  # noqa: E402
from harness.lambda_service import LocalLambda  # noqa: E402
from harness.moto import MotoServer  # noqa: E402


def main() -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    moto = cfn = function = None
    try:
        moto = MotoServer(LOGS).start()
        cfn = CloudFormation(stack_name="demo", echo=print)
        env = dict(FUNCTION_ENV, AWS_ENDPOINT_URL=moto.url, RESPONSE_URL_ALLOWED_PREFIXES=cfn.prefix)
        function = LocalLambda("example-resource", binary("example-resource", example=True), LOGS,
                               timeout=LAMBDA_TIMEOUT, env=env).start()
        ssm = moto.client("ssm")
        print(f"moto on {moto.url}; provider '{function.name}' behind the Lambda Runtime API on "
              f"{function.endpoint} (timeout {LAMBDA_TIMEOUT:.0f} s); stack {cfn.stack_id}\n")

        def state(note):
            names = [p["Name"] for p in ssm.describe_parameters()["Parameters"]]
            print(f"{'':>10}-- {note}: SSM parameters now {names or 'none'}\n")

        parameter = Resource(cfn, function, "DatabaseUrl")
        started = time.monotonic()
        print("1. Create")
        parameter.create({"Name": "/demo/database-url", "Value": "postgres://db:5432/app"})
        state("created")
        print("2. Update in place (Value changes; physical id kept)")
        parameter.update({"Name": "/demo/database-url", "Value": "postgres://db:5432/app?ssl=true"})
        state("updated")
        print("3. Update that replaces (Name changes; cleanup deletes the old id)")
        parameter.update({"Name": "/demo/db-url", "Value": "postgres://db:5432/app?ssl=true"})
        state("replaced")
        print("4. Update that fails, then CloudFormation's rollback Update")
        parameter.update({"Name": "/demo/db-url", "Value": "broken", "FailOn": "Update"})
        state("rolled back")
        print(f"5. Update that waits 10 s: longer than one {LAMBDA_TIMEOUT:.0f} s Lambda invocation")
        answer = parameter.update({"Name": "/demo/db-url", "Value": "v2", "WaitSeconds": 10})
        hops = len(function.invocations_for(answer.request_id))
        print(f"{'':>10}-- answered once, after {hops} invocations (the wait was handed on)\n")
        print("6. Create that fails (unknown property), then CloudFormation's rollback Delete")
        Resource(cfn, function, "Typo").create({"Name": "/demo/typo", "Vaule": "x"})
        state("nothing created")
        print("7. Delete")
        parameter.delete()
        state("deleted")
        print(f"Done in {time.monotonic() - started:.1f} s: {len(cfn.requests)} requests, each answered exactly once. "
              f"Function logs: {function.log_path}")
        return 0
    finally:
        for thing in (function, cfn, moto):
            if thing is not None:
                thing.stop()


if __name__ == "__main__":
    sys.exit(main())
