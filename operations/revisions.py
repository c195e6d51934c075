"""Revisions of stored prices: told apart, judged against what was published, recorded.

When a new file changes the stored price of a day already stored, the change
is one of:

- a **rescaling**: every stored adjusted close of an ETF from the file's first day
  on moved down by one small factor (a dividend back-adjustment), the file's
  earliest overlapping rows included. The factor is applied to the whole stored
  series before that day too, so returns stay continuous; ratios, returns and
  z-scores do not move, so it is applied and recorded. A drop in only the latest
  rows, the earlier ones unchanged, is no dividend: it is a correction;
- a **correction**: anything else. Applied and recorded when it alters no
  published regime or exposure; otherwise held (not applied, the update exits
  non-zero naming it) until the operator reruns with ``--accept-revisions``.

``classify`` and ``altered_answers`` are pure; the database is touched only
by ``record_revision`` and ``list_revisions``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, insert, select

from core.enums import Policy
from core.features import FEATURE_INPUT_SYMBOLS, compute_features
from core.rules import RuleSet, compute_regimes
from core.rulesets import RuleSetDefinition
from operations.answers import ModelMappingName, apply_policy
from operations.models import ModelSlot
from store.repository import utcnow
from store.sources import SeriesKind, kind_for_symbol
from store.tables import price_revisions

# A rescaling moves every changed close by the same factor, up to price rounding.
RESCALE_TOLERANCE = 1e-6
# A back-adjustment lowers earlier adjusted closes by the distribution's share of
# the price (a few tenths of a percent a month or quarter for these ETFs); more
# than 5% in one go is treated as a correction, not a dividend. Splits do not
# show here: adjusted closes are split-adjusted before and after.
MAX_DISTRIBUTION = 0.05


@dataclass(frozen=True)
class Revision:
    """The changes one file brings to one symbol's stored days."""

    symbol: str
    kind: str  # "rescale" | "correction"
    first_date: dt.date
    last_date: dt.date
    days: int
    old_adj_close: float  # on first_date
    new_adj_close: float
    factor: float | None  # new / old, for a rescaling
    max_change: float  # the largest relative change of one day's adjusted close, signed

    def describe(self) -> str:
        what = (
            f"rescaled by {self.factor:.6f} ({self.factor - 1.0:+.2%})"
            if self.kind == "rescale" and self.factor is not None
            else f"largest change {self.max_change:+.2%}"
        )
        return (
            f"{self.symbol}: {self.days} stored day(s) revised from {self.first_date} "
            f"to {self.last_date} ({self.kind}, {what}; {self.first_date}: "
            f"{self.old_adj_close:g} -> {self.new_adj_close:g})"
        )


def classify(symbol: str, changes: pd.DataFrame, *, overlapping_days: int) -> Revision:
    """Tell a rescaling from a correction.

    ``changes``: index date, ``old_adj_close`` and ``new_adj_close`` per changed day
    (as store.ingest holds them back). ``overlapping_days``: how many days were stored
    from the file's first day on (before this update): its whole overlap with stored
    history. A rescaling is an adjusted ETF series whose every one of those days moved
    down by one factor of at most MAX_DISTRIBUTION: how a back-adjustment for a
    dividend looks in a file that starts anywhere in the past (a download from the
    last stored day overlaps one day). When the file's earliest overlapping rows are
    unchanged, no one factor explains the overlap: a correction. An index level (VIX)
    is never rescaled. ``max_change`` keeps its sign: a fall is negative.
    """
    old = changes["old_adj_close"].to_numpy(float)
    new = changes["new_adj_close"].to_numpy(float)
    ratio = new / old
    factor = float(np.median(ratio))
    change = ratio - 1.0
    is_rescale = (
        kind_for_symbol(symbol) is SeriesKind.ETF
        and len(changes) == overlapping_days
        and 1.0 - MAX_DISTRIBUTION <= factor < 1.0
        and bool(np.all(np.abs(ratio / factor - 1.0) <= RESCALE_TOLERANCE))
    )
    days = changes.index
    return Revision(
        symbol=symbol,
        kind="rescale" if is_rescale else "correction",
        first_date=days.min().date(),
        last_date=days.max().date(),
        days=len(days),
        old_adj_close=float(old[0]),
        new_adj_close=float(new[0]),
        factor=factor if is_rescale else None,
        max_change=float(change[np.argmax(np.abs(change))]),
    )


def _with_changes(
    closes: Mapping[str, pd.Series], symbol: str, changes: pd.DataFrame
) -> dict[str, pd.Series]:
    revised = dict(closes)
    series = revised[symbol].copy()
    series.loc[changes.index] = changes["new_adj_close"].to_numpy(float)
    revised[symbol] = series
    return revised


def altered_answers(
    *,
    closes: Mapping[str, pd.Series],
    symbol: str,
    changes: pd.DataFrame,
    published: Mapping[tuple[dt.date, str], Mapping[str, Any]],
    rule_set: RuleSet,
    model: ModelSlot,
    by_name: Mapping[str, RuleSetDefinition] | None = None,
) -> list[str]:
    """The published answers (``"<day> <policy>: <old> -> <new>"``) that applying
    ``changes`` to ``symbol`` would alter: the preset's under every policy, and those of
    the rule sets published by name (``by_name``: name -> definition, ledger policy
    ``rule_set:NAME``). Pure: recomputes features, regimes and, when a model serves, its
    outputs on the revised series in memory (``closes`` holds every symbol read)."""
    by_name = dict(by_name or {})
    read = set(FEATURE_INPUT_SYMBOLS) | {s for d in by_name.values() for s in d.symbols}
    if symbol not in read or not published:
        return []
    revised = _with_changes(closes, symbol, changes)
    features = compute_features({s: revised[s] for s in FEATURE_INPUT_SYMBOLS if s in revised})
    table = compute_regimes(features, rule_set)
    named: dict[str, pd.DataFrame] = {}

    def by_name_table(name: str) -> pd.DataFrame:
        if name not in named:
            definition = by_name[name]
            inputs = {s: revised[s] for s in definition.closes_needed() if s in revised}
            named[name] = compute_regimes(features, definition, inputs)
        return named[name]

    days = sorted({day for day, _ in published})
    first = pd.Timestamp(days[0])
    model_regime = pd.Series(np.nan, index=table.index)
    if model.predictor is not None:
        window = model.predictor.card.window
        start = max(0, int(table.index.searchsorted(first)) - window + 1)
        outputs = model.predictor.predict_daily(features.iloc[start:])
        model_regime = outputs["regime"].reindex(table.index)
    altered = []
    for (day, key), body in sorted(published.items()):
        stamp = pd.Timestamp(day)
        if stamp not in table.index:
            continue
        policy_name, _, mapping_name = key.partition(":")
        if policy_name == "rule_set":
            if mapping_name not in by_name:
                continue  # no longer published by name
            answer = by_name_table(mapping_name).loc[stamp, ["regime", "exposure"]]
        else:
            answer = apply_policy(
                table.loc[[stamp]],
                model_regime.loc[[stamp]],
                policy=Policy(policy_name),
                mapping=ModelMappingName(mapping_name or "filter"),
                rule_set=rule_set,
            ).iloc[0]
        new_regime = None if pd.isna(answer["regime"]) else str(answer["regime"])
        new_exposure = None if pd.isna(answer["exposure"]) else float(answer["exposure"])
        old_exposure = body.get("exposure")
        same_exposure = (new_exposure is None and old_exposure is None) or (
            new_exposure is not None
            and old_exposure is not None
            and abs(new_exposure - old_exposure) <= 1e-12
        )
        if new_regime != body.get("regime") or not same_exposure:
            altered.append(
                f"{day} {key}: {body.get('regime')} {old_exposure} -> {new_regime} {new_exposure}"
            )
    return altered


def record_revision(
    connection: Connection, *, revision: Revision, status: str, run_id: int | None
) -> None:
    """Append the revision with its fate: ``applied``, ``accepted`` or ``held``."""
    connection.execute(
        insert(price_revisions).values(
            run_id=run_id,
            symbol=revision.symbol,
            first_date=revision.first_date,
            last_date=revision.last_date,
            days=revision.days,
            old_adj_close=revision.old_adj_close,
            new_adj_close=revision.new_adj_close,
            factor=revision.factor,
            max_change=revision.max_change,
            kind=revision.kind,
            status=status,
            recorded_at=utcnow(),
        )
    )


def list_revisions(
    connection: Connection,
    *,
    symbol: str | None = None,
    status: str | None = None,
    day: dt.date | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Recorded revisions, newest first; ``day`` keeps those whose span covers it."""
    statement = select(price_revisions).order_by(price_revisions.c.id.desc()).limit(limit)
    if symbol is not None:
        statement = statement.where(price_revisions.c.symbol == symbol)
    if status is not None:
        statement = statement.where(price_revisions.c.status == status)
    if day is not None:
        statement = statement.where(
            and_(price_revisions.c.first_date <= day, price_revisions.c.last_date >= day)
        )
    return [dict(row) for row in connection.execute(statement).mappings()]


def is_revised(connection: Connection, *, day: dt.date) -> bool:
    """Whether an applied correction of a feature input covers ``day`` (its answer may
    differ from what was first published; ``as_known_at`` reads the original)."""
    statement = (
        select(price_revisions.c.id)
        .where(
            price_revisions.c.kind == "correction",
            price_revisions.c.status.in_(("applied", "accepted")),
            price_revisions.c.symbol.in_(list(FEATURE_INPUT_SYMBOLS)),
            price_revisions.c.first_date <= day,
            price_revisions.c.last_date >= day,
        )
        .limit(1)
    )
    return connection.execute(statement).first() is not None
