"""Readiness: each part the service needs, checked separately, with why it fails.

| part       | ok when                                              | required            |
|------------|------------------------------------------------------|---------------------|
| database   | a connection answers ``SELECT 1``; also says when a  | yes                 |
|            | refresh holds the refresh lock                       |                     |
| migrations | the schema is at the migrations' head                | yes                 |
| data       | regimes are stored (else not ready) and the latest   | only to exist: stale|
|            | lags the last closed NYSE session by at most         | data is degraded    |
|            | ``max_data_lag_days`` sessions (else stale)          |                     |
| model      | a classifier is loaded                               | when the default    |
|            |                                                      | policy is ``model`` |

Status: ``not_ready`` (503) when a required part fails, ``degraded`` when only an
optional one does, else ``ready``. Readiness means "can serve": stale data is still
served (``/regime/today`` flags it ``stale``), so it degrades readiness instead of
taking every replica out of rotation at once; ``deepregime_data_lag_sessions`` and
``deepregime_data_stale`` on ``/metrics`` carry the same figure for alerting.

Never raises on a dead database. A database failure starts with its cause, as the
API's 503 names it: ``unreachable``, ``locked``, ``disk_full``, ``read_only`` or
``error`` (store.db).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.schemas import CheckResult, Readiness
from app.settings import Settings
from core.enums import Policy
from core.rules import RuleSet
from operations.answers import no_regimes, stored_span
from operations.models import ModelSlot
from operations.trading_days import TradingCalendar
from store.db import FaultCause, classify_database_error
from store.locks import REFRESH_LOCK, current_lock
from store.migrations import current_revision


def _one_line(error: BaseException) -> str:
    origin = getattr(error, "orig", None) or error
    lines = str(origin).strip().splitlines()
    return f"{origin.__class__.__name__}: {lines[0]}" if lines else origin.__class__.__name__


def _cause(error: BaseException) -> FaultCause:
    return classify_database_error(error).cause


def _fault(error: BaseException) -> str:
    """``<cause>: <driver error>``, e.g. ``locked: OperationalError: database is locked``."""
    return f"{_cause(error)}: {_one_line(error)}"


def _database_check(engine: Engine) -> tuple[CheckResult, FaultCause | None]:
    """The database check, and the cause when it fails."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (DBAPIError, PoolTimeoutError) as error:
        return CheckResult(ok=False, required=True, detail=_fault(error)), _cause(error)
    try:
        refresh = current_lock(engine, REFRESH_LOCK)
    except (DBAPIError, PoolTimeoutError, OSError):
        refresh = None  # only a note: the database answered
    detail = "reachable"
    if refresh is not None:
        holder, since = refresh
        detail += f"; a refresh is running (held by {holder} since {since:%Y-%m-%dT%H:%M:%SZ})"
    return CheckResult(ok=True, required=True, detail=detail), None


def readiness(
    engine: Engine,
    *,
    settings: Settings,
    rule_set: RuleSet,
    calendar: TradingCalendar,
    now: dt.datetime,
    model: ModelSlot,
    schema_head: str,
) -> Readiness:
    """Each part of readiness with why it fails. Never raises on a dead database."""
    database, cause = _database_check(engine)
    checks: dict[str, CheckResult] = {"database": database}
    if cause is None:
        checks["migrations"] = _guarded(lambda: _migrations_check(engine, schema_head))
        checks["data"] = _guarded(lambda: _data_check(engine, settings, rule_set, calendar, now))
    else:
        unknown = CheckResult(ok=False, required=True, detail=f"unknown: database {cause}")
        checks["migrations"] = checks["data"] = unknown
    needs_model = settings.default_policy is Policy.MODEL
    checks["model"] = CheckResult(
        ok=model.loaded,
        required=needs_model,
        detail=f"version {model.version} loaded" if model.loaded else str(model.reason),
    )
    failed = [check for check in checks.values() if not check.ok]
    status: Literal["ready", "degraded", "not_ready"] = "ready"
    if any(check.required for check in failed):
        status = "not_ready"
    elif failed:
        status = "degraded"
    return Readiness(status=status, checks=checks)


def _guarded(check: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; a database error fails that check with its reason."""
    try:
        return check()
    except (DBAPIError, PoolTimeoutError) as error:
        return CheckResult(ok=False, required=True, detail=f"failed: {_fault(error)}")


def _migrations_check(engine: Engine, schema_head: str) -> CheckResult:
    current = current_revision(engine)
    if current == schema_head:
        return CheckResult(ok=True, required=True, detail=f"at head {schema_head}")
    return CheckResult(
        ok=False,
        required=True,
        detail=f"schema at {current}, migrations head is {schema_head}: "
        "run `deepregime db upgrade`",
    )


def _data_check(
    engine: Engine,
    settings: Settings,
    rule_set: RuleSet,
    calendar: TradingCalendar,
    now: dt.datetime,
) -> CheckResult:
    with engine.connect() as connection:
        span = stored_span(connection, rule_set)
    if span is None:
        return CheckResult(ok=False, required=True, detail=str(no_regimes(rule_set)))
    expected = calendar.expected_last_session(now)
    lag = calendar.sessions_between(span[1], expected)
    fresh = lag <= settings.max_data_lag_days
    detail = (
        f"as of {span[1]}, {lag} session(s) behind {expected} "
        f"({'fresh' if fresh else 'stale'}: stale beyond {settings.max_data_lag_days})"
    )
    # Stale data is served, flagged: a degraded part, not a failed required one.
    return CheckResult(ok=fresh, required=False, detail=detail)
