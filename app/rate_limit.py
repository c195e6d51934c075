"""Per-client rate limit on POST /backtest: a token bucket per client, in the database.

Each client (its X-API-Key when it sends one, else its address as the server
sees it, forwarded headers included) holds a bucket of ``burst`` tokens refilled
at ``per_minute``; a request takes one token, and with none left it is refused
with the seconds until the next token (429 with ``Retry-After``). The buckets
are rows of the service's database (store.rate_limits), taken by one atomic
statement, so the limit holds for a client whichever worker or replica answers
it. It costs one small write per POST /backtest, off the event loop.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from sqlalchemy import Engine
from starlette.requests import Request

from store.rate_limits import forget_full_buckets, take_token

FORGET_EVERY_S = 60.0  # how often full buckets are deleted (they hold nothing)


class RateLimited(Exception):
    def __init__(self, retry_after_s: int, per_minute: float) -> None:
        super().__init__(f"rate limit of {per_minute:g} requests a minute reached; retry later")
        self.retry_after_s = retry_after_s


class RateLimiter:
    """The buckets of one limit (``per_minute`` 0 turns it off)."""

    def __init__(
        self,
        engine: Engine,
        per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.per_minute = per_minute
        self.burst = burst
        self._clock = clock
        self._forgotten_at = -float("inf")

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, client: str) -> None:
        """Take one token for ``client``; RateLimited when there is none. Blocking I/O:
        call it from a worker thread."""
        if not self.enabled:
            return
        now = self._clock()
        per_second = self.per_minute / 60.0
        with self.engine.begin() as connection:
            wait_s = take_token(
                connection, client=client, now=now, per_second=per_second, burst=self.burst
            )
            if now - self._forgotten_at >= FORGET_EVERY_S:
                forget_full_buckets(connection, now=now, per_second=per_second, burst=self.burst)
                self._forgotten_at = now
        if wait_s is not None:
            raise RateLimited(wait_s, self.per_minute)


def client_key(request: Request) -> str:
    """Who is asking: a digest of the API key when one is sent, else the address."""
    api_key = request.headers.get("x-api-key")
    if api_key:
        return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]
    return "addr:" + (request.client.host if request.client else "unknown")[:59]
