"""What the running service holds between requests: created in the lifespan, never at import.

- ``ModelSlot``: the classifier serving now, or the reason there is none.
- ``ResponseCache``: rendered ``/regime/today`` answers, one render in flight per key,
  dropped when the ledger moves on, on refresh and on model activation.
- ``ServiceState``: the above plus settings, the database engine, the calendar and
  the research pool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy import Engine

from app.metrics import ServiceMetrics
from app.rate_limit import RateLimiter
from app.research import ResearchPool
from app.settings import Settings
from core.rules import RuleSet
from operations.models import ModelSlot
from operations.trading_days import TradingCalendar

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry(Generic[T]):
    value: T
    refresh_at: float  # monotonic s; after it, one background render replaces the value
    generation: int


class ResponseCache(Generic[T]):
    """Rendered answers per key, valid until ``clear`` (a new publication, a refresh,
    an activation); the key carries the trading day, so a rollover is a new key.

    ``get_or_render`` runs at most one render per key at a time: concurrent misses
    wait for that render instead of each going to the database (no stampede). After
    ``ttl_s`` an entry is re-rendered once in the background while every request keeps
    getting the current value, so no timer ever expires for all clients at once.
    ``ttl_s`` 0 disables caching (every call renders). Used from one event loop;
    ``clear`` may be called from any thread.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[Hashable, _Entry[T]] = {}
        self._renders: dict[Hashable, tuple[int, asyncio.Future[T]]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self.renders = 0  # how many renders ran (tests and metrics)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries = {}

    def peek(self, key: Hashable) -> T | None:
        entry = self._entries.get(key)
        return None if entry is None or entry.generation != self._generation else entry.value

    def current(self, key: Hashable) -> T | None:
        """The value while it is valid and not yet due for its refresh, else None (the
        caller then goes through ``get_or_render``)."""
        entry = self._entries.get(key)
        if entry is None or entry.generation != self._generation or self.ttl_s <= 0:
            return None
        return entry.value if self._clock() < entry.refresh_at else None

    async def get_or_render(self, key: Hashable, render: Callable[[], Awaitable[T]]) -> T:
        if self.ttl_s <= 0:
            self.renders += 1
            return await render()
        entry = self._entries.get(key)
        if entry is not None and entry.generation == self._generation:
            if self._clock() >= entry.refresh_at and not self._rendering(key):
                self._start_render(key, render).add_done_callback(_consume_error)
            return entry.value
        return await asyncio.shield(self._shared_render(key, render))

    def _rendering(self, key: Hashable) -> bool:
        running = self._renders.get(key)
        return running is not None and running[0] == self._generation

    def _shared_render(
        self, key: Hashable, render: Callable[[], Awaitable[T]]
    ) -> asyncio.Future[T]:
        running = self._renders.get(key)
        if running is not None and running[0] == self._generation:
            return running[1]
        return self._start_render(key, render)

    def _start_render(self, key: Hashable, render: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        generation = self._generation
        self.renders += 1

        async def run() -> T:
            try:
                value = await render()
                with self._lock:
                    if generation == self._generation:  # not outdated while it ran
                        if len(self._entries) >= 256:  # keys are few; bound anyway
                            self._entries = {}
                        refresh_at = self._clock() + self.ttl_s
                        self._entries[key] = _Entry(value, refresh_at, generation)
                return value
            finally:
                if self._renders.get(key, (None,))[-1] is task:
                    del self._renders[key]

        task = asyncio.ensure_future(run())
        self._renders[key] = (generation, task)
        return task


def _consume_error(task: asyncio.Future) -> None:
    """A background re-render that failed leaves the current value in place."""
    if not task.cancelled():
        task.exception()


@dataclass
class ServiceState:
    settings: Settings
    engine: Engine
    calendar: TradingCalendar
    rule_set: RuleSet
    model: ModelSlot
    cache: ResponseCache
    metrics: ServiceMetrics
    schema_head: str  # the migrations' head revision, read once at start
    # Serialises model swaps inside this process (the DB lock guards across processes).
    model_lock: threading.Lock = field(default_factory=threading.Lock)
    # The newest ledger id this process has seen.
    ledger_id: int = -1
    # Processes running backtests and history pages, started on first use; the
    # per-client limit on POST /backtest.
    research: ResearchPool = field(init=False)
    backtest_limiter: RateLimiter = field(init=False)
    # POST /backtest runs in flight here per idempotency key (a retry awaits the first).
    backtests_in_flight: dict[str, asyncio.Future] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.research = ResearchPool(self.settings, self.engine)
        self.backtest_limiter = RateLimiter(
            self.engine, self.settings.backtest_rate_per_minute, self.settings.backtest_rate_burst
        )

    def note_ledger_id(self, newest: int) -> None:
        """Drop the cached answers when the ledger moved on (another process published)."""
        if newest != self.ledger_id:
            self.cache.clear()
            self.ledger_id = newest

    async def check_ledger(self, newest: Callable[[], int]) -> None:
        """Note the ledger's newest id now; a database fault is logged, not raised."""
        try:
            self.note_ledger_id(await asyncio.to_thread(newest))
        except Exception as error:  # noqa: BLE001 - the watcher must outlive outages
            log.warning("ledger check failed (%s); retrying", error.__class__.__name__)

    async def watch_ledger(self, newest: Callable[[], int], stop: asyncio.Event) -> None:
        """Ask the ledger for its newest id every ``publication_check_s`` until ``stop``,
        so a publication by any process or replica is served within that delay. One
        cheap indexed query per period and process, off the request path; a database
        fault is logged and retried at the next period."""
        period = self.settings.publication_check_s
        while not stop.is_set():
            await self.check_ledger(newest)
            try:
                await asyncio.wait_for(stop.wait(), timeout=period)
            except TimeoutError:
                pass

    def swap_model(self, slot: ModelSlot) -> None:
        with self.model_lock:
            self.model = slot
        self.cache.clear()
        self.metrics.set_active_model(slot.version if slot.loaded else None)
