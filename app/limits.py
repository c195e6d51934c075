"""HTTP limits: what one client may cost the server.

- ``BodySizeLimit`` (ASGI middleware): a query string carrying a NUL byte is
  answered 422 (no database column stores one); a declared Content-Length over the bound is
  answered 413 at once; a body sent without one (chunked) is counted as it arrives
  and cut off at the bound. A body not complete ``body_timeout_s`` after the
  handler first asks for it is answered 408 and the connection closed.
- ``LimitedHttpToolsProtocol`` (uvicorn's HTTP protocol with more bounds): a
  connection that sends nothing within ``DEEPREGIME_HTTP_FIRST_BYTE_TIMEOUT_S`` is
  closed; a request head (request line and headers) over
  ``DEEPREGIME_HTTP_MAX_HEAD_BYTES`` is answered 431, and one not complete within
  ``DEEPREGIME_HTTP_HEAD_TIMEOUT_S`` of its first byte 408; both close the connection.
  Open connections are capped per client address
  (``DEEPREGIME_HTTP_MAX_CONNECTIONS_PER_CLIENT``) and in all
  (``DEEPREGIME_HTTP_MAX_CONNECTIONS``) by ``ConnectionTable``: over a cap the oldest
  idle connection is closed to make room, so idle connections never turn a request
  away; only when every connection over the cap has a request in flight is the new
  one answered 429 (its address's cap) or 503 (the server's).
- ``server_options(settings)``: the protocol and uvicorn's own keep-alive timeout,
  for ``deepregime serve`` and the benchmarks alike.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
import weakref
from collections import OrderedDict
from http import HTTPStatus
from typing import Any, NamedTuple

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.problems import PROBLEM_JSON
from app.settings import Settings, get_settings

log = logging.getLogger("deepregime.app")


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes HTTPExceptions from body reading on
    untouched, so the problem handlers answer it as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


def _problem_413(limit: int) -> tuple[dict, bytes]:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": HTTPStatus(413).phrase,
            "status": 413,
            "detail": f"request body over {limit} bytes",
        }
    ).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, body


class BodyTooSlow(HTTPException):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(408, f"request body not received within {timeout_s:g} s")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, body_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            # No text column stores a NUL (PostgreSQL refuses it): no parameter may carry one.
            await _send_problem(send, 422, "query parameters must not contain NUL bytes")
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False
        complete = False
        deadline: float | None = None

        async def counted_receive() -> Message:
            nonlocal received, complete, deadline
            if complete:  # the body is in: what remains is waiting for a disconnect
                return await receive()
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.body_timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow(self.body_timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                complete = not message.get("more_body", False)
            return message

        async def noted_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, noted_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)
        except BodyTooSlow as error:
            if not started:
                await _send_problem(send, 408, str(error.detail), close=True)

    async def _refuse(self, send: Send) -> None:
        start, body = _problem_413(self.max_bytes)
        await send(start)
        await send({"type": "http.response.body", "body": body})


async def _send_problem(
    send: Send,
    status: int,
    detail: str,
    *,
    close: bool = False,
    retry_after_s: int | None = None,
) -> None:
    body = _problem_body(status, detail)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after_s is not None:
        headers.append((b"retry-after", str(retry_after_s).encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _problem_body(status: int, detail: str) -> bytes:
    document = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    return json.dumps(document).encode()


# --- open connections ----------------------------------------------------------------------


class AddressSet:
    """Addresses and networks written as uvicorn's ``--forwarded-allow-ips`` (comma
    separated; ``*``: every address)."""

    def __init__(self, written: str | list[str]) -> None:
        items = written.split(",") if isinstance(written, str) else written
        items = [item.strip() for item in items if item.strip()]
        self.everything = "*" in items
        self.networks = []
        for item in items:
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                continue  # a name or a socket path: never a peer address here

    def __contains__(self, address: str) -> bool:
        if self.everything:
            return True
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self.networks)


class Refusal(NamedTuple):
    """Why every request of a connection is answered with a problem instead of the app."""

    status: int
    detail: str


class ConnectionTable:
    """The open connections of one server (one worker process), and its two caps.

    A connection is *waiting* while none of its requests is in flight: before its first
    request head is complete (``fresh``) or kept alive between requests (``kept``), each
    in the order it started waiting. Over a cap, the oldest waiting connection is closed
    to make room (fresh ones first: a kept-alive one has sent a whole request before), so
    held idle connections never turn a request away. Only when every connection over the
    cap is busy is the new one refused. Addresses in ``uncapped`` (the proxies trusted to
    forward client addresses, which carry many clients) have no per-address cap.
    """

    LOG_EVERY_S = 10.0

    def __init__(self, max_connections: int, max_per_client: int, uncapped: AddressSet) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.uncapped = uncapped
        self.address_of: dict[LimitedHttpToolsProtocol, str] = {}
        self.by_address: dict[str, set[LimitedHttpToolsProtocol]] = {}
        self.fresh: OrderedDict[LimitedHttpToolsProtocol, None] = OrderedDict()
        self.kept: OrderedDict[LimitedHttpToolsProtocol, None] = OrderedDict()
        self._closed = self._refused = 0
        self._logged_at = time.monotonic()

    def __len__(self) -> int:
        return len(self.address_of)

    def admit(self, connection: LimitedHttpToolsProtocol, address: str) -> Refusal | None:
        """Count a new connection; make room for it, or say why it is refused."""
        self.address_of[connection] = address
        self.by_address.setdefault(address, set()).add(connection)
        self.fresh[connection] = None
        refusal = None
        mine = self.by_address[address]
        if address not in self.uncapped and len(mine) > self.max_per_client:
            if not self._close_oldest_waiting(lambda other: other in mine, besides=connection):
                refusal = Refusal(
                    429,
                    f"more than {self.max_per_client} connections open from {address}, "
                    "each with a request in flight (DEEPREGIME_HTTP_MAX_CONNECTIONS_PER_CLIENT)",
                )
        if refusal is None and len(self) > self.max_connections:
            if not self._close_oldest_waiting(lambda _: True, besides=connection):
                refusal = Refusal(
                    503,
                    f"more than {self.max_connections} connections open, each with a "
                    "request in flight (DEEPREGIME_HTTP_MAX_CONNECTIONS)",
                )
        if refusal is not None:
            self._refused += 1
            self._report()
        return refusal

    def busy(self, connection: LimitedHttpToolsProtocol) -> None:
        self.fresh.pop(connection, None)
        self.kept.pop(connection, None)

    def waiting(self, connection: LimitedHttpToolsProtocol) -> None:
        if connection in self.address_of:
            self.kept[connection] = None

    def remove(self, connection: LimitedHttpToolsProtocol) -> None:
        address = self.address_of.pop(connection, None)
        if address is None:
            return
        self.busy(connection)
        peers = self.by_address[address]
        peers.discard(connection)
        if not peers:
            del self.by_address[address]

    def _close_oldest_waiting(self, eligible: Any, *, besides: LimitedHttpToolsProtocol) -> bool:
        for queue in (self.fresh, self.kept):
            for connection in queue:
                if connection is not besides and eligible(connection):
                    self.remove(connection)
                    connection.close_idle()
                    self._closed += 1
                    self._report()
                    return True
        return False

    def _report(self) -> None:
        """A flood closes or refuses thousands of connections: one line every few seconds."""
        now = time.monotonic()
        if now - self._logged_at < self.LOG_EVERY_S:
            return
        log.warning(
            "connection caps: %d idle connection(s) closed to make room, %d refused "
            "in the last %.0f s (%d open)",
            self._closed,
            self._refused,
            now - self._logged_at,
            len(self),
        )
        self._closed = self._refused = 0
        self._logged_at = now


# One table per server (its ServerState): each worker process has its own.
_TABLES: weakref.WeakKeyDictionary[ServerState, ConnectionTable] = weakref.WeakKeyDictionary()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the connection caps, and bounds on request heads.

    A new connection has ``first_byte_timeout_s`` to start its request (then it is
    closed, without an answer: it asked nothing); from a request's first byte, its head
    has ``head_timeout_s`` to be complete (408) and at most ``max_head_bytes`` (431).
    Idle kept-alive connections are closed by uvicorn's own ``timeout_keep_alive``.
    """

    # None: from the environment's settings (``uvicorn --http app.limits:LimitedHttpToolsProtocol``,
    # and each worker process of ``deepregime serve --workers N``).
    max_head_bytes: int | None = None
    head_timeout_s: float | None = None
    first_byte_timeout_s: float | None = None
    max_connections: int | None = None
    max_connections_per_client: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.max_head_bytes is None:
            configured = limited_protocol(get_settings())
            for name in BOUNDS:
                setattr(self, name, getattr(configured, name))
        self._awaiting_head = True
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None
        self._table: ConnectionTable | None = None
        self._refusal: Refusal | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        table = _TABLES.get(self.server_state)
        if table is None:
            table = _TABLES[self.server_state] = ConnectionTable(
                self.max_connections,  # type: ignore[arg-type]
                self.max_connections_per_client,  # type: ignore[arg-type]
                AddressSet(self.config.forwarded_allow_ips),
            )
        self._table = table
        self._refusal = table.admit(self, self.client[0] if self.client else "")
        self._arm_head_deadline(self.first_byte_timeout_s)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        if self._table is not None:
            self._table.remove(self)
        super().connection_lost(exc)

    def close_idle(self) -> None:
        """Closed to make room for another connection (it has no request in flight)."""
        self._disarm_head_deadline()
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and self._head_bytes > self.max_head_bytes:  # type: ignore[operator]
            self._refuse(431, f"request head over {self.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_deadline(self.head_timeout_s)  # type: ignore[arg-type]

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        self._disarm_head_deadline()
        if self._table is not None:
            self._table.busy(self)
        if self._refusal is not None:
            self.app = _refusing_app(self._refusal)  # this connection's every request
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head = True  # what arrives next is the next request's head

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request starts at once: still busy
        super().on_response_complete()
        if self._table is not None and not pipelined and not self.transport.is_closing():
            self._table.waiting(self)

    def _arm_head_deadline(self, timeout_s: float) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(timeout_s, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self._awaiting_head or self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()  # nothing was asked: nothing to answer
        else:
            self._refuse(408, f"request head not received within {self.head_timeout_s:g} s")

    def _refuse(self, status: int, detail: str) -> None:
        if self.transport.is_closing():
            return
        body = _problem_body(status, detail)
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"content-type: {PROBLEM_JSON}\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()


def _refusing_app(refusal: Refusal) -> ASGIApp:
    """Answers every request with the refusal, then closes the connection."""

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await _send_problem(send, refusal.status, refusal.detail, close=True, retry_after_s=1)

    return refuse


BOUNDS = (
    "max_head_bytes",
    "head_timeout_s",
    "first_byte_timeout_s",
    "max_connections",
    "max_connections_per_client",
)


def limited_protocol(settings: Settings) -> type[LimitedHttpToolsProtocol]:
    """The protocol class with the settings' bounds."""
    return type(
        "ConfiguredHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {
            "max_head_bytes": settings.http_max_head_bytes,
            "head_timeout_s": settings.http_head_timeout_s,
            "first_byte_timeout_s": settings.http_first_byte_timeout_s,
            "max_connections": settings.http_max_connections,
            "max_connections_per_client": settings.http_max_connections_per_client,
        },
    )


def server_options(settings: Settings, *, from_environment: bool = False) -> dict[str, Any]:
    """uvicorn keyword arguments carrying the settings' HTTP limits. ``from_environment``:
    name the protocol by import path, for worker processes that read the environment.

    uvicorn's own ``limit_concurrency`` is left off: it counts idle connections as
    load, so a client holding idle connections would have every request answered
    503; the protocol's ``ConnectionTable`` closes idle ones instead."""
    protocol: str | type = "app.limits:LimitedHttpToolsProtocol"
    return {
        "http": protocol if from_environment else limited_protocol(settings),
        "timeout_keep_alive": settings.http_keepalive_s,
        # One definition of the trusted proxies, for uvicorn's forwarded headers and the
        # per-address cap above: none unless configured (uvicorn would trust loopback).
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }
