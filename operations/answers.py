"""A day's answer, read from stored rows only: the one definition every reader uses.

``/regime/today`` (through the publication ledger), ``/regime/{day}``,
``/regimes``, the publication step of the daily cycle and the dashboard all get
a day's regime and exposure from ``regime_report`` / ``regime_history`` here;
nothing on a read path scores the model: a day without a stored model output is
reported as such (the daily cycle stores an output for every new day).

Policies on one day (``rules`` is always computed and reported beside):
- ``rules``: the stored regime row of the configured rule set.
- ``model``: the classifier's stored regime (0 calm, 1 distressed) mapped by
  core.policies.model_exposure with the ``filter`` or ``leveraged`` mapping;
  named ``calm``/``distressed`` as in the backtest's reports.
- ``ensemble``: core.policies.ensemble_regimes (the model's distressed call is
  one more vote; a missing model output abstains).
"""

from __future__ import annotations

import datetime as dt
import math
from enum import StrEnum
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, func, select

from backtest.signals import MODEL_REGIME_LABELS, label_codes
from backtest.strategies import MODEL_MAPPINGS
from core.enums import FilterName, FilterState, Policy, Regime
from core.errors import ConfigError, ModelUnavailableError, NoDataError, NotFoundError
from core.policies import ensemble_regimes, model_exposure
from core.rules import RuleSet
from inference.card import ModelCard
from inference.in_sample import ModelHistory
from operations.markets import current_universe
from operations.models import ModelSlot
from store.repository import load_model_outputs, load_regimes, load_served_model_outputs
from store.tables import regimes


class ModelMappingName(StrEnum):
    """Exposure mapping of the classifier under policy ``model`` (core.policies presets)."""

    FILTER = "filter"  # calm 100%, distressed 0%
    LEVERAGED = "leveraged"  # calm 150%, distressed 30%


class FilterReading(BaseModel):
    state: FilterState
    value: float | None = Field(description="What the filter reads (null when unavailable).")
    threshold: float
    detail: str = Field(description="How the value is computed.")


class RulesPart(BaseModel):
    rule_set: str = Field(description="Rule set version (name and parameter fingerprint).")
    votes: int = Field(
        description="Filters firing (plus unavailable ones if they count as firing)."
    )
    available: int = Field(description="Filters whose input exists on that day.")
    enabled: int = Field(description="Filters in the rule set.")
    regime: Regime | None
    exposure: float | None
    filters: dict[FilterName, FilterReading]


class ModelPart(BaseModel):
    available: bool
    version: str | None = None
    regime: int | None = Field(default=None, description="0 calm, 1 distressed.")
    p_distressed: float | None = Field(
        default=None, description="Calibrated probability of the model's target (see target)."
    )
    target: str | None = Field(
        default=None,
        description="What p_distressed is the probability of: 'label' (distressed `horizon` "
        "sessions ahead), 'distress-within' or 'change-within' the next `horizon` sessions.",
    )
    horizon: int | None = Field(default=None, description="Sessions ahead; 0: a now-cast.")
    in_sample: bool | None = Field(
        default=None, description="True when the day's data shaped the model (not a forecast)."
    )
    out_of_sample: dict[str, Any] | None = Field(
        default=None,
        description="The version's out-of-sample summary: when it ships a walk-forward "
        "history, that history's Brier score, Brier skill (climatology, persistence), ECE and "
        "ROC AUC, its days, the version's in-sample cut-off and calibration method; else its "
        "held-out test split's scores.",
    )
    reason: str | None = Field(default=None, description="Why the model part is unavailable.")


class RegimeReport(BaseModel):
    """The answer for one day, as a trading system reads it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2024-12-31",
                    "stale": False,
                    "expected_as_of": "2024-12-31",
                    "regime": "caution",
                    "exposure": 0.5,
                    "policy": "rules",
                    "mapping": None,
                    "rules": {
                        "rule_set": "published-0c1efb7f",
                        "votes": 1,
                        "available": 3,
                        "enabled": 3,
                        "regime": "caution",
                        "exposure": 0.5,
                        "filters": {
                            "trend": {
                                "state": "clear",
                                "value": 1.07,
                                "threshold": 1.0,
                                "detail": "close / SMA200",
                            },
                            "volatility": {
                                "state": "firing",
                                "value": 1.04,
                                "threshold": 1.0,
                                "detail": "VIX / VIX3M",
                            },
                            "credit": {
                                "state": "clear",
                                "value": -0.3,
                                "threshold": -1.0,
                                "detail": "HYG/IEF z-score, 252d",
                            },
                        },
                    },
                    "model": {
                        "available": True,
                        "version": "2024-12-31-a1b2c3",
                        "regime": 0,
                        "p_distressed": 0.18,
                        "reason": None,
                    },
                }
            ]
        }
    )

    market: str | None = Field(
        default=None, description="The market the exposure is for (GET /markets)."
    )
    as_of: dt.date = Field(description="Trading day of the data the answer is computed from.")
    stale: bool | None = Field(
        default=None,
        description="True when as_of is older than the last NYSE session closed by now "
        "(only on /regime/today).",
    )
    expected_as_of: dt.date | None = Field(
        default=None, description="The last NYSE session closed by now (only on /regime/today)."
    )
    regime: str | None = Field(
        description="risk-on | caution | risk-off (rules, ensemble) or calm | distressed "
        "(model); null when the policy has no input on that day."
    )
    exposure: float | None
    policy: Policy
    mapping: ModelMappingName | None = Field(
        default=None, description="Exposure mapping used under policy 'model'."
    )
    rules: RulesPart
    model: ModelPart
    publication_id: int | None = Field(
        default=None,
        description="The ledger entry this answer was published as (GET /publications).",
    )
    published_at: dt.datetime | None = Field(default=None, description="When it was published.")
    revised: bool | None = Field(
        default=None,
        description="True when a stored input price of this day was corrected after it was "
        "first stored (GET /revisions); ?as_known_at= gives what was published before.",
    )


class RegimeRow(BaseModel):
    """One day of history, flat (the CSV columns are these fields)."""

    date: dt.date
    regime: str | None = Field(description="Under the requested policy (see RegimeReport).")
    exposure: float | None
    votes: int
    available: int
    trend_state: FilterState | None = None
    trend_value: float | None = None
    volatility_state: FilterState | None = None
    volatility_value: float | None = None
    credit_state: FilterState | None = None
    credit_value: float | None = None
    model_regime: int | None = None
    p_distressed: float | None = None
    in_sample: bool | None = Field(
        default=None,
        description="True when the model's output for the day comes from a version trained "
        "on it (no walk-forward output there); null without a model output.",
    )


class RegimePage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "policy": "rules",
                    "rule_set": "published-0c1efb7f",
                    "model_version": None,
                    "count": 1,
                    "next_cursor": "2024-01-03",
                    "items": [
                        {
                            "date": "2024-01-02",
                            "regime": "risk-on",
                            "exposure": 1.0,
                            "votes": 0,
                            "available": 3,
                            "trend_state": "clear",
                            "trend_value": 1.08,
                            "volatility_state": "clear",
                            "volatility_value": 0.87,
                            "credit_state": "clear",
                            "credit_value": 0.4,
                            "model_regime": None,
                            "p_distressed": None,
                        }
                    ],
                }
            ]
        }
    )

    market: str | None = Field(default=None, description="The market (GET /markets).")
    policy: Policy
    mapping: ModelMappingName | None = None
    rule_set: str
    model_version: str | None
    count: int
    next_cursor: dt.date | None = Field(
        description="Pass as ?cursor= to get the next page; null on the last page."
    )
    items: list[RegimeRow]


def json_number(value: Any) -> float | None:
    """Python float, or None for NULL/NaN (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def json_text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def no_regimes(rule_set: RuleSet) -> NoDataError:
    return NoDataError(
        f"no regimes computed yet for rule set {rule_set.version}: run `deepregime update` "
        "(or POST /admin/refresh)"
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


def model_outputs(
    connection: Connection,
    model: ModelSlot,
    start: dt.date,
    end: dt.date,
    history: ModelHistory | None = None,
) -> pd.DataFrame:
    """Stored outputs of the serving model over [start, end]; empty when none serves.
    ``history`` None: the version's own outputs (one day's answer); else the model
    history it names (store.repository.load_served_model_outputs)."""
    if not model.loaded or model.version is None:
        return _no_outputs()
    if history is None:
        return load_model_outputs(connection, model_version=model.version, start=start, end=end)
    return load_served_model_outputs(
        connection, model_version=model.version, start=start, end=end, history=history
    )


def _out_of_sample_summary(card: ModelCard) -> dict[str, Any] | None:
    """The walk-forward summary without its per-fold list, else the test split's."""
    if card.walk_forward is None:
        return card.out_of_sample
    return {k: v for k, v in card.walk_forward.items() if k != "folds"} | {
        "source": "walk-forward",
        "in_sample_until": card.sample_cutoff.isoformat(),
        "calibration": card.calibration.method.value if card.calibration else "none",
    }


def require_model(policy: Policy, model: ModelSlot) -> None:
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
            value=json_number(row[f"{name}_value"]),
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
        regime=json_text(row["regime"]),
        exposure=json_number(row["exposure"]),
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
            reason=f"no model output stored for {day.date()}: the {window} days of features "
            "ending on it are incomplete, or the day was not scored yet (run `deepregime update`)",
        )
    card = model.predictor.card if model.predictor is not None else None
    return ModelPart(
        available=True,
        version=model.version,
        regime=int(outputs.at[day, "regime"]),
        p_distressed=json_number(outputs.at[day, "p_distressed"]),
        target=card.target if card else None,
        horizon=card.horizon if card else None,
        in_sample=bool(card.in_sample(pd.DatetimeIndex([day]))[0]) if card else None,
        out_of_sample=_finite(_out_of_sample_summary(card)) if card else None,
    )


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (published bodies are strict JSON)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
    require_model(policy, model)
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
    outputs = model_outputs(connection, model, as_of.date(), as_of.date())
    chosen = apply_policy(
        rows,
        outputs["regime"],
        policy=policy,
        mapping=mapping,
        rule_set=rule_set,
    ).iloc[0]
    return RegimeReport(
        as_of=as_of.date(),
        regime=json_text(chosen["regime"]),
        exposure=json_number(chosen["exposure"]),
        policy=policy,
        mapping=mapping if policy is Policy.MODEL else None,
        rules=_rules_part(rows.iloc[0], rule_set),
        model=_model_part(outputs, model, as_of),
    )


# --- history ------------------------------------------------------------------


def history_rows(
    connection: Connection,
    *,
    version: str,
    start: dt.date | None,
    end: dt.date | None,
    cursor: dt.date | None,
    limit: int,
    descending: bool,
    latest: int | None,
) -> tuple[pd.DataFrame, dt.date | None]:
    """The stored regime rows of one history page of rule set ``version``, oldest first,
    and the next page's cursor. Days in [max(start, cursor), end], at most ``limit``;
    ``descending``: newest first, days in [start, min(end, cursor)], the next cursor the
    next older day; ``latest``: the ``latest`` most recent days in [start, end] (one
    page, no cursor). Every history (a preset's, a rule set's by name) pages so."""
    if start is not None and end is not None and start > end:
        raise ConfigError(f"query 'start' ({start}) must not be after 'end' ({end})")
    if latest is not None and cursor is not None:
        raise ConfigError("query 'latest' gives one page: it takes no 'cursor'")
    if latest is not None:
        limit = latest
    if descending or latest is not None:
        bounds = [d for d in (end, cursor if latest is None else None) if d is not None]
        rows = load_regimes(
            connection,
            rule_set_version=version,
            start=start,
            end=min(bounds) if bounds else None,
            limit=limit + 1,
            latest_first=True,
        )
    else:
        first = max(d for d in (start, cursor) if d is not None) if (start or cursor) else None
        rows = load_regimes(
            connection, rule_set_version=version, start=first, end=end, limit=limit + 1
        )
    more = len(rows) > limit and latest is None
    next_cursor = rows.index[limit].date() if more else None
    rows = rows.iloc[:limit]
    if descending or latest is not None:
        rows = rows.sort_index()  # read newest first; pages are built oldest first
    return rows, next_cursor


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
    descending: bool = False,
    latest: int | None = None,
    model_history: ModelHistory = ModelHistory.OUT_OF_SAMPLE,
) -> RegimePage:
    """Days in [max(start, cursor), end], oldest first, at most ``limit`` of them.

    ``descending``: newest first, days in [start, min(end, cursor)], and the next
    cursor is the next older day. ``latest``: the ``latest`` most recent days in
    [start, end] (in the order asked; one page, no cursor)."""
    require_model(policy, model)
    rows, next_cursor = history_rows(
        connection,
        version=rule_set.version,
        start=start,
        end=end,
        cursor=cursor,
        limit=limit,
        descending=descending,
        latest=latest,
    )
    if rows.empty and stored_span(connection, rule_set) is None:
        raise no_regimes(rule_set)
    outputs = (
        model_outputs(connection, model, rows.index[0].date(), rows.index[-1].date(), model_history)
        if len(rows)
        else _no_outputs()
    )
    model_regime = outputs["regime"].reindex(rows.index)
    chosen = apply_policy(rows, model_regime, policy=policy, mapping=mapping, rule_set=rule_set)
    p_distressed = outputs["p_distressed"].reindex(rows.index)
    # Whether the model had trained on the day whose output it gave (NaN: no output).
    in_sample = (
        outputs["in_sample"].reindex(rows.index)
        if "in_sample" in outputs
        else pd.Series(float("nan"), index=rows.index)
    )
    # Whole columns to Python lists first: per-cell pandas lookups cost ~100x more.
    columns = {
        name: rows[name].tolist() if name in rows else [None] * len(rows)
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
            regime=json_text(regime),
            exposure=json_number(exposure),
            votes=int(votes),
            available=int(available),
            trend_state=json_text(trend_state),
            trend_value=json_number(trend_value),
            volatility_state=json_text(volatility_state),
            volatility_value=json_number(volatility_value),
            credit_state=json_text(credit_state),
            credit_value=json_number(credit_value),
            model_regime=None if math.isnan(model) else int(model),
            p_distressed=json_number(probability),
            in_sample=None if math.isnan(trained) or math.isnan(model) else bool(trained),
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
            trained,
        ) in zip(
            rows.index.date,
            chosen["regime"].tolist(),
            chosen["exposure"].tolist(),
            *columns.values(),
            model_regime.tolist(),
            p_distressed.tolist(),
            in_sample.astype(float).tolist(),
            strict=True,
        )
    ]
    if descending:
        items.reverse()
    return RegimePage(
        market=current_universe().default,
        policy=policy,
        mapping=mapping if policy is Policy.MODEL else None,
        rule_set=rule_set.version,
        model_version=model.version if model.loaded else None,
        count=len(items),
        next_cursor=next_cursor,
        items=items,
    )
