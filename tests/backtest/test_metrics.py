"""Metric kernels against hand-computed values and a plain pandas reference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtest import metrics

# Wealth 1.1, 0.88, 0.968, 1.1616, 1.10352; peaks 1.1, 1.1, 1.1, 1.1616, 1.1616.
SWING = np.array([0.1, -0.2, 0.1, 0.2, -0.05])
# mean 0.005; deviations +-0.005, +-0.015 -> sample variance 0.0005 / 3.
SMALL = np.array([0.01, -0.01, 0.02, 0.0])


def test_cumulative_and_annualised_return() -> None:
    assert metrics.cumulative_return(SWING) == pytest.approx(0.10352, rel=1e-12)
    # 126 days of +0.1% is half a year: annualised = 1.001 ** 252 - 1.
    half_year = np.full(126, 0.001)
    assert metrics.annualised_return(half_year) == pytest.approx(1.001**252 - 1.0, rel=1e-12)


def test_sharpe_is_mean_over_sample_std_times_sqrt_252() -> None:
    expected = 0.005 / math.sqrt(0.0005 / 3) * math.sqrt(252)  # = 6.148...
    assert metrics.sharpe_ratio(SMALL) == pytest.approx(expected, rel=1e-12)
    assert metrics.sharpe_ratio(SMALL) == pytest.approx(6.14817, abs=1e-5)


def test_excess_sharpe_subtracts_the_cash_rate() -> None:
    # A constant 0.1% cash rate lowers the mean to 0.004 and leaves the std unchanged.
    expected = 0.004 / math.sqrt(0.0005 / 3) * math.sqrt(252)
    rf = np.full(4, 0.001)
    assert metrics.sharpe_ratio(SMALL, rf) == pytest.approx(expected, rel=1e-12)


def test_volatility_and_daily_std() -> None:
    assert metrics.daily_std(SMALL) == pytest.approx(math.sqrt(0.0005 / 3), rel=1e-12)
    assert metrics.annualised_volatility(SMALL) == pytest.approx(
        math.sqrt(0.0005 / 3 * 252), rel=1e-12
    )


def test_sortino_uses_downside_deviation_over_all_days() -> None:
    # Downside: only -0.01 -> sqrt(0.0001 / 4) = 0.005 = the mean, so the ratio is sqrt(252).
    assert metrics.sortino_ratio(SMALL) == pytest.approx(math.sqrt(252), rel=1e-12)


def test_max_drawdown_and_its_duration() -> None:
    assert metrics.max_drawdown(SWING) == pytest.approx(0.88 / 1.1 - 1.0, rel=1e-12)  # -20%
    # Underwater on days 2 and 3 (max drawdown spell), then day 5 alone.
    assert metrics.max_drawdown_duration(SWING) == 2
    assert metrics.longest_drawdown_duration(SWING) == 2


def test_a_first_day_loss_is_a_drawdown_from_the_starting_wealth() -> None:
    losses = np.array([-0.1, 0.05])  # wealth 0.9, 0.945, never back to 1.0
    np.testing.assert_allclose(metrics.drawdowns(losses), [-0.1, -0.055], rtol=1e-12)
    assert metrics.max_drawdown_duration(losses) == 2


def test_the_deepest_spell_and_the_longest_are_told_apart_per_column() -> None:
    # Column 0: wealth 0.9 (deepest, a one-day spell), 1.08 (peak), then four days below.
    # Column 1: wealth 1.01, 0.9595 (deepest), 1.05545 (peak) twice more, 1.0449 below.
    # Column 1 starts at a peak: column 0's trailing spell must not run into it.
    block = np.array(
        [
            [-0.1, 0.01],
            [0.2, -0.05],
            [-0.01, 0.1],
            [-0.01, 0.0],
            [-0.01, 0.0],
            [0.0, -0.01],
        ]
    )
    np.testing.assert_array_equal(metrics.max_drawdown_duration(block), [1, 1])
    np.testing.assert_array_equal(metrics.longest_drawdown_duration(block), [4, 1])
    assert metrics.max_drawdown_duration(block[:, 0]) == 1
    assert metrics.longest_drawdown_duration(block[:, 0]) == 4


def test_calmar_is_annual_return_over_max_drawdown() -> None:
    expected = (1.10352 ** (252 / 5) - 1.0) / 0.2
    assert metrics.calmar_ratio(SWING) == pytest.approx(expected, rel=1e-9)


def test_turnover_trades_and_time_invested() -> None:
    traded = np.array([1.0, 0.5, 0.0, 0.5, 1.0])
    assert metrics.annualised_turnover(traded) == pytest.approx(3.0 * 252 / 5, rel=1e-12)
    assert metrics.trade_count(traded) == 4
    # 1.5x is leveraged, not "full"; the four shares sum to 1.
    shares = metrics.time_invested(np.array([1.5, 1.0, 0.5, 0.0, 0.0]))
    assert shares._asdict() == pytest.approx(
        {"leveraged": 0.2, "full": 0.2, "partial": 0.2, "none": 0.4}
    )
    block = metrics.time_invested(np.array([[2.0, 1.0], [1.0, 1.0], [0.25, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(block.leveraged, [0.25, 0.0])
    np.testing.assert_allclose(block.full, [0.5, 0.75])
    np.testing.assert_allclose(block.partial, [0.25, 0.0])
    np.testing.assert_allclose(block.none, [0.0, 0.25])


def test_yearly_returns_compound_within_each_year() -> None:
    days = pd.DatetimeIndex(["2020-12-30", "2020-12-31", "2021-01-04"])
    yearly = metrics.yearly_returns(pd.Series([0.1, 0.1, -0.5], index=days))
    assert yearly.to_dict() == pytest.approx({2020: 0.21, 2021: -0.5})


def test_regime_distribution_counts_known_days_and_lists_every_label() -> None:
    codes = np.array([0.0, 0.0, 1.0, np.nan, 0.0])
    shares = metrics.regime_distribution(codes, ("risk-on", "caution", "risk-off"))
    assert shares == {"risk-on": 0.75, "caution": 0.25, "risk-off": 0.0}


@pytest.mark.parametrize(
    "kernel",
    [
        metrics.annualised_return,
        metrics.sharpe_ratio,
        metrics.sortino_ratio,
        metrics.max_drawdown,
        metrics.calmar_ratio,
        metrics.annualised_turnover,
    ],
    ids=lambda kernel: kernel.__name__,
)
def test_empty_input_is_nan(kernel) -> None:  # type: ignore[no-untyped-def]
    assert math.isnan(kernel(np.array([])))


def test_undefined_ratios_are_nan() -> None:
    flat = np.zeros(10)
    assert math.isnan(metrics.sharpe_ratio(flat))
    assert math.isnan(metrics.sortino_ratio(flat))
    assert math.isnan(metrics.calmar_ratio(flat))
    assert metrics.max_drawdown(flat) == 0.0
    assert metrics.max_drawdown_duration(flat) == 0


def test_kernels_match_a_plain_pandas_reference() -> None:
    rng = np.random.default_rng(3)
    returns = pd.Series(rng.normal(0.0004, 0.012, 2000))
    wealth = pd.concat([pd.Series([1.0]), (1.0 + returns).cumprod()], ignore_index=True)
    reference_dd = (wealth / wealth.cummax() - 1.0).iloc[1:].to_numpy()
    np.testing.assert_allclose(metrics.drawdowns(returns.to_numpy()), reference_dd, atol=1e-12)
    # Longest run of consecutive underwater days, by a plain loop.
    longest = run = 0
    for value in reference_dd:
        run = run + 1 if value < 0 else 0
        longest = max(longest, run)
    assert metrics.longest_drawdown_duration(returns.to_numpy()) == longest
    assert metrics.sharpe_ratio(returns.to_numpy()) == pytest.approx(
        returns.mean() / returns.std() * math.sqrt(252), rel=1e-12
    )
