"""The fault-injecting proxy: AWS's own error shapes per protocol, as botocore parses and classifies
them, seeded decisions, the bound on consecutive faults, latency, stats, and a transparent proxy
when no plan is set. Against the session's moto, through a RecordingProxy of this module's own."""
import http.client
import threading
import time
import xml.etree.ElementTree as ElementTree

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from botocore.retries import standard

from harness.aws_proxy import FaultPlan, RecordingProxy
from harness.moto import REGION

# One cheap read per protocol: (service, boto3 method, action as the proxy records it).
READS = {
    "ec2": ("ec2", "describe_vpcs", "DescribeVpcs"),
    "json": ("ecs", "list_clusters", "ListClusters"),
    "query": ("iam", "list_roles", "ListRoles"),
    "rest-json": ("lambda", "list_functions", "/2015-03-31/functions"),
}
# The (HTTP status, error code) AWS answers with, by protocol and fault.
SHAPES = {
    "ec2": {"throttle": (503, "RequestLimitExceeded"), "server_error": (500, "InternalError"),
            "unavailable": (503, "Unavailable")},
    "json": {"throttle": (400, "ThrottlingException"), "server_error": (500, "InternalFailure"),
             "unavailable": (503, "ServiceUnavailable")},
    "query": {"throttle": (400, "Throttling"), "server_error": (500, "InternalFailure"),
              "unavailable": (503, "ServiceUnavailable")},
    "rest-json": {"throttle": (429, "TooManyRequestsException"), "server_error": (500, "ServiceException"),
                  "unavailable": (503, "ServiceException")},
}
THROTTLE_MESSAGES = {"ec2": "Request limit exceeded.", "json": "Rate exceeded", "query": "Rate exceeded",
                     "rest-json": "Rate Exceeded."}


@pytest.fixture(autouse=True)
def fresh_state():
    """No moto reset (conftest's costs seconds a test): each test here reads only what it made
    itself, and a faulted call never reaches moto."""
    yield


@pytest.fixture(scope="module")
def module_proxy(moto):
    """A proxy of this module's own in front of the session's moto (not conftest's shared one)."""
    recorder = RecordingProxy(moto.url, max_lifetime=300)
    yield recorder
    recorder.stop()


@pytest.fixture
def proxy(module_proxy):
    """The module's proxy, with no plan and no calls recorded, as each test finds it."""
    assert module_proxy.plan is None
    module_proxy.clear()
    yield module_proxy
    module_proxy.set_plan(None)


@pytest.fixture
def no_backoff(monkeypatch):
    """botocore retries at once: these tests are about what the proxy answers, not the backoff."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


def client(proxy, service, attempts=1):
    return boto3.client(
        service, endpoint_url=proxy.url, region_name=REGION,
        aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing",
        # total_max_attempts counts the first attempt (retries' max_attempts counts only retries).
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}),
    )


def call(proxy, protocol, attempts=1):
    service, method, _ = READS[protocol]
    return getattr(client(proxy, service, attempts), method)()


def refused(proxy, protocol) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(proxy, protocol)
    return caught.value


def faults(proxy, protocol) -> list:
    service, _, action = READS[protocol]
    return [c.fault for c in proxy.recorded(service, action)]


def botocore_sees_throttling(protocol, error) -> bool:
    """What botocore's standard retry mode makes of the error: throttling (longer backoff)?"""
    service, method, _ = READS[protocol]
    meta = boto3.client(service, region_name=REGION).meta
    operation = meta.service_model.operation_model(meta.method_to_api_mapping[method])
    context = standard.RetryContext(attempt_number=1, operation_model=operation, parsed_response=error.response)
    return standard.ThrottlingErrorDetector(None).is_throttling_error_from_context(context)


@pytest.mark.parametrize("protocol", list(READS))
def test_a_throttled_call_gets_the_protocols_throttling_error_which_botocore_classifies_as_throttling(proxy, protocol):
    with proxy.inject(FaultPlan(throttle=1.0)):
        error = refused(proxy, protocol)
    status, code = SHAPES[protocol]["throttle"]
    assert (error.response["ResponseMetadata"]["HTTPStatusCode"], error.response["Error"]["Code"]) == (status, code)
    assert error.response["Error"]["Message"] == THROTTLE_MESSAGES[protocol]
    assert error.response["ResponseMetadata"].get("RequestId")
    assert botocore_sees_throttling(protocol, error)


@pytest.mark.parametrize("protocol", list(READS))
def test_a_client_that_retries_gets_through_a_throttle_on_its_first_attempt(proxy, no_backoff, protocol):
    with proxy.inject(FaultPlan(throttle=1.0, max_consecutive=1)):
        response = call(proxy, protocol, attempts=2)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert faults(proxy, protocol) == ["throttle", None]


@pytest.mark.parametrize("kind", ["server_error", "unavailable"])
@pytest.mark.parametrize("protocol", list(READS))
def test_server_errors_and_unavailability_have_each_protocols_status_and_code(proxy, protocol, kind):
    with proxy.inject(FaultPlan(**{kind: 1.0})):
        error = refused(proxy, protocol)
    status, code = SHAPES[protocol][kind]
    assert (error.response["ResponseMetadata"]["HTTPStatusCode"], error.response["Error"]["Code"]) == (status, code)
    assert not botocore_sees_throttling(protocol, error)
    assert proxy.recorded()[-1].status == status


def raw(proxy, service, body: str, headers: dict, path="/", method="POST"):
    """One hand-made request, signed only as far as the proxy reads it (the credential scope)."""
    connection = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=10)
    headers = dict(headers, Authorization=f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/"
                                          "aws4_request, SignedHeaders=host, Signature=0")
    connection.request(method, path, body=body.encode(), headers=headers)
    response = connection.getresponse()
    answer = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    connection.close()
    return answer


FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def test_the_ec2_throttle_is_the_xml_document_ec2_sends(proxy):
    with proxy.inject(FaultPlan(throttle=1.0)):
        status, headers, body = raw(proxy, "ec2", "Action=DescribeVpcs&Version=2016-11-15", FORM)
    assert status == 503 and headers["content-type"].startswith("text/xml")
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ElementTree.fromstring(body)
    assert root.tag == "Response"
    assert [e.tag for e in root] == ["Errors", "RequestID"]
    assert [(e.tag, e.text) for e in root.find("Errors/Error")] == [
        ("Code", "RequestLimitExceeded"), ("Message", "Request limit exceeded.")]


def test_the_query_throttle_is_an_error_response_of_the_services_namespace(proxy):
    with proxy.inject(FaultPlan(throttle=1.0)):
        status, headers, body = raw(proxy, "iam", "Action=ListRoles&Version=2010-05-08", FORM)
    assert status == 400 and headers["content-type"] == "text/xml"
    namespace = "{https://iam.amazonaws.com/doc/2010-05-08/}"
    root = ElementTree.fromstring(body)
    assert root.tag == f"{namespace}ErrorResponse"
    assert [(e.tag.removeprefix(namespace), e.text) for e in root.find(f"{namespace}Error")] == [
        ("Type", "Sender"), ("Code", "Throttling"), ("Message", "Rate exceeded")]
    assert root.find(f"{namespace}RequestId").text == headers["x-amzn-requestid"]


def test_the_json_throttle_answers_in_the_requests_json_version(proxy):
    target = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.ListTables"}
    with proxy.inject(FaultPlan(throttle=1.0)):
        status, headers, body = raw(proxy, "dynamodb", "{}", target)
    assert (status, headers["content-type"]) == (400, "application/x-amz-json-1.0")
    assert body == b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
    assert headers["x-amzn-requestid"]


def test_the_lambda_throttle_names_its_error_in_a_header_and_its_reason_in_the_body(proxy):
    with proxy.inject(FaultPlan(throttle=1.0)):
        status, headers, body = raw(proxy, "lambda", "", {}, path="/2015-03-31/functions/", method="GET")
    assert (status, headers["x-amzn-errortype"]) == (429, "TooManyRequestsException")
    assert body == b'{"message":"Rate Exceeded.","Reason":"CallerRateLimitExceeded","Type":"User"}'


def test_a_reset_is_a_connection_error_to_the_client_and_nothing_reaches_moto(proxy):
    ecs = client(proxy, "ecs")
    with proxy.inject(FaultPlan(reset=1.0)) as stats:
        with pytest.raises(botocore.exceptions.ConnectionClosedError) as caught:
            ecs.create_cluster(clusterName="reset")
    assert isinstance(caught.value.kwargs["error"].args[-1], ConnectionResetError)  # an RST, not a FIN
    assert stats.by_kind == {"reset": 1}
    assert [(c.fault, c.status) for c in proxy.recorded("ecs", "CreateCluster")] == [("reset", 0)]
    assert not exists(ecs, "reset")


def exists(ecs, cluster: str) -> bool:
    return bool(ecs.describe_clusters(clusters=[cluster])["clusters"])


@pytest.mark.parametrize("kind", ["throttle", "server_error", "unavailable"])
def test_a_faulted_call_is_not_acted_on(proxy, kind):
    ecs, name = client(proxy, "ecs"), f"faulted-{kind.replace('_', '-')}"
    with proxy.inject(FaultPlan(**{kind: 1.0})):
        with pytest.raises(botocore.exceptions.ClientError):
            ecs.create_cluster(clusterName=name)
    assert not exists(ecs, name)
    ecs.create_cluster(clusterName=name)
    assert exists(ecs, name)


MIX = dict(throttle=0.2, server_error=0.1, unavailable=0.1, reset=0.1)


def run(proxy, plan, protocol="json", calls=20) -> list:
    """The faults `calls` calls of one read met under `plan`, in order."""
    proxy.clear()
    with proxy.inject(plan):
        for _ in range(calls):
            try:
                call(proxy, protocol)
            except (botocore.exceptions.ClientError, botocore.exceptions.ConnectionClosedError):
                pass
    return faults(proxy, protocol)


def expected(plan, service, action, calls) -> list:
    """What the plan decides for calls 0..calls-1 of one key, with the consecutive bound."""
    decisions, streak = [], 0
    for k in range(calls):
        fault = plan.decide(service, action, k)
        if fault is not None and streak >= plan.max_consecutive:
            fault = None
        streak = streak + 1 if fault else 0
        decisions.append(fault)
    return decisions


def test_the_same_seed_faults_the_same_calls_and_another_seed_other_ones(proxy):
    first = run(proxy, FaultPlan(seed=7, **MIX))
    assert run(proxy, FaultPlan(seed=7, **MIX)) == first
    assert first == expected(FaultPlan(seed=7, **MIX), "ecs", "ListClusters", 20)
    assert {None, "throttle"} <= set(first)
    assert run(proxy, FaultPlan(seed=8, **MIX)) != first


def test_calls_to_other_operations_running_alongside_do_not_change_the_decisions(proxy):
    alone = run(proxy, FaultPlan(seed=3, **MIX))
    stop = threading.Event()

    def other_traffic():
        ec2 = client(proxy, "ec2")
        while not stop.is_set():
            try:
                ec2.describe_vpcs()
            except (botocore.exceptions.ClientError, botocore.exceptions.ConnectionClosedError):
                pass

    neighbours = [threading.Thread(target=other_traffic) for _ in range(2)]
    for thread in neighbours:
        thread.start()
    try:
        alongside = run(proxy, FaultPlan(seed=3, **MIX))
    finally:
        stop.set()
        for thread in neighbours:
            thread.join(timeout=10)
    assert proxy.faults.by_operation[("ec2", "DescribeVpcs")] > 0
    assert alongside == alone


def test_no_operation_is_faulted_more_than_max_consecutive_times_in_a_row(proxy):
    assert run(proxy, FaultPlan(throttle=1.0), calls=10) == ["throttle"] * 4 + [None] + ["throttle"] * 4 + [None]
    # Every kind counts towards the bound, a reset too.
    assert run(proxy, FaultPlan(reset=0.5, unavailable=0.5, max_consecutive=2), calls=6) == [
        "unavailable", "reset", None, "reset", "unavailable", None]


def test_a_client_with_one_attempt_more_than_the_bound_always_gets_through(proxy, no_backoff):
    with proxy.inject(FaultPlan(seed=1, throttle=0.4, server_error=0.3, unavailable=0.2, reset=0.1)):
        for _ in range(10):
            assert call(proxy, "json", attempts=5)["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert call(proxy, "ec2", attempts=5)["ResponseMetadata"]["RetryAttempts"] <= 4


def test_without_a_plan_the_proxy_is_transparent(proxy, moto):
    ec2 = client(proxy, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    assert moto.client("ec2").describe_vpcs(VpcIds=[vpc])["Vpcs"] == ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"]
    with proxy.inject(FaultPlan(throttle=1.0)):
        pass
    proxy.set_plan(FaultPlan(server_error=1.0))
    proxy.set_plan(None)
    ec2.describe_vpcs()
    assert [(c.action, c.status, c.fault) for c in proxy.recorded()] == [
        ("CreateVpc", 200, None), ("DescribeVpcs", 200, None), ("DescribeVpcs", 200, None)]
    assert proxy.recorded()[1].params == {"Version": "2016-11-15", "VpcId.1": vpc}
    assert proxy.faults.matched == 0


def test_a_plan_is_off_after_its_block_even_when_the_block_fails(proxy):
    with pytest.raises(RuntimeError):
        with proxy.inject(FaultPlan(throttle=1.0)):
            raise RuntimeError("the scenario failed")
    assert proxy.plan is None
    assert call(proxy, "json")["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_latency_is_added_to_every_matched_call_and_to_no_other(proxy):
    with proxy.inject(FaultPlan(latency_ms=300, services={"ecs"})) as stats:
        started = time.monotonic()
        call(proxy, "json")
        slowed = time.monotonic() - started
        call(proxy, "ec2")
    assert slowed >= 0.3
    assert (stats.matched, stats.forwarded, stats.injected) == (1, 1, 0)  # the ec2 call was not matched
    ecs_call, _ = proxy.recorded()
    assert ecs_call.finished - ecs_call.started >= 0.3


def test_services_and_operations_choose_the_calls_that_can_fail(proxy):
    ecs = client(proxy, "ecs")
    with proxy.inject(FaultPlan(throttle=1.0, services={"ecs"}, operations={"ListClusters"})) as stats:
        with pytest.raises(botocore.exceptions.ClientError):
            ecs.list_clusters()
        ecs.describe_clusters(clusters=["none"])
        call(proxy, "ec2")
    assert stats.by_operation == {("ecs", "ListClusters"): 1}
    assert stats.matched == 1


def test_stats_count_faults_by_kind_and_by_operation(proxy):
    with proxy.inject(FaultPlan(seed=11, **MIX)) as stats:
        for protocol in ["json", "ec2"] * 15:
            try:
                call(proxy, protocol)
            except (botocore.exceptions.ClientError, botocore.exceptions.ConnectionClosedError):
                pass
    recorded = proxy.recorded()
    assert stats.matched == len(recorded) == 30
    assert stats.matched == stats.forwarded + stats.injected
    assert stats.forwarded == sum(c.fault is None for c in recorded)
    for kind in MIX:
        assert stats.by_kind[kind] == sum(c.fault == kind for c in recorded)
    for service, action in [("ecs", "ListClusters"), ("ec2", "DescribeVpcs")]:
        assert stats.by_operation[(service, action)] == sum(c.fault is not None for c in recorded
                                                            if c.service == service)


@pytest.mark.parametrize("plan", [dict(throttle=0.6, reset=0.5), dict(server_error=-0.1), dict(latency_ms=10**6),
                                  dict(max_consecutive=0)])
def test_a_plan_out_of_bounds_is_refused(plan):
    with pytest.raises(ValueError):
        FaultPlan(**plan)


def test_the_proxy_listens_on_loopback_only_and_stops_by_itself_after_its_lifetime(moto):
    short_lived = RecordingProxy(moto.url, max_lifetime=0.5)
    assert short_lived.server.server_address[0] == "127.0.0.1"
    deadline = time.monotonic() + 5
    while not short_lived.stopped and time.monotonic() < deadline:
        time.sleep(0.05)
    assert short_lived.stopped
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(short_lived.url.removeprefix("http://"), timeout=2).connect()
    short_lived.stop()  # idempotent
