"""The webhook verifier against deliveries the service signed: a subscription made
through the admin API, a regime change queued as the daily cycle queues it, sent by the
service's background delivery; and the admin API's test event."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from deepregime_client import (
    RegimeChange,
    WebhookEvent,
    WebhookVerificationError,
    WebhookVerifier,
)

from store.repository import utcnow
from tests.app.conftest import admin
from tests.app.test_regime_stream import serving
from tests.client.conftest import service_settings
from tests.client.test_readme import readme_examples
from tests.operations.test_notifications import publish


class Capture:
    """An HTTP server on 127.0.0.1 keeping each POST's headers and body as received."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                capture.received.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/desk"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def capture() -> Iterator[Capture]:
    receiver = Capture()
    yield receiver
    receiver.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_deliveries_the_service_signed_are_verified_and_read(
    database_url: str, engine, tmp_path: Path, capture: Capture, capsys
):
    settings = service_settings(
        database_url,
        tmp_path,
        webhook_poll_s=0.1,  # the service's background delivery
        webhook_allowed_networks=["127.0.0.1/32"],  # the loopback receiver
    )
    with serving(settings) as served:
        created = httpx.post(
            f"{served.url}/admin/webhooks", headers=admin(), json={"url": capture.url}
        ).json()
        # A regime change published and queued, as the daily cycle does.
        publication, queued = publish(engine, regime="risk-off", exposure=0.0, now=utcnow())
        assert queued == 1
        deadline = time.monotonic() + 15
        while not capture.received:
            assert time.monotonic() < deadline, "the service never delivered the event"
            time.sleep(0.05)
        sent = httpx.post(f"{served.url}/admin/webhooks/{created['id']}/test", headers=admin())
        assert sent.json()["delivered"] is True

    verifier = WebhookVerifier(created["secret"])
    (change_headers, change_body), (test_headers, test_body) = capture.received
    event = verifier.verify(change_body, change_headers)
    assert isinstance(event, WebhookEvent)
    assert (event.type, event.id) == ("regime.changed", change_headers["webhook-id"])
    change = event.regime_change
    assert isinstance(change, RegimeChange)
    assert (change.day, change.regime, change.exposure) == (publication.day, "risk-off", 0.0)
    assert change.publication_id == publication.id
    assert (change.previous_publication_id, change.previous_regime) == (None, None)
    # The model reads exactly what the service sends.
    assert set(event.data) == set(RegimeChange.model_fields)
    assert set(WebhookEvent.model_fields) == {"id", *event.model_dump(exclude={"id"})}

    # README's receiver example, as written, on this delivery.
    example = compile(readme_examples()[1], "README.md", "exec")
    exec(example, {"secret": created["secret"], "body": change_body, "headers": change_headers})
    assert capsys.readouterr().out == f"{publication.day} None -> risk-off 0.0\n"

    test_event = verifier.verify(test_body.decode(), test_headers)
    assert test_event.type == "webhook.test" and test_event.regime_change is None

    # Anything but the body as signed, with the headers as sent, is refused.
    with pytest.raises(WebhookVerificationError):
        verifier.verify(change_body.replace(b"risk-off", b"risk-on!"), change_headers)
    sent_at = int(change_headers["webhook-timestamp"])
    later = {**change_headers, "webhook-timestamp": str(sent_at + 1)}
    with pytest.raises(WebhookVerificationError):
        verifier.verify(change_body, later)
    other_secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
    with pytest.raises(WebhookVerificationError):
        WebhookVerifier(other_secret).verify(change_body, change_headers)
