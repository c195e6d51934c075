"""What ``Client`` and ``AsyncClient`` share: settings, the ETag cache and the operations."""

from __future__ import annotations

from typing import Generic, TypeVar

import httpx

from deepregime_client import _calls
from deepregime_client._exchange import ETagCache, Retry

H = TypeVar("H", httpx.Client, httpx.AsyncClient)
USER_AGENT = "deepregime-client/0.1"


class ClientBase(Generic[H]):
    """``base_url`` is the service's root. ``api_key`` is sent as ``X-API-Key`` (admin
    routes need it; the backtest rate limit counts per key). ``retry`` bounds the
    retries (see ``Retry``); ``cache_size`` is how many ETag-carrying answers are
    kept for revalidation. ``http`` replaces the underlying httpx client (its base
    URL, headers and timeout are then its own)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retry: Retry | None = None,
        cache_size: int = 256,
        http: H | None = None,
    ) -> None:
        self.retry = retry or Retry()
        self.timeout = timeout
        self._cache = ETagCache(cache_size)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key is not None:
            headers["X-API-Key"] = api_key
        self._http: H = http or self._open(base_url=base_url, headers=headers, timeout=timeout)

    def _open(self, **options: object) -> H:
        raise NotImplementedError

    def stream_timeout(self, read_timeout_s: float) -> httpx.Timeout:
        # The service writes at least a keep-alive comment every 15 s: a longer silence
        # is a dead connection, reopened like a dropped one.
        return httpx.Timeout(self.timeout, read=read_timeout_s)

    today = _calls.today
    regime = _calls.regime
    history = _calls.history
    publications = _calls.publications
    backtest = _calls.backtest
    create_sweep = _calls.create_sweep
    sweep = _calls.sweep
    sweep_results = _calls.sweep_results
    cancel_sweep = _calls.cancel_sweep
