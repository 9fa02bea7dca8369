"""The stand-in itself: it must notice a request that gets no answer, or two."""
import urllib.request

import pytest

from harness.cloudformation import ProtocolViolation


def test_the_stand_in_fails_a_request_that_gets_no_answer(cfn, example_function):
    event = cfn.event(example_function, "Create", "Parameter", {"Name": "/demo/x", "Value": "v"},
                      response_prefix="http://127.0.0.1:9/")
    with pytest.raises(ProtocolViolation, match="no answer"):
        cfn.send(example_function, event, wait=3)


def test_the_stand_in_fails_a_request_that_gets_two_answers(cfn, example_function):
    event = cfn.event(example_function, "Create", "Parameter", {"Name": "/demo/x", "Value": "v"})
    first = cfn.send(example_function, event)
    # A second PUT to the same URL (what a buggy provider would do).
    request = urllib.request.Request(event["ResponseURL"], data=first.body, method="PUT")
    urllib.request.urlopen(request).read()
    assert len(cfn.answers_to(event)) == 2
    cfn.answers[cfn.key_of(event)].pop()  # keep the session-wide checks about real answers
