"""The Python baseline of tests/bench_coldstart.py: what the same custom resource costs written the
common Python way, a crhelper handler whose boto3 clients are made at import time, as the Rust
function makes its SDK clients before its first `next`.

Run by `python -m awslambdaric bench_coldstart_handler.handler` from the bench's task root, with:
- BENCH_BOTO3_CLIENTS: comma-separated boto3 service names, the clients the Rust function makes;
- BENCH_EVENT_KIND: `cloudformation` (a crhelper custom resource) or `eventbridge` (spot-fallback,
  which is an EventBridge target: a plain handler, no crhelper).

It answers exactly what the bench sends without calling AWS: a Delete of a resource whose Create
failed (the Rust library's `custom-resource:create-failed:` marker) succeeds; an ECS Service
Action other than a placement failure is ignored. Anything else fails loudly.
"""
import os
from http.client import HTTPConnection

import boto3
import crhelper.utils
from crhelper import CfnResource

CREATE_FAILED_PREFIX = "custom-resource:create-failed:"
KIND = os.environ.get("BENCH_EVENT_KIND", "cloudformation")

# crhelper PUTs its answer over https only; the bench's sink is plain http on loopback, the same
# URL the Rust side PUTs to (allowed by RESPONSE_URL_ALLOWED_PREFIXES). Nothing else is changed.
crhelper.utils.HTTPSConnection = lambda host, context=None: HTTPConnection(host, timeout=10)

CLIENTS = {name: boto3.client(name) for name in os.environ["BENCH_BOTO3_CLIENTS"].split(",") if name}
helper = CfnResource(log_level="INFO") if KIND == "cloudformation" else None


def create_or_update(event, context):
    raise RuntimeError(f"the cold-start bench sends only Deletes, not {event['RequestType']}")


def delete(event, context):
    physical_id = event.get("PhysicalResourceId", "")
    if not physical_id.startswith(CREATE_FAILED_PREFIX):
        raise RuntimeError(f"the bench's Delete names a failed Create, not {physical_id!r}")
    # Nothing was created, nothing to delete: crhelper answers SUCCESS with the event's id.


if helper is not None:
    helper.create(create_or_update)
    helper.update(create_or_update)
    helper.delete(delete)


def eventbridge(event, context):
    detail = event.get("detail") or {}
    if event.get("detail-type") == "ECS Service Action" and \
            detail.get("eventName") != "SERVICE_TASK_PLACEMENT_FAILURE":
        return {"ignored": f"service action {detail.get('eventName', '')}"}
    raise RuntimeError(f"the bench sends only ignorable ECS Service Actions, not {event.get('detail-type')!r}")


def handler(event, context):
    if helper is None:
        return eventbridge(event, context)
    helper(event, context)
