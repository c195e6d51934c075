"""The runner end to end on made-up data: timing, alignment, point-in-time, result model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.published import PUBLISHED_FRAMEWORK_ROWS, published_framework_request
from backtest.report import format_published_comparison, format_result
from backtest.runner import BacktestInputs, run_backtest
from backtest.schemas import BacktestRequest, BacktestResult
from tests.backtest.conftest import inputs_from_closes
from tests.conftest import make_closes


def request(*strategies: dict, **options: object) -> BacktestRequest:
    return BacktestRequest.model_validate({"strategies": list(strategies), **options})


def test_a_filter_firing_at_close_t_changes_the_position_held_on_t_plus_1() -> None:
    days = pd.bdate_range("2022-01-03", periods=8, name="date")
    close = pd.Series([10, 10, 10, 10, 10, 9, 9, 9], index=days, dtype=float)
    features = pd.DataFrame(
        {"spy_close": close, "vix_vix3m": np.nan, "hyg_ief": np.nan}, index=days
    )
    run = run_backtest(
        request({"kind": "single_filter", "filter": "trend", "trend": {"window": 3}}),
        BacktestInputs(features, close),
    )
    positions = run.simulation.positions["Trend only (published)"]
    # Trend first has input at day 2's close -> held from day 3; it fires at day 5's close.
    assert positions.index[0] == days[3]
    assert positions[days[5]] == 1.0  # the day the filter fires is still held (and lost 10%)
    assert positions[days[6]] == 0.0
    assert run.simulation.returns.loc[days[5]].iloc[0] == pytest.approx(-0.1)


def test_default_period_starts_when_every_strategy_has_real_input(
    synthetic_inputs: BacktestInputs,
) -> None:
    run = run_backtest(
        request({"kind": "buy_and_hold"}, {"kind": "single_filter", "filter": "trend"}),
        synthetic_inputs,
    )
    calendar = synthetic_inputs.features.index
    # The trend filter needs 200 closes: its first signal is on day 199, held on day 200.
    # (Earlier days would be positioned by the abstain policy alone, so they are left out.)
    assert run.result.period.start == calendar[200].date()
    assert run.result.period.end == calendar[-1].date()
    assert run.result.period.days == len(calendar) - 200


def test_model_outputs_starting_late_move_the_common_start(
    synthetic_inputs: BacktestInputs,
) -> None:
    calendar = synthetic_inputs.features.index
    outputs = pd.DataFrame({"regime": 0.0, "p_distressed": 0.1}, index=calendar[300:]).reindex(
        calendar
    )
    inputs = BacktestInputs(
        synthetic_inputs.features, synthetic_inputs.asset_close, model_outputs=outputs
    )
    run = run_backtest(
        request({"kind": "buy_and_hold"}, {"kind": "model"}, start="2000-01-01"), inputs
    )
    assert run.result.period.start == calendar[301].date()
    buy_hold, model = run.result.strategies
    # Model calm every day -> 100% invested -> same metrics as buy & hold on the same days.
    assert model.metrics.cumulative_return == pytest.approx(buy_hold.metrics.cumulative_return)
    assert model.regime_distribution == {"calm": 1.0, "distressed": 0.0}


def test_regime_distribution_matches_time_invested_for_the_framework(
    synthetic_inputs: BacktestInputs,
) -> None:
    result = run_backtest(request({"kind": "rules"}), synthetic_inputs).result
    combined = result.strategies[0]
    shares, time = combined.regime_distribution, combined.metrics.time_invested
    assert shares is not None
    assert shares["risk-on"] == pytest.approx(time.full)
    assert shares["caution"] == pytest.approx(time.partial)
    assert shares["risk-off"] == pytest.approx(time.none)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_costs_lower_the_final_wealth_by_the_costed_turnover(
    synthetic_inputs: BacktestInputs,
) -> None:
    strategies = ({"kind": "rules"},)
    free = run_backtest(request(*strategies), synthetic_inputs).simulation
    costly = run_backtest(request(*strategies, cost_bps=25), synthetic_inputs).simulation
    difference = free.returns - costly.returns
    pd.testing.assert_frame_equal(difference, costly.turnover * 0.0025, atol=1e-15)


def test_result_round_trips_through_json(synthetic_inputs: BacktestInputs) -> None:
    result = run_backtest(
        request(
            {"kind": "buy_and_hold"},
            {"kind": "rules", "preset": "platform"},
            {"kind": "vol_target", "base": {"kind": "single_filter", "filter": "trend"}},
            cost_bps=5,
        ),
        synthetic_inputs,
    ).result
    assert BacktestResult.model_validate_json(result.model_dump_json()) == result


@pytest.mark.parametrize(("sampling", "period"), [("weekly", "W"), ("monthly", "M")])
def test_sampled_equity_keeps_period_ends_and_the_last_day(
    synthetic_inputs: BacktestInputs, sampling: str, period: str
) -> None:
    run = run_backtest(
        request({"kind": "buy_and_hold"}, equity_sampling=sampling), synthetic_inputs
    )
    curves = run.result.equity
    assert curves is not None
    daily = run.simulation.equity["Buy & hold"]
    # Reference: pandas calendar periods (weeks Monday..Sunday, calendar months).
    period_ends = daily.groupby(daily.index.to_period(period)).tail(1)
    assert curves.dates == [day.date() for day in period_ends.index]
    assert curves.dates[-1] == daily.index[-1].date()
    np.testing.assert_allclose(curves.values["Buy & hold"], period_ends.to_numpy(), rtol=1e-8)


def test_no_equity_curves_when_not_asked(synthetic_inputs: BacktestInputs) -> None:
    result = run_backtest(
        request({"kind": "buy_and_hold"}, equity_sampling="none"), synthetic_inputs
    )
    assert result.result.equity is None


def test_published_preset_and_report_show_our_figures_beside_the_published_ones(
    synthetic_inputs: BacktestInputs,
) -> None:
    preset = published_framework_request()
    assert [s.label for s in preset.strategies] == [r.strategy for r in PUBLISHED_FRAMEWORK_ROWS]
    assert str(preset.start) == "2006-01-01"
    result = run_backtest(preset, synthetic_inputs).result
    text = format_published_comparison(result)
    ours = {s.name: s.metrics for s in result.strategies}
    # Buy & hold row: our annual return, the published 9.6% and the gap in points.
    annual = ours["Buy & hold"].annualised_return
    assert f"{annual * 100:.1f}%" in text and "9.6%" in text
    assert f"{(annual - 0.096) * 100:+.1f}" in text
    assert "-52.4%" in text and "72% full + 19% half" in text
    assert "Combined (3 filters)" in format_result(result)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    cut=st.integers(min_value=240, max_value=320),
    extra=st.integers(min_value=1, max_value=60),
)
def test_appending_future_prices_never_changes_the_past(seed: int, cut: int, extra: int) -> None:
    closes = make_closes(n_days=cut + extra, seed=seed)
    past = {symbol: series.iloc[:cut] for symbol, series in closes.items()}
    strategies = (
        {"kind": "buy_and_hold"},
        {"kind": "rules"},
        {
            "kind": "rules",
            "name": "short windows",
            "trend": {"window": 20},
            "credit": {"window": 60},
        },
        {"kind": "single_filter", "filter": "volatility"},
        {"kind": "vol_target", "base": {"kind": "rules"}, "max_leverage": 2.0},
    )
    # No cash rate in these made-up inputs: the leveraged vol target runs unfinanced.
    options = {"cost_bps": 10, "equity_sampling": "daily", "financing": False}
    short = run_backtest(request(*strategies, **options), inputs_from_closes(past))
    long = run_backtest(request(*strategies, **options), inputs_from_closes(closes))
    days = short.simulation.returns.index
    assert (days[0], days[-1]) == (long.simulation.returns.index[0], past["SPY"].index[-1])
    # The first appended day holds exactly what was decided at the last known close.
    first_new_day = closes["SPY"].index[cut]
    decided = pd.Series({name: signal.exposure.iloc[-1] for name, signal in short.signals.items()})
    pd.testing.assert_series_equal(
        long.simulation.positions.loc[first_new_day], decided, check_names=False
    )
    pd.testing.assert_frame_equal(long.simulation.equity.loc[days], short.simulation.equity)
    pd.testing.assert_frame_equal(long.simulation.positions.loc[days], short.simulation.positions)
    for name, signal in short.signals.items():
        if signal.regime_code is not None:
            later = long.signals[name].regime_code
            pd.testing.assert_series_equal(later.loc[signal.regime_code.index], signal.regime_code)
