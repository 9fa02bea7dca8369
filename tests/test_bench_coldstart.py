"""The pure parts of tests/bench_coldstart.py (no binaries, no Python baseline venv): VmHWM
parsing, the median/min/max and ratio assembly, the markdown table, the events, and what the local
Runtime API records."""
import json
import urllib.request

import pytest

import bench_coldstart as bc

STATUS = """Name:\tbootstrap
VmPeak:\t  123456 kB
VmHWM:\t   10342 kB
VmRSS:\t    9876 kB
"""


def test_vm_hwm_is_read_in_mib():
    assert bc.vm_hwm_mib(STATUS) == 10.1


def test_a_status_without_vm_hwm_is_an_error_not_a_zero():
    with pytest.raises(ValueError):
        bc.vm_hwm_mib("Name:\tzombie\nState:\tZ (zombie)\n")


def samples(*rows):
    return [dict(zip(bc.FIGURES, row)) for row in rows]


def test_summaries_are_median_min_max_of_each_figure():
    summary = bc.summarize(samples((10, 12, 9.0), (30, 33, 9.5), (20, 21, 9.2)))
    assert summary["next_ms"] == {"median": 20, "min": 10, "max": 30}
    assert summary["answer_ms"] == {"median": 21, "min": 12, "max": 33}
    assert summary["peak_rss_mib"] == {"median": 9.2, "min": 9.0, "max": 9.5}


def test_ratios_are_python_over_rust_medians_and_the_table_has_a_row_per_function():
    rust = bc.summarize(samples((10, 20, 10.0)))
    python = bc.summarize(samples((500, 600, 65.0)))
    ratio = bc.ratios(rust, python)
    assert ratio == {"next_ms": 50.0, "answer_ms": 30.0, "peak_rss_mib": 6.5}
    text = bc.table({"functions": {"network": {"rust": rust, "python": python, "ratio": ratio}}})
    header, rule, row = text.splitlines()
    assert header.count("|") == rule.count("|") == row.count("|") == 11
    assert row == ("| network | 10 (10-10) | 20 (20-20) | 10.0 (10.0-10.0) | 500 (500-500) | 600 (600-600) "
                   "| 65.0 (65.0-65.0) | 50.0 | 30.0 | 6.5 |")


def test_the_delete_names_a_failed_create_so_neither_side_calls_aws():
    event = bc.cfn_event("Custom::Network", "http://127.0.0.1:1/responses/r", "r", "network")
    assert event["RequestType"] == "Delete"
    assert event["PhysicalResourceId"] == "custom-resource:create-failed:r"
    assert bc.eventbridge_event()["detail"]["eventName"] != "SERVICE_TASK_PLACEMENT_FAILURE"


def test_every_function_has_its_clients_and_the_library_ones_only_where_it_runs_the_library():
    assert set(bc.FUNCTIONS) == {"network", "service", "scaling", "preflight", "spot-fallback"}
    for function, (resource_type, clients) in bc.FUNCTIONS.items():
        assert ("lambda" in clients and "dynamodb" in clients) == (resource_type is not None), function


def request(url, method, body=None):
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method=method), timeout=5) as answer:
        return answer.status, answer.read()


def test_the_runtime_api_serves_the_event_once_and_records_the_answer_and_the_put():
    api = bc.RuntimeApi()
    try:
        api.event = {"RequestType": "Delete", "PhysicalResourceId": "x"}
        status, body = request(f"{api.url}/2018-06-01/runtime/invocation/next", "GET")
        assert (status, json.loads(body)) == (200, api.event) and api.next_at is not None
        request(f"{api.url}/responses/{api.request_id}", "PUT", b'{"Status": "SUCCESS"}')
        status, _ = request(f"{api.url}/2018-06-01/runtime/invocation/{api.request_id}/response", "POST", b"{}")
        assert status == 202 and api.answered.is_set()
        assert api.answer == ("response", b"{}") and api.put == {"Status": "SUCCESS"}
        assert api.answer_at >= api.next_at
    finally:
        api.stop()
