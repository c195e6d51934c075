"""The live stream across a dropped connection, and ETag revalidation of today's answer,
against the live service while publications are appended to its ledger (as an update
run by another process would append them)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from deepregime_client import Client, RegimeReport
from sqlalchemy import Engine

from store.ledger import Publication, append_publication, latest_publication
from tests.app.tcp_proxy import TcpProxy


def publish(engine: Engine, regime: str, exposure: float) -> Publication:
    """A new answer under ``rules``: the latest one with its regime and exposure changed."""
    with engine.begin() as connection:
        latest = latest_publication(connection, policy="rules")
        assert latest is not None
        body = latest.document() | {"regime": regime, "exposure": exposure}
        return append_publication(
            connection,
            day=latest.day,
            policy="rules",
            rule_set_version=latest.rule_set_version,
            model_version=None,
            data_fingerprint=latest.data_fingerprint,
            run_id=None,
            body=body,
        )


class Reader:
    """Iterates a stream on a thread of its own, so a test waits with a timeout."""

    def __init__(self, events: Iterator[RegimeReport]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._events = events
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self._events:
                self._queue.put(event)
        except Exception as error:  # noqa: BLE001 - handed to the test
            self._queue.put(error)

    def take(self, count: int, timeout_s: float = 15.0) -> list[RegimeReport]:
        taken = []
        for _ in range(count):
            item = self._queue.get(timeout=timeout_s)
            if isinstance(item, Exception):
                raise item
            taken.append(item)
        return taken


@pytest.fixture
def proxy(service) -> Iterator[TcpProxy]:
    """A loopback forwarder to the service: stopping it cuts every connection through it
    (and, at the end, lets the service stop without waiting for an open stream)."""
    forwarder = TcpProxy("127.0.0.1", int(service.url.rsplit(":", 1)[1])).start()
    yield forwarder
    forwarder.stop()


def test_a_dropped_stream_resumes_without_losing_or_repeating_a_publication(proxy, engine):
    with Client(f"http://127.0.0.1:{proxy.port}") as client:
        reader = Reader(client.stream())
        (latest,) = reader.take(1)
        live = [publish(engine, "caution", 0.5), publish(engine, "risk-on", 1.0)]
        received = [latest, *reader.take(2)]

        proxy.stop()  # the connection is cut
        missed = [publish(engine, regime, exposure) for regime, exposure in MISSED]
        threading.Timer(0.5, proxy.start).start()
        received += reader.take(3)  # replayed after the last id the client saw
        after = publish(engine, "caution", 0.5)
        received += reader.take(1)
    expected = [latest.publication_id, *(p.id for p in [*live, *missed, after])]
    assert [report.publication_id for report in received] == expected
    assert [(r.regime, r.exposure) for r in received[3:6]] == MISSED
    assert all(isinstance(report, RegimeReport) for report in received)


MISSED = [("risk-off", 0.0), ("caution", 0.5), ("risk-on", 1.0)]


def test_a_stream_started_from_an_id_replays_what_came_after_it(proxy, engine):
    first = publish(engine, "caution", 0.5)
    later = [publish(engine, "risk-on", 1.0), publish(engine, "risk-off", 0.0)]
    with Client(f"http://127.0.0.1:{proxy.port}") as client:
        reader = Reader(client.stream(last_event_id=first.id))
        assert [report.publication_id for report in reader.take(2)] == [p.id for p in later]


def test_an_unchanged_answer_costs_a_304_and_a_new_one_is_fetched(service, engine):
    answers: list[httpx.Response] = []
    http = httpx.Client(base_url=service.url, event_hooks={"response": [answers.append]})
    with Client(service.url, http=http) as client:
        first = client.today()
        assert client.today() == first
        assert [answer.status_code for answer in answers] == [200, 304]
        assert answers[1].request.headers["if-none-match"] == answers[0].headers["etag"]

        newer = publish(engine, "caution", 0.5)
        deadline = time.monotonic() + 10  # the service notices within a second
        while (report := client.today()).publication_id != newer.id:
            assert time.monotonic() < deadline, "the new publication was never served"
            time.sleep(0.2)
        assert (report.regime, report.exposure) == ("caution", 0.5)
        assert answers[-1].status_code == 200
        assert client.today() == report and answers[-1].status_code == 304
