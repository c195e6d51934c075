"""Retries: ``Retry-After`` on 503 and 429 within bounds, connection errors for idempotent
requests, and the service's own 503 while its database is away, retried until it is back.

Scripted answers come from an httpx mock transport (the exact statuses and headers
each try gets); the last tests run against the live service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from deepregime_client import AsyncClient, Client, ProblemError, Retry
from deepregime_client._exchange import retry_after_s
from sqlalchemy.engine import make_url

from tests.app.conftest import LAST_DAY
from tests.app.tcp_proxy import TcpProxy
from tests.app.test_regime_stream import serving
from tests.client.conftest import service_settings

SWEEP = {
    "id": "s1",
    "name": None,
    "status": "queued",
    "variants": 4,
    "done_variants": 0,
    "progress": 0.0,
    "attempts": 0,
    "cancel_requested": False,
    "message": None,
    "scheduler": None,
    "created_at": "2030-01-06T22:00:00Z",
    "started_at": None,
    "finished_at": None,
    "summary": None,
}
BUSY = {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "busy"}
Answer = httpx.Response | Exception


class Script:
    """A transport answering each request with the next of ``answers`` (a response, or
    an exception raised as the transport would), recording what was sent and when."""

    def __init__(self, *answers: Answer | Callable[[], Answer]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **options: object) -> Client:
        http = httpx.Client(base_url="http://service.test", transport=httpx.MockTransport(self))
        return Client("http://service.test", http=http, **options)  # type: ignore[arg-type]


def unavailable(retry_after: str | None, status: int = 503) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {**BUSY, "status": status}
    return httpx.Response(status, json=body, headers=headers)


def swept() -> httpx.Response:
    return httpx.Response(200, json=SWEEP)


def test_a_503_is_retried_after_its_retry_after():
    script = Script(unavailable("1"), unavailable("0"), swept())
    with script.client() as client:
        assert client.sweep("s1").id == "s1"
    assert len(script.requests) == 3
    assert script.times[1] - script.times[0] >= 1.0  # waited the second asked for


def test_retry_after_as_an_http_date_is_honoured():
    now = dt.datetime(2030, 1, 6, 22, 0, tzinfo=dt.UTC)
    later = email.utils.format_datetime(now + dt.timedelta(seconds=7), usegmt=True)
    assert retry_after_s(later, now) == 7.0
    assert retry_after_s("12") == 12.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_retries_stop_at_max_attempts_and_raise_the_last_problem():
    script = Script(*[unavailable("0") for _ in range(5)])
    with script.client(retry=Retry(max_attempts=3)) as client, pytest.raises(ProblemError) as error:
        client.sweep("s1")
    assert len(script.requests) == 3
    assert (error.value.status, error.value.detail, error.value.retry_after_s) == (503, "busy", 0)


def test_a_wait_beyond_max_wait_is_not_started():
    script = Script(unavailable("60"), swept())
    started = time.monotonic()
    with script.client(retry=Retry(max_wait_s=30)) as client, pytest.raises(ProblemError) as error:
        client.sweep("s1")
    assert time.monotonic() - started < 1.0 and len(script.requests) == 1
    assert error.value.retry_after_s == 60


def test_a_503_without_retry_after_is_not_retried():
    # The service leaves Retry-After out where retrying cannot help (a full disk).
    script = Script(unavailable(None), swept())
    with script.client() as client, pytest.raises(ProblemError):
        client.sweep("s1")
    assert len(script.requests) == 1


def test_a_429_on_a_backtest_is_retried_with_the_same_idempotency_key():
    script = Script(unavailable("0", status=429), unavailable("0", status=429))
    with script.client(retry=Retry(max_attempts=2)) as client, pytest.raises(ProblemError) as error:
        client.backtest({"strategies": [{"kind": "buy_and_hold"}]})
    assert error.value.status == 429
    keys = {request.headers["Idempotency-Key"] for request in script.requests}
    assert len(script.requests) == 2 and len(keys) == 1


QUICK = Retry(max_attempts=3, backoff_s=0.01)


def test_a_dropped_connection_is_retried_for_idempotent_requests_only():
    dropped = httpx.ReadError("connection reset by peer")
    script = Script(dropped, dropped, swept())
    with script.client(retry=QUICK) as client:
        assert client.sweep("s1").status == "queued"  # a GET
        assert len(script.requests) == 3
        script.answers = [dropped, swept()]
        with pytest.raises(httpx.ReadError):
            client.create_sweep({"grid": {}})  # a POST without an idempotency key
        assert len(script.requests) == 4
        script.answers = [dropped, dropped, dropped]
        with pytest.raises(httpx.ReadError):
            client.backtest({"strategies": []})  # a POST made idempotent by its key
        assert len(script.requests) == 7


def test_a_failure_to_connect_is_retried_for_every_request():
    refused = httpx.ConnectError("connection refused")
    script = Script(refused, swept())
    with script.client(retry=QUICK) as client:
        assert client.create_sweep({"grid": {}}).id == "s1"
    assert len(script.requests) == 2


def test_the_async_client_retries_the_same_way():
    script = Script(unavailable("0"), httpx.ConnectError("refused"), swept())

    async def go() -> str:
        transport = httpx.MockTransport(script)
        http = httpx.AsyncClient(base_url="http://service.test", transport=transport)
        async with AsyncClient("http://service.test", http=http, retry=QUICK) as client:
            return (await client.sweep("s1")).id

    assert asyncio.run(go()) == "s1"
    assert len(script.requests) == 3


# --- the live service --------------------------------------------------------------------


SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def recording(url: str, statuses: list[httpx.Response]) -> httpx.Client:
    return httpx.Client(base_url=url, event_hooks={"response": [statuses.append]})


@SQLITE_ONLY
def test_a_service_not_listening_yet_is_retried_until_it_is(service):
    proxy = TcpProxy("127.0.0.1", int(service.url.rsplit(":", 1)[1])).start()
    proxy.stop()  # its port now refuses connections, until started again
    threading.Timer(0.4, proxy.start).start()
    try:
        url = f"http://127.0.0.1:{proxy.port}"
        with Client(url, retry=Retry(backoff_s=0.25)) as client:
            assert client.today().exposure == 0.0
    finally:
        proxy.stop()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_services_503_while_its_database_is_away_is_retried_until_it_is_back(
    populated_url: str, tmp_path: Path
):
    database = make_url(populated_url)
    proxy = TcpProxy(database.host or "127.0.0.1", database.port or 5432).start()
    through = database.set(host="127.0.0.1", port=proxy.port)
    settings = service_settings(through.render_as_string(hide_password=False), tmp_path)
    answers: list[httpx.Response] = []
    try:
        with (
            serving(settings.model_copy(update={"db_timeout_s": 1.0})) as served,
            Client(served.url, http=recording(served.url, answers)) as client,
        ):
            assert client.regime(LAST_DAY).exposure == 0.0
            proxy.stop()  # the database goes away ...
            threading.Timer(1.0, proxy.start).start()  # ... and is back a second later
            started = time.monotonic()
            assert client.regime(LAST_DAY).exposure == 0.0
            waited = time.monotonic() - started
    finally:
        proxy.stop()
    statuses = [(answer.status_code, answer.headers.get("retry-after")) for answer in answers]
    assert statuses[0] == (200, None) and statuses[-1] == (200, None)
    assert set(statuses[1:-1]) == {(503, "5")}  # the service's Retry-After, waited each time
    assert waited >= 5.0 * (len(statuses) - 2)
