"""EventBridge as the local engine needs it. moto keeps rules and targets but delivers nothing to a
Lambda target and never fires a schedule; this module does both, the way EventBridge does:

* `emit`: an AWS service's event (the engine's ECS emulation sends "ECS Service Action" and "ECS
  Task State Change") goes to the default bus; every ENABLED rule whose pattern matches (moto's own
  pattern matcher) delivers it to its Lambda targets as an asynchronous invocation.
* A target is invoked only if the function's resource-based policy lets events.amazonaws.com
  invoke it from that rule (AWS::Lambda::Permission with Principal events.amazonaws.com and
  SourceArn the rule), or the target names a RoleArn ("If no execution role is configured,
  EventBridge uses resource-based policies on the target resource", EventBridge User Guide,
  Using resource-based policies). Without either, AWS drops the event and shows only
  FailedInvocations: here the delivery is recorded as refused, with the reason.
* `fire_schedules(at)`: every ENABLED rule with a ScheduleExpression delivers one "Scheduled
  Event" whose time is `at`. Time passes only when a test or the demo says so, so a quiet period
  of minutes is exercised in seconds (the function's clock is the event's time).

Deliveries happen on one worker thread, never under the caller's locks (the ECS emulation emits
while holding its own). `deliveries()` lists each one (rule, target, detail-type, outcome)."""
import fnmatch
import json
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Callable, Optional

_queue: "queue.Queue" = queue.Queue()
_lock = threading.Lock()
_deliveries: list = []
_worker: Optional[threading.Thread] = None
# Set by the engine: invoke(function, event) starts an asynchronous invocation of a moto function.
invoker: Optional[Callable] = None


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(account: str, region: str, source: str, detail_type: str, detail: dict,
             resources: list, at: Optional[float] = None) -> dict:
    """An event as EventBridge delivers it to a target."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": source,
            "account": account, "time": _iso(at if at is not None else time.time()),
            "region": region, "resources": list(resources), "detail": detail}


def emit(account: str, region: str, source: str, detail_type: str, detail: dict, resources: list) -> None:
    _start()
    _queue.put(("event", envelope(account, region, source, detail_type, detail, resources)))


def fire_schedules(account: str, region: str, at: float) -> int:
    """Every scheduled rule fires once with event time `at`; returns how many rules fired."""
    rules = [rule for rule in _rules(account, region) if rule.scheduled_expression]
    for rule in rules:
        event = envelope(account, region, "aws.events", "Scheduled Event", {}, [rule.arn], at)
        _deliver_to_targets(rule, event)
    return len(rules)


def deliveries() -> list:
    with _lock:
        return list(_deliveries)


def _start() -> None:
    global _worker
    with _lock:
        if _worker is None:
            _worker = threading.Thread(target=_work, daemon=True, name="engine-events")
            _worker.start()


def _work() -> None:
    while True:
        _, event = _queue.get()
        try:
            for rule in _rules(event["account"], event["region"]):
                if not rule.scheduled_expression and rule.event_pattern.matches_event(event):
                    _deliver_to_targets(rule, event)
        except Exception as error:  # noqa: BLE001 - a broken delivery must not stop the bus
            _record(None, None, event, f"engine error: {error}")


def _rules(account: str, region: str) -> list:
    from moto.events.models import events_backends

    bus = events_backends[account][region].event_buses.get("default")
    return [rule for rule in (bus.rules.values() if bus else []) if rule.state == "ENABLED"]


def _record(rule, target, event, outcome: str) -> None:
    with _lock:
        _deliveries.append({"Rule": getattr(rule, "name", None), "Target": (target or {}).get("Arn"),
                            "DetailType": event["detail-type"], "Time": event["time"],
                            "Detail": event["detail"], "Outcome": outcome, "At": time.time()})


def _deliver_to_targets(rule, event: dict) -> None:
    from moto.awslambda.models import lambda_backends

    for target in rule.targets:
        arn = target["Arn"]
        if ":lambda:" not in arn:
            continue  # moto's own delivery covers SQS, logs and buses; none are used here
        try:
            function = lambda_backends[rule.account_id][rule.region_name].get_function(arn)
        except Exception:  # noqa: BLE001
            _record(rule, target, event, f"refused: no function {arn}")
            continue
        # A target with its own role is invoked with that role (not evaluated here).
        problem = None if target.get("RoleArn") else _permission_problem(function, rule.arn)
        if problem:
            _record(rule, target, event, f"refused: {problem}")
            continue
        payload = event
        if target.get("Input"):
            payload = json.loads(target["Input"])
        if invoker is None:
            _record(rule, target, event, "refused: the engine has no Lambda invoker")
            continue
        invoker(function, payload)
        _record(rule, target, event, "delivered")


def _permission_problem(function, rule_arn: str) -> Optional[str]:
    """None when the function's policy lets events.amazonaws.com invoke it from `rule_arn`."""
    statements = list(getattr(function.policy, "statements", []) or [])
    for statement in statements:
        principal = statement.get("Principal") or {}
        service = principal.get("Service") if isinstance(principal, dict) else principal
        if service not in ("events.amazonaws.com", "*"):
            continue
        if statement.get("Action") not in ("lambda:InvokeFunction", "lambda:*"):
            continue
        condition = statement.get("Condition") or {}
        sources = [value for test in ("ArnLike", "ArnEquals", "StringEquals", "StringLike")
                   for key, value in (condition.get(test) or {}).items() if key.lower() == "aws:sourcearn"]
        if not sources or any(fnmatch.fnmatchcase(rule_arn, source) for source in sources):
            return None
    return (f"the resource policy of {function.function_name} does not let events.amazonaws.com invoke it "
            f"from {rule_arn}: add an AWS::Lambda::Permission with Principal events.amazonaws.com and "
            f"SourceArn the rule's ARN")
