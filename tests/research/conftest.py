"""Made-up inputs for sweep tests: seeded closes over about six years, VIX3M missing
for the first 150 days (so the volatility filter is unavailable there)."""

from __future__ import annotations

import pytest

from backtest.runner import BacktestInputs
from tests.backtest.conftest import inputs_from_closes
from tests.conftest import make_closes


def sweep_inputs(n_days: int = 1500, seed: int = 21) -> BacktestInputs:
    closes = make_closes(n_days=n_days, seed=seed, start="2005-01-03")
    closes["^VIX3M"] = closes["^VIX3M"].iloc[150:]
    return inputs_from_closes(closes)


@pytest.fixture(scope="module")
def inputs() -> BacktestInputs:
    return sweep_inputs()
