"""The batched sweep against a brute-force loop of single backtests (backtest.runner)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.rules import Hysteresis, apply_hysteresis
from research.batch import evaluate_variants, hysteresis_block, prepare
from research.grid import Grid, SweepRequest
from tests.research.conftest import single_backtest

GRID = {
    "base": {"credit": {"window": 60}},
    "trend": {"windows": [20, 50], "thresholds": [1.0, 0.99]},
    "volatility": {"thresholds": [1.0, 1.05]},
    "credit": {"windows": [40, 60], "thresholds": [-1.0]},
    "tables": [{}, {"caution_votes": 2, "risk_off_votes": 3, "caution_exposure": 0.6}],
    "hysteresis": [
        {},
        {"confirm_days": 3},
        {"min_dwell_days": 5},
        {"confirm_days": 2, "min_dwell_days": 4},
    ],
    "lag": [1, 2],
    "cost_bps": [0.0, 7.5],
}
FIGURES = {
    "sharpe": "sharpe",
    "annualised_return": "annualised_return",
    "annualised_volatility": "annualised_volatility",
    "max_drawdown": "max_drawdown",
    "calmar": "calmar",
    "sortino": "sortino",
    "cumulative_return": "cumulative_return",
    "turnover_per_year": "turnover_per_year",
}


def _request(**changes) -> SweepRequest:
    body = {"grid": GRID, "walk_forward": {"first_in_sample_years": 2}, "pbo_blocks": 6}
    return SweepRequest.model_validate({**body, **changes})


def test_every_variant_equals_its_single_backtest(inputs) -> None:
    request = _request()
    grid = request.grid
    days = inputs.calendar_arrays()
    data = prepare(request, inputs.features, days.asset_returns)
    indices = np.arange(grid.size)
    chunk = evaluate_variants(data, grid, indices, keep_returns=True)
    fused = evaluate_variants(data, grid, indices)  # the sweep's compiled path
    assert grid.size == 2 * 2 * 2 * 2 * 2 * 4 * 2 * 2
    start, end = days.calendar[data.first].date(), days.calendar[data.last].date()
    checked_hysteresis = set()
    for i in indices:
        variant = grid.variant(int(i))
        run = single_backtest(inputs, variant, start, end)
        assert run.arrays.first == data.first and run.arrays.returns.shape[0] == data.n_days
        np.testing.assert_allclose(
            chunk.returns[:, i], run.arrays.returns[:, 0], rtol=0, atol=1e-15
        )
        figures = run.result.strategies[0].metrics
        for ours, theirs in FIGURES.items():
            expected = getattr(figures, theirs)
            for got in (chunk.metrics[ours][i], fused.metrics[ours][i]):
                if expected is None:
                    assert not np.isfinite(got), (i, ours)
                else:
                    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12), (i, ours)
        checked_hysteresis.add(variant.rule_set().hysteresis)
    assert len(checked_hysteresis) == 4
    # The grid is not degenerate: variants differ.
    assert len(np.unique(np.round(chunk.metrics["sharpe"], 10))) > grid.size // 4


@pytest.mark.parametrize(("confirm", "dwell"), [(1, 1), (3, 1), (1, 4), (2, 5), (4, 3)])
def test_hysteresis_block_equals_core_on_every_column(confirm, dwell) -> None:
    rng = np.random.default_rng(confirm * 10 + dwell)
    codes = rng.integers(0, 3, size=(300, 6)).astype(float)
    codes[:7, 0] = np.nan  # no regime yet
    codes[100:104, 1] = np.nan  # a gap
    codes[:, 2] = np.nan  # never
    expected = np.column_stack(
        [
            apply_hysteresis(pd.Series(codes[:, j]), Hysteresis(confirm, dwell)).to_numpy()
            for j in range(codes.shape[1])
        ]
    )
    got = hysteresis_block(codes, np.full(6, confirm), np.full(6, dwell))
    np.testing.assert_array_equal(got, expected)


def test_grid_size_and_decoding() -> None:
    grid = Grid.model_validate(GRID)
    assert grid.size == 512 and grid.n_signals == 128
    last = grid.variant(grid.size - 1)
    assert last.lag == 2 and last.cost_bps == 7.5
    assert last.picked["trend.window"] == 50
    first = grid.variant(1)
    assert first.lag == 1 and first.cost_bps == 7.5 and first.signal == 0


def test_hysteresis_block_with_a_setting_per_column_equals_core() -> None:
    rng = np.random.default_rng(99)
    # Sticky random regimes (runs of a few days) with scattered gaps.
    steps = rng.random((800, 8)) < 0.3
    codes = np.where(steps, rng.integers(0, 3, (800, 8)), -1).astype(float)
    for j in range(8):
        for i in range(1, 800):
            if codes[i, j] < 0:
                codes[i, j] = codes[i - 1, j]
    codes[codes < 0] = 0.0
    codes[rng.random((800, 8)) < 0.02] = np.nan
    confirm = np.array([1, 2, 3, 5, 1, 2, 4, 1])
    dwell = np.array([1, 1, 7, 2, 10, 3, 1, 25])
    expected = np.column_stack(
        [
            apply_hysteresis(pd.Series(codes[:, j]), Hysteresis(int(confirm[j]), int(dwell[j])))
            for j in range(8)
        ]
    )
    np.testing.assert_array_equal(hysteresis_block(codes, confirm, dwell), expected)


@pytest.mark.parametrize(
    ("objective", "cash"),
    [("sharpe", False), ("calmar", True), ("sortino", False), ("max_drawdown", True)],
)
def test_fused_figures_equal_those_of_the_returns(inputs, objective, cash) -> None:
    """The compiled one-pass figures (the sweep's path) against backtest.metrics' kernels
    applied to the kept (days, variants) returns, on every variant of the grid."""
    request = _request(objective=objective, cash_yield=cash, financing=cash)
    grid = request.grid
    days = inputs.calendar_arrays()
    rate = np.full(len(days.calendar), 0.0001) if cash else None
    data = prepare(request, inputs.features, days.asset_returns, rate)
    indices = np.arange(grid.size)[::-1]  # any order of variants
    fused = evaluate_variants(data, grid, indices)
    kept = evaluate_variants(data, grid, indices, keep_returns=True)
    assert fused.returns is None and kept.returns is not None
    for name, values in kept.metrics.items():
        np.testing.assert_allclose(
            fused.metrics[name], values, rtol=1e-12, atol=1e-14, err_msg=name
        )
    np.testing.assert_allclose(fused.in_sample, kept.in_sample, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fused.moments.sums, kept.moments.sums, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fused.moments.squares, kept.moments.squares, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(fused.moments.counts, kept.moments.counts)
