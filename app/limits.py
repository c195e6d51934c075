"""HTTP limits: what one client may cost the server.

- ``BodySizeLimit`` (ASGI middleware): a query string carrying a NUL byte is
  answered 422 (no database column stores one); a declared Content-Length over the bound is
  answered 413 at once; a body sent without one (chunked) is counted as it arrives
  and cut off at the bound. A body not complete ``body_timeout_s`` after the
  handler first asks for it is answered 408 and the connection closed.
- ``LimitedHttpToolsProtocol`` (uvicorn's HTTP protocol with two more bounds): a
  request head (request line and headers) over ``DEEPREGIME_HTTP_MAX_HEAD_BYTES`` is
  answered 431, and one not complete within ``DEEPREGIME_HTTP_HEAD_TIMEOUT_S`` of
  its first byte (or of the connection opening) 408; both close the connection.
- ``server_options(settings)``: those plus uvicorn's own keep-alive timeout and
  bound on open connections (beyond it 503), for ``deepregime serve`` and the
  benchmarks alike.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.problems import PROBLEM_JSON
from app.settings import Settings, get_settings


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


async def _send_problem(send: Send, status: int, detail: str, *, close: bool = False) -> None:
    body = _problem_body(status, detail)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
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


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing oversized (431) and slow (408) request heads.

    Head bytes are counted from the first byte of a request until its headers are
    parsed; the deadline runs from the connection's opening (or a request's first
    byte on a kept-alive connection) to the end of the headers. Idle kept-alive
    connections are closed by uvicorn's own ``timeout_keep_alive``.
    """

    # None: from the environment's settings (``uvicorn --http app.limits:LimitedHttpToolsProtocol``,
    # and each worker process of ``deepregime serve --workers N``).
    max_head_bytes: int | None = None
    head_timeout_s: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.max_head_bytes is None or self.head_timeout_s is None:
            settings = get_settings()
            self.max_head_bytes = settings.http_max_head_bytes
            self.head_timeout_s = settings.http_head_timeout_s
        self._awaiting_head = True
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and self._head_bytes > self.max_head_bytes:
            self._refuse(431, f"request head over {self.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_deadline is None:
            self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head = True  # what arrives next is the next request's head

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._awaiting_head:
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


def limited_protocol(settings: Settings) -> type[LimitedHttpToolsProtocol]:
    """The protocol class with the settings' bounds."""
    return type(
        "ConfiguredHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {
            "max_head_bytes": settings.http_max_head_bytes,
            "head_timeout_s": settings.http_head_timeout_s,
        },
    )


def server_options(settings: Settings, *, from_environment: bool = False) -> dict[str, Any]:
    """uvicorn keyword arguments carrying the settings' HTTP limits. ``from_environment``:
    name the protocol by import path, for worker processes that read the environment."""
    protocol: str | type = "app.limits:LimitedHttpToolsProtocol"
    return {
        "http": protocol if from_environment else limited_protocol(settings),
        "timeout_keep_alive": settings.http_keepalive_s,
        "limit_concurrency": settings.http_max_connections,
    }
