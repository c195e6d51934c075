"""``GET /regimes/stats``: what a market's regimes mean, from the stored history.

Reads the regimes of the answer asked for (a rule set by name, or the default
market's preset under a policy) and the market's closes, and hands them to the pure
backtest.regime_stats. A continuous-score rule set also gets its latest score and
that score's percentile in its own history.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from backtest.regime_stats import regime_statistics
from backtest.signals import MODEL_REGIME_LABELS
from core.enums import Policy
from core.errors import ConfigError, NoDataError, NotFoundError
from core.rules import REGIME_ORDER, RuleSet
from inference.in_sample import ModelHistory
from operations.answers import ModelMappingName, apply_policy, model_outputs, require_model
from operations.markets import Market
from operations.models import ModelSlot
from operations.rule_sets import RegisteredRuleSet
from store.repository import load_closes, load_regimes


def regime_stats(
    connection: Connection,
    *,
    market: Market,
    item: RegisteredRuleSet | None,
    policy: Policy,
    mapping: ModelMappingName,
    rule_set: RuleSet,
    model: ModelSlot,
    start: dt.date | None,
    end: dt.date | None,
) -> dict[str, Any]:
    if start is not None and end is not None and start > end:
        raise ConfigError(f"query 'start' ({start}) must not be after 'end' ({end})")
    version = rule_set.version if item is None else item.version
    rows = load_regimes(connection, rule_set_version=version, start=start, end=end)
    if rows.empty:
        span = load_regimes(connection, rule_set_version=version, limit=1)
        if span.empty:
            raise NoDataError(f"no regimes stored for {version} yet: run `deepregime update`")
        raise NotFoundError(
            f"no regime of {version} between {start or 'the start'} and {end or 'the end'} "
            f"(its history starts on {span.index[0].date()})"
        )
    names = [regime.value for regime in REGIME_ORDER]
    labels = rows["regime"]
    if item is None and policy is not Policy.RULES:
        require_model(policy, model)
        first, last = rows.index[0].date(), rows.index[-1].date()
        outputs = model_outputs(connection, model, first, last, ModelHistory.OUT_OF_SAMPLE)
        chosen = apply_policy(
            rows,
            outputs["regime"].reindex(rows.index),
            policy=policy,
            mapping=mapping,
            rule_set=rule_set,
        )
        labels = chosen["regime"]
        if policy is Policy.MODEL:
            names = list(MODEL_REGIME_LABELS)
    closes = load_closes(connection, symbols=[market.symbol]).get(market.symbol)
    if closes is None:
        raise NoDataError(f"no closes stored for {market.symbol}: run `deepregime update`")
    stats = regime_statistics(labels.astype(object), closes, names)
    stats.update(
        market=market.id,
        symbol=market.symbol,
        rule_set=version,
        policy=policy.value if item is None else Policy.RULES.value,
    )
    if item is not None and item.definition.score is not None:
        stats["score"] = _score_percentile(rows["votes"])
    return stats


def _score_percentile(scores: pd.Series) -> dict[str, Any] | None:
    """The latest score and the share of the history's scores at or below it."""
    history = scores.to_numpy(dtype=float)
    history = history[np.isfinite(history)]
    if not len(history):
        return None
    latest = float(history[-1])
    return {"latest": latest, "percentile": float(np.mean(history <= latest))}
