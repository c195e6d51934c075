"""The engine's conventions on hand-built series: timing, costs, cash, leverage, alignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.engine import CostModel, simulate, simulate_arrays
from backtest.rates import daily_rate_from_annual_percent, daily_rate_from_prices
from core.errors import ConfigError, DataValidationError, NoDataError

DAYS = pd.bdate_range("2021-03-01", periods=6, name="date")


def returns_of(closes: list[float]) -> pd.Series:
    close = pd.Series(closes, index=DAYS[: len(closes)])
    return close / close.shift(1) - 1.0


def frame(**columns: list[float]) -> pd.DataFrame:
    return pd.DataFrame(columns, index=DAYS[: len(next(iter(columns.values())))], dtype=float)


def test_full_exposure_equals_buy_and_hold() -> None:
    closes = [100.0, 110.0, 99.0, 108.9, 119.79]
    sim = simulate(frame(full=[1.0] * 5), returns_of(closes))
    # Wealth after each day is close(t) / close(first evening) = 1.1, 0.99, 1.089, 1.1979.
    np.testing.assert_allclose(sim.equity["full"], [1.1, 0.99, 1.089, 1.1979], rtol=1e-12)
    assert list(sim.returns.index) == list(DAYS[1:5])


def test_zero_exposure_earns_nothing_without_cash_yield() -> None:
    sim = simulate(frame(flat=[0.0] * 5), returns_of([100.0, 120.0, 80.0, 90.0, 95.0]))
    np.testing.assert_array_equal(sim.returns["flat"], [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(sim.equity["flat"], [1.0, 1.0, 1.0, 1.0])


def test_zero_exposure_earns_the_cash_rate_with_cash_yield() -> None:
    cash = pd.Series(0.0001, index=DAYS[:5])
    sim = simulate(
        frame(flat=[0.0] * 5),
        returns_of([100.0, 120.0, 80.0, 90.0, 95.0]),
        costs=CostModel(cash_yield=True),
        cash_rate=cash,
    )
    np.testing.assert_allclose(sim.returns["flat"], [0.0001] * 4, rtol=1e-12)
    np.testing.assert_allclose(sim.equity["flat"].iloc[-1], 1.0001**4, rtol=1e-12)


def test_a_signal_at_close_t_is_held_from_day_t_plus_1() -> None:
    # Exposure drops to 0 at the close of day 2; day 2's return is still fully held.
    asset = returns_of([100.0, 101.0, 90.0, 99.0, 89.1, 98.01])  # +1%, -10.89%, +10%, -10%, +10%
    sim = simulate(frame(s=[1.0, 1.0, 0.0, 0.0, 1.0, 1.0]), asset)
    np.testing.assert_array_equal(sim.positions["s"], [1.0, 1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(sim.returns["s"], [0.01, 90 / 101 - 1, 0.0, 0.0, 0.1], rtol=1e-12)


def test_lag_two_holds_the_signal_two_days_later() -> None:
    sim = simulate(frame(s=[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]), returns_of([100.0] * 6), lag=2)
    # Days 0 and 1 have no position yet; day 2 holds day 0's exposure, day 3 day 1's.
    assert sim.positions.index[0] == DAYS[2]
    np.testing.assert_array_equal(sim.positions["s"], [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("lag", [0, -1])
def test_lag_below_one_is_refused_as_look_ahead(lag: int) -> None:
    with pytest.raises(ConfigError, match="look-ahead"):
        simulate(frame(s=[1.0] * 4), returns_of([100.0, 101.0, 102.0, 103.0]), lag=lag)


def test_costs_reduce_each_day_by_traded_exposure_times_rate() -> None:
    asset = returns_of([100.0, 101.0, 103.02, 101.9898, 105.049494, 102.94850412])
    exposures = frame(s=[1.0, 0.5, 0.5, 0.0, 1.0, 1.0])
    free = simulate(exposures, asset)
    costly = simulate(exposures, asset, costs=CostModel(cost_bps=10.0))
    # Positions held 1, 0.5, 0.5, 0, 1 -> traded 1 (entry from cash), 0.5, 0, 0.5, 1.
    np.testing.assert_allclose(costly.turnover["s"], [1.0, 0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(
        free.returns["s"] - costly.returns["s"], [0.001, 0.0005, 0.0, 0.0005, 0.001], atol=1e-15
    )
    # Asset returns +1%, +2%, -1%, +3%, -2%: net = exposure * r - cost, by hand.
    np.testing.assert_allclose(
        costly.returns["s"], [0.009, 0.0095, -0.005, -0.0005, -0.021], atol=1e-12
    )


def test_cash_yield_on_the_uninvested_part_and_financing_above_one() -> None:
    asset = returns_of([100.0, 101.0, 102.01])  # +1% twice
    cash = pd.Series(0.0002, index=DAYS[:3])
    sim = simulate(
        frame(levered=[1.5, 1.5, 1.5], partial=[0.25, 0.25, 0.25]),
        asset,
        costs=CostModel(cash_yield=True, financing=True),
        cash_rate=cash,
    )
    # 1.5 * 1% - 0.5 * 0.02% = 1.49%; 0.25 * 1% + 0.75 * 0.02% = 0.265%.
    np.testing.assert_allclose(sim.returns["levered"], [0.0149, 0.0149], rtol=1e-12)
    np.testing.assert_allclose(sim.returns["partial"], [0.00265, 0.00265], rtol=1e-12)


def test_strategies_share_the_period_where_all_hold_a_position() -> None:
    exposures = frame(early=[1.0] * 6, late=[np.nan, np.nan, 0.5, 0.5, 0.5, 0.5])
    sim = simulate(exposures, returns_of([100.0, 101.0, 102.0, 103.0, 104.0, 105.0]))
    assert list(sim.returns.index) == list(DAYS[3:6])


def test_missing_exposure_inside_the_period_keeps_the_position() -> None:
    exposures = frame(s=[1.0, 0.5, np.nan, 0.0, 1.0, 1.0])
    sim = simulate(exposures, returns_of([100.0] * 6))
    np.testing.assert_array_equal(sim.positions["s"], [1.0, 0.5, 0.5, 0.0, 1.0])
    assert sim.held_over_days["s"] == 1


def test_start_and_end_clip_the_period() -> None:
    sim = simulate(frame(s=[1.0] * 6), returns_of([100.0] * 6), start=DAYS[2], end=DAYS[4])
    assert list(sim.returns.index) == list(DAYS[2:5])
    as_dates = simulate(
        frame(s=[1.0] * 6), returns_of([100.0] * 6), start=DAYS[2].date(), end=DAYS[4].date()
    )
    assert list(as_dates.returns.index) == list(DAYS[2:5])


def test_no_common_period_names_each_strategys_range() -> None:
    exposures = frame(a=[1.0, 1.0, np.nan, np.nan], b=[np.nan, np.nan, np.nan, 1.0])
    with pytest.raises(NoDataError, match="no common period.*a: 2021-03-02..2021-03-03"):
        simulate(exposures, returns_of([100.0] * 4))


def test_missing_asset_return_inside_the_period_is_an_error() -> None:
    asset = returns_of([100.0, 101.0, 102.0, 103.0])
    asset.iloc[2] = np.nan
    asset.iloc[3] = 0.01  # the period spans past the hole
    with pytest.raises(DataValidationError, match="asset_returns"):
        simulate(frame(s=[1.0] * 4), asset)


def test_cash_yield_without_a_cash_rate_is_refused() -> None:
    with pytest.raises(NoDataError, match="cash-rate"):
        simulate(frame(s=[0.5] * 3), returns_of([100.0] * 3), costs=CostModel(cash_yield=True))


@pytest.mark.parametrize("bps", [-1.0, 1000.5])
def test_cost_outside_range_is_refused_with_the_value(bps: float) -> None:
    with pytest.raises(ConfigError, match=f"cost_bps must be between 0 and 1000, got {bps}"):
        simulate(frame(s=[1.0] * 3), returns_of([100.0] * 3), costs=CostModel(cost_bps=bps))


def test_dff_rate_known_at_the_previous_close_is_earned_per_trading_day() -> None:
    # Fri 2.52%, weekend carries it, Mon 5.04%. Trading days Fri, Mon, Tue.
    dff = pd.Series(
        [2.52, 2.52, 2.52, 5.04, 5.04],
        index=pd.date_range("2021-03-05", periods=5, freq="D"),
    )
    calendar = pd.DatetimeIndex(["2021-03-05", "2021-03-08", "2021-03-09"], name="date")
    rate = daily_rate_from_annual_percent(dff, calendar)
    # Monday earns Friday's 2.52% / 100 / 252 = 0.0001; Tuesday earns Monday's 0.0002.
    assert np.isnan(rate.iloc[0])
    np.testing.assert_allclose(rate.iloc[1:], [0.0001, 0.0002], rtol=1e-12)


def test_bil_rate_is_its_total_return_over_the_day() -> None:
    calendar = pd.DatetimeIndex(["2021-03-05", "2021-03-08", "2021-03-09"], name="date")
    rate = daily_rate_from_prices(pd.Series([100.0, 100.01, 100.03], index=calendar), calendar)
    np.testing.assert_allclose(rate.iloc[1:], [0.0001, 0.02 / 100.01], rtol=1e-12)


def test_the_uninvested_part_earns_what_each_strategy_holds_instead_of_cash() -> None:
    # Held from day 1: 50% in the asset (+10%, then -10%), the rest in a defensive asset
    # (+2%, then +1%); the second strategy holds all in the asset, nothing uninvested.
    asset = np.array([np.nan, 0.10, -0.10])
    defensive = np.array([np.nan, 0.02, 0.01])
    exposures = np.array([[0.5, 1.0], [0.5, 1.0], [0.5, 1.0]])
    sim = simulate_arrays(
        exposures,
        asset,
        DAYS[:3],
        ["mix", "all in"],
        uninvested_returns=np.column_stack([defensive, np.zeros(3)]),
        costs=CostModel(cost_bps=10.0),
    )
    # Day 1: 0.5 * 0.10 + 0.5 * 0.02 - 0.001 * 0.5 traded from cash; day 2: no trade.
    np.testing.assert_allclose(
        sim.returns, [[0.06 - 0.0005, 0.10 - 0.001], [-0.045, -0.10]], rtol=1e-12
    )
    assert sim.first == 1


def test_a_missing_defensive_return_inside_the_period_is_named() -> None:
    with pytest.raises(DataValidationError, match="first 2021-03-03") as error:
        simulate_arrays(
            np.full((3, 1), 0.5),
            np.array([np.nan, 0.1, 0.1]),
            DAYS[:3],
            ["mix"],
            uninvested_returns=np.array([[np.nan], [0.01], [np.nan]]),
        )
    assert error.value.field == "uninvested_returns"
