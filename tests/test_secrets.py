"""Secrets never show: one whole environment lifecycle through `make` on the local engine (deploy,
an update that changes the service, destroy) with three SSM SecureString parameters injected into
the container, then everything a person or a log pipeline could see is read back and searched
for the values, however they might be written (as given, JSON- or URL-escaped, hex, base64 at any
byte offset):

- every file the engine and its Lambda processes wrote (engine.log, one log per function, the
  functions at RUST_LOG=trace), and the files `make package` left in its build dir;
- stdout and stderr of every make command (the two deploys, a third one refused and rolled back
  because it names a parameter that is not in SSM, outputs, events, tasks, destroy);
- every body a function PUT to a ResponseURL, verbatim (the engine's /responses record), hence
  every Data value a Fn::GetAtt could read;
- what the engine sent (ResourceProperties, OldResourceProperties) and recorded of each answer;
- after each step: every stack's (root and nested) Outputs, Parameters and StackStatusReason, their
  events with each ResourceStatusReason, their templates; the task definitions, the ECS service,
  the Lambda functions' configuration, CloudWatch Logs events, the objects in the code bucket.

The positive side is asserted too, so the search cannot pass by looking at nothing: the values
are in SSM as SecureString, the task definition names them as `secrets` (valueFrom the parameter
names) and never as `environment`, the function logs are non-empty and about these very requests,
and every request was answered, each answer collected."""
import base64
import json
import shutil
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import stackctl

from conftest import FUNCTION_ENV, LOGS, binary, engine_for_deploys, make_on
from harness.images import push_image
from harness.inventory import inventory

NAME = "secrets"            # the engine's logs: .tmp/test-logs/secrets/
BUCKET = "shop-secrets-artifacts"
STACK = "shop-dev"
PREFIX = "/shop/dev/"       # /<AppName>/<EnvironmentName>/ of params/dev.json


def token() -> str:
    return f"s3cr3t-{uuid.uuid4().hex}"


# Distinctive random values, each built around one token; the search looks for each token (and its
# random part) in every encoding as well as for each whole value.
TOKENS = {"DATABASE_PASSWORD": token(), "DATABASE_URL": token(), "API_CONFIG": token()}
SECRETS = {
    # the value alone
    "DATABASE_PASSWORD": TOKENS["DATABASE_PASSWORD"],
    # a connection string: the secret inside a URL, next to characters that get percent-encoded
    "DATABASE_URL": f"postgres://shop:{TOKENS['DATABASE_URL']}@db.internal:5432/shop?sslmode=require&x=a b",
    # a JSON document holding its own name, with quotes, a backslash, a newline and non-ASCII: in a
    # JSON log line or answer it would appear escaped, never as written here
    "API_CONFIG": json.dumps({"API_CONFIG": {"token": TOKENS["API_CONFIG"], "note": 'say "hi"\\ \n café'}},
                             ensure_ascii=False),
}
SECRET_NAMES = ",".join(SECRETS)
SET = f"SecretNames={SECRET_NAMES}"
MISSING = "NOT_IN_SSM"      # named by a deploy that must fail: the error paths are searched too


def base64_forms(data: bytes) -> set:
    """What `data` looks like inside the base64 (standard or URL-safe) of anything that contains
    it, wherever it starts: one form per start offset modulo 3."""
    forms = set()
    for start in range(3):
        aligned = data[start:start + (len(data) - start) // 3 * 3]
        encoded = base64.b64encode(aligned)
        forms |= {encoded, base64.urlsafe_b64encode(aligned)}
    return forms


def needles() -> dict:
    """{encoded form: what it is}: the bytes whose presence anywhere means a secret leaked."""
    found = {}
    for name, raw in SECRETS.items():
        secret = TOKENS[name]
        forms = {
            "the value": raw,
            "the value JSON-escaped": json.dumps(raw, ensure_ascii=False)[1:-1],
            "the value JSON-escaped (ASCII)": json.dumps(raw)[1:-1],
            "the value JSON-escaped twice": json.dumps(json.dumps(raw))[1:-1],
            "the value URL-encoded": urllib.parse.quote(raw, safe=""),
            "the value form-encoded": urllib.parse.quote_plus(raw),
            "the token": secret,
            "the token's random part": secret.removeprefix("s3cr3t-"),
            "the token in hex": secret.encode().hex(),
        }
        for label, form in forms.items():
            found[form.encode()] = f"{name}: {label}"
        for form in base64_forms(secret.encode()) | base64_forms(raw.encode()):
            found[form] = f"{name}: base64"
    return found


NEEDLES = needles()


def leaks(content) -> list:
    data = content if isinstance(content, bytes) else str(content).encode("utf-8", "surrogateescape")
    return sorted({label for form, label in NEEDLES.items() if form in data})


class Observed:
    """Everything the lifecycle showed, as (where, content) pairs, plus what the positive checks need."""

    def __init__(self):
        self.items: list = []
        self.snapshots: dict = {}      # step -> {"stacks": [...], "task definitions": [...]}
        self.results: dict = {}        # make command -> CompletedProcess
        self.requests: list = []
        self.responses: list = []
        self.log_files: dict = {}      # path relative to the log dir -> text
        self.skipped: list = []        # files not searched, with why
        self.stored: dict = {}         # secret name -> the SSM parameter, read back decrypted
        self.left: dict = {}           # inventory after the destroy

    def add(self, where: str, content) -> None:
        if not isinstance(content, (str, bytes)):
            content = json.dumps(content, default=str, ensure_ascii=False)
        self.items.append((where, content))


def every_page(call, key: str, **arguments) -> list:
    items, token_ = [], None
    while True:
        page = call(**arguments, **({"NextToken": token_} if token_ else {}))
        items += page.get(key, [])
        token_ = page.get("NextToken")
        if not token_:
            return items


def snapshot(engine, observed: Observed, step: str) -> None:
    """Every stack (root and nested, deleted ones by id) with outputs, parameters, reasons, events and
    template; the task definitions, services, functions, log events and bucket objects."""
    cfn, ecs = engine.client("cloudformation"), engine.client("ecs")
    stacks = []
    for summary in every_page(cfn.list_stacks, "StackSummaries"):
        described = cfn.describe_stacks(StackName=summary["StackId"])["Stacks"][0]
        events = every_page(cfn.describe_stack_events, "StackEvents", StackName=summary["StackId"])
        stacks.append({"stack": described, "events": events})
        observed.add(f"{step}: stack {described['StackName']} (outputs, parameters, status reason)", described)
        for event in events:
            observed.add(f"{step}: event of {described['StackName']} {event.get('LogicalResourceId')} "
                         f"{event.get('ResourceStatus')} (ResourceStatusReason)", event)
        if described["StackStatus"] != "DELETE_COMPLETE":
            observed.add(f"{step}: template of {described['StackName']}",
                         cfn.get_template(StackName=summary["StackId"])["TemplateBody"])
            for resource in cfn.describe_stack_resources(StackName=summary["StackId"])["StackResources"]:
                observed.add(f"{step}: resource {described['StackName']}/{resource['LogicalResourceId']}", resource)
    definitions = []
    for status in ("ACTIVE", "INACTIVE"):
        for arn in ecs.list_task_definitions(status=status)["taskDefinitionArns"]:
            definition = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            definitions.append(definition)
            observed.add(f"{step}: task definition {arn}", definition)
    for cluster in ecs.list_clusters()["clusterArns"]:
        observed.add(f"{step}: cluster {cluster}", ecs.describe_clusters(clusters=[cluster])["clusters"])
        services = ecs.list_services(cluster=cluster)["serviceArns"]
        if services:
            observed.add(f"{step}: services of {cluster}", ecs.describe_services(cluster=cluster, services=services))
        tasks = ecs.list_tasks(cluster=cluster)["taskArns"]
        if tasks:
            observed.add(f"{step}: tasks of {cluster}", ecs.describe_tasks(cluster=cluster, tasks=tasks))
    for function in engine.client("lambda").list_functions()["Functions"]:
        observed.add(f"{step}: Lambda function {function['FunctionName']} (configuration, environment)", function)
    logs = engine.client("logs")
    for group in logs.describe_log_groups()["logGroups"]:
        events = every_page(logs.filter_log_events, "events", logGroupName=group["logGroupName"])
        observed.add(f"{step}: CloudWatch Logs {group['logGroupName']} ({len(events)} events)", events)
    s3 = engine.client("s3")
    for item in every_page(s3.list_objects_v2, "Contents", Bucket=BUCKET):
        if item["Key"].endswith(".zip"):   # the provider code: the debug binaries, built before any secret existed
            continue
        body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        observed.add(f"{step}: s3://{BUCKET}/{item['Key']}", body)
    observed.snapshots[step] = {"stacks": stacks, "task definitions": definitions}


def files_under(folder: Path, observed: Observed, label: str) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        relative = str(path.relative_to(folder))
        if data[:4] == b"\x7fELF":
            # the provider binaries the engine extracted from the zips: built before this run
            observed.skipped.append((f"{label}/{relative}", "an executable extracted from a provider zip"))
            continue
        observed.add(f"{label}/{relative}", data)
        observed.log_files[relative] = data.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def lifecycle():
    """Deploy with the secrets, update the service, destroy; what it showed (Observed)."""
    missing = [str(binary(f)) for f in stackctl.FUNCTIONS if not binary(f).is_file()]
    if missing:   # checked before the engine starts, which would otherwise be left running
        pytest.fail(f"no debug binaries (make binaries): {', '.join(missing)}")
    # The engine's logs are appended to: start from an empty folder so every line is this run's.
    shutil.rmtree(LOGS / NAME, ignore_errors=True)
    observed = Observed()
    with pytest.MonkeyPatch.context() as patch:
        # Every log statement of the functions at every level, the AWS SDK's own included (it
        # traces each operation's output, so the GetParameters answers holding the values are
        # logged): what info (the default) logs is a subset of this.
        patch.setitem(FUNCTION_ENV, "RUST_LOG", "trace")
        engine = engine_for_deploys(NAME, BUCKET)   # copies FUNCTION_ENV
    try:
        ssm = engine.client("ssm")
        for name, value in SECRETS.items():
            ssm.put_parameter(Name=PREFIX + name, Type="SecureString", Value=value)
        observed.stored = {name: ssm.get_parameter(Name=PREFIX + name, WithDecryption=True)["Parameter"]
                           for name in SECRETS}

        def make(step, *arguments, fails=False):
            result = make_on(engine, *arguments)
            observed.results[step] = result
            observed.add(f"make {' '.join(arguments)}: stdout", result.stdout)
            observed.add(f"make {' '.join(arguments)}: stderr", result.stderr)
            assert (result.returncode != 0) == fails, \
                f"{step}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            return result

        # 1. first deploy with the secrets: everything is created, the service waits for its image
        make("create", "deploy", "ENV=dev", f"SET={SET}")
        snapshot(engine, observed, "after the create")
        # 2. the image is pushed, then a deploy changes the service: image (new task definition
        #    revision), desired count and the Spot weight
        push_image(engine.client("ecr"), "shop-dev", "v1")
        update = "ImageTag=v1 DesiredCount=2 FargateSpotWeight=1"
        make("update", "deploy", "ENV=dev", f"SET={SET} {update}")
        snapshot(engine, observed, "after the update")
        # 3. a deploy naming a parameter that is not in SSM: refused by the service's preflight,
        #    rolled back (FAILED answer, its Reason, *_FAILED events, the CLI's explanation)
        make("refused", "deploy", "ENV=dev", f"SET=SecretNames={SECRET_NAMES},{MISSING} {update}", fails=True)
        make("outputs", "outputs", "ENV=dev")
        make("events", "events", "ENV=dev")
        make("tasks", "tasks", "ENV=dev")
        snapshot(engine, observed, "after the rollback")
        # 4. destroy
        make("destroy", "destroy", "ENV=dev", "YES=1")
        snapshot(engine, observed, "after the destroy")
        for name in SECRETS:
            ssm.delete_parameter(Name=PREFIX + name)
        observed.left = inventory(engine.client)

        observed.requests = engine.requests()
        with urllib.request.urlopen(engine.control + "/responses", timeout=10) as response:
            observed.responses = json.loads(response.read())
        observed.add("the engine's record of requests and answers", observed.requests)
        for body in observed.responses:
            observed.add(f"answer body of {body['RequestId']}", body["Body"])
            try:
                data = json.loads(body["Body"]).get("Data") or {}
            except ValueError:
                continue
            for key, value in data.items():
                observed.add(f"Data {key} of {body['RequestId']} (Fn::GetAtt)",
                             value if isinstance(value, str) else json.dumps(value))
    finally:
        engine.stop()   # closes every function's log: read them whole below
    files_under(LOGS / NAME, observed, f".tmp/test-logs/{NAME}")
    files_under(engine.build_dir, observed, "the build dir of make package")
    return observed


def test_the_search_finds_a_secret_however_it_is_written():
    value = SECRETS["API_CONFIG"]
    assert leaks(value) and leaks(json.dumps({"log": value})) and leaks(json.dumps(json.dumps(value)))
    assert leaks(urllib.parse.quote(value))
    for prefix in ("", "a", "ab"):   # base64 of anything holding a token, at every offset
        for name in TOKENS:
            assert leaks(base64.b64encode(f"{prefix}{{\"v\":\"{SECRETS[name]}\"}}".encode()))
            assert leaks(base64.urlsafe_b64encode(f"{prefix}{SECRETS[name]}!".encode()))
    assert leaks(f"hex {TOKENS['DATABASE_URL'].encode().hex()}")
    assert leaks(f"password={TOKENS['DATABASE_PASSWORD'].removeprefix('s3cr3t-')}")
    # the names and their SSM paths are not secret
    assert leaks(f"{SECRET_NAMES} {' '.join(PREFIX + n for n in SECRETS)} s3cr3t-") == []


def test_a_whole_environment_lifecycle_never_shows_a_secret_value(lifecycle):
    found = [(where, label) for where, content in lifecycle.items for label in leaks(content)]
    assert found == [], "secret values were shown:\n" + "\n".join(f"  {where}: {label}" for where, label in found)


def test_the_secrets_were_real_secure_strings_under_the_names_the_environment_reads(lifecycle):
    assert {name: (p["Name"], p["Type"], p["Value"]) for name, p in lifecycle.stored.items()} == \
        {name: (PREFIX + name, "SecureString", value) for name, value in SECRETS.items()}


def test_the_task_definition_injects_them_as_secrets_by_name_never_as_environment_values(lifecycle):
    [running] = [d for d in lifecycle.snapshots["after the rollback"]["task definitions"] if d["status"] == "ACTIVE"]
    assert running["containerDefinitions"][0]["image"].endswith("shop-dev:v1")
    assert running["containerDefinitions"][0]["secrets"] == [{"name": n, "valueFrom": PREFIX + n} for n in SECRETS]
    # every revision: the first (no image yet), the update's, the refused deploy's (with MISSING)
    definitions = {d["taskDefinitionArn"]: d for step in lifecycle.snapshots.values() for d in step["task definitions"]}
    assert len(definitions) == 3
    for definition in definitions.values():
        [container] = definition["containerDefinitions"]
        names = [s["name"] for s in container["secrets"]]
        assert names in (list(SECRETS), [*SECRETS, MISSING])
        assert [s["valueFrom"] for s in container["secrets"]] == [PREFIX + n for n in names]
        environment = {e["name"]: e["value"] for e in container["environment"]}
        assert set(environment) == {"APP_ENV", "PORT", "EXPECTED_SECRETS"}
        # the sample page's list of what to report present: the names, never a value
        assert [n for n in environment["EXPECTED_SECRETS"].split(",") if n] == names
        assert leaks(container["environment"]) == []
        assert definition["executionRoleArn"]   # what ECS reads the parameters with


def test_the_secret_names_reach_every_place_that_needs_them(lifecycle):
    root = next(s["stack"] for s in lifecycle.snapshots["after the update"]["stacks"]
                if s["stack"]["StackName"] == STACK)
    assert {p["ParameterKey"]: p["ParameterValue"] for p in root["Parameters"]}["SecretNames"] == SECRET_NAMES
    preflight = [r for r in lifecycle.requests if r["ResourceType"] == "Custom::EnvironmentPreflight"]
    assert preflight[0]["RequestType"] == "Create" and preflight[0]["ResourceProperties"]["SecretNames"] == SECRET_NAMES
    assert {r["ResourceProperties"]["SecretNames"] for r in preflight} == {SECRET_NAMES, f"{SECRET_NAMES},{MISSING}"}
    assert f"SecretNames={SECRET_NAMES}" in lifecycle.results["create"].stderr   # the aws CLI command shown


def test_the_lifecycle_ran_and_every_request_got_one_answer_that_was_collected(lifecycle):
    kinds = {(r["RequestType"], r["ResourceType"]) for r in lifecycle.requests}
    assert {("Create", "Custom::FargateService"), ("Update", "Custom::FargateService"),
            ("Delete", "Custom::FargateService"), ("Create", "Custom::EnvironmentPreflight"),
            ("Update", "Custom::EnvironmentPreflight")} <= kinds
    assert [r["LogicalResourceId"] for r in lifecycle.requests if len(r["Answers"]) != 1] == []
    answered = sum(len(r["Answers"]) for r in lifecycle.requests)
    assert answered > 0 and len(lifecycle.responses) == answered
    assert {b["RequestId"] for b in lifecycle.responses} == {r["RequestId"] for r in lifecycle.requests}
    failed = [json.loads(b["Body"]) for b in lifecycle.responses if json.loads(b["Body"])["Status"] != "SUCCESS"]
    assert [(a["Status"], a["LogicalResourceId"]) for a in failed] == [("FAILED", "Service")]   # the refused deploy
    data = [where for where, _ in lifecycle.items if where.startswith("Data ")]
    assert len(data) > 0   # the Fn::GetAtt values were searched
    assert lifecycle.left == {}   # destroy took everything, the secrets deleted by the test


def test_the_logs_searched_are_non_empty_and_about_these_very_requests(lifecycle):
    functions = {path: text for path, text in lifecycle.log_files.items()
                 if "/" not in path and path != "engine.log" and path.endswith(".log")}
    assert len(functions) >= 4 and all(text.strip() for text in functions.values()), sorted(functions)
    every_log = "\n".join(lifecycle.log_files.values())
    assert [r["RequestId"] for r in lifecycle.requests if r["RequestId"] not in every_log] == []
    assert sum(text.count("\n") for text in functions.values()) > 20
    # the service function read the parameters (moto answers GetParameters with the plaintext):
    # the SDK's trace of each answer names their ARNs, and shows the values redacted
    [service_log] = [text for path, text in functions.items() if "ServiceFunction" in path]
    arns = [f"arn:aws:ssm:us-east-1:123456789012:parameter{PREFIX}{n}" for n in SECRETS]
    assert [arn for arn in arns if arn not in service_log] == [], "no trace of GetParameters in the service log"
    # only the extracted provider executables were left out of the search
    assert all(why == "an executable extracted from a provider zip" and where.endswith("/bootstrap")
               for where, why in lifecycle.skipped)


def test_a_deploy_naming_a_parameter_not_in_ssm_is_refused_naming_it_and_rolled_back(lifecycle):
    missing = PREFIX + MISSING
    refused = lifecycle.results["refused"]
    assert missing in refused.stdout + refused.stderr
    [answer] = [json.loads(b["Body"]) for b in lifecycle.responses if json.loads(b["Body"])["Status"] == "FAILED"]
    assert missing in answer["Reason"]
    events = [e for s in lifecycle.snapshots["after the rollback"]["stacks"] for e in s["events"]]
    failed = [e.get("ResourceStatusReason") or "" for e in events if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert any(missing in reason for reason in failed)
    root = next(s["stack"] for s in lifecycle.snapshots["after the rollback"]["stacks"]
                if s["stack"]["StackName"] == STACK)
    assert root["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in root["Parameters"]}["SecretNames"] == SECRET_NAMES


def test_the_outputs_events_and_make_output_searched_are_the_real_ones(lifecycle):
    after = lifecycle.snapshots["after the update"]["stacks"]
    root = next(s["stack"] for s in after if s["stack"]["StackName"] == STACK)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in root["Outputs"]}
    assert outputs["ServiceArn"].startswith("arn:aws:ecs:") and outputs["AwaitingImage"] == ""
    nested = [s for s in after if s["stack"].get("ParentId")]
    assert len(nested) >= 5 and all(s["stack"].get("Outputs") for s in nested)
    events = [e for s in lifecycle.snapshots["after the destroy"]["stacks"] for e in s["events"]]
    assert len(events) > 50 and {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED", "DELETE_COMPLETE"} <= \
        {e["ResourceStatus"] for e in events}
    assert [e for e in events if e.get("ResourceStatusReason")]   # reasons were there to search
    assert "ServiceArn" in lifecycle.results["outputs"].stdout
    assert "FARGATE" in lifecycle.results["tasks"].stdout
    assert "DELETE_COMPLETE" in lifecycle.results["destroy"].stdout
