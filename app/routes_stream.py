"""``GET /regime/stream``: the publications of one policy as server-sent events.

On connect the latest publication of the policy is sent (or, with a
``Last-Event-ID`` header, every publication after that id), then each new one
as it is appended to the ledger. Each event is::

    event: regime
    id: <publication id>
    data: <the published body, plus publication_id and published_at>

The stream polls the ledger's newest id (one indexed query) every
``stream_poll_s`` seconds from the thread pool, so a publication made by any
process or replica on the same database shows within that delay. A comment line
goes out after ``stream_keepalive_s`` seconds without an event, so proxies keep
the connection open and a client that left is noticed.

The stream ends when the client disconnects or the service shuts down: the
lifespan sets ``app.state.shutting_down``, and ``chain_exit_signals`` sets it as
soon as the server is asked to stop, because uvicorn waits for open responses
to finish before it runs the lifespan's shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.deps import EngineDep, SettingsDep
from app.routes_regimes import MarketQuery, RuleSetQuery, resolve_with_database
from app.settings import Settings
from operations.notifications import ledger_policy, validate_policy
from store.ledger import (
    Publication,
    latest_publication,
    latest_publication_id,
    list_publications,
)

log = logging.getLogger("deepregime.app")

# Left out of the OpenAPI document: an endless response cannot be described (nor
# fuzzed) there. The module docstring above is its documentation.
router = APIRouter(tags=["regimes"], include_in_schema=False)

EVENT = "regime"
PAGE = 100  # publications read per query when replaying
RETRY_MS = 2000  # how soon EventSource clients reconnect after a drop
KEEPALIVE = ": keep-alive\n\n"


# --- the event format (pure) -------------------------------------------------------------


def event_data(publication: Publication) -> dict[str, Any]:
    """The published body as it was, plus where it sits in the ledger."""
    published_at = publication.published_at.isoformat().replace("+00:00", "Z")
    return publication.document() | {
        "publication_id": publication.id,
        "published_at": published_at,
    }


def format_event(publication: Publication) -> str:
    # Compact JSON has no newline, so the data fits the one ``data:`` line SSE needs.
    data = json.dumps(event_data(publication), separators=(",", ":"), sort_keys=True)
    return f"event: {EVENT}\nid: {publication.id}\ndata: {data}\n\n"


# ASCII digits only (str.isdigit also takes "²", which int() refuses), and no more than
# a BIGINT holds: a longer number is no id this ledger issued.
EVENT_ID = re.compile(r"[0-9]{1,18}")


def parse_last_event_id(value: str | None) -> int | None:
    """The publication id a reconnecting client saw last; None when absent or not an id
    (the stream then starts afresh, as for an id this ledger never issued)."""
    if value is None or not EVENT_ID.fullmatch(value.strip()):
        return None
    return int(value.strip())


def stream_policy(policy: str | None, settings: Settings) -> str:
    """The ledger's policy name for ``?policy=`` (default: the service's default policy)."""
    resolved = ledger_policy(policy or str(settings.default_policy), settings.model_mapping)
    validate_policy(resolved)  # DataValidationError (422) names the parameter
    return resolved


# --- reading the ledger (blocking; run in the thread pool) -----------------------------


def _first_events(
    engine: Engine, policy: str, after_id: int | None
) -> tuple[list[Publication], int]:
    """What a new connection gets first, and the id after which to look for more."""
    with engine.connect() as connection:
        if after_id is not None and after_id <= latest_publication_id(connection):
            replay = list_publications(connection, after_id=after_id, policy=policy, limit=PAGE)
            return replay, replay[-1].id if replay else after_id
        # No id, or one this ledger never issued (a restored database): start afresh.
        latest = latest_publication(connection, policy=policy)
    return ([latest], latest.id) if latest else ([], 0)


def _poll(
    engine: Engine, policy: str, cursor: int, seen: int
) -> tuple[int, list[Publication], bool]:
    """New publications of ``policy`` after ``cursor``; reads them only when the ledger grew.

    Returns the ledger's newest id, the publications, and whether more are waiting.
    """
    with engine.connect() as connection:
        newest = latest_publication_id(connection)
        if newest <= seen:
            return newest, [], False
        found = list_publications(connection, after_id=cursor, policy=policy, limit=PAGE)
    more = len(found) == PAGE
    # While a page is full, look again at once instead of trusting ``newest``.
    return (seen if more else newest), found, more


# --- the stream ----------------------------------------------------------------------------


async def regime_events(
    request: Request,
    engine: Engine,
    *,
    policy: str,
    first: list[Publication],
    cursor: int,
    poll_s: float,
    keepalive_s: float,
    stop: threading.Event,
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    for publication in first:
        yield format_event(publication)
    seen = 0
    last_write = time.monotonic()
    while not stop.is_set() and not await request.is_disconnected():
        try:
            seen, found, more = await run_in_threadpool(_poll, engine, policy, cursor, seen)
        except (DBAPIError, PoolTimeoutError) as error:
            # A database blip must not end every open stream: try again next poll.
            log.warning("regime stream: ledger unreachable (%s)", error.__class__.__name__)
            found, more = [], False
        for publication in found:
            yield format_event(publication)
            cursor = publication.id
            last_write = time.monotonic()
        if more:
            continue
        if time.monotonic() - last_write >= keepalive_s:
            yield KEEPALIVE
            last_write = time.monotonic()
        await asyncio.sleep(poll_s)


def shutting_down(app: FastAPI) -> threading.Event:
    """The app's shutdown flag (created on first use; the lifespan sets it)."""
    event = getattr(app.state, "shutting_down", None)
    if event is None:
        event = app.state.shutting_down = threading.Event()
    return event


@router.get("/regime/stream", response_class=StreamingResponse)
async def regime_stream(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    policy: Annotated[
        str | None,
        Query(
            max_length=32,
            description="rules | model | ensemble | model:filter | model:leveraged "
            "(default: DEEPREGIME_DEFAULT_POLICY; 'model' uses DEEPREGIME_MODEL_MAPPING).",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None, Header(description="Resume after this publication id.")
    ] = None,
    market: MarketQuery = None,
    rule_set: RuleSetQuery = None,
) -> StreamingResponse:
    """Server-sent events: the latest publication of the policy (or of the market's or
    rule set's answer, named as on /regime/today), then each new one."""
    if market is None and rule_set is None:
        ledger_name = stream_policy(policy, settings)
    else:
        ask = await run_in_threadpool(
            resolve_with_database, request.app.state.service, market, rule_set, policy, None
        )
        ledger_name = ask.ledger_key
    # Read before answering, so a database that is down is a 503, not a broken stream.
    first, cursor = await run_in_threadpool(
        _first_events, engine, ledger_name, parse_last_event_id(last_event_id)
    )
    events = regime_events(
        request,
        engine,
        policy=ledger_name,
        first=first,
        cursor=cursor,
        poll_s=settings.stream_poll_s,
        keepalive_s=settings.stream_keepalive_s,
        stop=shutting_down(request.app),
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def chain_exit_signals(event: threading.Event) -> Callable[[], None]:
    """Set ``event`` on SIGINT/SIGTERM before the server's own handler runs; returns an undo.

    Only where the server installed Python handlers on the main thread (uvicorn
    does); elsewhere (tests, other servers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    Handler = Callable[[int, Any], Any]
    installed: dict[int, tuple[Handler, Handler]] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(number: int, frame: Any, previous: Handler = previous) -> None:
            event.set()
            previous(number, frame)

        signal.signal(signum, handler)
        installed[signum] = (handler, previous)

    def undo() -> None:
        for signum, (handler, previous) in installed.items():
            if signal.getsignal(signum) is handler:
                signal.signal(signum, previous)

    return undo
