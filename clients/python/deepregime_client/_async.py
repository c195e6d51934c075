"""``AsyncClient``: ``Client``'s operations, awaited (the same calls, retries and cache)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import EventSource

from deepregime_client._base import ClientBase
from deepregime_client._calls import query
from deepregime_client._exchange import Plan, Retry, perform
from deepregime_client._stream import PATH, StreamCursor
from deepregime_client.models import RegimeReport


class AsyncClient(ClientBase[httpx.AsyncClient]):
    __doc__ = "The async twin of ``Client``: each operation awaited.\n\n    " + (
        ClientBase.__doc__ or ""
    )

    def _open(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stream(
        self,
        policy: str | None = None,
        *,
        market: str | None = None,
        last_event_id: int | None = None,
        retry: Retry | None = None,
        read_timeout_s: float = 60.0,
    ) -> AsyncIterator[RegimeReport]:
        """See ``Client.stream``."""
        cursor = StreamCursor(retry or self.retry, last_event_id)
        params = query(policy=policy, market=market)
        timeout = self.stream_timeout(read_timeout_s)
        while True:
            try:
                async with self._http.stream(
                    "GET", PATH, params=params, headers=cursor.headers(), timeout=timeout
                ) as response:
                    if not response.is_success:
                        await response.aread()  # the problem body
                    delay = cursor.opened(response)
                    if delay is None:
                        async for event in EventSource(response).aiter_sse():
                            if (report := cursor.accept(event)) is not None:
                                yield report
                        delay = cursor.ended()
            except httpx.TransportError as error:
                delay = cursor.dropped(error)
            await asyncio.sleep(delay)

    async def _perform(self, plan: Plan[Any]) -> Any:
        """Run an operation's steps: send each request, sleep each wait."""
        steps = perform(plan, self._http.build_request, self.retry, self._cache)
        outcome: Any = None
        while True:
            try:
                failed = isinstance(outcome, Exception)
                step = steps.throw(outcome) if failed else steps.send(outcome)
            except StopIteration as done:
                return done.value
            if isinstance(step, httpx.Request):
                try:
                    outcome = await self._http.send(step)
                except httpx.TransportError as error:
                    outcome = error
            else:
                await asyncio.sleep(step)
                outcome = None
