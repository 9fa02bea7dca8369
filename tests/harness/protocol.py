"""CloudFormation's custom-resource protocol, as the Python side speaks it (one home): the request
event CloudFormation sends, the scalar-to-string rule it applies to properties, and the rules an
answer PUT to the ResponseURL must follow. The CloudFormation stand-in (harness/cloudformation.py)
and the local engine (harness/engine.py) both build their events and check their answers here."""
import json
from typing import Any, Optional

# CloudFormation's limit on a response body ("the total combined size of the response ... 4096
# bytes", custom resource response objects) and on a physical id (1 KB).
MAX_BODY = 4096
MAX_PHYSICAL_ID = 1024
REQUIRED = ("Status", "PhysicalResourceId", "StackId", "RequestId", "LogicalResourceId")


def stringify(value: Any) -> Any:
    """CloudFormation sends every scalar in ResourceProperties as a string ("3", "true")."""
    if isinstance(value, dict):
        return {k: stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringify(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def request_event(request_type: str, *, service_token: str, response_url: str, stack_id: str,
                  request_id: str, logical_id: str, resource_type: str, properties: dict,
                  physical_id: Optional[str] = None, old_properties: Optional[dict] = None) -> dict:
    """The event CloudFormation invokes the ServiceToken's function with. ResourceProperties (and
    OldResourceProperties, which an Update has) carry the ServiceToken and every scalar as a
    string; the physical id comes with Update and Delete; `ServiceTimeout`, when the template sets it, is also
    sent at the top level."""
    props = stringify({"ServiceToken": service_token, **properties})
    event = {
        "RequestType": request_type, "ServiceToken": service_token, "ResponseURL": response_url,
        "StackId": stack_id, "RequestId": request_id, "LogicalResourceId": logical_id,
        "ResourceType": resource_type, "ResourceProperties": props,
    }
    if "ServiceTimeout" in props:
        event["ServiceTimeout"] = props["ServiceTimeout"]
    if old_properties is not None:
        event["OldResourceProperties"] = stringify({"ServiceToken": service_token, **old_properties})
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    return event


def parse_answer(body: bytes, request: dict) -> tuple:
    """(answer, problems): the answer's JSON (empty when it is none) and every rule it breaks,
    against the request it answers. CloudFormation refuses an answer that is not JSON, over
    MAX_BODY, without a Status of SUCCESS or FAILED, without a PhysicalResourceId (or over
    MAX_PHYSICAL_ID), whose ids are not copied from the request, or whose Data is not an object.
    One rule is ours, not CloudFormation's: a FAILED answer says why (Reason)."""
    try:
        answer = json.loads(body)
    except ValueError as error:
        return {}, [f"the body is not JSON: {error}: {body[:200]!r}"]
    if not isinstance(answer, dict):
        return {}, ["the body is not a JSON object"]
    problems = []
    if len(body) > MAX_BODY:
        problems.append(f"the response body is {len(body)} bytes, over CloudFormation's {MAX_BODY}-byte limit")
    for name in REQUIRED:
        if not answer.get(name):
            problems.append(f"{name} is missing or empty")
    if answer.get("Status") not in ("SUCCESS", "FAILED"):
        problems.append(f"Status must be SUCCESS or FAILED, got {answer.get('Status')!r}")
    if answer.get("Status") == "FAILED" and not answer.get("Reason"):
        problems.append("FAILED without a Reason")
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        if answer.get(key) and answer.get(key) != request.get(key):
            problems.append(f"{key} {answer.get(key)!r} does not match the request ({request.get(key)!r})")
    if len(str(answer.get("PhysicalResourceId", ""))) > MAX_PHYSICAL_ID:
        problems.append(f"PhysicalResourceId longer than {MAX_PHYSICAL_ID} characters")
    if answer.get("Data") is not None and not isinstance(answer.get("Data"), dict):
        problems.append("Data must be a JSON object")
    return answer, problems
