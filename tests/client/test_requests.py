"""What the client sends: parameters only when given (``market`` included), the API key,
and how an error answer that is not a problem body is still raised."""

from __future__ import annotations

import httpx
import pytest
from deepregime_client import Client, ProblemError

from tests.client.test_retries import SWEEP, Script

REPORT = {
    "as_of": "2012-04-05",
    "regime": "risk-off",
    "exposure": 0.0,
    "policy": "rules",
    "rules": {
        "rule_set": "published-0c1efb7f",
        "votes": 2,
        "available": 3,
        "enabled": 3,
        "regime": "risk-off",
        "exposure": 0.0,
        "filters": {},
    },
    "model": {"available": False},
}


def test_parameters_are_sent_only_when_given():
    script = Script(*[httpx.Response(200, json=REPORT) for _ in range(3)])
    with script.client() as client:
        client.today()
        client.today(market="US", policy="model:filter")
        client.regime("2012-04-05", as_known_at="2012-04-06T00:00:00", market="US")
    assert [dict(request.url.params) for request in script.requests] == [
        {},
        {"market": "US", "policy": "model:filter"},
        {"as_known_at": "2012-04-06T00:00:00", "market": "US"},
    ]
    assert script.requests[2].url.path == "/regime/2012-04-05"


def test_the_api_key_goes_in_its_header():
    script = Script(httpx.Response(200, json=SWEEP))
    transport = httpx.MockTransport(script)
    with Client("http://service.test", api_key="desk-key-0123456789") as client:
        client._http._transport = transport  # the client's own httpx client, headers and all
        client.sweep("s1")
    assert script.requests[0].headers["X-API-Key"] == "desk-key-0123456789"


def test_an_error_page_that_is_not_a_problem_still_raises_with_its_status():
    script = Script(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with script.client() as client, pytest.raises(ProblemError) as error:
        client.sweep("s1")
    assert (error.value.status, error.value.detail) == (502, "<html>Bad Gateway</html>")
    assert error.value.fields == []
