"""``Client``: the service's operations as blocking calls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import EventSource

from deepregime_client._base import ClientBase
from deepregime_client._calls import query
from deepregime_client._exchange import Plan, Retry, perform
from deepregime_client._stream import PATH, StreamCursor
from deepregime_client.models import RegimeReport


class Client(ClientBase[httpx.Client]):
    __doc__ = "A blocking client of one deepregime service.\n\n    " + (ClientBase.__doc__ or "")

    def _open(self, **options: Any) -> httpx.Client:
        return httpx.Client(**options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def stream(
        self,
        policy: str | None = None,
        *,
        market: str | None = None,
        last_event_id: int | None = None,
        retry: Retry | None = None,
        read_timeout_s: float = 60.0,
    ) -> Iterator[RegimeReport]:
        """Each publication of the policy as it is appended to the ledger, the latest
        one first (or, with ``last_event_id``, every one after it). A dropped connection
        is reopened where it stopped: no publication is skipped or handed twice. Each
        report's ``publication_id`` is its event id, to resume from after a restart."""
        cursor = StreamCursor(retry or self.retry, last_event_id)
        params = query(policy=policy, market=market)
        timeout = self.stream_timeout(read_timeout_s)
        while True:
            try:
                with self._http.stream(
                    "GET", PATH, params=params, headers=cursor.headers(), timeout=timeout
                ) as response:
                    if not response.is_success:
                        response.read()  # the problem body
                    delay = cursor.opened(response)
                    if delay is None:
                        for event in EventSource(response).iter_sse():
                            if (report := cursor.accept(event)) is not None:
                                yield report
                        delay = cursor.ended()
            except httpx.TransportError as error:
                delay = cursor.dropped(error)
            time.sleep(delay)

    def _perform(self, plan: Plan[Any]) -> Any:
        """Run an operation's steps: send each request, sleep each wait."""
        steps = perform(plan, self._http.build_request, self.retry, self._cache)
        outcome: Any = None
        while True:
            try:
                failed = isinstance(outcome, Exception)
                step = steps.throw(outcome) if failed else steps.send(outcome)
            except StopIteration as done:
                return done.value
            if not isinstance(step, httpx.Request):
                time.sleep(step)
                outcome = None
                continue
            try:
                outcome = self._http.send(step)
            except httpx.TransportError as error:
                outcome = error
