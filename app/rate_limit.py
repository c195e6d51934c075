"""Per-client rate limit on POST /backtest: a token bucket per client, in the database.

Each client (its API key once verified, else its socket address: forwarded headers
only count from the proxies of FORWARDED_ALLOW_IPS, which uvicorn applies) holds a
bucket of ``burst`` tokens refilled at ``per_minute`` (a key's own rate where it has
one); a request takes one token, and with none left it is refused
with the seconds until the next token (429 with ``Retry-After``). The buckets
are rows of the service's database (store.rate_limits), taken by one atomic
statement, so the limit holds for a client whichever worker or replica answers
it. It costs one small write per POST /backtest, off the event loop.
"""

from __future__ import annotations

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

    def take(self, client: str, per_minute: float | None = None) -> None:
        """Take one token for ``client`` (at its own ``per_minute`` when given);
        RateLimited when there is none. Blocking I/O: call it from a worker thread."""
        per_minute = self.per_minute if per_minute is None else per_minute
        if per_minute <= 0:
            return
        now = self._clock()
        per_second = per_minute / 60.0
        with self.engine.begin() as connection:
            wait_s = take_token(
                connection, client=client, now=now, per_second=per_second, burst=self.burst
            )
            if now - self._forgotten_at >= FORGET_EVERY_S:
                forget_full_buckets(connection, now=now, per_second=per_second, burst=self.burst)
                self._forgotten_at = now
        if wait_s is not None:
            raise RateLimited(wait_s, per_minute)


def client_key(request: Request) -> str:
    """Who is asking: the key app.deps.identify verified for this request, else the
    address. A key that was merely sent never counts: a new made-up key per request
    would be a new bucket each time."""
    caller = getattr(request.state, "caller", None)
    if caller is not None:
        return "key:" + caller.key_id[:59]
    return "addr:" + (request.client.host if request.client else "unknown")[:59]
