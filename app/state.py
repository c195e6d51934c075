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
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from app.metrics import ServiceMetrics
from app.settings import Settings
from app.trading_days import TradingCalendar
from core.rules import RuleSet

if TYPE_CHECKING:
    from inference.predictor import RegimePredictor


@dataclass(frozen=True)
class ModelSlot:
    """The loaded classifier (``predictor``) or why none serves (``reason``)."""

    predictor: RegimePredictor | None = None
    version: str | None = None  # the version meant to serve, even when it failed to load
    reason: str | None = None

    @property
    def loaded(self) -> bool:
        return self.predictor is not None

    @classmethod
    def unavailable(cls, reason: str, version: str | None = None) -> ModelSlot:
        return cls(predictor=None, version=version, reason=reason)


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

    def swap_model(self, slot: ModelSlot) -> None:
        with self.model_lock:
            self.model = slot
        self.cache.clear()
        self.metrics.set_active_model(slot.version if slot.loaded else None)
