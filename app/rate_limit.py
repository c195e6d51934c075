"""Per-client rate limit: a token bucket per client, in memory.

Each client (its X-API-Key when it sends one, else its address as the server
sees it, forwarded headers included) holds a bucket of ``burst`` tokens refilled
at ``per_minute``; a request takes one token, and with none left it is refused
with the seconds until the next token (429 with ``Retry-After``). Buckets live in
the serving process: with N workers a client gets at most N times the rate,
which bounds the load without a shared store on the request path.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import Request


class RateLimited(Exception):
    def __init__(self, retry_after_s: int, per_minute: float) -> None:
        super().__init__(f"rate limit of {per_minute:g} requests a minute reached; retry later")
        self.retry_after_s = retry_after_s


class RateLimiter:
    """Token buckets for at most ``max_clients`` clients (the least recent are dropped,
    which only ever gives a dropped client a full bucket again)."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, client: str) -> None:
        """Take one token for ``client``; RateLimited when there is none."""
        if not self.enabled:
            return
        now = self._clock()
        rate = self.per_minute / 60.0
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            raise RateLimited(max(1, math.ceil((1.0 - tokens) / rate)), self.per_minute)
        self._buckets[client] = (tokens - 1.0, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)


def client_key(request: Request) -> str:
    """Who is asking: a digest of the API key when one is sent, else the address."""
    api_key = request.headers.get("x-api-key")
    if api_key:
        return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]
    return "addr:" + (request.client.host if request.client else "unknown")
