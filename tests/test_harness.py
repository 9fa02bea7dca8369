"""The stand-in itself: it must notice a request that gets no answer, or two."""
import threading
import time
import urllib.request

import pytest

from harness.cloudformation import ProtocolViolation


def test_the_stand_in_fails_a_request_that_gets_no_answer(cfn, example_function):
    event = cfn.event(example_function, "Create", "Parameter", {"Name": "/demo/x", "Value": "v"},
                      response_prefix="http://127.0.0.1:9/")
    with pytest.raises(ProtocolViolation, match="no answer"):
        cfn.send(example_function, event, wait=3)


def test_the_stand_in_fails_a_request_that_gets_two_answers(cfn, example_function):
    """A second PUT to the same ResponseURL (what a buggy provider would do) arrives while `send`
    waits for the function to go quiet: `send` must raise instead of returning the first answer."""
    event = cfn.event(example_function, "Create", "Parameter", {"Name": "/demo/x", "Value": "v"})
    key = cfn.key_of(event)

    def answer_again():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            first = cfn.answers_to(event)
            if first:
                request = urllib.request.Request(event["ResponseURL"], data=first[0].body, method="PUT")
                urllib.request.urlopen(request).read()
                return
            time.sleep(0.01)

    echo = threading.Thread(target=answer_again)
    echo.start()
    with pytest.raises(ProtocolViolation, match="2 answers to one delivery"):
        cfn.send(example_function, event)
    echo.join()
    # Keep the session-wide body checks about real answers only.
    cfn.answers[key].pop()
