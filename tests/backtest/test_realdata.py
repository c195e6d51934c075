"""The published-framework reproduction on real data (../shared/data/market), checked
against a second, deliberately plain computation: the csv module and a loop over days
applying the published thresholds by hand. Skipped when the data folder is absent."""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from backtest.published import (
    COMBINED,
    CREDIT_ONLY,
    TREND_ONLY,
    VOLATILITY_ONLY,
    published_framework_request,
)
from backtest.runner import BacktestInputs, BacktestRun, run_backtest
from core.features import compute_features

pytestmark = pytest.mark.realdata

FIRST_DAY = dt.date(2006, 1, 3)
LAST_DAY = dt.date(2024, 12, 31)


# --- the engine's path: pandas readers -> core features -> runner -----------------------


def _yfinance_series(path: Path) -> pd.Series:
    table = pd.read_csv(path, skiprows=3, header=None, usecols=[0, 1], names=["date", "adj"])
    return pd.Series(
        table["adj"].to_numpy(float), index=pd.DatetimeIndex(pd.to_datetime(table["date"]))
    )


def _cboe_series(path: Path) -> pd.Series:
    table = pd.read_csv(path)
    dates = pd.to_datetime(table["DATE"], format="%m/%d/%Y")
    return pd.Series(table["CLOSE"].to_numpy(float), index=pd.DatetimeIndex(dates))


@pytest.fixture(scope="module")
def reproduction(market_dir: Path) -> BacktestRun:
    closes = {
        "SPY": _yfinance_series(market_dir / "SPY.csv"),
        "HYG": _yfinance_series(market_dir / "HYG.csv"),
        "IEF": _yfinance_series(market_dir / "IEF.csv"),
        "^VIX": _cboe_series(market_dir / "VIX_History.csv"),
        "^VIX3M": _cboe_series(market_dir / "VIX3M_History.csv"),
    }
    features = compute_features(closes)
    return run_backtest(published_framework_request(), BacktestInputs(features, closes["SPY"]))


# --- the independent path: csv module and a loop over days ------------------------------


def _read_yfinance(path: Path) -> dict[dt.date, float]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))[3:]
    return {dt.date.fromisoformat(row[0][:10]): float(row[1]) for row in rows}


def _read_cboe(path: Path) -> dict[dt.date, float]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {dt.datetime.strptime(r["DATE"], "%m/%d/%Y").date(): float(r["CLOSE"]) for r in rows}


def _as_of(values: dict[dt.date, float], day: dt.date) -> float | None:
    """Last value dated on or up to 5 calendar days before ``day``."""
    for back in range(6):
        value = values.get(day - dt.timedelta(days=back))
        if value is not None:
            return value
    return None


def hand_decisions(market_dir: Path) -> tuple[list[dt.date], list[dict[str, bool | None]]]:
    """Per SPY day: each filter firing (True), clear (False) or without input (None)."""
    spy = _read_yfinance(market_dir / "SPY.csv")
    hyg, ief = _read_yfinance(market_dir / "HYG.csv"), _read_yfinance(market_dir / "IEF.csv")
    vix, vix3m = (
        _read_cboe(market_dir / "VIX_History.csv"),
        _read_cboe(market_dir / "VIX3M_History.csv"),
    )
    days = sorted(spy)
    closes = [spy[day] for day in days]
    credit_ratios: list[float | None] = []
    decisions = []
    for i, day in enumerate(days):
        trend = None
        if i >= 199:
            sma200 = sum(closes[i - 199 : i + 1]) / 200
            trend = closes[i] < sma200

        v, v3 = _as_of(vix, day), _as_of(vix3m, day)
        volatility = None if v is None or v3 is None else v / v3 > 1.0

        h, f = _as_of(hyg, day), _as_of(ief, day)
        credit_ratios.append(None if h is None or f is None else h / f)
        window = credit_ratios[-252:]
        credit = None
        if len(window) == 252 and None not in window:
            mean = sum(window) / 252
            std = math.sqrt(sum((x - mean) ** 2 for x in window) / 251)
            credit = (window[-1] - mean) / std < -1.0

        decisions.append({"trend": trend, "volatility": volatility, "credit": credit})
    return days, decisions


def hand_regime(states: dict[str, bool | None]) -> str | None:
    available = [state for state in states.values() if state is not None]
    if not available:
        return None
    votes = sum(available)  # unavailable filters abstain
    return "risk-on" if votes == 0 else "caution" if votes == 1 else "risk-off"


@pytest.fixture(scope="module")
def held_by_hand(market_dir: Path) -> list[dict[str, bool | None]]:
    """Decisions of the previous trading day, for every day of 2006-01-03..2024-12-31."""
    days, decisions = hand_decisions(market_dir)
    return [
        decisions[i - 1] for i, day in enumerate(days) if FIRST_DAY <= day <= LAST_DAY and i > 0
    ]


def test_period_is_2006_to_the_end_of_the_data(
    reproduction: BacktestRun, held_by_hand: list[dict[str, bool | None]]
) -> None:
    period = reproduction.result.period
    assert (period.start, period.end) == (FIRST_DAY, LAST_DAY)
    assert period.days == len(held_by_hand)


def test_combined_regime_distribution_matches_the_hand_loop(
    reproduction: BacktestRun, held_by_hand: list[dict[str, bool | None]]
) -> None:
    counts = Counter(hand_regime(states) for states in held_by_hand)
    assert None not in counts  # the trend filter has input on every day since 1993
    expected = {regime: counts[regime] / len(held_by_hand) for regime in counts}
    combined = {s.name: s for s in reproduction.result.strategies}[COMBINED]
    assert combined.regime_distribution == pytest.approx(expected, abs=1e-12)
    time = combined.metrics.time_invested
    assert (time.full, time.partial, time.none) == pytest.approx(
        (expected["risk-on"], expected["caution"], expected["risk-off"]), abs=1e-12
    )


@pytest.mark.parametrize(
    ("name", "filter_name"),
    [(TREND_ONLY, "trend"), (VOLATILITY_ONLY, "volatility"), (CREDIT_ONLY, "credit")],
)
def test_time_invested_per_filter_matches_the_hand_loop(
    reproduction: BacktestRun,
    held_by_hand: list[dict[str, bool | None]],
    name: str,
    filter_name: str,
) -> None:
    # Invested unless the filter fires; a filter without input abstains (no vote: invested).
    invested = sum(states[filter_name] is not True for states in held_by_hand)
    without_input = sum(states[filter_name] is None for states in held_by_hand)
    result = {s.name: s for s in reproduction.result.strategies}[name]
    assert result.metrics.time_invested.full == pytest.approx(
        invested / len(held_by_hand), abs=1e-12
    )
    assert result.days_without_input == without_input


def test_volatility_filter_is_unavailable_until_vix3m_starts(reproduction: BacktestRun) -> None:
    combined = {s.name: s for s in reproduction.result.strategies}[COMBINED]
    availability = {row.filter.value: row for row in combined.filters or []}
    assert availability["volatility"].first_available == dt.date(2009, 9, 18)
    assert availability["trend"].share_of_period == 1.0
    assert any("volatility filter unavailable" in note for note in reproduction.result.notes)
