"""GET /regime/stream: server-sent events from the publication ledger.

A real uvicorn server on a free 127.0.0.1 port serves the app, and httpx reads
the stream as a client would; publications are appended straight to the ledger
(as another process would) while the client is connected.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from app.main import create_app
from app.routes_stream import chain_exit_signals, parse_last_event_id
from app.settings import Settings
from store.ledger import Publication, append_publication
from tests.app.conftest import API_KEY

DAY = dt.date(2030, 1, 3)


@dataclass
class Event:
    event: str | None = None
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return json.loads(self.data)


def read_events(response: httpx.Response) -> Iterator[Event]:
    """Parse a text/event-stream into events; comment-only blocks come as events too."""
    current = Event()
    for line in response.iter_lines():
        if line == "":
            if current.event or current.data or current.comments:
                yield current
            current = Event()
        elif line.startswith(":"):
            current.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                current.event = value
            elif name == "id":
                current.id = value
            elif name == "data":
                current.data += value


def next_regime(events: Iterator[Event]) -> Event:
    return next(event for event in events if event.event == "regime")


@dataclass
class Served:
    url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread


@contextmanager
def serving(settings: Settings) -> Iterator[Served]:
    """The app under uvicorn on a free loopback port, in a thread, until the block ends."""
    app = create_app(settings)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", app, server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        listener.close()


@pytest.fixture
def stream_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        model_dir=tmp_path / "models",
        data_source="csv",
        data_path=tmp_path / "market",
        api_key=API_KEY,
        webhook_poll_s=0,
        stream_poll_s=0.1,
        _env_file=None,
    )


def publish(
    engine: Engine, regime: str | None, exposure: float | None, policy: str = "rules"
) -> Publication:
    with engine.begin() as connection:
        return append_publication(
            connection,
            day=DAY,
            policy=policy,
            rule_set_version="published-0c1efb7f",
            model_version=None,
            data_fingerprint="f" * 64,
            run_id=None,
            body={
                "as_of": DAY.isoformat(),
                "policy": policy,
                "regime": regime,
                "exposure": exposure,
            },
        )


@contextmanager
def stream(served: Served, **options: Any) -> Iterator[tuple[httpx.Response, Iterator[Event]]]:
    with (
        httpx.Client(base_url=served.url, timeout=10) as client,
        client.stream("GET", "/regime/stream", **options) as response,
    ):
        yield response, read_events(response)


def test_first_the_latest_publication_then_each_new_one(engine, stream_settings):
    publish(engine, "risk-on", 1.0)
    publish(engine, "caution", 0.5, policy="ensemble")
    latest = publish(engine, "caution", 0.5)
    with serving(stream_settings) as served, stream(served) as (response, events):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        first = next_regime(events)
        assert first.id == str(latest.id)
        assert first.json() == {
            "as_of": "2030-01-03",
            "policy": "rules",
            "regime": "caution",
            "exposure": 0.5,
            "publication_id": latest.id,
            "published_at": latest.published_at.isoformat().replace("+00:00", "Z"),
        }

        # Appended while connected (as the update cycle in another process would):
        # the other policy's publication is not sent, this policy's one is.
        publish(engine, "risk-off", 0.0, policy="ensemble")
        started = time.monotonic()
        newer = publish(engine, "risk-off", 0.0)
        arrived = next_regime(events)
        assert (arrived.id, arrived.json()["regime"]) == (str(newer.id), "risk-off")
        assert time.monotonic() - started < 5


def test_last_event_id_replays_what_the_client_missed(engine, stream_settings):
    seen = publish(engine, "risk-on", 1.0)
    missed = [publish(engine, "caution", 0.5), publish(engine, "risk-off", 0.0)]
    publish(engine, "risk-on", 1.0, policy="ensemble")
    with (
        serving(stream_settings) as served,
        stream(served, headers={"Last-Event-ID": str(seen.id)}) as (_, events),
    ):
        assert [next_regime(events).id for _ in missed] == [str(p.id) for p in missed]
        later = publish(engine, "caution", 0.5)
        assert next_regime(events).id == str(later.id)


def test_the_policy_parameter_chooses_the_stream(engine, stream_settings):
    publish(engine, "risk-on", 1.0)
    ensemble = publish(engine, "caution", 0.5, policy="ensemble")
    model = publish(engine, "risk-off", 0.0, policy="model:filter")
    with serving(stream_settings) as served:
        for policy, expected in (("ensemble", ensemble), ("model", model)):
            with stream(served, params={"policy": policy}) as (_, events):
                assert next_regime(events).id == str(expected.id)
        with httpx.Client(base_url=served.url, timeout=10) as client:
            bad = client.get("/regime/stream", params={"policy": "momentum"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"][0]["field"] == "policy"


def test_an_empty_ledger_sends_nothing_until_the_first_publication(engine, stream_settings):
    settings = stream_settings.model_copy(update={"stream_keepalive_s": 0.2})
    with serving(settings) as served, stream(served) as (_, events):
        quiet = next(events)
        assert quiet.event is None and quiet.comments == ["keep-alive"]
        first = publish(engine, "risk-on", 1.0)
        assert next_regime(events).id == str(first.id)


def test_the_stream_ends_when_the_service_shuts_down(engine, stream_settings):
    publish(engine, "risk-on", 1.0)
    with serving(stream_settings) as served, stream(served) as (_, events):
        next_regime(events)
        served.app.state.shutting_down.set()  # what the lifespan and exit signals do
        started = time.monotonic()
        assert list(events) == []  # the server closed the stream
        assert time.monotonic() - started < 5


def test_a_client_leaving_does_not_hold_the_server_open(engine, stream_settings):
    publish(engine, "risk-on", 1.0)
    with serving(stream_settings) as served:
        with stream(served) as (_, events):
            next_regime(events)
        time.sleep(0.3)  # the server notices the disconnect at its next poll
        started = time.monotonic()
        served.server.should_exit = True
        served.thread.join(timeout=10)
        # Well under the 5 s graceful timeout: no stream was left waiting for.
        assert time.monotonic() - started < 3


def test_exit_signals_set_the_shutdown_flag_before_the_servers_handler():
    calls: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda number, frame: calls.append(number))
    try:
        flag = threading.Event()
        undo = chain_exit_signals(flag)
        signal.raise_signal(signal.SIGTERM)
        assert flag.is_set() and calls == [signal.SIGTERM]
        undo()
        flag.clear()
        signal.raise_signal(signal.SIGTERM)
        assert not flag.is_set() and calls == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, original)


def test_last_event_ids_that_are_not_ids_are_ignored():
    assert parse_last_event_id(" 42 ") == 42
    assert parse_last_event_id(None) is None
    assert parse_last_event_id("abc") is None
    assert parse_last_event_id("-1") is None


def test_a_market_or_rule_set_names_its_stream_and_its_ledger(engine, stream_settings):
    """?market= and ?rule_set= choose the stream (and the ledger page) as on /regime/today:
    QQQ's answers are its rule set's publications."""
    publish(engine, "risk-on", 1.0)
    qqq = publish(engine, "caution", 0.5, policy="rule_set:qqq-trend-rv-credit")
    platform = publish(engine, "risk-off", 0.0, policy="rule_set:platform")
    with serving(stream_settings) as served:
        for params, expected in (
            ({"market": "QQQ"}, qqq),
            ({"rule_set": "qqq-trend-rv-credit"}, qqq),
            ({"rule_set": "platform"}, platform),
        ):
            with stream(served, params=params) as (_, events):
                assert next_regime(events).id == str(expected.id), params
        with httpx.Client(base_url=served.url, timeout=10) as client:
            page = client.get("/publications", params={"market": "QQQ"}).json()
            spy = client.get("/publications", params={"market": "SPY"}).json()
            refused = client.get("/regime/stream", params={"market": "QQQ", "policy": "ensemble"})
            unknown = client.get("/publications", params={"market": "XYZ"})
    assert [item["id"] for item in page["items"]] == [qqq.id]
    assert {item["policy"] for item in spy["items"]} == {"rules", "rule_set:platform"}
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "query.policy"
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "query.market"
