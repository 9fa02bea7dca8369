"""A stack's events as stackctl shows them: followed while an operation runs (nested stacks
included, each event prefixed with its logical id path, e.g. Network/NatGateway1), and the cause
of a failure picked out of them. Used by stackctl.py (deploy, events, wait, weights, destroy).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from botocore.exceptions import ClientError

# Reasons that only say "something else failed"; the first other one is the cause.
SECONDARY_REASONS = ("Resource creation cancelled", "Resource update cancelled",
                     "The following resource(s) failed")


def emit(line: str = "") -> None:
    print(line, flush=True)


def describe_stack(cfn, name: str) -> dict | None:
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as e:
        if is_missing_stack(e):
            return None
        raise


def is_missing_stack(error: ClientError) -> bool:
    err = error.response.get("Error", {})
    return err.get("Code") == "ValidationError" and "does not exist" in err.get("Message", "")


def is_terminal(status: str) -> bool:
    return not status.endswith("_IN_PROGRESS")


def is_success(status: str) -> bool:
    return status.endswith("_COMPLETE") and "ROLLBACK" not in status


@dataclass
class Followed:
    """One stack whose events are followed: the root, or a nested stack found in its parent's
    events (path = logical ids from the root, e.g. ["Network"])."""
    stack: str
    path: list[str]
    seen: set = field(default_factory=set)
    cutoff: object = None  # print only events newer than this server timestamp
    active: bool = True


class EventFollower:
    """Prints every event of a stack and of its nested stacks exactly once, oldest first.

    poll() reads each active stack's events newest-first up to the first one already seen, finds
    nested stacks (AWS::CloudFormation::Stack resources whose physical id is a stack ARN) and
    follows them from then on. A nested stack is polled while it is in progress, and again when its
    parent reports work on it. `since_now` skips what happened before prime()."""

    def __init__(self, cfn, stack: str, out: Callable[[str], None] = emit, since_now: bool = False):
        self.cfn = cfn
        self.out = out
        self.since_now = since_now
        self.stacks: dict[str, Followed] = {stack: Followed(stack, [])}
        self.root = self.stacks[stack]
        self.printed: list[tuple[dict, list[str]]] = []
        self.cutoff = None

    def prime(self) -> None:
        """With since_now, mark the root's current events as seen (their newest timestamp becomes
        the cutoff for nested stacks found later)."""
        if not self.since_now:
            return
        events = self._page(self.root.stack)
        self.root.seen.update(e["EventId"] for e in events)
        if events:
            self.cutoff = max(e["Timestamp"] for e in events)
            self._adopt_stack_id(events[0])

    def _page(self, stack: str, token: str | None = None) -> list[dict]:
        kwargs = {"StackName": stack}
        if token:
            kwargs["NextToken"] = token
        try:
            return self.cfn.describe_stack_events(**kwargs)["StackEvents"]
        except ClientError as e:
            if is_missing_stack(e):
                return []
            raise

    def _new_events(self, followed: Followed) -> list[dict]:
        """Unseen events of one stack, oldest first."""
        new, token = [], None
        while True:
            kwargs = {"StackName": followed.stack}
            if token:
                kwargs["NextToken"] = token
            try:
                page = self.cfn.describe_stack_events(**kwargs)
            except ClientError as e:
                if is_missing_stack(e):
                    return []
                raise
            done = False
            for event in page["StackEvents"]:
                if event["EventId"] in followed.seen or (
                        followed.cutoff is not None and event["Timestamp"] <= followed.cutoff):
                    done = True
                    break
                new.append(event)
            token = page.get("NextToken")
            if done or not token:
                break
        followed.seen.update(e["EventId"] for e in new)
        return new[::-1]

    def _adopt_stack_id(self, event: dict) -> None:
        # Follow the root by its ARN once known: a deleted stack is no longer found by name.
        stack_id = event.get("StackId")
        if stack_id and self.root.stack != stack_id:
            self.stacks[stack_id] = self.stacks.pop(self.root.stack)
            self.root.stack = stack_id

    def poll(self) -> list[tuple[dict, list[str]]]:
        batch: list[tuple[dict, list[str]]] = []
        queue = [f for f in self.stacks.values() if f.active]
        while queue:
            followed = queue.pop(0)
            events = self._new_events(followed)
            if followed is self.root and events:
                self._adopt_stack_id(events[0])
            for event in events:
                batch.append((event, followed.path))
                child = self._nested_stack(event)
                if child is None:
                    if self._is_own_event(event) and followed is not self.root and is_terminal(event["ResourceStatus"]):
                        followed.active = False
                    continue
                known = self.stacks.get(child)
                if known is None:
                    known = Followed(child, followed.path + [event["LogicalResourceId"]], cutoff=self.cutoff)
                    self.stacks[child] = known
                    queue.append(known)
                elif not known.active and not is_terminal(event["ResourceStatus"]):
                    known.active = True
                    queue.append(known)
        batch.sort(key=lambda item: item[0]["Timestamp"])
        for event, path in batch:
            self.printed.append((event, path))
            self.out(format_event(event, path))
        return batch

    @staticmethod
    def _is_own_event(event: dict) -> bool:
        return event.get("PhysicalResourceId") == event.get("StackId")

    @staticmethod
    def _nested_stack(event: dict) -> str | None:
        physical = event.get("PhysicalResourceId") or ""
        if (event.get("ResourceType") == "AWS::CloudFormation::Stack"
                and physical.startswith("arn:") and ":stack/" in physical
                and physical != event.get("StackId")):
            return physical
        return None

    def first_failure(self) -> tuple[dict, list[str]] | None:
        failed = [(e, p) for e, p in self.printed
                  if e["ResourceStatus"].endswith("_FAILED") and e.get("ResourceStatusReason")]
        causes = [(e, p) for e, p in failed if not e["ResourceStatusReason"].startswith(SECONDARY_REASONS)]
        return (causes or failed or [None])[0]


def event_path(event: dict, path: list[str]) -> str:
    if path and EventFollower._is_own_event(event):
        return "/".join(path)  # a nested stack's own event: show its logical id, not its name
    return "/".join(path + [event["LogicalResourceId"]])


def format_event(event: dict, path: list[str]) -> str:
    when = event["Timestamp"].astimezone().strftime("%Y-%m-%d %H:%M:%S")
    reason = event.get("ResourceStatusReason") or ""
    line = (f"{when}  {event_path(event, path):<34} {event['ResourceStatus']:<32} "
            f"{event.get('ResourceType', ''):<36} {reason}")
    return line.rstrip()


def wait_for_stack(cfn, follower: EventFollower, interval: float) -> dict:
    """Poll status and events until the root stack is at rest; returns the final description."""
    while True:
        stack = describe_stack(cfn, follower.root.stack)
        follower.poll()
        if stack is None:
            return {"StackName": follower.root.stack, "StackStatus": "DELETE_COMPLETE"}
        if is_terminal(stack["StackStatus"]):
            return stack
        time.sleep(interval)


def explain_failure(stack: dict, follower: EventFollower) -> str:
    lines = [f"stack {stack['StackName']} is {stack['StackStatus']}"]
    if stack.get("StackStatusReason"):
        lines.append(f"  reason: {stack['StackStatusReason']}")
    first = follower.first_failure()
    if first:
        event, path = first
        lines.append(f"  first failure: {event_path(event, path)} {event['ResourceStatus']}: "
                     f"{event['ResourceStatusReason']}")
    return "\n".join(lines)
