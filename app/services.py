"""What the handlers call: regime answers, history pages and model cards.

Each public function takes a Connection and keyword-only arguments, and returns
a schema from app.schemas (readiness, which must survive a dead database, is in
app.readiness).
The regime policies are core.policies' (one definition shared with the
backtest): this module only loads stored rows and applies them.

Policies on one day (``rules`` is always computed and reported beside):
- ``rules``: the stored regime row of the configured rule set.
- ``model``: the classifier's regime (0 calm, 1 distressed; stored, or scored on
  demand for a single day) mapped by core.policies.model_exposure with the
  ``filter`` or ``leveraged`` mapping; named ``calm``/``distressed`` as in the
  backtest's reports.
- ``ensemble``: core.policies.ensemble_regimes (the model's distressed call is
  one more vote; a missing model output abstains).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, func, select

from app.problems import ModelUnavailableError, NotFoundError
from app.schemas import (
    FilterReading,
    ModelDetail,
    ModelList,
    ModelMappingName,
    ModelPart,
    ModelSummary,
    RegimePage,
    RegimeReport,
    RegimeRow,
    RulesPart,
)
from app.state import ModelSlot
from backtest.signals import MODEL_REGIME_LABELS, label_codes
from backtest.strategies import MODEL_MAPPINGS
from core.enums import Policy
from core.errors import ConfigError, NoDataError
from core.policies import ensemble_regimes, model_exposure
from core.rules import RuleSet
from inference.card import ModelCard
from inference.registry import list_versions, read_card
from inference.versions import validate_version
from store.repository import load_features, load_model_outputs, load_regimes
from store.tables import regimes


def _number(value: Any) -> float | None:
    """Python float, or None for NULL/NaN (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def no_regimes(rule_set: RuleSet) -> NoDataError:
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
    rows: pd.DataFrame,
    model_regime: pd.Series,
    *,
    policy: Policy,
    mapping: ModelMappingName,
    rule_set: RuleSet,
) -> pd.DataFrame:
    """``regime`` (label or None) and ``exposure`` (NaN unknown) per day of ``rows``.

    ``rows`` are stored regime rows (votes, available, regime, exposure);
    ``model_regime`` is the classifier's 0/1 per day (NaN unknown), any index.
    """
    if policy is Policy.RULES:
        return rows.loc[:, ["regime", "exposure"]]
    model = model_regime.reindex(rows.index).astype(float)
    if policy is Policy.MODEL:
        return pd.DataFrame(
            {
                "regime": label_codes(model, MODEL_REGIME_LABELS),
                "exposure": model_exposure(model, MODEL_MAPPINGS[mapping.value]),
            },
            index=rows.index,
        )
    table = ensemble_regimes(rows["votes"], rows["available"], model, rule_set.table)
    return table.loc[:, ["regime", "exposure"]]


def _no_outputs() -> pd.DataFrame:
    return pd.DataFrame(
        {"regime": pd.Series(dtype=float), "p_distressed": pd.Series(dtype=float)},
        index=pd.DatetimeIndex([], name="date"),
    )


def _model_outputs(
    connection: Connection, model: ModelSlot, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Stored outputs of the serving model over [start, end]; empty when none serves."""
    if not model.loaded or model.version is None:
        return _no_outputs()
    return load_model_outputs(connection, model_version=model.version, start=start, end=end)


def _day_output(connection: Connection, model: ModelSlot, day: dt.date) -> pd.DataFrame:
    """The serving model's output for ``day``: stored, else scored now from stored features.

    Scoring reads the ``window`` feature rows ending on ``day`` (the same window the
    stored history would use), so a day the refresh has not scored yet still gets
    the model's answer. Empty when no model serves; NaN when the window is incomplete.
    """
    stored = _model_outputs(connection, model, day, day)
    if not stored.empty or model.predictor is None:
        return stored
    window = model.predictor.card.window
    # Enough calendar days to hold ``window`` sessions (5 in 7, plus holidays).
    since = day - dt.timedelta(days=window * 7 // 5 + 15)
    features = load_features(connection, start=since, end=day).tail(window)
    if features.empty:
        return stored
    return model.predictor.predict_daily(features).tail(1)


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
            reason=f"no model output for {day.date()}: the {window} days of features "
            "ending on it are incomplete",
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
        connection,
        rule_set_version=rule_set.version,
        start=day,
        end=day,
        limit=1,
        latest_first=True,
    )
    if rows.empty:
        span = stored_span(connection, rule_set)
        if span is None:
            raise no_regimes(rule_set)
        raise NotFoundError(
            f"no regime for {day}: not a trading day of the stored history ({span[0]} .. {span[1]})"
        )
    as_of = rows.index[0]
    outputs = _day_output(connection, model, as_of.date())
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
        raise no_regimes(rule_set)
    next_cursor = rows.index[limit].date() if len(rows) > limit else None
    rows = rows.iloc[:limit]
    outputs = (
        _model_outputs(connection, model, rows.index[0].date(), rows.index[-1].date())
        if len(rows)
        else _no_outputs()
    )
    model_regime = outputs["regime"].reindex(rows.index)
    chosen = apply_policy(rows, model_regime, policy=policy, mapping=mapping, rule_set=rule_set)
    p_distressed = outputs["p_distressed"].reindex(rows.index)
    # Whole columns to Python lists first: per-cell pandas lookups cost ~100x more.
    columns = {
        name: rows[name].tolist()
        for name in (
            "votes",
            "available",
            "trend_state",
            "trend_value",
            "volatility_state",
            "volatility_value",
            "credit_state",
            "credit_value",
        )
    }
    items = [
        RegimeRow(
            date=day,
            regime=_text(regime),
            exposure=_number(exposure),
            votes=int(votes),
            available=int(available),
            trend_state=_text(trend_state),
            trend_value=_number(trend_value),
            volatility_state=_text(volatility_state),
            volatility_value=_number(volatility_value),
            credit_state=_text(credit_state),
            credit_value=_number(credit_value),
            model_regime=None if math.isnan(model) else int(model),
            p_distressed=_number(probability),
        )
        for (
            day,
            regime,
            exposure,
            votes,
            available,
            trend_state,
            trend_value,
            volatility_state,
            volatility_value,
            credit_state,
            credit_value,
            model,
            probability,
        ) in zip(
            rows.index.date,
            chosen["regime"].tolist(),
            chosen["exposure"].tolist(),
            *columns.values(),
            model_regime.tolist(),
            p_distressed.tolist(),
            strict=True,
        )
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


# --- model cards -------------------------------------------------------------------


def _summary(card: ModelCard, model: ModelSlot) -> ModelSummary:
    return ModelSummary(
        version=card.version,
        active=card.version == model.version,
        loaded=model.loaded and card.version == model.version,
        created_at=card.created_at,
        training_period=card.training_period.model_dump(mode="json"),
        metrics=card.metrics,
    )


def list_models(*, models_dir: Path, model: ModelSlot) -> ModelList:
    """Every version in the registry folder, newest first, with the serving one marked."""
    cards = [read_card(models_dir, version) for version in reversed(list_versions(models_dir))]
    return ModelList(
        active=model.version,
        loaded=model.loaded,
        reason=model.reason,
        models=[_summary(card, model) for card in cards],
    )


def model_detail(*, models_dir: Path, version: str, model: ModelSlot) -> ModelDetail:
    """The full card of one version; 422 for a malformed name, 404 when absent."""
    validate_version(version)
    if version not in list_versions(models_dir):
        raise NotFoundError(f"model version {version} not found under {models_dir}")
    card = read_card(models_dir, version)
    return ModelDetail(
        version=version,
        active=version == model.version,
        loaded=model.loaded and version == model.version,
        card=card.as_dict(),
    )
