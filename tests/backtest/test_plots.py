"""Tear-sheet figures: readable with many strategies, regime shading without seams."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.plots import (
    FIGURES,
    OVERLAY_MAX,
    equity_figure,
    regime_figure,
    regime_spans,
    regime_strategies,
    write_plots,
)
from backtest.runner import BacktestInputs, BacktestRun, run_backtest
from backtest.schemas import BacktestRequest

FIVE = [
    {"kind": "buy_and_hold"},
    {"kind": "rules"},
    {"kind": "single_filter", "filter": "trend"},
    {"kind": "single_filter", "filter": "volatility"},
    {"kind": "single_filter", "filter": "credit"},
]


def _run(inputs: BacktestInputs, strategies: list[dict]) -> BacktestRun:
    return run_backtest(BacktestRequest.model_validate({"strategies": strategies}), inputs)


def test_regime_spans_meet_end_to_start_and_skip_unknown_days():
    days = pd.bdate_range("2020-01-01", periods=8)
    codes = pd.Series([0, 0, 1, 1, 1, np.nan, 2, 2], index=days, dtype=float)
    spans = regime_spans(codes)
    assert spans == [
        (days[0], days[2], 0.0),
        (days[2], days[5], 1.0),
        (days[6], days[7], 2.0),
    ]
    assert regime_spans(pd.Series([], dtype=float)) == []


def test_few_strategies_share_one_axes_with_metrics_in_the_legend(synthetic_inputs):
    run = _run(synthetic_inputs, FIVE[:2])
    axes = [ax for ax in equity_figure(run).axes if ax.get_visible()]
    assert len(axes) == 1
    labels = [text.get_text() for text in axes[0].get_legend().get_texts()]
    assert len(labels) == 2
    assert all("a year, Sharpe" in label and "max DD" in label for label in labels)
    assert axes[0].get_yscale() == "log"


def test_many_strategies_become_small_multiples_of_at_most_two_lines(synthetic_inputs):
    assert len(FIVE) > OVERLAY_MAX
    run = _run(synthetic_inputs, FIVE)
    axes = [ax for ax in equity_figure(run).axes if ax.get_visible()]
    assert len(axes) == len(FIVE)
    assert all(len(ax.get_lines()) <= 2 for ax in axes)
    titles = [ax.get_title() for ax in axes]
    assert [title.split(":")[0] for title in titles] == [s.name for s in run.result.strategies]


def test_the_regime_strip_shows_exposure_and_drawdowns_on_one_time_axis(synthetic_inputs):
    run = _run(synthetic_inputs, FIVE[:2])
    price, exposure, drawdown = regime_figure(run).axes
    assert price.get_shared_x_axes().joined(price, drawdown)
    held = run.simulation.positions[run.result.strategies[1].name]
    np.testing.assert_allclose(exposure.get_lines()[0].get_ydata(), held.to_numpy())
    assert len(drawdown.get_lines()) == 2  # the strategy's and the asset's


@pytest.mark.parametrize("image_format", ["png", "svg"])
def test_write_plots_writes_every_figure(synthetic_inputs, tmp_path, image_format):
    run = _run(synthetic_inputs, FIVE)
    paths = write_plots(run, tmp_path, image_format=image_format)
    assert [path.name for path in paths] == [f"{name}.{image_format}" for name in FIGURES]
    assert all(path.stat().st_size > 1000 for path in paths)


def test_the_regime_figure_gives_every_strategy_with_regimes_a_panel(synthetic_inputs):
    model_free = [FIVE[0], FIVE[2], FIVE[1], FIVE[3]]  # buy & hold has no regimes
    run = _run(synthetic_inputs, model_free)
    names = [s.name for s in run.result.strategies[1:]]
    assert regime_strategies(run) == names
    price, *panels, drawdown = regime_figure(run).axes
    assert [ax.get_title(loc="left") for ax in panels] == names
    for name, ax in zip(names, panels, strict=True):
        held = run.simulation.positions[name].to_numpy()
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), held)
        assert ax.patches, f"{name}: no regime shading"
    assert [line.get_label() for line in drawdown.get_lines()] == [*names, "SPY"]
    assert regime_strategies(_run(synthetic_inputs, [FIVE[0]])) == []
    assert len(regime_figure(_run(synthetic_inputs, [FIVE[0]])).axes) == 2  # asset only
