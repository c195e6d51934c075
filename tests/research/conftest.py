"""Made-up inputs for sweep tests: seeded closes over about six years, VIX3M missing
for the first 150 days (so the volatility filter is unavailable there); and a database
holding about four years of made-up closes run through the daily cycle."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from backtest.runner import BacktestInputs, run_backtest
from backtest.schemas import BacktestRequest, EquitySampling
from tests.app.conftest import load_market, write_csv_folder
from tests.backtest.conftest import inputs_from_closes
from tests.conftest import make_closes

MARKET_LAST_DAY = dt.date(2014, 3, 20)


def sweep_inputs(n_days: int = 1500, seed: int = 21) -> BacktestInputs:
    closes = make_closes(n_days=n_days, seed=seed, start="2005-01-03")
    closes["^VIX3M"] = closes["^VIX3M"].iloc[150:]
    return inputs_from_closes(closes)


@pytest.fixture(scope="module")
def inputs() -> BacktestInputs:
    return sweep_inputs()


@pytest.fixture
def market_url(database_url: str, tmp_path: Path) -> str:
    """About four years (2010-01 .. 2014-03) of made-up closes run through the daily cycle."""
    days = pd.bdate_range(end=MARKET_LAST_DAY, periods=1100, name="date")
    closes = make_closes(n_days=1100, seed=3, start=str(days[0].date()))
    frame = pd.DataFrame({symbol: series.to_numpy() for symbol, series in closes.items()}, days)
    load_market(database_url, write_csv_folder(tmp_path / "market", frame), today=MARKET_LAST_DAY)
    return database_url


def single_backtest(inputs: BacktestInputs, variant, start: dt.date, end: dt.date):  # type: ignore[no-untyped-def]
    """One sweep variant run as a single backtest over [start, end] (backtest.runner)."""
    request = BacktestRequest(
        strategies=[variant.config()],
        start=start,
        end=end,
        cost_bps=variant.cost_bps,
        lag=variant.lag,
        equity_sampling=EquitySampling.NONE,
        store=False,
    )
    return run_backtest(request, inputs)
