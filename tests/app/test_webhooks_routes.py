"""/admin/webhooks: the API key, secrets shown once, problems, test events, background delivery."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from operations import notifications as hooks
from store.db import make_engine
from tests.app.conftest import API_KEY, admin, running
from tests.operations.test_notifications import Receiver, publish

LOOPBACK = ["127.0.0.1/32"]
ROUTES = [
    ("POST", "/admin/webhooks"),
    ("GET", "/admin/webhooks"),
    ("GET", "/admin/webhooks/some-id"),
    ("DELETE", "/admin/webhooks/some-id"),
    ("GET", "/admin/webhooks/some-id/deliveries"),
    ("POST", "/admin/webhooks/some-id/test"),
]


@pytest.fixture
def webhook_settings(database_url: str, tmp_path: Path) -> Settings:
    """The service on a fresh, migrated (empty) database; no background delivery."""
    return Settings(
        database_url=database_url,
        model_dir=tmp_path / "models",
        data_source="csv",
        data_path=tmp_path / "market",
        api_key=API_KEY,
        webhook_poll_s=0,
        webhook_timeout_s=2.0,
        webhook_allowed_networks=LOOPBACK,  # the receivers below; refused by default
        _env_file=None,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as listening:
        yield listening


@pytest.fixture
def client(webhook_settings):
    with running(webhook_settings) as client:
        yield client


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (admin("wrong-key-but-long-enough"), 403)],
    ids=["no-key", "wrong-key"],
)
def test_every_webhook_route_needs_the_admin_key(client, headers, status):
    for method, path in ROUTES:
        response = client.request(method, path, headers=headers, json={"url": "https://a.example"})
        assert response.status_code == status, (method, path)
        assert response.headers["content-type"] == "application/problem+json"


def test_the_secret_is_answered_once_and_never_listed(client, receiver):
    created = client.post(
        "/admin/webhooks",
        headers=admin(),
        json={"url": receiver.url("/desk"), "policy": "model", "description": "desk A"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_")
    assert body["policy"] == "model:filter"  # 'model' under the configured mapping
    assert created.headers["location"] == f"/admin/webhooks/{body['id']}"

    listed = client.get("/admin/webhooks", headers=admin())
    one = client.get(f"/admin/webhooks/{body['id']}", headers=admin())
    assert listed.status_code == one.status_code == 200
    assert [item["id"] for item in listed.json()] == [body["id"]]
    assert one.json() == {key: value for key, value in body.items() if key != "secret"}
    for response in (listed, one):
        assert secret not in response.text and "secret" not in response.text


def test_a_given_secret_is_kept(client):
    secret = hooks.new_secret()
    created = client.post(
        "/admin/webhooks",
        headers=admin(),
        json={"url": "http://127.0.0.1:9/hook", "secret": secret},
    )
    assert created.status_code == 201 and created.json()["secret"] == secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "example.com/hook"}, "url"),
        ({"url": "https://example.com", "policy": "momentum"}, "policy"),
        ({"url": "https://example.com", "secret": "not-a-whsec"}, "secret"),
        ({"url": "https://example.com", "extra": 1}, "body.extra"),
    ],
)
def test_bad_subscriptions_are_422_problems_naming_the_field(client, body, field):
    response = client.post("/admin/webhooks", headers=admin(), json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


def test_unknown_and_deleted_subscriptions_are_404(client):
    created = client.post(
        "/admin/webhooks", headers=admin(), json={"url": "https://example.com/hook"}
    ).json()
    path = f"/admin/webhooks/{created['id']}"
    assert client.delete(path, headers=admin()).status_code == 204
    for method, suffix in [("GET", ""), ("DELETE", ""), ("GET", "/deliveries"), ("POST", "/test")]:
        response = client.request(method, path + suffix, headers=admin())
        assert response.status_code == 404, (method, suffix)
        assert response.headers["content-type"] == "application/problem+json"
        assert created["id"] in response.json()["detail"]
    assert client.get("/admin/webhooks", headers=admin()).json() == []


def test_a_test_event_reaches_the_receiver_and_shows_in_the_log(client, receiver):
    created = client.post(
        "/admin/webhooks", headers=admin(), json={"url": receiver.url("/desk")}
    ).json()
    receiver.secrets["/desk"] = created["secret"]
    path = f"/admin/webhooks/{created['id']}"

    sent = client.post(f"{path}/test", headers=admin())
    assert sent.status_code == 200, sent.text
    result = sent.json()
    assert set(result) == {"event_id", "delivered", "detail"}
    assert result["delivered"] is True
    assert [event["type"] for event in receiver.events()] == ["webhook.test"]

    receiver.plans["/desk"] = [502]
    failed = client.post(f"{path}/test", headers=admin()).json()
    assert failed["delivered"] is False and "502" not in failed["detail"]

    log = client.get(f"{path}/deliveries", headers=admin())
    assert log.status_code == 200
    assert [(d["status_code"], d["event_type"]) for d in log.json()] == [
        (502, "webhook.test"),
        (200, "webhook.test"),
    ]
    assert client.get(f"{path}/deliveries?limit=1", headers=admin()).json()[0]["status_code"] == 502


def test_the_background_task_delivers_queued_events(webhook_settings, receiver):
    settings = webhook_settings.model_copy(update={"webhook_poll_s": 0.1})
    engine = make_engine(settings.database_url)
    try:
        created = hooks.create_subscription(engine, url=receiver.url("/desk"), allowed=LOOPBACK)
        receiver.secrets["/desk"] = created.secret
        with running(settings):
            publish(engine, regime="risk-off", exposure=0.0, now=dt.datetime.now(dt.UTC))
            deadline = time.monotonic() + 15
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.05)
        assert [event["data"]["regime"] for event in receiver.events()] == ["risk-off"]
        assert hooks.pending_count(engine) == 0
    finally:
        engine.dispose()


def test_internal_targets_are_refused_by_default_naming_the_url(webhook_settings, receiver):
    defaults = webhook_settings.model_copy(update={"webhook_allowed_networks": []})
    with running(defaults) as client:
        for url in (receiver.url("/desk"), "http://169.254.169.254/latest/meta-data/"):
            response = client.post("/admin/webhooks", headers=admin(), json={"url": url})
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["errors"][0]["field"] == "url"
        assert client.get("/admin/webhooks", headers=admin()).json() == []


def test_the_test_event_answers_the_same_whatever_stopped_it(client):
    """Refused, nobody listening, or a target answering an error: one generic failure, so
    the route cannot tell what the server can reach."""
    engine = make_engine(client.app.state.settings.database_url)
    try:
        closed = Receiver()
        dead = closed.url("/x")
        closed._server.server_close()
        targets = [dead, "http://192.0.2.1:9/x"]  # closed port; an address nobody routes
        answers = []
        for url in targets:
            created = hooks.create_subscription(engine, url=url, allowed=["0.0.0.0/0"])
            sent = client.post(f"/admin/webhooks/{created.subscription.id}/test", headers=admin())
            assert sent.status_code == 200, sent.text
            answers.append({k: v for k, v in sent.json().items() if k != "event_id"})
    finally:
        engine.dispose()
    assert answers[0] == answers[1] and answers[0]["delivered"] is False
