"""Start-up of the service: the database check, then everything the lifespan holds.

- Schema behind the migrations: refuse to start with a clear message, unless
  ``migrate_on_start`` is set (then upgrade).
- Database unreachable: wait up to ``startup_wait_s`` (containers start before
  their database), then start anyway: /health answers, /ready says why, data
  routes answer 503 until the database returns (the pool reconnects by itself).
- Model missing or failing its checks: start on the rule engine (app.model_loading).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.metrics import ServiceMetrics
from app.settings import Settings
from app.state import ResponseCache, ServiceState
from core.errors import DeepRegimeError
from core.rules import rule_set_preset
from operations.models import load_active_model
from operations.trading_days import TradingCalendar
from store.db import classify_database_error, make_engine
from store.migrations import current_revision, head_revision, upgrade

log = logging.getLogger("deepregime.app")
RETRY_EVERY_S = 1.0


class StartupError(DeepRegimeError):
    """The service must not start; the message says what to do."""


def prepare_database(engine: Engine, settings: Settings) -> str:
    """Check (or migrate) the schema; returns what it found. Raises StartupError when behind."""
    head = head_revision()
    deadline = time.monotonic() + settings.startup_wait_s
    while True:
        try:
            current = current_revision(engine)
            if current == head:
                return f"schema at head {head}"
            if settings.migrate_on_start:
                upgrade(settings.database_url)
                return f"schema migrated from {current} to {head}"
            problem = (
                f"database schema is at revision {current}, behind the migrations' head {head}: "
                "run `deepregime db upgrade` or set DEEPREGIME_MIGRATE_ON_START=true"
            )
            unreachable = False
        except (DBAPIError, PoolTimeoutError) as error:
            origin = getattr(error, "orig", None) or error
            fault = classify_database_error(error)
            problem = f"database {fault.cause}: {str(origin).strip().splitlines()[0]}"
            unreachable = True
        if time.monotonic() >= deadline:
            break
        time.sleep(RETRY_EVERY_S)
    if not unreachable:
        raise StartupError(problem)
    log.warning("%s; starting without it (data routes answer 503 until it returns)", problem)
    return problem


def start_service(settings: Settings, metrics: ServiceMetrics) -> ServiceState:
    """Everything the running app holds, built once in the lifespan."""
    rule_set = rule_set_preset(settings.rule_set).validate()
    engine = make_engine(settings.database_url, settings.db_timeout_s)
    try:
        log.info(prepare_database(engine, settings))
        model = load_active_model(engine, settings.model_dir)
    except BaseException:
        engine.dispose()
        raise
    metrics.set_active_model(model.version if model.loaded else None)
    return ServiceState(
        settings=settings,
        engine=engine,
        calendar=TradingCalendar(),
        rule_set=rule_set,
        model=model,
        cache=ResponseCache(settings.cache_ttl_s),
        metrics=metrics,
        schema_head=head_revision(),
    )
