"""Verifying the service's webhooks (Standard Webhooks, as operations/notifications.py signs).

Each delivery is a POST whose body is ``{"type", "timestamp", "data"}`` with the
headers ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (HMAC-SHA256
over ``id.timestamp.body`` with the subscription's ``whsec_`` secret). Verify the
body exactly as received, before parsing it.
"""

from __future__ import annotations

from collections.abc import Mapping

from standardwebhooks import Webhook

from deepregime_client.errors import WebhookVerificationError
from deepregime_client.models import WebhookEvent


class WebhookVerifier:
    """Checks deliveries signed with one subscription's secret (``whsec_...``, shown
    once when the subscription was created)."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def verify(self, body: bytes | str, headers: Mapping[str, str]) -> WebhookEvent:
        """The event, once its signature and timestamp (within 5 minutes) are checked;
        ``WebhookVerificationError`` otherwise. Deliveries are at least once: skip an
        event whose ``id`` was seen before."""
        lowered = {name.lower(): value for name, value in headers.items()}
        payload = self._webhook.verify(body, lowered)
        if not isinstance(payload, dict):
            raise WebhookVerificationError("the signed body is not a JSON object")
        return WebhookEvent.model_validate({**payload, "id": lowered["webhook-id"]})
