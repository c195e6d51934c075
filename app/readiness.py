"""Readiness: each part the service needs, checked separately, with why it fails.

| part       | ok when                                              | required            |
|------------|------------------------------------------------------|---------------------|
| database   | a connection answers ``SELECT 1``                    | yes                 |
| migrations | the schema is at the migrations' head                | yes                 |
| data       | the latest regime lags the last closed NYSE session  | yes                 |
|            | by at most ``max_data_lag_days`` sessions            |                     |
| model      | a classifier is loaded                               | when the default    |
|            |                                                      | policy is ``model`` |

Status: ``not_ready`` (503) when a required part fails, ``degraded`` when only an
optional one does, else ``ready``. Never raises on a dead database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.schemas import CheckResult, Readiness
from app.services import no_regimes, stored_span
from app.settings import Settings
from app.state import ModelSlot
from app.trading_days import TradingCalendar
from core.enums import Policy
from core.rules import RuleSet
from store.migrations import current_revision


def _one_line(error: BaseException) -> str:
    origin = getattr(error, "orig", None) or error
    lines = str(origin).strip().splitlines()
    return f"{origin.__class__.__name__}: {lines[0]}" if lines else origin.__class__.__name__


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
    checks: dict[str, CheckResult] = {}
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = CheckResult(ok=True, required=True, detail="reachable")
    except (DBAPIError, PoolTimeoutError) as error:
        detail = f"unreachable: {_one_line(error)}"
        checks["database"] = CheckResult(ok=False, required=True, detail=detail)
    if checks["database"].ok:
        checks["migrations"] = _guarded(lambda: _migrations_check(engine, schema_head))
        checks["data"] = _guarded(lambda: _data_check(engine, settings, rule_set, calendar, now))
    else:
        unknown = CheckResult(ok=False, required=True, detail="unknown: database unreachable")
        checks["migrations"] = checks["data"] = unknown
    needs_model = settings.default_policy is Policy.MODEL
    checks["model"] = CheckResult(
        ok=model.loaded,
        required=needs_model,
        detail=f"version {model.version} loaded" if model.loaded else str(model.reason),
    )
    failed = [check for check in checks.values() if not check.ok]
    if any(check.required for check in failed):
        status = "not_ready"
    else:
        status = "degraded" if failed else "ready"
    return Readiness(status=status, checks=checks)


def _guarded(check: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; a database error fails that check with its reason."""
    try:
        return check()
    except (DBAPIError, PoolTimeoutError) as error:
        return CheckResult(ok=False, required=True, detail=f"failed: {_one_line(error)}")


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
    detail = (
        f"as of {span[1]}, {lag} session(s) behind {expected} "
        f"(allowed {settings.max_data_lag_days})"
    )
    return CheckResult(ok=lag <= settings.max_data_lag_days, required=True, detail=detail)
