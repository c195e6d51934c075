"""Made-up inputs for backtest tests: seeded closes -> features -> BacktestInputs."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pytest

from backtest.runner import BacktestInputs
from core.features import SPY, compute_features
from tests.conftest import make_closes


def inputs_from_closes(
    closes: Mapping[str, pd.Series],
    cash_rate: pd.Series | None = None,
    model_outputs: pd.DataFrame | None = None,
) -> BacktestInputs:
    features = compute_features(closes)
    return BacktestInputs(
        features=features,
        asset_close=closes[SPY],
        cash_rate=None if cash_rate is None else cash_rate.reindex(features.index),
        cash_rate_source=None if cash_rate is None else "test",
        model_outputs=model_outputs,
    )


@pytest.fixture(scope="module")
def synthetic_inputs() -> BacktestInputs:
    """600 business days of seeded random-walk closes for the five feature inputs."""
    return inputs_from_closes(make_closes(n_days=600, seed=11))
