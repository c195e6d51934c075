"""What a regime means: how long its spells last, what it turns into, and what the
market did while it was held.

Pure computation on one history of daily regime labels (None: unknown that day) and
the traded asset's closes. Returns are attributed as the backtest holds them: the
regime decided at the close of day t is held over the next day's return (lag 1,
backtest.engine.held_positions), so no day's statistics use what its label did not know.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from backtest.metrics import annualised_return, annualised_volatility, max_drawdown


def spells(labels: pd.Series) -> pd.DataFrame:
    """Runs of one label on consecutive days: ``regime``, ``start``, ``end``, ``days``.
    An unknown day (None/NaN) ends a run and starts none."""
    known = labels.notna().to_numpy()
    values = labels.astype(object).where(labels.notna(), None).to_numpy()
    boundary = np.ones(len(values), dtype=bool)
    boundary[1:] = (values[1:] != values[:-1]) | ~known[:-1]
    starts = np.flatnonzero(boundary & known)
    rows = []
    for first in starts:
        last = first
        while last + 1 < len(values) and known[last + 1] and values[last + 1] == values[first]:
            last += 1
        rows.append((values[first], labels.index[first], labels.index[last], last - first + 1))
    return pd.DataFrame(rows, columns=["regime", "start", "end", "days"])


def transitions(labels: pd.Series, names: list[str]) -> dict[str, dict[str, Any]]:
    """Day-to-day moves between known labels: counts and each row's shares (the chance
    that a day of one regime is followed by a day of each)."""
    today = labels.iloc[:-1].to_numpy(dtype=object)
    tomorrow = labels.iloc[1:].to_numpy(dtype=object)
    both = pd.notna(today) & pd.notna(tomorrow)
    counts = pd.crosstab(
        pd.Categorical(today[both], categories=names),
        pd.Categorical(tomorrow[both], categories=names),
        dropna=False,
    ).reindex(index=names, columns=names, fill_value=0)
    result: dict[str, dict[str, Any]] = {}
    for name in names:
        row = counts.loc[name]
        total = int(row.sum())
        result[name] = {
            "count": {to: int(row[to]) for to in names},
            "probability": {to: (float(row[to]) / total if total else None) for to in names},
        }
    return result


def _number(value: Any) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def regime_statistics(
    labels: pd.Series, closes: pd.Series, names: list[str], *, lag: int = 1
) -> dict[str, Any]:
    """Spells, transitions, the current spell and the market inside each regime.

    ``labels``: regime per trading day (index ascending); ``closes``: the traded
    asset's adjusted closes, any calendar (read on the labels' days)."""
    returns = closes.reindex(labels.index).pct_change(fill_method=None)
    held = labels.shift(lag)  # the label in force over each day's return
    runs = spells(labels)
    known_days = int(labels.notna().sum())
    per_regime: dict[str, Any] = {}
    for name in names:
        own = runs[runs["regime"] == name]["days"]
        in_regime = returns[(held == name).to_numpy()].dropna().to_numpy()
        per_regime[name] = {
            "days": int((labels == name).sum()),
            "share_of_days": float((labels == name).sum()) / known_days if known_days else None,
            "spells": len(own),
            "mean_days": float(own.mean()) if len(own) else None,
            "median_days": float(own.median()) if len(own) else None,
            "longest_days": int(own.max()) if len(own) else None,
            "market": {
                "days_held": len(in_regime),
                "annualised_return": _number(annualised_return(in_regime))
                if len(in_regime)
                else None,
                "annualised_volatility": (
                    _number(annualised_volatility(in_regime)) if len(in_regime) > 1 else None
                ),
                "max_drawdown": _number(max_drawdown(in_regime)) if len(in_regime) else None,
            },
        }
    current = None
    if len(runs) and runs.iloc[-1]["end"] == labels.index[-1]:
        last = runs.iloc[-1]
        current = {
            "regime": last["regime"],
            "since": _day(last["start"]),
            "days": int(last["days"]),
        }
    return {
        "start": _day(labels.index[0]) if len(labels) else None,
        "end": _day(labels.index[-1]) if len(labels) else None,
        "days": len(labels),
        "known_days": known_days,
        "regimes": per_regime,
        "transitions": transitions(labels, names),
        "current_spell": current,
    }


def _day(value: Any) -> dt.date:
    return pd.Timestamp(value).date()
