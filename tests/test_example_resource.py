"""Every protocol path, through the real example binary behind the local Lambda Runtime API,
against moto's SSM. Each test asserts the one answer CloudFormation received and the AWS state
that resulted."""
import json

SECRET = "postgres://app:s3cr3t-do-not-log@db:5432/app"


def params(ssm):
    return {p["Name"]: p for p in ssm.describe_parameters()["Parameters"]}


def value_of(ssm, name):
    return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]


def test_create_update_delete_lifecycle(parameter, ssm, example_function):
    created = parameter.create({"Name": "/demo/database-url", "Value": SECRET, "Description": "db"})
    assert created.ok and created.physical_id == "/demo/database-url"
    assert created.no_echo, "secret Data must set NoEcho"
    assert created.data["Value"] == SECRET and created.data["Version"] == "1"
    assert value_of(ssm, "/demo/database-url") == SECRET
    tags = {t["Key"]: t["Value"] for t in ssm.list_tags_for_resource(
        ResourceType="Parameter", ResourceId="/demo/database-url")["TagList"]}
    assert tags["custom-resource:logical-id"] == "Parameter"

    updated = parameter.update({"Name": "/demo/database-url", "Value": SECRET + "?ssl=true"})
    assert updated.ok and updated.physical_id == "/demo/database-url"
    assert value_of(ssm, "/demo/database-url") == SECRET + "?ssl=true"

    deleted = parameter.delete()
    assert deleted.ok and deleted.physical_id == "/demo/database-url"
    assert params(ssm) == {}
    logs = example_function.logs()
    assert SECRET not in logs, "a secret property value reached the logs"
    # One structured line per answer, with the fields an operator searches by.
    answered = [json.loads(line) for line in logs.splitlines()
                if line.startswith("{") and '"answered CloudFormation"' in line
                and deleted.request_id in line]
    assert len(answered) == 1, answered
    line = answered[0]
    assert line["outcome"] == "SUCCESS" and line["physical_id"] == "/demo/database-url"
    assert isinstance(line["duration_ms"], int)
    assert line["span"]["request_type"] == "Delete" and line["span"]["logical_id"] == "Parameter"


def test_update_of_the_name_replaces_and_cleanup_deletes_only_the_old_one(parameter, ssm):
    parameter.create({"Name": "/demo/old", "Value": "v"})
    answer = parameter.update({"Name": "/demo/new", "Value": "v"})
    assert answer.ok and answer.physical_id == "/demo/new"
    assert parameter.cleanup_answer.ok and parameter.cleanup_answer.physical_id == "/demo/old"
    assert list(params(ssm)) == ["/demo/new"]
    parameter.delete()
    assert params(ssm) == {}


def test_duplicate_delivery_of_one_create_makes_one_parameter(parameter, ssm, cfn):
    answer = parameter.create({"Name": "/demo/once", "Value": "v"}, deliveries=2)
    assert answer.ok and answer.physical_id == "/demo/once"
    assert list(params(ssm)) == ["/demo/once"]
    assert params(ssm)["/demo/once"]["Version"] == 1


def test_create_failure_is_rolled_back_by_a_delete_that_touches_nothing(parameter, ssm, example_function):
    ssm.put_parameter(Name="/unrelated", Value="keep", Type="String")
    answer = parameter.create({"Name": "/demo/x", "Value": "v", "FailOn": "Create"})
    assert answer.status == "FAILED"
    assert answer.reason == "Create failed: Create failed because FailOn asked for it"
    assert answer.physical_id.startswith("custom-resource:create-failed:")
    # The function reported success to Lambda after answering, so Lambda did not retry it.
    invocations = example_function.invocations_for(answer.request_id)
    assert [inv.outcome for inv in invocations] == ["success"]
    assert parameter.rollback_answer.ok
    assert parameter.rollback_answer.physical_id == answer.physical_id
    assert list(params(ssm)) == ["/unrelated"]


def test_update_failure_is_rolled_back_by_an_update_to_the_old_properties(parameter, ssm):
    parameter.create({"Name": "/demo/x", "Value": "old"})
    answer = parameter.update({"Name": "/demo/x", "Value": "new", "FailOn": "Update"})
    assert answer.status == "FAILED" and answer.physical_id == "/demo/x"
    assert parameter.rollback_answer.ok
    assert value_of(ssm, "/demo/x") == "old"


def test_a_handler_panic_answers_failed_once_and_the_function_keeps_serving(parameter, ssm, example_function):
    answer = parameter.create({"Name": "/demo/x", "Value": "v", "PanicOn": "Create"})
    assert answer.status == "FAILED"
    assert "the handler panicked: PanicOn asked for a panic in Create" in answer.reason
    assert parameter.rollback_answer.ok
    assert params(ssm) == {}
    # The same process answers the next request (the panic was caught, not fatal).
    assert parameter.create({"Name": "/demo/y", "Value": "v"}).ok


def test_an_unparsable_property_answers_failed_naming_it_and_creates_nothing(parameter, ssm):
    answer = parameter.create({"Name": "/demo/x", "Value": "v", "DataBytes": "lots"})
    assert answer.status == "FAILED"
    assert answer.reason.startswith('invalid property DataBytes: "lots" is not a whole number')
    assert params(ssm) == {}


def test_an_invalid_value_answers_failed_with_the_fix(parameter, ssm):
    answer = parameter.create({"Name": "demo/no-slash", "Value": "v"})
    assert answer.reason == "invalid property Name: a hierarchical name must start with /, e.g. /demo/setting"
    assert params(ssm) == {}


def test_an_unknown_property_answers_failed_with_the_closest_known_name(parameter, ssm):
    answer = parameter.create({"Name": "/demo/x", "Vaule": "v"})
    assert answer.status == "FAILED"
    assert answer.reason.startswith("invalid property Vaule: is not a property of this resource; did you mean Value?")
    assert params(ssm) == {}


def test_a_handler_still_running_at_the_deadline_answers_failed_before_lambda_stops_it(parameter, ssm, example_function, cfn):
    answer = parameter.create({"Name": "/demo/x", "Value": "v", "HangSeconds": 60})
    assert answer.status == "FAILED"
    assert answer.reason.startswith("Create timed out: the handler was still running 1.5 s before the Lambda deadline")
    invocation = example_function.invocations_for(answer.request_id)[0]
    assert invocation.outcome == "success", "the function must return before Lambda kills it"
    assert answer.received_at < invocation.deadline
    assert parameter.rollback_answer.ok


def test_data_too_large_for_the_response_fails_and_the_rollback_removes_what_was_made(parameter, ssm):
    answer = parameter.create({"Name": "/demo/x", "Value": "v", "DataBytes": 5000})
    assert answer.status == "FAILED"
    assert "the response Data is too large" in answer.reason
    assert answer.physical_id == "/demo/x", "the real id, so the rollback Delete cleans up"
    assert len(answer.body) <= 4096
    assert params(ssm) == {}


def test_a_reason_too_long_is_truncated_with_a_visible_marker(parameter):
    answer = parameter.create({"Name": "/demo/x", "Value": "v", "FailOn": "Create", "ReasonBytes": 10000})
    assert answer.status == "FAILED"
    assert len(answer.body) <= 4096
    assert "[reason truncated:" in answer.reason


def test_a_wait_longer_than_one_lambda_timeout_finishes_in_a_second_invocation(parameter, ssm, example_function):
    answer = parameter.create({"Name": "/demo/slow", "Value": "v", "WaitSeconds": 10})
    assert answer.ok and answer.physical_id == "/demo/slow"
    invocations = example_function.invocations_for(answer.request_id)
    assert len(invocations) >= 2, "the wait must span invocations"
    assert all(inv.outcome == "success" for inv in invocations), [inv.outcome for inv in invocations]
    assert "CustomResourceContinuation" in invocations[1].event
    assert list(params(ssm)) == ["/demo/slow"]


def test_a_hand_over_delivered_twice_is_answered_once(parameter, ssm, example_function, moto):
    example_function.duplicate_events = True
    try:
        answer = parameter.create({"Name": "/demo/twice", "Value": "v", "WaitSeconds": 10})
    finally:
        example_function.duplicate_events = False
    assert answer.ok and answer.physical_id == "/demo/twice"
    invocations = example_function.invocations_for(answer.request_id)
    handed = [inv for inv in invocations if "CustomResourceContinuation" in inv.event]
    assert len(handed) >= 2 and len(handed) % 2 == 0, "every hand-over was delivered twice"
    duplicates = [inv for inv in handed if b"DUPLICATE_HAND_OVER" in inv.result]
    assert len(duplicates) == len(handed) // 2, [inv.result for inv in handed]
    answered = [a for key, got in parameter.cfn.answers.items() if key.endswith(answer.request_id) for a in got]
    assert len(answered) == 1, "cfn.send also fails on a second answer"
    claims = moto.client("dynamodb").scan(TableName="custom-resource-handovers")["Items"]
    assert claims and all(item["State"]["S"] == "done" for item in claims)
    assert list(params(ssm)) == ["/demo/twice"]


def test_a_wait_past_the_service_timeout_answers_failed_with_what_was_pending(parameter, ssm, example_function):
    answer = parameter.create({"Name": "/demo/stuck", "Value": "v", "WaitSeconds": 300, "ServiceTimeout": 9})
    assert answer.status == "FAILED"
    assert "still waiting for parameter /demo/stuck to settle" in answer.reason
    assert answer.physical_id == "/demo/stuck"
    first = example_function.invocations_for(answer.request_id)[0]
    assert answer.received_at - first.started < 9, "answered after CloudFormation stopped waiting"
    assert params(ssm) == {}, "the rollback Delete removes the parameter"


def test_the_response_put_is_retried_when_the_url_answers_5xx(cfn, example_function, ssm):
    event = cfn.event(example_function, "Create", "Parameter", {"Name": "/demo/retry", "Value": "v"})
    cfn.fail_next[cfn.key_of(event)] = 2
    answer = cfn.send(example_function, event)
    assert answer.ok
    assert cfn.failed_puts[cfn.key_of(event)] == 2


def test_a_response_url_off_the_allow_list_is_never_answered_and_nothing_is_created(cfn, example_function, ssm):
    event = cfn.event(example_function, "Create", "Parameter", {"Name": "/demo/x", "Value": "v"},
                      response_prefix="http://127.0.0.1:9/")
    cfn.expect_no_answer(example_function, event)
    assert params(ssm) == {}
    assert "REFUSED" in example_function.logs()


def test_delete_of_a_parameter_already_gone_succeeds(parameter, ssm):
    parameter.create({"Name": "/demo/x", "Value": "v"})
    ssm.delete_parameter(Name="/demo/x")
    assert parameter.delete().ok
    assert parameter.delete().ok


def test_a_name_owned_by_someone_else_is_not_adopted(parameter, ssm):
    ssm.put_parameter(Name="/demo/taken", Value="theirs", Type="String")
    answer = parameter.create({"Name": "/demo/taken", "Value": "ours"})
    assert answer.status == "FAILED"
    assert "already exists and was not created by this resource" in answer.reason
    assert value_of(ssm, "/demo/taken") == "theirs"


def test_scalars_arrive_as_strings_like_cloudformation_sends_them(cfn, example_function, ssm):
    event = cfn.event(example_function, "Create", "Parameter", {"Name": "/demo/s", "Value": "v", "DataBytes": 3})
    assert event["ResourceProperties"]["DataBytes"] == "3"
    answer = cfn.send(example_function, event)
    assert answer.ok and answer.data["Padding"] == "xxx"


def test_a_crash_before_answering_is_retried_by_lambda_and_answered_once(parameter, ssm, example_function, tmp_path):
    marker = tmp_path / "crashed"
    answer = parameter.create({"Name": "/demo/crashy", "Value": "v", "CrashOnce": str(marker)})
    assert answer.ok and answer.physical_id == "/demo/crashy"
    assert marker.exists()
    invocations = example_function.invocations_for(answer.request_id)
    assert [inv.outcome for inv in invocations] == ["crash", "success"], [inv.outcome for inv in invocations]
    assert list(params(ssm)) == ["/demo/crashy"]
