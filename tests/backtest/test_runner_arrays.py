"""The runner's array paths agree with the pandas definitions they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest import metrics
from backtest.runner import _held, _switches_per_year
from core.rules import switches_per_year


@pytest.mark.parametrize("seed", range(20))
def test_switches_per_year_on_arrays_equals_the_pandas_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 900))
    codes = rng.integers(0, 3, n).astype(float)
    codes[rng.random(n) < 0.1] = np.nan
    regime = pd.Series(codes, index=pd.bdate_range("1999-06-01", periods=n))
    expected = {int(year): int(count) for year, count in switches_per_year(regime).items()}
    assert _switches_per_year(codes, regime.index.year.to_numpy()) == expected


def test_switches_per_year_without_a_regime_is_empty():
    assert _switches_per_year(np.array([np.nan, np.nan]), np.array([2020, 2020])) == {}


@pytest.mark.parametrize("seed", range(10))
def test_held_values_equal_a_pandas_shift_and_forward_fill(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 300))
    daily = rng.integers(0, 3, n).astype(float)
    daily[rng.random(n) < 0.2] = np.nan
    lag = int(rng.integers(1, 5))
    start = int(rng.integers(lag, n - 1))
    stop = int(rng.integers(start + 1, n + 1))
    expected = pd.Series(daily).shift(lag).iloc[start:stop].ffill().to_numpy()
    np.testing.assert_array_equal(_held(daily, lag, slice(start, stop)), expected)


KERNELS = [
    metrics.cumulative_return,
    metrics.annualised_return,
    metrics.daily_std,
    metrics.sharpe_ratio,
    metrics.sortino_ratio,
    metrics.max_drawdown,
    metrics.max_drawdown_duration,
    metrics.longest_drawdown_duration,
    metrics.calmar_ratio,
    metrics.annualised_turnover,
    metrics.trade_count,
]


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda kernel: kernel.__name__)
def test_a_block_of_strategies_gives_each_column_its_own_value(kernel):
    rng = np.random.default_rng(5)
    block = rng.normal(0.0003, 0.01, (1500, 7))
    block[:, 3] = 0.0  # flat: undefined ratios stay NaN in the block too
    block[:, 4] = np.abs(block[:, 4])  # never under water
    together = kernel(block)
    for column in range(block.shape[1]):
        alone = kernel(block[:, column])
        np.testing.assert_allclose(together[column], alone, rtol=1e-12, atol=0.0, equal_nan=True)


def test_the_summary_of_a_block_equals_each_kernel_on_each_column():
    rng = np.random.default_rng(8)
    positions = np.asfortranarray(rng.choice([0.0, 0.5, 1.0, 1.5], size=(800, 5)))
    returns = np.asfortranarray(positions * rng.normal(0.0004, 0.011, (800, 1)))
    returns[:, 2] = 0.0  # flat: ratios undefined
    turnover = np.abs(np.diff(positions, axis=0, prepend=0.0))
    rate = np.full(800, 0.0001)
    block = metrics.summary(returns, positions, turnover, rate)
    for column in range(5):
        r = returns[:, column]
        invested = metrics.time_invested(positions[:, column])
        alone = {
            "cumulative_return": metrics.cumulative_return(r),
            "annualised_return": metrics.annualised_return(r),
            "annualised_volatility": metrics.annualised_volatility(r),
            "daily_mean": float(np.mean(r)),
            "daily_std": metrics.daily_std(r),
            "sharpe": metrics.sharpe_ratio(r),
            "sharpe_excess": metrics.sharpe_ratio(r, rate),
            "sortino": metrics.sortino_ratio(r),
            "max_drawdown": metrics.max_drawdown(r),
            "max_drawdown_days": metrics.max_drawdown_duration(r),
            "longest_drawdown_days": metrics.longest_drawdown_duration(r),
            "calmar": metrics.calmar_ratio(r),
            **invested._asdict(),
            "average_exposure": float(np.mean(positions[:, column])),
            "turnover_per_year": metrics.annualised_turnover(turnover[:, column]),
            "trades": metrics.trade_count(turnover[:, column]),
        }
        assert sorted(block) == sorted(alone)
        for name, value in alone.items():
            np.testing.assert_allclose(
                block[name][column], value, rtol=1e-12, atol=1e-15, equal_nan=True, err_msg=name
            )
