"""Webhook subscriptions (admin, X-API-Key) and the background task that delivers events.

Events are Standard Webhooks (operations.notifications): a receiver verifies
them with the secret answered once by ``POST /admin/webhooks``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from app.deps import AdminDep, ClockDep, EngineDep, SettingsDep
from app.schemas import (
    ADMIN_ERRORS,
    Problem,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookSubscription,
    WebhookTestResult,
)
from app.settings import Settings
from operations import notifications

log = logging.getLogger("deepregime.webhooks")

router = APIRouter(prefix="/admin/webhooks", tags=["webhooks"], dependencies=[AdminDep])

ERRORS: dict[int | str, dict[str, Any]] = ADMIN_ERRORS
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such (active) subscription."}
}
SubscriptionId = Annotated[str, Path(max_length=36, description="The subscription's id.")]


def _listed(subscription: notifications.Subscription) -> WebhookSubscription:
    return WebhookSubscription(**asdict(subscription))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses={
        **ERRORS,
        422: {
            "model": Problem,
            "description": "Bad URL (or one whose host resolves to a loopback, private, "
            "link-local or otherwise non-public address), policy or secret.",
        },
    },
)
def create(
    body: WebhookCreate,
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
    response: Response,
) -> WebhookCreated:
    """Subscribe a URL to regime changes of one policy; answers the signing secret, once."""
    policy = (
        notifications.ledger_policy(body.policy, settings.model_mapping) if body.policy else None
    )
    created = notifications.create_subscription(
        engine,
        url=body.url,
        policy=policy,
        description=body.description,
        secret=body.secret,
        now=clock(),
        allowed=settings.webhook_allowed_networks,
    )
    response.headers["Location"] = f"{router.prefix}/{created.subscription.id}"
    return WebhookCreated(**asdict(created.subscription), secret=created.secret)


@router.get("", response_model=list[WebhookSubscription], responses=ERRORS)
def list_all(engine: EngineDep) -> list[WebhookSubscription]:
    """Active subscriptions, oldest first (without secrets)."""
    return [_listed(item) for item in notifications.list_subscriptions(engine)]


@router.get(
    "/{subscription_id}", response_model=WebhookSubscription, responses={**ERRORS, **NOT_FOUND}
)
def get_one(subscription_id: SubscriptionId, engine: EngineDep) -> WebhookSubscription:
    return _listed(notifications.get_subscription(engine, subscription_id))


@router.delete(
    "/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ERRORS, **NOT_FOUND},
)
def delete(subscription_id: SubscriptionId, engine: EngineDep) -> Response:
    """Stop sending to this subscription; its events not yet delivered are dropped."""
    notifications.delete_subscription(engine, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{subscription_id}/deliveries",
    response_model=list[WebhookDelivery],
    responses={**ERRORS, **NOT_FOUND},
)
def deliveries(
    subscription_id: SubscriptionId,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[WebhookDelivery]:
    """Delivery attempts, newest first: status code or error, and duration of each."""
    return [
        WebhookDelivery(**asdict(item))
        for item in notifications.list_deliveries(engine, subscription_id, limit=limit)
    ]


@router.post(
    "/{subscription_id}/test",
    response_model=WebhookTestResult,
    responses={**ERRORS, **NOT_FOUND},
)
def send_test(
    subscription_id: SubscriptionId, engine: EngineDep, settings: SettingsDep
) -> WebhookTestResult:
    """Send a ``webhook.test`` event now (one try, logged) and answer whether it was
    delivered. Only that: what the target answered, or why it could not be reached,
    would let this route probe what the server can reach."""
    result = notifications.send_test_event(
        engine,
        subscription_id,
        timeout_s=settings.webhook_timeout_s,
        allowed=settings.webhook_allowed_networks,
    )
    detail = (
        "delivered: the target answered 2xx"
        if result.delivered
        else "not delivered (the target was refused, unreachable or did not answer 2xx)"
    )
    return WebhookTestResult(event_id=result.event_id, delivered=result.delivered, detail=detail)


# --- background delivery ---------------------------------------------------------------


async def delivery_loop(engine: Engine, settings: Settings, stop: threading.Event) -> None:
    """Deliver due events every ``webhook_poll_s`` seconds until cancelled or ``stop`` is set.

    Each pass runs in the thread pool (the sends block). A failing pass (database
    down) is logged and the next one tries again. The first pass waits one
    interval: the update cycle sends right after publishing anyway.
    """
    while not stop.is_set():
        await asyncio.sleep(settings.webhook_poll_s)
        try:
            await run_in_threadpool(notifications.deliver_configured, engine, settings, stop)
        except Exception as error:  # noqa: BLE001 - keep delivering after a bad pass
            log.warning(
                "webhook delivery pass failed (%s: %s); next try in %g s",
                error.__class__.__name__,
                str(error).splitlines()[0] if str(error) else "",
                settings.webhook_poll_s,
            )


def start_delivery(
    engine: Engine, settings: Settings, stop: threading.Event
) -> asyncio.Task | None:
    """The background delivery task, or None when ``webhook_poll_s`` is 0."""
    if settings.webhook_poll_s <= 0:
        return None
    return asyncio.create_task(delivery_loop(engine, settings, stop), name="webhook-delivery")


async def stop_delivery(task: asyncio.Task | None) -> None:
    """Cancel the task and wait for it (a pass in flight ends after its current send)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
