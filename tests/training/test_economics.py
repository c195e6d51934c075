"""Economic value with costs on made-up returns whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.economics import (
    BUY_AND_HOLD,
    EconomicsConfig,
    economic_value,
    max_drawdown_rows,
    probability_exposures,
)

FAST = EconomicsConfig(n_resamples=200, n_permutations=99)


def _market(n: int = 750, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(rng.normal(0.0003, 0.01, n), index=pd.bdate_range("2015-01-01", periods=n))


def test_exposures_follow_the_calibrated_probability() -> None:
    p = pd.Series([0.1, 0.7, np.nan, 0.5])
    frame = probability_exposures(p, "m")
    np.testing.assert_array_equal(frame["m:filter"], [1.0, 0.0, np.nan, 0.0])
    np.testing.assert_array_equal(frame["m:leveraged"], [1.5, 0.3, np.nan, 0.3])
    np.testing.assert_allclose(frame["m:scaled"], [0.9, 0.3, np.nan, 0.5])


def test_max_drawdown_of_a_known_path() -> None:
    returns = np.array([[0.1, -0.5, 0.2, 0.0]])  # 1.1 -> 0.55 -> 0.66: worst -50%
    assert max_drawdown_rows(returns)[0] == pytest.approx(-0.5)


def test_foresight_is_significant_and_a_coin_is_not() -> None:
    market = _market()
    # Decided at close t for the next day (lag 1): in the market when day t+1 rises.
    foresight = (market.shift(-1) > 0).astype(float).iloc[:-1]
    coin = pd.Series(np.random.default_rng(1).integers(0, 2, len(market)), index=market.index)
    exposures = pd.DataFrame({"foresight": foresight, "coin": coin.astype(float)})
    table = economic_value(exposures.iloc[:-1], market, FAST)
    assert list(table.index) == [BUY_AND_HOLD, "foresight", "coin"]
    assert table.loc["foresight", "timing_p_value"] == pytest.approx(0.01)
    assert table.loc["coin", "timing_p_value"] > 0.05
    assert table.loc["foresight", "sharpe_minus_buy_and_hold_low"] > 0
    low, high = table.loc["coin", ["sharpe_low", "sharpe_high"]]
    assert low < table.loc["coin", "sharpe"] < high
    assert np.isnan(table.loc[BUY_AND_HOLD, "timing_p_value"])
    assert table.loc[BUY_AND_HOLD, "turnover"] < 1  # bought once


def test_costs_lower_the_return_by_the_traded_amount() -> None:
    market = pd.Series(0.0, index=pd.bdate_range("2015-01-01", periods=300))
    flip = pd.Series(np.tile([1.0, 0.0], 150), index=market.index)
    free = economic_value(
        pd.DataFrame({"flip": flip}),
        market,
        EconomicsConfig(cost_bps=0.0, n_resamples=20, n_permutations=9),
    )
    paid = economic_value(
        pd.DataFrame({"flip": flip}),
        market,
        EconomicsConfig(cost_bps=10.0, n_resamples=20, n_permutations=9),
    )
    assert free.loc["flip", "annualised_return"] == pytest.approx(0.0)
    assert paid.loc["flip", "annualised_return"] < -0.2  # ~252 trades of 10 bp a year
