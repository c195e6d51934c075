"""Regime statistics on hand-made histories whose answers are counted by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from backtest.regime_stats import regime_statistics, spells

NAMES = ["risk-on", "caution", "risk-off"]
ON, CA, OFF = NAMES


def _labels(values: list[str | None]) -> pd.Series:
    days = pd.bdate_range("2024-01-01", periods=len(values))
    return pd.Series(values, index=days, dtype=object)


def test_spells_are_runs_and_an_unknown_day_breaks_them():
    runs = spells(_labels([ON, ON, CA, CA, CA, None, CA, OFF]))
    assert runs["regime"].tolist() == [ON, CA, CA, OFF]
    assert runs["days"].tolist() == [2, 3, 1, 1]
    assert runs["start"].iloc[1].date() == dt.date(2024, 1, 3)


def test_durations_transitions_and_the_current_spell():
    labels = _labels([ON, ON, ON, CA, CA, ON, OFF, OFF, OFF, OFF])
    closes = pd.Series(100.0, index=labels.index)
    stats = regime_statistics(labels, closes, NAMES)
    on = stats["regimes"][ON]
    assert (on["days"], on["spells"], on["longest_days"]) == (4, 2, 3)
    assert on["mean_days"] == 2.0 and on["median_days"] == 2.0
    assert stats["regimes"][CA]["spells"] == 1 and stats["regimes"][CA]["mean_days"] == 2.0
    # Moves from risk-on days: stays twice (day 1->2, 2->3), to caution once, to risk-off once.
    moves = stats["transitions"][ON]
    assert moves["count"] == {ON: 2, CA: 1, OFF: 1}
    assert moves["probability"][ON] == pytest.approx(0.5)
    assert stats["transitions"][OFF]["count"] == {ON: 0, CA: 0, OFF: 3}
    assert stats["current_spell"] == {"regime": OFF, "since": dt.date(2024, 1, 9), "days": 4}


def test_market_returns_are_those_held_at_the_next_close():
    # The caution label of day 2 holds day 3's +10 %; day 3's risk-on holds day 4's -50 %.
    labels = _labels([ON, ON, CA, ON, ON])
    closes = pd.Series([100.0, 100.0, 100.0, 110.0, 55.0], index=labels.index)
    stats = regime_statistics(labels, closes, NAMES)
    caution = stats["regimes"][CA]["market"]
    assert caution["days_held"] == 1
    assert caution["annualised_return"] == pytest.approx(1.10**252 - 1)
    assert caution["max_drawdown"] == 0.0
    risk_on = stats["regimes"][ON]["market"]
    # Held by risk-on: day 0 -> 1 and 1 -> 2 (0 %), day 3 -> 4 (-50 %); 2 -> 3 is caution's.
    assert risk_on["days_held"] == 3
    assert risk_on["max_drawdown"] == pytest.approx(-0.5)
    daily = np.array([0.0, 0.0, -0.5])
    assert risk_on["annualised_volatility"] == pytest.approx(daily.std(ddof=1) * math.sqrt(252))
    assert stats["regimes"][OFF]["market"]["days_held"] == 0
    assert stats["regimes"][OFF]["market"]["annualised_return"] is None
