"""Recompute derived tables from stored prices: features, then rule regimes.

Each step recomputes the whole history with the pure functions in core/ (fast:
well under a second) and writes only the rows that changed, so rerunning after
an ingest that brought nothing new writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection

from core.features import (
    FEATURE_COLUMNS,
    FEATURE_INPUT_SYMBOLS,
    FEATURE_SET_VERSION,
    compute_features,
)
from core.rules import RuleSet, compute_regimes
from core.rulesets import RuleSetDefinition
from store.repository import (
    REGIME_COLUMNS,
    changed_rows,
    load_closes,
    load_features,
    load_regimes,
    write_features,
    write_regimes,
)


@dataclass(frozen=True)
class RefreshResult:
    table: str
    rows: int  # rows in the recomputed history
    written: int  # rows inserted or changed
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    first_changed: pd.Timestamp | None = None  # earliest day written (None: nothing written)

    def summary(self) -> str:
        span = f"{self.first.date()} .. {self.last.date()}" if self.first is not None else "empty"
        return f"{self.table}: {self.rows} days ({span}), {self.written} written"


def _result(table: str, frame: pd.DataFrame, fresh: pd.DataFrame, written: int) -> RefreshResult:
    first = frame.index[0] if len(frame) else None
    last = frame.index[-1] if len(frame) else None
    first_changed = fresh.index.min() if len(fresh) else None
    return RefreshResult(table, len(frame), written, first, last, first_changed)


# Rolling windows look back at most 252 trading days (a year) in the feature set
# and in the rule presets; four calendar years of inputs before the first day to
# recompute leave a wide margin, so a recompute from there equals a full one.
WARM_UP = pd.Timedelta(days=4 * 366)


def _warm_up_start(since: pd.Timestamp | None) -> pd.Timestamp | None:
    return None if since is None else since - WARM_UP


def refresh_features(
    connection: Connection,
    *,
    closes: dict[str, pd.Series] | None = None,
    since: pd.Timestamp | None = None,
) -> RefreshResult:
    """Feature table from stored closes; writes new or changed days.

    ``since``: recompute only days from there on (inputs read from WARM_UP before
    it); None recomputes the whole history. ``closes``: the inputs when the caller
    already read them (from ``since - WARM_UP`` on, or all of them).
    """
    if closes is None:
        closes = load_closes(connection, symbols=FEATURE_INPUT_SYMBOLS, start=_warm_up_start(since))
    table = compute_features(closes).loc[since:]
    stored = load_features(connection, version=FEATURE_SET_VERSION, start=since)
    fresh = changed_rows(table, stored.reindex(columns=list(FEATURE_COLUMNS)))
    written = write_features(connection, table=fresh, version=FEATURE_SET_VERSION)
    return _result("features", table, fresh, written)


def regime_inputs(
    connection: Connection,
    rule_set: RuleSet | RuleSetDefinition,
    *,
    start: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """What a rule set reads: the stored features and the stored closes of any other
    symbol it needs (core.filters.filter_inputs aligns them), from ``start`` on."""
    features = load_features(connection, start=start)
    definition = rule_set.definition() if isinstance(rule_set, RuleSet) else rule_set
    symbols = definition.closes_needed()
    closes = load_closes(connection, symbols=symbols, start=start) if symbols else {}
    return features, closes


def refresh_regimes(
    connection: Connection,
    rule_set: RuleSet | RuleSetDefinition,
    *,
    since: pd.Timestamp | None = None,
) -> RefreshResult:
    """Rule regimes of ``rule_set`` (a preset or a rule set as data) from the stored
    features and closes; writes new or changed days (from ``since`` on, as for
    refresh_features), each filter's reading kept as data."""
    features, closes = regime_inputs(connection, rule_set, start=_warm_up_start(since))
    computed = compute_regimes(features, rule_set, closes)
    readings = [c for c in computed.columns if c.endswith(("_value", "_state"))]
    table = computed.reindex(columns=[*readings, *REGIME_COLUMNS]).loc[since:]
    stored = load_regimes(connection, rule_set_version=rule_set.version, start=since)
    fresh = changed_rows(table, stored)
    written = write_regimes(connection, table=fresh, rule_set_version=rule_set.version)
    return _result(f"regimes[{rule_set.version}]", table, fresh, written)
