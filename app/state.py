"""What the running service holds between requests: created in the lifespan, never at import.

- ``ModelSlot``: the classifier serving now, or the reason there is none.
- ``ResponseCache``: small time-bounded cache of rendered answers, dropped on
  refresh and model activation.
- ``ServiceState``: the above plus settings, the database engine and the calendar.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from app.metrics import ServiceMetrics
from app.settings import Settings
from core.rules import RuleSet
from operations.models import ModelSlot
from operations.trading_days import TradingCalendar


class ResponseCache:
    """Values kept ``ttl_s`` seconds (0 disables); thread-safe; ``clear`` drops everything."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> object | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < self._clock():
            return None
        return entry[1]

    def put(self, key: Hashable, value: object) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) > 256:  # keys are few (policy x mapping x day); bound anyway
                self._entries.clear()
            self._entries[key] = (self._clock() + self.ttl_s, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


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
    # The newest ledger id this process has seen, and when it last asked (monotonic s).
    ledger_id: int = -1
    ledger_checked_at: float = float("-inf")

    def note_ledger_id(self, newest: int, checked_at: float) -> None:
        """Drop the cached answers when the ledger moved on (another process published)."""
        if newest != self.ledger_id:
            self.cache.clear()
            self.ledger_id = newest
        self.ledger_checked_at = checked_at

    def swap_model(self, slot: ModelSlot) -> None:
        with self.model_lock:
            self.model = slot
        self.cache.clear()
        self.metrics.set_active_model(slot.version if slot.loaded else None)
