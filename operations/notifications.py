"""Regime-change notifications: webhook subscriptions, a durable outbox, signed delivery.

How an event travels:

1. ``enqueue_regime_change`` runs in the transaction that appends a publication
   and writes one ``webhook_outbox`` row per matching subscription, so the
   publication and its events commit (or roll back) together.
2. ``deliver_due`` (the app's background task, and the update cycle right after
   it publishes) sends due rows, signed as Standard Webhooks
   (https://www.standardwebhooks.com: headers ``webhook-id``,
   ``webhook-timestamp``, ``webhook-signature``), records every attempt in
   ``webhook_deliveries`` and retries failures with exponential backoff and
   jitter until ``max_attempts``. All state is in the tables, so a restart
   resumes where the last process stopped.

Delivery is at least once: a process dying between a receiver's 2xx and the
database write sends that event again, with the same ``webhook-id`` (receivers
deduplicate on it). Two workers never send one event at the same time: on
PostgreSQL the row is locked (``FOR UPDATE SKIP LOCKED``) while it is sent; on
SQLite a short transaction claims it first by moving its ``next_attempt_at``
forward (compare-and-set), which only one writer can win.

Where events may go: a webhook's host must resolve to public addresses only.
Loopback, private, link-local (cloud metadata services live there), shared,
multicast and reserved addresses are refused unless an allowed network
(``DEEPREGIME_WEBHOOK_ALLOWED_NETWORKS``) contains them: when the subscription is
created (422 naming ``url``), and again at every send, where the connection is made
to the very address just checked (a name that later resolves inside is refused,
and cannot be swapped between the check and the connection). Sends ignore
``HTTP_PROXY``-style settings, so that the address checked is the one connected to.

Pure helpers (``regime_changed``, ``regime_change_data``, ``event_envelope``,
``retry_delay``, ``new_secret``, ``validate_url``, ``refused_address``) are kept
apart from I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
import random
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpcore
import httpx
from sqlalchemy import Connection, Engine, func, insert, or_, select, update
from standardwebhooks import Webhook

from core.errors import DataValidationError, NotFoundError
from core.rulesets import REGISTERED_NAME
from store.ledger import Publication, canonical_json
from store.repository import utcnow
from store.tables import webhook_deliveries, webhook_outbox, webhook_subscriptions

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("deepregime.webhooks")

REGIME_CHANGED = "regime.changed"
TEST_EVENT = "webhook.test"

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

# Defaults; the service passes its settings (DEEPREGIME_WEBHOOK_*).
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_BASE_S = 30.0
DEFAULT_BACKOFF_CAP_S = 6 * 3600.0
DEFAULT_BATCH = 100

# Policies as the ledger names them: the classifier's answer per exposure mapping.
MODEL_MAPPING_NAMES = ("filter", "leveraged")
LEDGER_POLICIES = ("rules", "ensemble", *(f"model:{name}" for name in MODEL_MAPPING_NAMES))

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_URL_LENGTH = 2000
MAX_SECRET_LENGTH = 128  # the column's width
MAX_ERROR_LENGTH = 500
USER_AGENT = "deepregime-webhooks/1"


# --- values handed out -----------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """A webhook subscription as listed: never carries its secret."""

    id: str
    url: str
    description: str | None
    policy: str | None  # None: the service's default policy
    active: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class CreatedSubscription:
    """A new subscription and its signing secret, which is shown this once."""

    subscription: Subscription
    secret: str


@dataclass(frozen=True)
class DeliveryAttempt:
    """One row of a subscription's delivery log."""

    id: int
    outbox_id: int
    event_id: str
    event_type: str
    publication_id: int | None
    attempted_at: dt.datetime
    status_code: int | None
    error: str | None
    duration_ms: float


@dataclass(frozen=True)
class DeliveryResult:
    """What one send did (``send_test_event`` answers it)."""

    event_id: str
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: float


@dataclass(frozen=True)
class DeliveryStats:
    """What one ``deliver_due`` call did."""

    attempted: int = 0
    delivered: int = 0
    retrying: int = 0  # failed this time, scheduled again
    failed: int = 0  # failed for good (max attempts reached)


# --- pure helpers ---------------------------------------------------------------------


def ledger_policy(policy: str, model_mapping: str) -> str:
    """The ledger's name of a served policy: ``model`` becomes ``model:<mapping>``."""
    return f"model:{model_mapping}" if policy == "model" else policy


def _iso(moment: dt.datetime) -> str:
    return _as_utc(moment).isoformat().replace("+00:00", "Z")


def _as_utc(moment: dt.datetime) -> dt.datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _regime_and_exposure(publication: Publication) -> tuple[str | None, float | None]:
    body = publication.document()
    exposure = body.get("exposure")
    return body.get("regime"), None if exposure is None else float(exposure)


def regime_changed(publication: Publication, previous: Publication | None) -> bool:
    """True for the first publication of a policy, or when its regime or exposure moved."""
    if previous is None:
        return True
    regime, exposure = _regime_and_exposure(publication)
    previous_regime, previous_exposure = _regime_and_exposure(previous)
    if regime != previous_regime:
        return True
    if exposure is None or previous_exposure is None:
        return exposure is not previous_exposure
    # Exposures are presets (1.0, 0.5, 0.3, ...); a tolerance only absorbs float noise.
    return abs(exposure - previous_exposure) > 1e-9


def regime_change_data(publication: Publication, previous: Publication | None) -> dict[str, Any]:
    """The ``data`` of a ``regime.changed`` event."""
    regime, exposure = _regime_and_exposure(publication)
    previous_regime, previous_exposure = (
        _regime_and_exposure(previous) if previous else (None, None)
    )
    return {
        "publication_id": publication.id,
        "day": publication.day.isoformat(),
        "policy": publication.policy,
        "regime": regime,
        "exposure": exposure,
        "previous_publication_id": previous.id if previous else None,
        "previous_day": previous.day.isoformat() if previous else None,
        "previous_regime": previous_regime,
        "previous_exposure": previous_exposure,
        "published_at": _iso(publication.published_at),
        "rule_set_version": publication.rule_set_version,
        "model_version": publication.model_version,
    }


def event_envelope(event_type: str, data: dict[str, Any], timestamp: dt.datetime) -> str:
    """The Standard Webhooks payload, serialised once so every retry sends the same bytes."""
    return canonical_json({"type": event_type, "timestamp": _iso(timestamp), "data": data})


def new_event_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def retry_delay(attempts: int, *, base_s: float, cap_s: float, jitter: float) -> float:
    """Seconds before the next try after ``attempts`` failed tries.

    Exponential (``base_s * 2**(attempts-1)``, capped at ``cap_s``) with "equal
    jitter": between half and all of that, so receivers that failed together
    are not retried together, yet no retry comes much earlier than planned.
    ``jitter`` is a number in [0, 1).
    """
    ceiling = min(cap_s, base_s * 2.0 ** max(attempts - 1, 0))
    return ceiling * (0.5 + 0.5 * jitter)


def new_secret() -> str:
    """A signing secret in the format Standard Webhooks libraries expect: whsec_<base64>."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def validate_secret(secret: str) -> str:
    if not secret.startswith(SECRET_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        raise DataValidationError(
            f"must be '{SECRET_PREFIX}' then base64, at most {MAX_SECRET_LENGTH} characters",
            field="secret",
        )
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise DataValidationError("is not valid base64 after 'whsec_'", field="secret") from None
    if not 24 <= len(key) <= 64:
        raise DataValidationError("must encode 24 to 64 random bytes", field="secret")
    return secret


def validate_url(url: str) -> str:
    """An absolute http(s) URL with a host; raises DataValidationError otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DataValidationError("must be an absolute http:// or https:// URL", field="url")
    if len(url) > MAX_URL_LENGTH:
        raise DataValidationError(f"is longer than {MAX_URL_LENGTH} characters", field="url")
    return url.strip()


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed_networks(written: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``DEEPREGIME_WEBHOOK_ALLOWED_NETWORKS`` entries (addresses or CIDR networks)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in written)


def refused_address(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``address`` is no webhook target (None: it may be sent to).

    An IPv6 address carrying an IPv4 one (mapped, 6to4, Teredo) is judged by both.
    """
    if any(address in network for network in allowed):
        return None
    carried: list[IPAddress] = []  # the IPv4 address inside first: the plainer reason
    if isinstance(address, ipaddress.IPv6Address):
        teredo = address.teredo
        carried += [a for a in (address.ipv4_mapped, address.sixtofour, teredo and teredo[1]) if a]
    for candidate in [*carried, address]:
        if candidate.is_loopback:
            return "a loopback address"
        if candidate.is_link_local:
            return "a link-local address (where cloud metadata services answer)"
        if candidate.is_private:
            return "a private address"
        if candidate.is_multicast:
            return "a multicast address"
        if not candidate.is_global:
            return "an address that is not public"
    return None


class TargetRefused(httpcore.ConnectError):
    """A webhook target resolves to an address it may not be sent to."""


def resolve_target(host: str, port: int, allowed: Iterable[IPNetwork] = ()) -> list[str]:
    """Every address ``host`` resolves to, each checked; TargetRefused when any is
    refused (a name with one address inside is no public endpoint), socket.gaierror
    when it does not resolve."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    networks = tuple(allowed)
    for text in addresses:
        reason = refused_address(ipaddress.ip_address(text.split("%", 1)[0]), networks)
        if reason is not None:
            raise TargetRefused(
                f"webhook target {host!r} resolves to {reason}; "
                "DEEPREGIME_WEBHOOK_ALLOWED_NETWORKS opens specific networks"
            )
    return addresses


def check_target(url: str, allowed: Iterable[IPNetwork] = ()) -> str:
    """``url`` when its host may be sent to; DataValidationError naming ``url`` otherwise.

    A name that does not resolve now is accepted: every send checks it again."""
    parts = urlsplit(url)
    try:
        resolve_target(parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme], allowed)
    except TargetRefused as refused:
        raise DataValidationError(str(refused), field="url") from None
    except (OSError, UnicodeError):
        pass  # not resolvable now (or not a name at all): refused at sending if still so
    return url


DEFAULT_PORTS = {"http": 80, "https": 443}


class _CheckedBackend(httpcore.SyncBackend):
    """Connects to an address of the host only after checking them all, to the one checked."""

    def __init__(self, allowed: tuple[IPNetwork, ...]) -> None:
        self.allowed = allowed

    def connect_tcp(  # type: ignore[override]
        self, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve_target(host, port, self.allowed)
        except socket.gaierror as error:
            raise httpcore.ConnectError(f"{host!r} does not resolve ({error})") from None
        # TLS still verifies the certificate against the host name (httpcore passes it).
        return super().connect_tcp(addresses[0], port, *args, **kwargs)


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool that connects through _CheckedBackend."""

    def __init__(self, allowed: tuple[IPNetwork, ...]) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_CheckedBackend(allowed),
        )


def validate_policy(policy: str | None) -> str | None:
    """A ledger policy name: the default market's policies, or ``rule_set:NAME`` (a rule
    set published by name, each market's default among them)."""
    if policy is None or policy in LEDGER_POLICIES:
        return policy
    prefix, _, name = policy.partition(":")
    if prefix == "rule_set" and REGISTERED_NAME.match(name):
        return policy
    raise DataValidationError(
        f"'{policy}' is not one of {', '.join(LEDGER_POLICIES)} (or 'model'), nor "
        "'rule_set:NAME'",
        field="policy",
    )


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 3] + "..."


# --- the outbox ----------------------------------------------------------------------


def enqueue_regime_change(
    connection: Connection,
    *,
    publication: Publication,
    previous: Publication | None,
    default_policy: str,
    now: dt.datetime | None = None,
) -> int:
    """Queue a ``regime.changed`` event for each active subscription to the publication's policy.

    Nothing is queued when regime and exposure equal ``previous``'s. Runs in the
    caller's transaction. ``default_policy`` is the ledger name of the service's
    default policy (see ``ledger_policy``): subscriptions without a policy get its events.
    Returns the number of events queued.
    """
    if not regime_changed(publication, previous):
        return 0
    policy = webhook_subscriptions.c.policy
    wanted = policy == publication.policy
    if default_policy == publication.policy:
        wanted = or_(wanted, policy.is_(None))
    subscription_ids = (
        connection.execute(
            select(webhook_subscriptions.c.id)
            .where(webhook_subscriptions.c.active == 1, wanted)
            .order_by(webhook_subscriptions.c.created_at, webhook_subscriptions.c.id)
        )
        .scalars()
        .all()
    )
    if not subscription_ids:
        return 0
    now = _as_utc(now or utcnow())
    payload = event_envelope(
        REGIME_CHANGED, regime_change_data(publication, previous), publication.published_at
    )
    connection.execute(
        insert(webhook_outbox),
        [
            _outbox_row(sid, REGIME_CHANGED, payload, publication.id, now)
            for sid in subscription_ids
        ],
    )
    return len(subscription_ids)


def _outbox_row(
    subscription_id: str,
    event_type: str,
    payload: str,
    publication_id: int | None,
    now: dt.datetime,
    *,
    next_attempt_at: dt.datetime | None = None,
) -> dict[str, Any]:
    return {
        "event_id": new_event_id(),
        "subscription_id": subscription_id,
        "publication_id": publication_id,
        "event_type": event_type,
        "payload": payload,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": next_attempt_at or now,
        "created_at": now,
    }


# --- delivery -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    """An outbox row being sent, with where and how to sign it."""

    id: int
    event_id: str
    payload: str
    attempts: int
    url: str
    secret: str


def _claim_query(now: dt.datetime, outbox_id: int | None = None):  # type: ignore[no-untyped-def]
    outbox = webhook_outbox
    statement = (
        select(
            outbox.c.id,
            outbox.c.event_id,
            outbox.c.payload,
            outbox.c.attempts,
            outbox.c.next_attempt_at,
            webhook_subscriptions.c.url,
            webhook_subscriptions.c.secret,
        )
        .join(webhook_subscriptions, webhook_subscriptions.c.id == outbox.c.subscription_id)
        .where(outbox.c.status == PENDING, webhook_subscriptions.c.active == 1)
    )
    if outbox_id is not None:
        return statement.where(outbox.c.id == outbox_id)
    return (
        statement.where(outbox.c.next_attempt_at <= now)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(1)
    )


def sign_headers(
    *, event_id: str, payload: str, secret: str, sent_at: dt.datetime
) -> dict[str, str]:
    """The Standard Webhooks headers for one send of ``payload``."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, sent_at, payload),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def _post(client: httpx.Client, row: _Claimed, timeout_s: float) -> DeliveryResult:
    """One signed POST. Never raises: a failure comes back as ``error``."""
    started = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        # The signature's timestamp is the wall clock at sending (receivers check it
        # within minutes), whatever ``now`` the scheduling runs on.
        headers = sign_headers(
            event_id=row.event_id,
            payload=row.payload,
            secret=row.secret,
            sent_at=dt.datetime.now(dt.UTC),
        )
        # Streamed and left unread: a receiver's answer body is of no use here.
        with client.stream(
            "POST", row.url, content=row.payload.encode(), headers=headers, timeout=timeout_s
        ) as response:
            status_code = response.status_code
    except Exception as failure:  # noqa: BLE001 - any failure to send is recorded, not raised
        error = _short(f"{failure.__class__.__name__}: {failure}".rstrip(": "))
    duration_ms = (time.perf_counter() - started) * 1000.0
    delivered = status_code is not None and 200 <= status_code < 300
    return DeliveryResult(row.event_id, delivered, status_code, error, duration_ms)


@dataclass(frozen=True)
class _Retry:
    max_attempts: int
    base_s: float
    cap_s: float
    rng: random.Random


def _record(
    connection: Connection, row: _Claimed, result: DeliveryResult, now: dt.datetime, retry: _Retry
) -> str:
    """Log the attempt and move the row on; returns its new status."""
    connection.execute(
        insert(webhook_deliveries).values(
            outbox_id=row.id,
            attempted_at=now,
            status_code=result.status_code,
            error=result.error,
            duration_ms=result.duration_ms,
        )
    )
    attempts = row.attempts + 1
    values: dict[str, Any] = {"attempts": attempts}
    if result.delivered:
        values |= {"status": DELIVERED, "delivered_at": now, "last_error": None}
    else:
        values["last_error"] = result.error or f"HTTP {result.status_code}"
        if attempts >= retry.max_attempts:
            values["status"] = FAILED
        else:
            delay = retry_delay(
                attempts, base_s=retry.base_s, cap_s=retry.cap_s, jitter=retry.rng.random()
            )
            values["next_attempt_at"] = now + dt.timedelta(seconds=delay)
    connection.execute(
        update(webhook_outbox)
        .where(webhook_outbox.c.id == row.id, webhook_outbox.c.status == PENDING)
        .values(**values)
    )
    return values.get("status", PENDING)


def _claimed(found: Any) -> _Claimed:
    return _Claimed(
        id=found.id,
        event_id=found.event_id,
        payload=found.payload,
        attempts=found.attempts,
        url=found.url,
        secret=found.secret,
    )


def _claim_sqlite(
    engine: Engine, now: dt.datetime, outbox_id: int | None, timeout_s: float
) -> _Claimed | None:
    """Claim one due row on SQLite, or None when none is left.

    SQLite has one writer at a time: the claim moves ``next_attempt_at`` past the
    time a send can take, only if nobody moved it since it was read, so of two
    workers reading the same row only one claims it; the other looks again.
    """
    lease = dt.timedelta(seconds=max(60.0, 4 * timeout_s))
    while True:
        with engine.begin() as connection:
            found = connection.execute(_claim_query(now, outbox_id)).first()
            if found is None:
                return None
            claimed = connection.execute(
                update(webhook_outbox)
                .where(
                    webhook_outbox.c.id == found.id,
                    webhook_outbox.c.status == PENDING,
                    webhook_outbox.c.next_attempt_at == found.next_attempt_at,
                )
                .values(next_attempt_at=max(now, _as_utc(found.next_attempt_at)) + lease)
            )
            if claimed.rowcount == 1:
                return _claimed(found)


def _deliver_one(
    engine: Engine,
    client: httpx.Client,
    *,
    now: dt.datetime,
    timeout_s: float,
    retry: _Retry,
    outbox_id: int | None = None,
) -> tuple[str, DeliveryResult] | None:
    """Claim, send and record one row: its new status and the send, or None when none is due."""
    if engine.dialect.name == "postgresql":
        # The row stays locked while it is sent; other workers skip it.
        with engine.begin() as connection:
            found = connection.execute(
                _claim_query(now, outbox_id).with_for_update(skip_locked=True, of=webhook_outbox)
            ).first()
            if found is None:
                return None
            row = _claimed(found)
            result = _post(client, row, timeout_s)
            return _record(connection, row, result, now, retry), result
    claimed = _claim_sqlite(engine, now, outbox_id, timeout_s)
    if claimed is None:
        return None
    result = _post(client, claimed, timeout_s)  # outside any transaction: others may write
    with engine.begin() as connection:
        return _record(connection, claimed, result, now, retry), result


def _client(timeout_s: float, allowed: Iterable[str]) -> httpx.Client:
    """Sends only to checked addresses; redirects are not followed (a webhook endpoint
    answers where it was registered, and a redirect could point inside)."""
    return httpx.Client(
        transport=_CheckedTransport(allowed_networks(allowed)),
        timeout=timeout_s,
        follow_redirects=False,
        trust_env=False,
    )


def deliver_due(
    engine: Engine,
    *,
    now: dt.datetime | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_base_s: float = DEFAULT_BACKOFF_BASE_S,
    backoff_cap_s: float = DEFAULT_BACKOFF_CAP_S,
    allowed: Iterable[str] = (),
    limit: int = DEFAULT_BATCH,
    stop: threading.Event | None = None,
    rng: random.Random | None = None,
) -> DeliveryStats:
    """Send up to ``limit`` outbox rows due at ``now`` (default: the current time).

    Each row is sent once per call at most; a failed send is logged and scheduled
    again (``retry_delay``), or marked failed after ``max_attempts`` tries.
    Network failures (a refused target among them) never raise; database errors
    do. ``allowed``: networks opened to webhooks besides public addresses.
    ``stop`` (when set) ends the batch after the row in flight.
    """
    now = _as_utc(now or utcnow())
    retry = _Retry(max_attempts, backoff_base_s, backoff_cap_s, rng or random.Random())
    counts = {"attempted": 0, DELIVERED: 0, PENDING: 0, FAILED: 0}
    with _client(timeout_s, allowed) as client:
        for _ in range(limit):
            if stop is not None and stop.is_set():
                break
            outcome = _deliver_one(engine, client, now=now, timeout_s=timeout_s, retry=retry)
            if outcome is None:
                break
            status, _ = outcome
            counts["attempted"] += 1
            counts[status] += 1
    stats = DeliveryStats(
        attempted=counts["attempted"],
        delivered=counts[DELIVERED],
        retrying=counts[PENDING],
        failed=counts[FAILED],
    )
    if stats.attempted:
        log.info("webhooks: %s", stats)
    return stats


# --- subscriptions --------------------------------------------------------------------


@contextmanager
def _transaction(bind: Engine | Connection) -> Iterator[Connection]:
    """A transaction of its own on an Engine; the caller's on a Connection."""
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            yield connection
    else:
        yield bind


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        description=row.description,
        policy=row.policy,
        active=bool(row.active),
        created_at=_as_utc(row.created_at),
    )


_LISTED = (
    webhook_subscriptions.c.id,
    webhook_subscriptions.c.url,
    webhook_subscriptions.c.description,
    webhook_subscriptions.c.policy,
    webhook_subscriptions.c.active,
    webhook_subscriptions.c.created_at,
)  # every column but the secret


def create_subscription(
    bind: Engine | Connection,
    *,
    url: str,
    policy: str | None = None,
    description: str | None = None,
    secret: str | None = None,
    now: dt.datetime | None = None,
    allowed: Iterable[str] = (),
) -> CreatedSubscription:
    """Subscribe ``url`` to the regime changes of ``policy`` (a ledger name; None: the default).

    The signing secret is generated unless given, and returned here only. A URL whose
    host resolves to a refused address (``check_target``) is a DataValidationError.
    """
    subscription = Subscription(
        id=str(uuid.uuid4()),
        url=check_target(validate_url(url), allowed_networks(allowed)),
        description=description,
        policy=validate_policy(policy),
        active=True,
        created_at=_as_utc(now or utcnow()),
    )
    signing_secret = validate_secret(secret) if secret is not None else new_secret()
    with _transaction(bind) as connection:
        connection.execute(
            insert(webhook_subscriptions).values(
                **asdict(subscription) | {"active": 1, "secret": signing_secret}
            )
        )
    return CreatedSubscription(subscription, signing_secret)


def list_subscriptions(
    bind: Engine | Connection, *, include_inactive: bool = False
) -> list[Subscription]:
    """Subscriptions, oldest first, without their secrets."""
    statement = select(*_LISTED).order_by(
        webhook_subscriptions.c.created_at, webhook_subscriptions.c.id
    )
    if not include_inactive:
        statement = statement.where(webhook_subscriptions.c.active == 1)
    with _transaction(bind) as connection:
        return [_subscription(row) for row in connection.execute(statement)]


def get_subscription(bind: Engine | Connection, subscription_id: str) -> Subscription:
    """One active subscription (without its secret); NotFoundError otherwise."""
    with _transaction(bind) as connection:
        row = connection.execute(
            select(*_LISTED).where(
                webhook_subscriptions.c.id == subscription_id, webhook_subscriptions.c.active == 1
            )
        ).first()
    if row is None:
        raise NotFoundError(f"no webhook subscription {subscription_id!r}")
    return _subscription(row)


def delete_subscription(bind: Engine | Connection, subscription_id: str) -> int:
    """Deactivate a subscription and drop its pending events; returns how many were dropped.

    The row stays (deactivated) because the outbox and the delivery log refer to it.
    """
    with _transaction(bind) as connection:
        deactivated = connection.execute(
            update(webhook_subscriptions)
            .where(
                webhook_subscriptions.c.id == subscription_id, webhook_subscriptions.c.active == 1
            )
            .values(active=0)
        )
        if deactivated.rowcount != 1:
            raise NotFoundError(f"no webhook subscription {subscription_id!r}")
        dropped = connection.execute(
            update(webhook_outbox)
            .where(
                webhook_outbox.c.subscription_id == subscription_id,
                webhook_outbox.c.status == PENDING,
            )
            .values(status=FAILED, last_error="subscription deleted")
        )
    return dropped.rowcount


def list_deliveries(
    bind: Engine | Connection, subscription_id: str, *, limit: int = 50
) -> list[DeliveryAttempt]:
    """The subscription's delivery attempts, newest first."""
    with _transaction(bind) as connection:
        get_subscription(connection, subscription_id)
        rows = connection.execute(
            select(
                webhook_deliveries,
                webhook_outbox.c.event_id,
                webhook_outbox.c.event_type,
                webhook_outbox.c.publication_id,
            )
            .join(webhook_outbox, webhook_outbox.c.id == webhook_deliveries.c.outbox_id)
            .where(webhook_outbox.c.subscription_id == subscription_id)
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit)
        )
        return [
            DeliveryAttempt(
                id=row.id,
                outbox_id=row.outbox_id,
                event_id=row.event_id,
                event_type=row.event_type,
                publication_id=row.publication_id,
                attempted_at=_as_utc(row.attempted_at),
                status_code=row.status_code,
                error=row.error,
                duration_ms=row.duration_ms,
            )
            for row in rows
        ]


def send_test_event(
    engine: Engine,
    subscription_id: str,
    *,
    now: dt.datetime | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    allowed: Iterable[str] = (),
) -> DeliveryResult:
    """Send one ``webhook.test`` event now and answer what happened (one try, logged)."""
    now = _as_utc(now or utcnow())
    get_subscription(engine, subscription_id)
    data = {"subscription_id": subscription_id, "message": "test event from deepregime"}
    # Queued out of the background worker's reach (due in an hour), then sent right here.
    row = _outbox_row(
        subscription_id,
        TEST_EVENT,
        event_envelope(TEST_EVENT, data, now),
        None,
        now,
        next_attempt_at=now + dt.timedelta(hours=1),
    )
    with engine.begin() as connection:
        outbox_id = connection.execute(
            insert(webhook_outbox).values(**row).returning(webhook_outbox.c.id)
        ).scalar_one()
    retry = _Retry(1, DEFAULT_BACKOFF_BASE_S, DEFAULT_BACKOFF_CAP_S, random.Random())
    with _client(timeout_s, allowed) as client:
        outcome = _deliver_one(
            engine, client, now=now, timeout_s=timeout_s, retry=retry, outbox_id=outbox_id
        )
    if outcome is None:  # deleted meanwhile
        raise NotFoundError(f"no webhook subscription {subscription_id!r}")
    return outcome[1]


def pending_count(bind: Engine | Connection, subscription_id: str | None = None) -> int:
    """Events waiting to be sent (all, or one subscription's)."""
    statement = select(func.count()).where(webhook_outbox.c.status == PENDING)
    if subscription_id is not None:
        statement = statement.where(webhook_outbox.c.subscription_id == subscription_id)
    with _transaction(bind) as connection:
        return connection.execute(statement).scalar_one()


def deliver_configured(
    engine: Engine, settings: Settings, stop: threading.Event | None = None
) -> DeliveryStats:
    """One delivery pass with the service's webhook settings (timeouts, attempts, backoff)."""
    return deliver_due(
        engine,
        timeout_s=settings.webhook_timeout_s,
        max_attempts=settings.webhook_max_attempts,
        backoff_base_s=settings.webhook_backoff_base_s,
        backoff_cap_s=settings.webhook_backoff_cap_s,
        allowed=settings.webhook_allowed_networks,
        stop=stop,
    )
