"""What the handlers call: regime answers, history pages, readiness and model listings.

Each function takes a Connection (or the Engine where it must survive a dead
database) and keyword-only arguments, and returns a schema from app.schemas.
The regime policies are core.policies' (one definition shared with the
backtest): this module only loads stored rows and applies them.

Policies on one day (``rules`` is always computed and reported beside):
- ``rules``: the stored regime row of the configured rule set.
- ``model``: the classifier's stored regime (0 calm, 1 distressed) mapped by
  core.policies.model_exposure with the ``filter`` or ``leveraged`` mapping;
  the regime is named ``calm``/``distressed`` as in the backtest's reports.
- ``ensemble``: core.policies.ensemble_regimes (the model's distressed call is
  one more vote; a missing model output abstains).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.problems import ModelUnavailableError, NotFoundError
from app.schemas import (
    CheckResult,
    FilterReading,
    ModelMappingName,
    ModelPart,
    Readiness,
    RegimePage,
    RegimeReport,
    RegimeRow,
    RulesPart,
)
from app.settings import Settings
from app.state import ModelSlot
from app.trading_days import TradingCalendar
from backtest.signals import MODEL_REGIME_LABELS
from backtest.strategies import MODEL_MAPPINGS
from core.enums import Policy
from core.errors import ConfigError, NoDataError
from core.policies import ensemble_regimes, model_exposure
from core.rules import RuleSet
from store.migrations import current_revision
from store.repository import load_model_outputs, load_regimes
from store.tables import regimes


def _number(value: Any) -> float | None:
    """Python float, or None for NULL/NaN (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _no_regimes(rule_set: RuleSet) -> NoDataError:
    return NoDataError(
        f"no regimes computed yet for rule set {rule_set.version}: ingest prices and run "
        "`deepregime signals` (or POST /admin/refresh)"
    )


def stored_span(connection: Connection, rule_set: RuleSet) -> tuple[dt.date, dt.date] | None:
    """First and last day with a stored regime of ``rule_set``; None when there is none."""
    first, last = connection.execute(
        select(func.min(regimes.c.date), func.max(regimes.c.date)).where(
            regimes.c.rule_set_version == rule_set.version
        )
    ).one()
    return None if first is None else (first, last)


# --- policies over stored rows ----------------------------------------------


def apply_policy(
    regimes: pd.DataFrame,
    model_regime: pd.Series,
    *,
    policy: Policy,
    mapping: ModelMappingName,
    rule_set: RuleSet,
) -> pd.DataFrame:
    """``regime`` (label or None) and ``exposure`` (NaN unknown) per day of ``regimes``.

    ``regimes`` holds stored rows (votes, available, regime, exposure);
    ``model_regime`` is the classifier's 0/1 per day (NaN unknown), any index.
    """
    if policy is Policy.RULES:
        return regimes.loc[:, ["regime", "exposure"]]
    model = model_regime.reindex(regimes.index).astype(float)
    if policy is Policy.MODEL:
        labels = np.asarray(MODEL_REGIME_LABELS, dtype=object)
        known = model.notna().to_numpy()
        names = np.full(len(model), None, dtype=object)
        names[known] = labels[model.to_numpy()[known].astype(int)]
        exposure = model_exposure(model, MODEL_MAPPINGS[mapping.value])
        return pd.DataFrame({"regime": names, "exposure": exposure}, index=regimes.index)
    table = ensemble_regimes(regimes["votes"], regimes["available"], model, rule_set.table)
    return table.loc[:, ["regime", "exposure"]]


def _model_outputs(
    connection: Connection, model: ModelSlot, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Stored outputs of the serving model over [start, end]; empty when none serves."""
    if not model.loaded or model.version is None:
        return pd.DataFrame(
            {"regime": pd.Series(dtype=float), "p_distressed": pd.Series(dtype=float)},
            index=pd.DatetimeIndex([], name="date"),
        )
    return load_model_outputs(connection, model_version=model.version, start=start, end=end)


def _require_model(policy: Policy, model: ModelSlot) -> None:
    if policy is not Policy.RULES and policy is not Policy.ENSEMBLE and not model.loaded:
        raise ModelUnavailableError(
            f"policy '{policy.value}' needs the classifier, which is not serving: "
            f"{model.reason}; policy 'rules' is served without it"
        )


# --- one day ------------------------------------------------------------------


def _rules_part(row: pd.Series, rule_set: RuleSet) -> RulesPart:
    filters = {
        name: FilterReading(
            state=row[f"{name}_state"],
            value=_number(row[f"{name}_value"]),
            threshold=rule.threshold,
            detail=rule_set.describe(name),
        )
        for name, rule in rule_set.enabled().items()
    }
    return RulesPart(
        rule_set=rule_set.version,
        votes=int(row["votes"]),
        available=int(row["available"]),
        enabled=len(filters),
        regime=_text(row["regime"]),
        exposure=_number(row["exposure"]),
        filters=filters,
    )


def _model_part(outputs: pd.DataFrame, model: ModelSlot, day: pd.Timestamp) -> ModelPart:
    if not model.loaded:
        return ModelPart(available=False, version=model.version, reason=model.reason)
    window = model.predictor.card.window if model.predictor is not None else None
    if day not in outputs.index or math.isnan(outputs.at[day, "regime"]):
        return ModelPart(
            available=False,
            version=model.version,
            reason=f"no model output for {day.date()}: fewer than {window} complete days of "
            "features before it, or outputs not computed yet (POST /admin/refresh)",
        )
    return ModelPart(
        available=True,
        version=model.version,
        regime=int(outputs.at[day, "regime"]),
        p_distressed=_number(outputs.at[day, "p_distressed"]),
    )


def regime_report(
    connection: Connection,
    *,
    day: dt.date | None,
    policy: Policy,
    mapping: ModelMappingName,
    rule_set: RuleSet,
    model: ModelSlot,
) -> RegimeReport:
    """The answer for ``day`` (None: the latest stored day)."""
    _require_model(policy, model)
    rows = load_regimes(
        connection, rule_set_version=rule_set.version, start=day, end=day, limit=1, latest_first=True
    )
    if rows.empty:
        span = stored_span(connection, rule_set)
        if span is None:
            raise _no_regimes(rule_set)
        raise NotFoundError(
            f"no regime for {day}: not a trading day of the stored history "
            f"({span[0]} .. {span[1]})"
        )
    as_of = rows.index[0]
    outputs = _model_outputs(connection, model, as_of.date(), as_of.date())
    chosen = apply_policy(
        rows,
        outputs["regime"],
        policy=policy,
        mapping=mapping,
        rule_set=rule_set,
    ).iloc[0]
    return RegimeReport(
        as_of=as_of.date(),
        regime=_text(chosen["regime"]),
        exposure=_number(chosen["exposure"]),
        policy=policy,
        mapping=mapping if policy is Policy.MODEL else None,
        rules=_rules_part(rows.iloc[0], rule_set),
        model=_model_part(outputs, model, as_of),
    )


def with_staleness(report: RegimeReport, expected: dt.date) -> RegimeReport:
    """The report marked stale when its day is older than the expected trading day."""
    return report.model_copy(update={"stale": report.as_of < expected, "expected_as_of": expected})


# --- history ------------------------------------------------------------------


def regime_history(
    connection: Connection,
    *,
    start: dt.date | None,
    end: dt.date | None,
    cursor: dt.date | None,
    limit: int,
    policy: Policy,
    mapping: ModelMappingName,
    rule_set: RuleSet,
    model: ModelSlot,
) -> RegimePage:
    """Days in [max(start, cursor), end], oldest first, at most ``limit`` of them."""
    if start is not None and end is not None and start > end:
        raise ConfigError(f"query 'start' ({start}) must not be after 'end' ({end})")
    _require_model(policy, model)
    first = max(d for d in (start, cursor) if d is not None) if (start or cursor) else None
    rows = load_regimes(
        connection, rule_set_version=rule_set.version, start=first, end=end, limit=limit + 1
    )
    if rows.empty and stored_span(connection, rule_set) is None:
        raise _no_regimes(rule_set)
    next_cursor = rows.index[limit].date() if len(rows) > limit else None
    rows = rows.iloc[:limit]
    outputs = (
        _model_outputs(connection, model, rows.index[0].date(), rows.index[-1].date())
        if len(rows)
        else _model_outputs(connection, ModelSlot(), dt.date.min, dt.date.min)
    )
    model_regime = outputs["regime"].reindex(rows.index)
    chosen = apply_policy(rows, model_regime, policy=policy, mapping=mapping, rule_set=rule_set)
    p_distressed = outputs["p_distressed"].reindex(rows.index)
    items = [
        RegimeRow(
            date=day.date(),
            regime=_text(chosen.at[day, "regime"]),
            exposure=_number(chosen.at[day, "exposure"]),
            votes=int(row.votes),
            available=int(row.available),
            trend_state=_text(row.trend_state),
            trend_value=_number(row.trend_value),
            volatility_state=_text(row.volatility_state),
            volatility_value=_number(row.volatility_value),
            credit_state=_text(row.credit_state),
            credit_value=_number(row.credit_value),
            model_regime=None if math.isnan(model_regime[day]) else int(model_regime[day]),
            p_distressed=_number(p_distressed[day]),
        )
        for day, row in zip(rows.index, rows.itertuples(index=False), strict=True)
    ]
    return RegimePage(
        policy=policy,
        mapping=mapping if policy is Policy.MODEL else None,
        rule_set=rule_set.version,
        model_version=model.version if model.loaded else None,
        count=len(items),
        next_cursor=next_cursor,
        items=items,
    )


def page_as_csv(page: RegimePage) -> str:
    """The page's rows as CSV (header: RegimeRow's fields; empty cells for null)."""
    columns = list(RegimeRow.model_fields)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for item in page.items:
        values = item.model_dump(mode="json")
        writer.writerow({k: "" if values[k] is None else values[k] for k in columns})
    return buffer.getvalue()


# --- readiness -----------------------------------------------------------------


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
        checks["data"] = _guarded(
            lambda: _data_check(engine, settings, rule_set, calendar, now)
        )
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
        detail=f"schema at {current}, migrations head is {schema_head}: run `deepregime db upgrade`",
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
        return CheckResult(ok=False, required=True, detail=str(_no_regimes(rule_set)))
    expected = calendar.expected_last_session(now)
    lag = calendar.sessions_between(span[1], expected)
    detail = (
        f"as of {span[1]}, {lag} session(s) behind {expected} "
        f"(allowed {settings.max_data_lag_days})"
    )
    return CheckResult(ok=lag <= settings.max_data_lag_days, required=True, detail=detail)
