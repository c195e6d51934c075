"""``OPTIONS`` and ``405`` answers name every method a path accepts (``Allow``, RFC 9110).

Starlette answers a method a route does not take with the methods of the first
route matching the path only, and ``OPTIONS`` with that same 405. Here ``OPTIONS``
on any served path is answered 204 with ``Allow``, and every 405 carries the
methods of all the routes (and mounts) matching the path. CORS preflights are
answered by the CORS middleware (when configured), which runs before this one.
"""

from __future__ import annotations

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Mount, get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """The methods the routes accept on the scope's path (empty: no route serves it)."""
    path = get_route_path(scope)
    methods: set[str] = set()
    for route in iter_route_contexts(routes):  # the routes of included routers too
        if not route.path_regex.match(path):
            continue
        if isinstance(route.original_route, Mount):
            methods |= {"GET", "HEAD"}  # static files
        else:
            methods |= set(route.methods or ())
    return sorted(methods | {"OPTIONS"}) if methods else []


class AllowHeader:
    """ASGI middleware: OPTIONS answered with ``Allow``; 405 answers given the full list."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        routes = scope["app"].router.routes
        if scope["method"] == "OPTIONS":
            allowed = allowed_methods(routes, scope)
            if allowed:
                headers = [(b"allow", ", ".join(allowed).encode()), (b"content-length", b"0")]
                await send({"type": "http.response.start", "status": 204, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allowed = ", ".join(allowed_methods(routes, scope)).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", allowed)]}
            await send(message)

        await self.app(scope, receive, send_with_allow)
