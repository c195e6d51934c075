"""``GET /regime/today`` answered from its rendered body before the web framework runs.

Trading systems poll ``/regime/today``; its answer changes once a trading day.
Once the route (app.routes_regimes) has rendered the answer for a policy and
trading day, this ASGI middleware, outermost in the stack, sends that body (or a
304 to a matching ``If-None-Match``) without routing, dependency resolution or
the other middlewares: the request costs what the HTTP server costs. Anything
else falls through to the route, which renders, validates and reports errors as
usual: a first request, an entry due for its background refresh, a query
parameter other than a valid ``policy`` / ``mapping`` / ``market`` / built-in
``rule_set``, a client that has seen a
newer publication, a service without a ledger watcher. Requests answered here
are counted in the same metrics, under the route's name.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from app.routes_regimes import (
    RenderedToday,
    publication_in,
    today_clock,
    today_headers,
)
from app.state import ServiceState
from core.errors import DeepRegimeError
from operations import rule_sets
from operations.asks import resolve_ask

PATH = "/regime/today"
_KNOWN = {"policy", "mapping", "market", "rule_set"}


class TodayFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            started = time.perf_counter()
            status = await self._answer(scope, send)
            if status:
                state: ServiceState = scope["app"].state.service
                state.metrics.observe("GET", PATH, status, time.perf_counter() - started)
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send) -> int:
        """Send the cached answer and return its status; 0 when the route must answer."""
        state: ServiceState | None = getattr(scope["app"].state, "service", None)
        if state is None or state.settings.publication_check_s <= 0:
            return 0
        query = _query(scope)
        if query is None:
            return 0
        try:
            ask = resolve_ask(
                state.settings,
                market=query.get("market"),
                rule_set=query.get("rule_set"),
                policy=query.get("policy"),
                mapping=query.get("mapping"),
                find=rule_sets.find_built_in,  # a registered rule set's lookup needs the database
            )
        except DeepRegimeError:
            return 0  # the route names the bad value (422), or finds a registered name
        now = (await today_clock(scope["app"]))()
        key = ask.cache_key(state.calendar.expected_last_session(now))
        rendered: RenderedToday | None = state.cache.current(key)
        if rendered is None:
            return 0
        seen = _header(scope, b"if-none-match")
        if seen is not None and publication_in(seen) > state.ledger_id:
            return 0  # the route asks the ledger first
        headers = [
            (name.lower().encode(), value.encode())
            for name, value in today_headers(rendered, now).items()
        ]
        if seen == rendered.etag:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return 304
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(rendered.body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": rendered.body})
        return 200


def _query(scope: Scope) -> dict[str, str] | None:
    """Parameters of /regime/today given once each at most, nothing else; else None."""
    raw = scope.get("query_string", b"")
    if not raw:
        return {}
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    names = [name for name, _ in pairs]
    if not set(names) <= _KNOWN or len(names) != len(set(names)):
        return None
    return dict(pairs)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
