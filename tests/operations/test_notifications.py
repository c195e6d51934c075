"""Regime-change webhooks: the outbox, signed delivery, retries, restarts, concurrency.

A loopback receiver verifies every request with ``standardwebhooks`` and records
what it accepted; time moves by passing ``now`` instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from standardwebhooks import Webhook

from core.errors import DataValidationError, NotFoundError
from operations import notifications as hooks
from store.db import make_engine
from store.ledger import Publication, append_publication
from store.tables import webhook_deliveries, webhook_outbox

T0 = dt.datetime(2030, 1, 6, 22, 0, tzinfo=dt.UTC)  # scheduling clock; signatures use the real one
# The receivers listen on loopback, which webhooks refuse unless allowed (tests only).
LOOPBACK = ["127.0.0.1/32"]
FAST = {"backoff_base_s": 60.0, "backoff_cap_s": 3600.0, "timeout_s": 2.0, "allowed": LOOPBACK}


# --- a loopback receiver -------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that verifies Standard Webhooks signatures.

    ``secrets[path]`` is the secret of the subscription posting to ``path``;
    ``plans[path]`` the statuses to answer in turn (then 200). Accepted events
    land in ``received`` as (path, webhook-id, payload).
    """

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.plans: dict[str, list[int]] = {}
        self.received: list[tuple[str, str, dict[str, Any]]] = []
        self.rejected: list[str] = []
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                secret = receiver.secrets.get(self.path)
                try:
                    payload = Webhook(secret).verify(body, dict(self.headers.items()))
                except Exception as error:  # noqa: BLE001 - any failure is a rejection
                    with receiver._lock:
                        receiver.rejected.append(f"{self.path}: {error!r}")
                    self._answer(400)
                    return
                time.sleep(receiver.delay_s)
                with receiver._lock:
                    plan = receiver.plans.get(self.path) or []
                    status = plan.pop(0) if plan else 200
                    if 200 <= status < 300:
                        receiver.received.append((self.path, self.headers["webhook-id"], payload))
                self._answer(status)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        return [payload for where, _, payload in self.received if path in (None, where)]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def subscribe(
    engine: Engine, receiver: Receiver, path: str, policy: str | None = None, **options: Any
) -> str:
    created = hooks.create_subscription(
        engine, url=receiver.url(path), policy=policy, now=T0, allowed=LOOPBACK, **options
    )
    receiver.secrets[path] = created.secret
    return created.subscription.id


def publish(
    engine: Engine,
    *,
    regime: str | None,
    exposure: float | None,
    policy: str = "rules",
    day: dt.date = dt.date(2030, 1, 3),
    default_policy: str = "rules",
    previous: Publication | None = None,
    now: dt.datetime = T0,
) -> tuple[Publication, int]:
    """Append a publication and queue its events in one transaction, as the update cycle does."""
    with engine.begin() as connection:
        publication = append_publication(
            connection,
            day=day,
            policy=policy,
            rule_set_version="published-0c1efb7f",
            model_version=None,
            data_fingerprint="f" * 64,
            run_id=None,
            body={"as_of": day.isoformat(), "regime": regime, "exposure": exposure},
            published_at=now,
        )
        queued = hooks.enqueue_regime_change(
            connection,
            publication=publication,
            previous=previous,
            default_policy=default_policy,
            now=now,
        )
    return publication, queued


def outbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(select(webhook_outbox).order_by(webhook_outbox.c.id)).all()


def as_utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# --- pure parts ------------------------------------------------------------------------


def test_retry_delay_doubles_up_to_the_cap_with_jitter_between_half_and_all():
    delays = [hooks.retry_delay(n, base_s=30, cap_s=600, jitter=0.999999) for n in range(1, 8)]
    assert [round(d) for d in delays] == [30, 60, 120, 240, 480, 600, 600]
    assert hooks.retry_delay(3, base_s=30, cap_s=600, jitter=0.0) == 60.0  # half of 120
    rng = random.Random(1)
    spread = {hooks.retry_delay(2, base_s=30, cap_s=600, jitter=rng.random()) for _ in range(50)}
    assert min(spread) >= 30 and max(spread) <= 60 and len(spread) > 40


def test_new_secrets_are_standard_webhooks_secrets():
    secret = hooks.new_secret()
    assert secret.startswith("whsec_") and secret != hooks.new_secret()
    assert hooks.validate_secret(secret) == secret
    signature = Webhook(secret).sign("msg_1", dt.datetime.now(dt.UTC), "{}")
    assert signature.startswith("v1,")
    for bad in ("plain", "whsec_not*base64", "whsec_" + "QUJD"):
        with pytest.raises(DataValidationError):
            hooks.validate_secret(bad)


def test_urls_must_be_absolute_http_or_https():
    assert hooks.validate_url(" https://example.com/hook ") == "https://example.com/hook"
    for bad in ("ftp://example.com", "example.com/hook", "http://", "javascript:alert(1)"):
        with pytest.raises(DataValidationError) as raised:
            hooks.validate_url(bad)
        assert raised.value.field == "url"


def test_the_model_policy_is_named_by_its_mapping_in_the_ledger():
    assert hooks.ledger_policy("model", "leveraged") == "model:leveraged"
    assert hooks.ledger_policy("rules", "leveraged") == "rules"
    assert set(hooks.LEDGER_POLICIES) == {"rules", "ensemble", "model:filter", "model:leveraged"}


# --- the outbox ------------------------------------------------------------------------


def test_events_are_queued_only_when_the_regime_or_exposure_changes(engine, receiver):
    subscribe(engine, receiver, "/desk")
    first, queued = publish(engine, regime="risk-on", exposure=1.0)
    assert queued == 1  # a policy's first publication is a change
    same, queued = publish(engine, regime="risk-on", exposure=1.0, previous=first)
    assert queued == 0
    moved, queued = publish(engine, regime="risk-on", exposure=0.5, previous=same)
    assert queued == 1
    off, queued = publish(engine, regime=None, exposure=None, previous=moved)
    assert queued == 1

    stats = hooks.deliver_due(engine, now=T0, **FAST)
    assert stats == hooks.DeliveryStats(attempted=3, delivered=3)
    assert receiver.rejected == []
    events = receiver.events()
    assert [event["type"] for event in events] == ["regime.changed"] * 3
    assert {event["data"]["publication_id"] for event in events} == {first.id, moved.id, off.id}
    change = next(e["data"] for e in events if e["data"]["publication_id"] == moved.id)
    assert change == {
        "publication_id": moved.id,
        "day": "2030-01-03",
        "policy": "rules",
        "regime": "risk-on",
        "exposure": 0.5,
        "previous_publication_id": same.id,
        "previous_day": "2030-01-03",
        "previous_regime": "risk-on",
        "previous_exposure": 1.0,
        "published_at": "2030-01-06T22:00:00Z",
        "rule_set_version": "published-0c1efb7f",
        "model_version": None,
    }
    assert events[0]["timestamp"] == "2030-01-06T22:00:00Z"
    assert all(row.status == "delivered" and row.attempts == 1 for row in outbox_rows(engine))


def test_events_go_only_to_subscribers_of_the_publications_policy(engine, receiver):
    subscribe(engine, receiver, "/default")  # no policy: the service's default
    subscribe(engine, receiver, "/rules", policy="rules")
    subscribe(engine, receiver, "/ensemble", policy="ensemble")
    subscribe(engine, receiver, "/leveraged", policy="model:leveraged")
    gone = subscribe(engine, receiver, "/gone", policy="rules")
    hooks.delete_subscription(engine, gone)

    assert publish(engine, regime="caution", exposure=0.5, policy="rules")[1] == 2
    assert publish(engine, regime="risk-on", exposure=1.0, policy="ensemble")[1] == 1
    assert publish(engine, regime="risk-on", exposure=1.5, policy="model:leveraged")[1] == 1
    assert publish(engine, regime="risk-on", exposure=1.0, policy="model:filter")[1] == 0
    # With "ensemble" as the service's default, policy-less subscriptions follow it.
    assert publish(engine, regime="risk-off", exposure=0.0, default_policy="ensemble")[1] == 1
    assert (
        publish(
            engine, regime="risk-off", exposure=0.0, policy="ensemble", default_policy="ensemble"
        )[1]
        == 2
    )

    hooks.deliver_due(engine, now=T0, **FAST)
    policies = {
        path: [e["data"]["policy"] for e in receiver.events(path)] for path in receiver.secrets
    }
    assert policies == {
        "/default": ["rules", "ensemble"],
        "/rules": ["rules", "rules"],
        "/ensemble": ["ensemble", "ensemble"],
        "/leveraged": ["model:leveraged"],
        "/gone": [],
    }


def test_a_publication_and_its_events_commit_or_roll_back_together(engine, receiver):
    subscribe(engine, receiver, "/desk")
    with pytest.raises(RuntimeError), engine.begin() as connection:
        publication = append_publication(
            connection,
            day=dt.date(2030, 1, 3),
            policy="rules",
            rule_set_version="v",
            model_version=None,
            data_fingerprint="f" * 64,
            run_id=None,
            body={"as_of": "2030-01-03", "regime": "risk-on", "exposure": 1.0},
        )
        assert hooks.enqueue_regime_change(
            connection, publication=publication, previous=None, default_policy="rules"
        )
        raise RuntimeError("the update cycle failed after publishing")
    assert outbox_rows(engine) == []


# --- delivery --------------------------------------------------------------------------


def test_a_failed_send_is_retried_with_backoff_then_delivered(engine, receiver):
    subscription = subscribe(engine, receiver, "/flaky")
    receiver.plans["/flaky"] = [500]
    publish(engine, regime="risk-off", exposure=0.0)

    first = hooks.deliver_due(engine, now=T0, **FAST)
    assert first == hooks.DeliveryStats(attempted=1, retrying=1)
    (row,) = outbox_rows(engine)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 500")
    wait = (as_utc(row.next_attempt_at) - T0).total_seconds()
    assert 30 <= wait <= 60  # base 60 s, equal jitter

    assert hooks.deliver_due(engine, now=T0 + dt.timedelta(seconds=29), **FAST).attempted == 0
    later = T0 + dt.timedelta(seconds=61)
    assert hooks.deliver_due(engine, now=later, **FAST) == hooks.DeliveryStats(1, 1, 0, 0)
    (row,) = outbox_rows(engine)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)
    assert as_utc(row.delivered_at) == later

    log = hooks.list_deliveries(engine, subscription)
    assert [(a.status_code, a.error) for a in log] == [(200, None), (500, None)]  # newest first
    assert {a.event_id for a in log} == {row.event_id} and all(a.duration_ms >= 0 for a in log)
    assert [as_utc(a.attempted_at) for a in log] == [later, T0]
    # The receiver saw the same webhook-id both times (it deduplicates on it).
    assert [event_id for _, event_id, _ in receiver.received] == [row.event_id]


def test_an_event_fails_for_good_after_max_attempts_and_nothing_raises(engine, receiver):
    # A port nobody listens on: connection refused, recorded, never raised.
    closed = Receiver()
    dead_url = closed.url("/dead")
    closed._server.server_close()
    created = hooks.create_subscription(engine, url=dead_url, now=T0, allowed=LOOPBACK)
    subscribe(engine, receiver, "/down")
    receiver.plans["/down"] = [503] * 10
    publish(engine, regime="risk-off", exposure=0.0)

    now = T0
    outcomes = []
    for _ in range(3):
        outcomes.append(hooks.deliver_due(engine, now=now, max_attempts=3, **FAST))
        now += dt.timedelta(hours=2)  # past any backoff
    assert outcomes == [
        hooks.DeliveryStats(attempted=2, retrying=2),
        hooks.DeliveryStats(attempted=2, retrying=2),
        hooks.DeliveryStats(attempted=2, failed=2),
    ]
    assert hooks.deliver_due(engine, now=now, max_attempts=3, **FAST).attempted == 0
    rows = outbox_rows(engine)
    assert [(r.status, r.attempts) for r in rows] == [("failed", 3), ("failed", 3)]
    dead = hooks.list_deliveries(engine, created.subscription.id)
    assert len(dead) == 3 and all(a.status_code is None and a.error for a in dead)
    assert "Connect" in dead[0].error
    with engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(webhook_deliveries)).scalar() == 6
        )


def test_the_outbox_survives_a_restart(database_url, receiver):
    first = make_engine(database_url)
    subscribe(first, receiver, "/desk")
    publish(first, regime="caution", exposure=0.5)
    first.dispose()  # the process stops before sending

    restarted = make_engine(database_url)
    try:
        assert hooks.pending_count(restarted) == 1
        assert hooks.deliver_due(restarted, now=T0, **FAST).delivered == 1
        assert [e["data"]["regime"] for e in receiver.events()] == ["caution"]
        assert hooks.pending_count(restarted) == 0
    finally:
        restarted.dispose()


def test_two_workers_never_send_one_event_twice(database_url, receiver):
    engine = make_engine(database_url)
    try:
        for index in range(12):
            subscribe(engine, receiver, f"/desk{index}")
        publish(engine, regime="risk-off", exposure=0.0)
        receiver.delay_s = 0.02  # keeps each send in flight while the other worker looks
        start = threading.Barrier(2)
        results: list[hooks.DeliveryStats] = []

        def worker() -> None:
            start.wait()
            results.append(hooks.deliver_due(engine, now=T0, **FAST))

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        ids = [event_id for _, event_id, _ in receiver.received]
        assert len(ids) == 12 and len(set(ids)) == 12
        assert sum(r.delivered for r in results) == 12
        with engine.connect() as connection:
            attempts = connection.execute(select(func.count()).select_from(webhook_deliveries))
            assert attempts.scalar() == 12
    finally:
        engine.dispose()


def test_deliver_due_stops_between_rows_when_asked(engine, receiver):
    for index in range(3):
        subscribe(engine, receiver, f"/desk{index}")
    publish(engine, regime="risk-off", exposure=0.0)
    stop = threading.Event()
    stop.set()
    assert hooks.deliver_due(engine, now=T0, stop=stop, **FAST).attempted == 0
    assert hooks.deliver_due(engine, now=T0, limit=2, **FAST).attempted == 2
    assert hooks.pending_count(engine) == 1


# --- subscriptions ---------------------------------------------------------------------


def test_subscriptions_are_listed_without_secrets_and_deleted_softly(engine, receiver):
    given = hooks.new_secret()
    kept = subscribe(engine, receiver, "/kept", policy="ensemble", description="desk A")
    dropped = subscribe(engine, receiver, "/dropped", secret=given)
    assert receiver.secrets["/dropped"] == given

    listed = hooks.list_subscriptions(engine)
    assert {s.id for s in listed} == {kept, dropped}
    assert all(not hasattr(s, "secret") for s in listed)
    assert hooks.get_subscription(engine, kept).description == "desk A"

    publish(engine, regime="risk-on", exposure=1.0)  # queued for /dropped only
    assert hooks.delete_subscription(engine, dropped) == 1  # its pending event dropped
    assert [s.id for s in hooks.list_subscriptions(engine)] == [kept]
    everything = hooks.list_subscriptions(engine, include_inactive=True)
    assert {s.id: s.active for s in everything} == {kept: True, dropped: False}
    for call in (hooks.get_subscription, hooks.delete_subscription, hooks.list_deliveries):
        with pytest.raises(NotFoundError):
            call(engine, dropped)
    assert hooks.deliver_due(engine, now=T0, **FAST).attempted == 0
    (row,) = outbox_rows(engine)
    assert (row.status, row.last_error) == ("failed", "subscription deleted")

    with pytest.raises(DataValidationError):
        hooks.create_subscription(engine, url="https://example.com", policy="model")


def test_a_test_event_is_sent_at_once_and_logged(engine, receiver):
    subscription = subscribe(engine, receiver, "/desk")
    result = hooks.send_test_event(engine, subscription, timeout_s=2.0, allowed=LOOPBACK)
    assert result.delivered and result.status_code == 200 and result.error is None
    (event,) = receiver.events()
    assert event["type"] == "webhook.test"
    assert event["data"]["subscription_id"] == subscription
    (attempt,) = hooks.list_deliveries(engine, subscription)
    assert (attempt.event_id, attempt.event_type) == (result.event_id, "webhook.test")

    receiver.plans["/desk"] = [500]
    failed = hooks.send_test_event(engine, subscription, timeout_s=2.0, allowed=LOOPBACK)
    assert (failed.delivered, failed.status_code) == (False, 500)
    assert hooks.pending_count(engine) == 0  # a test event is tried once, not retried
    with pytest.raises(NotFoundError):
        hooks.send_test_event(engine, "no-such-id")


def test_payload_bytes_are_the_same_on_every_retry(engine, receiver):
    subscribe(engine, receiver, "/desk")
    receiver.plans["/desk"] = [500]
    publish(engine, regime="risk-on", exposure=1.0)
    (before,) = outbox_rows(engine)
    hooks.deliver_due(engine, now=T0, **FAST)
    hooks.deliver_due(engine, now=T0 + dt.timedelta(hours=1), **FAST)
    (after,) = outbox_rows(engine)
    assert before.payload == after.payload and before.event_id == after.event_id
    assert json.loads(after.payload)["data"] == receiver.events()[0]["data"]


# --- where webhooks may be sent ------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("fd00:ec2::254", "private"),  # a cloud's IPv6 metadata address
        ("169.254.169.254", "link-local"),  # the cloud metadata address
        ("fe80::1", "link-local"),
        ("100.100.100.200", "not public"),  # shared address space (another cloud's metadata)
        ("0.0.0.0", "private"),  # "this network"
        ("224.0.0.1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::1", "loopback"),  # 6to4 carrying 127.0.0.1
    ],
)
def test_internal_addresses_are_refused_as_targets(address, reason):
    found = hooks.refused_address(ipaddress.ip_address(address))
    assert found is not None and reason in found


def test_public_addresses_and_allowed_networks_may_be_targets():
    assert hooks.refused_address(ipaddress.ip_address("93.184.216.34")) is None
    assert hooks.refused_address(ipaddress.ip_address("2606:4700::6810:84e5")) is None
    allowed = hooks.allowed_networks(["127.0.0.1/32", "10.1.2.0/24"])
    assert hooks.refused_address(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert hooks.refused_address(ipaddress.ip_address("10.1.2.200"), allowed) is None
    assert hooks.refused_address(ipaddress.ip_address("10.1.3.1"), allowed) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/admin/refresh",
        "http://localhost/hook",
        "http://[::1]:5432/",
        "http://2130706433/hook",  # 127.0.0.1 written as one number
        "http://0x7f.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
    ],
)
def test_subscriptions_to_internal_targets_are_refused_naming_the_url(engine, url):
    with pytest.raises(DataValidationError) as refused:
        hooks.create_subscription(engine, url=url)
    assert refused.value.field == "url"
    assert "DEEPREGIME_WEBHOOK_ALLOWED_NETWORKS" in str(refused.value)
    assert hooks.list_subscriptions(engine) == []


def test_a_name_that_later_resolves_inside_is_refused_at_sending(engine, receiver, monkeypatch):
    """Checked when created (public then), and again when sent (loopback now): the
    loopback receiver, reachable at the address the name now gives, gets nothing."""
    port = int(receiver.url("/").rsplit(":", 1)[1].split("/")[0])
    answers = {"rebind.example": "93.184.216.34"}
    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    created = hooks.create_subscription(engine, url=f"http://rebind.example:{port}/desk", now=T0)
    receiver.secrets["/desk"] = created.secret
    answers["rebind.example"] = "127.0.0.1"  # the name now points inside
    publish(engine, regime="risk-off", exposure=0.0)

    stats = hooks.deliver_due(engine, now=T0, backoff_base_s=60.0, timeout_s=2.0)
    assert stats == hooks.DeliveryStats(attempted=1, retrying=1)
    assert receiver.received == []
    (attempt,) = hooks.list_deliveries(engine, created.subscription.id)
    assert attempt.status_code is None and "loopback" in attempt.error
    result = hooks.send_test_event(engine, created.subscription.id, timeout_s=2.0)
    assert not result.delivered and receiver.received == []

    # Allowed explicitly, the same name is sent to.
    later = T0 + dt.timedelta(hours=2)
    assert hooks.deliver_due(engine, now=later, **FAST).delivered == 1
    assert [event["type"] for event in receiver.events()] == ["regime.changed"]
