#!/usr/bin/env python3
"""stackctl: operate one environment's CloudFormation stack, the same way on an AWS account and
on a local engine.

One environment = one root stack named ``<AppName>-<ENV>``, where ENV names
``cloudformation/params/<ENV>.json`` (create-stack format: ParameterKey/ParameterValue) and
AppName is read from that file. The Makefile targets are thin wrappers around these subcommands:

  package ENV --bucket B   upload the three provider zips under a content hash, run
                           `aws cloudformation package`, write .build/ENV/code.json
  overrides ENV            print the deploy parameters as shell-safe Key=Value words
  deploy ENV               `aws cloudformation deploy` with those words (list argv, no shell),
                           showing the stack's events (nested stacks included) while it runs,
                           then the outputs
  events ENV               the stack's events, oldest first, nested stacks prefixed with their
                           logical id path (Network/NatGateway1); --follow keeps watching
  wait ENV                 follow events until the stack is at rest; exit 0 only for *_COMPLETE
                           without ROLLBACK
  weights ENV --fargate W --spot W [--base N]
                           console-style update: previous template, previous values for every
                           other parameter, new FARGATE/FARGATE_SPOT mix; prints old -> new
  tasks ENV                the service's tasks with capacity provider, status, AZ, start time,
                           task definition revision, and a count per provider
  outputs ENV [--get KEY]  the stack outputs (or one value, for scripts)
  destroy ENV              delete the stack and follow it until DELETE_COMPLETE

AWS access is whatever the environment configures: the default credential chain, AWS_PROFILE,
and AWS_ENDPOINT_URL (honoured by boto3 and by the aws CLI, which is how a local engine is
reached). The region comes from AWS_REGION or AWS_DEFAULT_REGION, then the profile, and is
us-east-1 only when none of them sets one. Expected failures (AWS errors, bad input, a stack that
ends rolled back) print one clear message and exit non-zero, without a traceback.

Only boto3 and the standard library; `package` and `deploy` run the aws CLI found next to this
Python (the project's .venv) or on PATH.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Iterable

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# The stack's events (followed, and the cause of a failure); EventFollower is also used by tests.
from stack_events import EventFollower, describe_stack, emit, explain_failure, is_success, wait_for_stack

ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = ROOT / "cloudformation" / "params"
ROOT_TEMPLATE = ROOT / "cloudformation" / "environment.yaml"
# The provider functions: cargo-lambda binary names, zip names (<name>.zip) in provider.yaml.
FUNCTIONS = ("preflight", "network", "service", "scaling", "spot-fallback")
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
WEIGHT_MAX = 1000  # the template's MaxValue for FargateWeight / FargateSpotWeight
BASE_MAX = 100000  # the template's MaxValue for FargateBase
ELF_MACHINES = {62: "x86_64", 183: "arm64"}


class Failure(Exception):
    """An expected failure: printed as one message, exit with `code`."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# --- environment files --------------------------------------------------------------------------

def params_path(args) -> Path:
    return Path(args.params_file) if getattr(args, "params_file", None) else PARAMS_DIR / f"{args.env}.json"


def read_params(path: Path) -> dict[str, str]:
    """ParameterKey -> ParameterValue of a create-stack-format file (UsePreviousValue entries are
    left out: the deploy then keeps the stack's value)."""
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PARAMS_DIR.glob("*.json"))) or "none"
        raise Failure(f"no parameter file {path} (environments with one: {known})", 2)
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise Failure(f"{path} is not valid JSON: {e}", 2) from None
    if not isinstance(entries, list):
        raise Failure(f"{path} must be a JSON list of {{ParameterKey, ParameterValue}}", 2)
    values = {}
    for entry in entries:
        if not isinstance(entry, dict) or "ParameterKey" not in entry:
            raise Failure(f"{path}: every item needs a ParameterKey (got {entry!r})", 2)
        if entry.get("UsePreviousValue"):
            continue
        value = entry.get("ParameterValue", "")
        if isinstance(value, list):  # tolerate a list for a CommaDelimitedList
            value = ",".join(str(v) for v in value)
        values[entry["ParameterKey"]] = str(value)
    return values


def stack_name(args) -> str:
    if getattr(args, "stack_name", None):
        return args.stack_name
    app = read_params(params_path(args)).get("AppName")
    if not app:
        raise Failure(f"{params_path(args)} has no AppName parameter (the stack is named <AppName>-<ENV>)", 2)
    return f"{app}-{args.env}"


def build_dir(args) -> Path:
    return Path(args.build_dir) if getattr(args, "build_dir", None) else ROOT / ".build" / args.env


def template_parameter_keys(path: Path) -> list[str] | None:
    """Top-level Parameters keys of a YAML or JSON template, read without a YAML library
    (None when the section cannot be found this way)."""
    text = path.read_text()
    if text.lstrip().startswith("{"):
        return list(json.loads(text).get("Parameters", {}))
    keys, inside, indent = [], False, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            inside = line.rstrip() == "Parameters:"
            continue
        if inside:
            width = len(line) - len(line.lstrip())
            indent = indent or width
            match = re.match(r"\s*([A-Za-z0-9]+)\s*:", line)
            if width == indent and match:
                keys.append(match.group(1))
    return keys or None


def parse_sets(sets: Iterable[str]) -> dict[str, str]:
    values = {}
    for item in sets or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Failure(f"--set {item!r}: expected Key=Value", 2)
        values[key] = value
    return values


def deploy_parameters(args) -> dict[str, str]:
    """params/<ENV>.json, then code.json (CodeBucket, CodeKeyPrefix, Architecture), then --set."""
    values = read_params(params_path(args))
    code_file = Path(args.code_file) if args.code_file else build_dir(args) / "code.json"
    if code_file.is_file():
        values.update({k: str(v) for k, v in json.loads(code_file.read_text()).items()})
    elif not args.code_file and args.command == "deploy":
        raise Failure(f"no {code_file}: run `make package ENV={args.env} BUCKET=<bucket>` first", 2)
    values.update(parse_sets(args.set))
    return values


def override_words(values: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in values.items()]


# --- AWS ----------------------------------------------------------------------------------------

def make_session() -> boto3.Session:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    session = boto3.Session(region_name=region) if region else boto3.Session()
    if not session.region_name:
        session = boto3.Session(region_name="us-east-1")
    return session


def aws_cli() -> str:
    beside = Path(sys.executable).parent / "aws"
    if beside.exists():
        return str(beside)
    found = shutil.which("aws")
    if not found:
        raise Failure("the aws CLI is not installed (make creates .venv with it)")
    return found


def run_cli(argv: list[str]) -> int:
    print("+ " + shlex.join(["aws", *argv[1:]]), file=sys.stderr, flush=True)
    return subprocess.call(argv)


def require_stack(cfn, name: str) -> dict:
    stack = describe_stack(cfn, name)
    if stack is None:
        raise Failure(f"stack {name} does not exist (deploy it with `make deploy`)")
    return stack


def stack_outputs(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", []) or []}


# --- subcommands --------------------------------------------------------------------------------

def cmd_overrides(args, session) -> int:
    emit(shlex.join(override_words(deploy_parameters(args))))
    return 0


def zip_architecture(path: Path) -> tuple[str, bytes]:
    """The Lambda architecture of a bootstrap.zip (from the ELF header) and its binary."""
    try:
        with zipfile.ZipFile(path) as archive:
            binary = archive.read("bootstrap")
    except (zipfile.BadZipFile, KeyError) as e:
        raise Failure(f"{path} is not a Lambda zip with a bootstrap binary ({e})") from None
    if binary[:4] != b"\x7fELF":
        raise Failure(f"{path}: bootstrap is not an ELF binary")
    machine = int.from_bytes(binary[18:20], "little")
    if machine not in ELF_MACHINES:
        raise Failure(f"{path}: bootstrap is built for ELF machine {machine}, neither x86_64 nor arm64")
    return ELF_MACHINES[machine], binary


def cmd_package(args, session) -> int:
    values = read_params(params_path(args))
    app = values.get("AppName")
    if not app:
        raise Failure(f"{params_path(args)} has no AppName parameter", 2)
    if not args.bucket:
        raise Failure("no bucket for code and templates: pass BUCKET=<bucket> (or set CODE_BUCKET).\n"
                      "Create one once with: aws s3 mb s3://<globally-unique-name>", 2)
    lambda_dir = Path(args.lambda_dir)
    zips = {fn: lambda_dir / fn / "bootstrap.zip" for fn in FUNCTIONS}
    missing = [str(p) for p in zips.values() if not p.is_file()]
    if missing:
        raise Failure("missing " + ", ".join(missing) + "\nbuild the release zips first: make build", 2)
    archs, digest = set(), hashlib.sha256()
    for fn, path in zips.items():
        arch, binary = zip_architecture(path)
        archs.add(arch)
        digest.update(fn.encode() + b"\0" + binary)
    if len(archs) > 1:
        raise Failure(f"the zips in {lambda_dir} mix architectures ({', '.join(sorted(archs))}): rebuild with make build", 2)
    arch = archs.pop()
    prefix = f"{app}/provider/{digest.hexdigest()[:12]}"

    s3 = session.client("s3")
    try:
        s3.head_bucket(Bucket=args.bucket)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchBucket"):
            raise Failure(f"bucket {args.bucket} does not exist; create it once with: aws s3 mb s3://{args.bucket}") from None
        raise
    for fn, path in zips.items():
        key = f"{prefix}/{fn}.zip"
        try:
            head = s3.head_object(Bucket=args.bucket, Key=key)
            if head.get("ContentLength") == path.stat().st_size:
                emit(f"s3://{args.bucket}/{key} already uploaded")
                continue
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        s3.put_object(Bucket=args.bucket, Key=key, Body=path.read_bytes())
        emit(f"uploaded {path} -> s3://{args.bucket}/{key}")

    out_dir = build_dir(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    packaged = out_dir / "environment.packaged.yaml"
    rc = run_cli([aws_cli(), "cloudformation", "package", "--region", session.region_name,
                  "--template-file", str(args.template_file or ROOT_TEMPLATE),
                  "--s3-bucket", args.bucket, "--s3-prefix", f"{app}/templates",
                  "--output-template-file", str(packaged)])
    if rc != 0:
        raise Failure("aws cloudformation package failed (see above)", rc)
    code = {"CodeBucket": args.bucket, "CodeKeyPrefix": prefix, "Architecture": arch}
    (out_dir / "code.json").write_text(json.dumps(code, indent=2) + "\n")
    emit(f"wrote {packaged} and {out_dir / 'code.json'} ({arch}, {prefix})")
    return 0


def cmd_deploy(args, session) -> int:
    name = stack_name(args)
    values = deploy_parameters(args)
    template = Path(args.template_file) if args.template_file else build_dir(args) / "environment.packaged.yaml"
    if not template.is_file():
        raise Failure(f"no {template}: run `make package ENV={args.env}` first", 2)
    known = template_parameter_keys(template)
    unknown = [k for k in values if known is not None and k not in known]
    if unknown:
        # aws cloudformation deploy silently drops overrides the template does not declare.
        raise Failure(f"not parameters of {template.name}: {', '.join(unknown)} "
                      f"(it has: {', '.join(known)})", 2)
    cfn = session.client("cloudformation")
    existing = describe_stack(cfn, name)
    if existing and existing["StackStatus"] == "ROLLBACK_COMPLETE":
        raise Failure(f"stack {name} is ROLLBACK_COMPLETE: its creation failed and was rolled back, and "
                      f"CloudFormation cannot update it. Delete it (make destroy ENV={args.env}) and deploy again.")
    follower = EventFollower(cfn, name, since_now=True)
    follower.prime()
    stop = threading.Event()

    def follow():
        while not stop.wait(args.interval):
            try:
                follower.poll()
            except (ClientError, BotoCoreError) as e:  # throttling or a blip: try again next round
                print(f"(events: {e})", file=sys.stderr, flush=True)

    thread = threading.Thread(target=follow, name="events", daemon=True)
    thread.start()
    try:
        rc = run_cli([aws_cli(), "cloudformation", "deploy", "--region", session.region_name,
                      "--stack-name", name, "--template-file", str(template),
                      "--parameter-overrides", *override_words(values),
                      "--capabilities", *CAPABILITIES, "--no-fail-on-empty-changeset"])
    finally:
        stop.set()
        thread.join()
    follower.poll()
    stack = describe_stack(cfn, follower.root.stack)
    if rc != 0:
        detail = ":\n" + explain_failure(stack, follower) if stack else ""
        raise Failure(f"aws cloudformation deploy of {name} failed{detail}", rc)
    emit()
    stack = stack or require_stack(cfn, name)
    print_outputs(stack)
    if stack_outputs(stack).get("AwaitingImage"):
        emit(f"\nNext step: {stack_outputs(stack).get('NextStep', '')}")
    return 0


def print_outputs(stack: dict) -> None:
    outputs = stack_outputs(stack)
    emit(f"{stack['StackName']}  {stack['StackStatus']}")
    width = max((len(k) for k in outputs), default=0)
    for key, value in outputs.items():
        emit(f"  {key:<{width}}  {value}")


def cmd_outputs(args, session) -> int:
    stack = require_stack(session.client("cloudformation"), stack_name(args))
    if args.get:
        outputs = stack_outputs(stack)
        if args.get not in outputs:
            raise Failure(f"stack {stack['StackName']} ({stack['StackStatus']}) has no output {args.get} "
                          f"(it has: {', '.join(outputs) or 'none'})")
        emit(outputs[args.get])
    elif args.json:
        emit(json.dumps(stack_outputs(stack), indent=2))
    else:
        print_outputs(stack)
    return 0


def cmd_events(args, session) -> int:
    cfn = session.client("cloudformation")
    name = stack_name(args)
    follower = EventFollower(cfn, name, since_now=args.since_now)
    follower.prime()
    if args.tail and not args.since_now:
        history = []
        follower.out = lambda line: history.append(line)
        follower.poll()
        for line in history[-args.tail:]:
            emit(line)
        follower.out = emit
    else:
        follower.poll()
    while args.follow:
        time.sleep(args.interval)
        follower.poll()
    return 0


def cmd_wait(args, session) -> int:
    cfn = session.client("cloudformation")
    stack = require_stack(cfn, stack_name(args))
    follower = EventFollower(cfn, stack["StackId"], since_now=True)
    follower.prime()
    final = wait_for_stack(cfn, follower, args.interval)
    if not is_success(final["StackStatus"]):
        raise Failure(explain_failure(final, follower))
    emit(f"{final['StackName']}: {final['StackStatus']}")
    return 0


def whole_number(text: str | None, variable: str, maximum: int, required: bool) -> int | None:
    if text is None or text == "":
        if required:
            raise Failure(f"{variable} is required, e.g. make weights ENV=dev FARGATE=1 SPOT=3", 2)
        return None
    if not re.fullmatch(r"\d+", text.strip()):
        raise Failure(f"{variable} must be a non-negative integer, got {text!r}", 2)
    value = int(text)
    if value > maximum:
        raise Failure(f"{variable} must be at most {maximum}, got {value}", 2)
    return value


def cmd_weights(args, session) -> int:
    fargate = whole_number(args.fargate, "FARGATE", WEIGHT_MAX, True)
    spot = whole_number(args.spot, "SPOT", WEIGHT_MAX, True)
    base = whole_number(args.base, "BASE", BASE_MAX, False)
    if fargate == 0 and spot == 0:
        raise Failure("FARGATE and SPOT are both 0: at least one weight must be greater than 0", 2)
    changes = {"FargateWeight": str(fargate), "FargateSpotWeight": str(spot)}
    if base is not None:
        changes["FargateBase"] = str(base)

    cfn = session.client("cloudformation")
    stack = require_stack(cfn, stack_name(args))
    current = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", []) or []}
    absent = [k for k in changes if k not in current]
    if absent:
        raise Failure(f"stack {stack['StackName']} has no parameter {', '.join(absent)}: not an environment stack?", 2)
    parameters = [{"ParameterKey": k, "ParameterValue": changes[k]} if k in changes
                  else {"ParameterKey": k, "UsePreviousValue": True} for k in current]
    before = stack_outputs(stack)
    emit(f"{stack['StackName']}: " + ", ".join(f"{k} {current[k]} -> {v}" for k, v in changes.items()))

    follower = EventFollower(cfn, stack["StackId"], since_now=True)
    follower.prime()
    try:
        cfn.update_stack(StackName=stack["StackId"], UsePreviousTemplate=True,
                         Parameters=parameters, Capabilities=CAPABILITIES)
    except ClientError as e:
        if "No updates are to be performed" in e.response.get("Error", {}).get("Message", ""):
            emit("nothing to change: the stack already has these values")
            after = before
        else:
            raise
    else:
        final = wait_for_stack(cfn, follower, args.interval)
        if not is_success(final["StackStatus"]):
            raise Failure(explain_failure(final, follower))
        after = stack_outputs(final)
    emit(f"CapacityProviderStrategy: {before.get('CapacityProviderStrategy', '?')} -> "
         f"{after.get('CapacityProviderStrategy', '?')}")
    old_arn, new_arn = before.get("ServiceArn"), after.get("ServiceArn")
    same = "same service, updated in place" if old_arn == new_arn else f"was {old_arn}"
    emit(f"ServiceArn: {new_arn} ({same})")
    return 0


def chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def cmd_tasks(args, session) -> int:
    stack = require_stack(session.client("cloudformation"), stack_name(args))
    outputs = stack_outputs(stack)
    cluster, service_arn = outputs.get("ClusterName"), outputs.get("ServiceArn")
    if not cluster or not service_arn:
        raise Failure(f"stack {stack['StackName']} ({stack['StackStatus']}) has no ClusterName/ServiceArn output yet")
    service = service_arn.rsplit("/", 1)[-1]
    ecs = session.client("ecs")
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(
            cluster=cluster, serviceName=service, PaginationConfig={"PageSize": 100}):
        arns.extend(page["taskArns"])
    tasks = []
    for batch in chunks(arns, 100):
        tasks.extend(ecs.describe_tasks(cluster=cluster, tasks=batch)["tasks"])

    described = ecs.describe_services(cluster=cluster, services=[service_arn]).get("services", [])
    if described:
        svc = described[0]
        strategy = ",".join(f"{s['capacityProvider']}:{s.get('weight', 0)}:{s.get('base', 0)}"
                            for s in svc.get("capacityProviderStrategy", [])) or svc.get("launchType", "-")
        emit(f"service {svc.get('serviceName', service)} in {cluster}: desired {svc.get('desiredCount')}, "
             f"running {svc.get('runningCount')}, pending {svc.get('pendingCount')}; strategy {strategy}")
    if not tasks:
        emit(f"no running tasks for {service} in {cluster}")
        return 0

    def provider(task):
        return task.get("capacityProviderName") or task.get("launchType") or "-"

    def started(task):
        when = task.get("startedAt") or task.get("createdAt")
        return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "-"

    rows = [(t["taskArn"].rsplit("/", 1)[-1][:12], provider(t), t.get("lastStatus", "-"),
             t.get("availabilityZone") or "-", started(t), t.get("taskDefinitionArn", "-").rsplit("/", 1)[-1])
            for t in sorted(tasks, key=lambda t: (provider(t), str(t.get("startedAt") or t.get("createdAt") or "")))]
    header = ("TASK", "PROVIDER", "STATUS", "AZ", "STARTED", "TASK DEFINITION")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        emit("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    counts: dict[str, int] = {}
    for task in tasks:
        counts[provider(task)] = counts.get(provider(task), 0) + 1
    emit("")
    emit(", ".join(f"{name} {n} ({round(100 * n / len(tasks))}%)" for name, n in sorted(counts.items()))
         + f"; {len(tasks)} task{'s' if len(tasks) != 1 else ''}")
    return 0


def cmd_destroy(args, session) -> int:
    cfn = session.client("cloudformation")
    name = stack_name(args)
    stack = describe_stack(cfn, name)
    if stack is None:
        emit(f"stack {name} does not exist; nothing to delete")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise Failure(f"refusing to delete {name} without confirmation: pass YES=1 (--yes)", 2)
        where = os.environ.get("AWS_ENDPOINT_URL") or f"region {session.region_name}"
        answer = input(f"Delete stack {name} and everything it created ({where})? Type its name: ")
        if answer.strip() != name:
            raise Failure("not deleted", 1)
    follower = EventFollower(cfn, stack["StackId"], since_now=True)
    follower.prime()
    cfn.delete_stack(StackName=stack["StackId"])
    final = wait_for_stack(cfn, follower, args.interval)
    if final["StackStatus"] != "DELETE_COMPLETE":
        raise Failure(explain_failure(final, follower))
    emit(f"{name}: DELETE_COMPLETE")
    return 0


# --- command line -------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="stackctl.py", description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    subs = top.add_subparsers(dest="command", required=True)

    def sub(name, func, help_text):
        p = subs.add_parser(name, help=help_text, description=help_text)
        p.add_argument("env", help="environment: cloudformation/params/<env>.json; stack <AppName>-<env>")
        p.add_argument("--stack-name", help="override the stack name")
        p.add_argument("--params-file", help="override cloudformation/params/<env>.json")
        p.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default 2)")
        p.set_defaults(func=func)
        return p

    def deploy_inputs(p):
        p.add_argument("--build-dir", help="where package wrote its files (default .build/<env>)")
        p.add_argument("--code-file", help="override <build-dir>/code.json")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="one more parameter value (repeatable; wins over the files)")

    deploy_inputs(sub("overrides", cmd_overrides, "print the deploy parameters as shell-safe Key=Value words"))
    p = sub("package", cmd_package, "upload provider zips by content hash, package the templates, write code.json")
    p.add_argument("--bucket", default=os.environ.get("CODE_BUCKET", ""), help="S3 bucket (default $CODE_BUCKET)")
    p.add_argument("--lambda-dir", default=str(Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "lambda"),
                   help="cargo lambda output directory (default $CARGO_TARGET_DIR/lambda)")
    p.add_argument("--build-dir", help="output directory (default .build/<env>)")
    p.add_argument("--template-file", help="root template (default cloudformation/environment.yaml)")
    p = sub("deploy", cmd_deploy, "aws cloudformation deploy, showing events, then the outputs")
    deploy_inputs(p)
    p.add_argument("--template-file", help="packaged template (default <build-dir>/environment.packaged.yaml)")
    p = sub("events", cmd_events, "the stack's events, nested stacks included, oldest first")
    p.add_argument("--follow", action="store_true", help="keep printing new events until interrupted")
    p.add_argument("--since-now", action="store_true", help="only events from now on")
    p.add_argument("--tail", type=int, default=0, help="only the last N events of the history")
    sub("wait", cmd_wait, "follow events until the stack is at rest; exit 0 only on *_COMPLETE without ROLLBACK")
    p = sub("weights", cmd_weights, "change the FARGATE/FARGATE_SPOT mix in place (previous template and values)")
    p.add_argument("--fargate", help="FARGATE weight (make: FARGATE)")
    p.add_argument("--spot", help="FARGATE_SPOT weight (make: SPOT)")
    p.add_argument("--base", help="tasks always on FARGATE (make: BASE); unchanged when omitted")
    sub("tasks", cmd_tasks, "the service's tasks by capacity provider")
    p = sub("outputs", cmd_outputs, "the stack outputs")
    p.add_argument("--json", action="store_true", help="as a JSON object")
    p.add_argument("--get", metavar="KEY", help="print only this output's value")
    p = sub("destroy", cmd_destroy, "delete the stack and follow it until DELETE_COMPLETE")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (make: YES=1)")
    return top


def main(argv: list[str] | None = None, session: boto3.Session | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args, session or make_session())
    except Failure as e:
        print(f"stackctl {args.command}: {e}", file=sys.stderr, flush=True)
        return e.code
    except ClientError as e:
        err = e.response.get("Error", {})
        print(f"stackctl {args.command}: {e.operation_name} failed: {err.get('Code', '?')}: "
              f"{err.get('Message', '')}", file=sys.stderr, flush=True)
        return 1
    except BotoCoreError as e:  # no credentials, endpoint unreachable, ...
        print(f"stackctl {args.command}: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
