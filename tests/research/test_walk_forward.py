"""The walk-forward's stitched out-of-sample record: a switch between variants is
traded from the previous variant's position and charged, and its turnover reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.grid import SweepRequest
from research.sweep import run_sweep
from tests.research.conftest import single_backtest

GRID = {
    "trend": {"windows": [20, 50], "thresholds": [0.97, 1.0, 1.03]},
    "volatility": {"thresholds": [0.9, 1.1]},
    "tables": [
        {},
        {"caution_votes": 2, "risk_off_votes": 3, "caution_exposure": 0.6},
        {"caution_exposure": 0.8, "risk_off_exposure": 0.3},
    ],
    "lag": [1],
    "cost_bps": [10.0],
}


def test_the_stitched_record_charges_each_switch_and_reports_turnover(inputs) -> None:
    request = SweepRequest.model_validate(
        {"grid": GRID, "walk_forward": {"first_in_sample_years": 1}, "pbo_blocks": 4}
    )
    days = inputs.calendar_arrays()
    outcome = run_sweep(request, inputs.features, days.asset_returns)
    summary = outcome.summary
    windows = summary["walk_forward"]["windows"]
    picks = [w["variant"] for w in windows]
    assert len(set(picks)) > 1  # the test needs at least one switch
    start = dt_of(summary["period"]["start"])
    end = dt_of(summary["period"]["end"])
    calendar = days.calendar
    # Each pick's own single backtest over the sweep's period (the real entry point).
    runs = {}
    for pick in set(picks):
        variant = request.grid.variant(pick)
        runs[pick] = single_backtest(inputs, variant, start, end).arrays
    first = runs[picks[0]].first
    stitched, traded = [], []
    previous = None
    for window, pick in zip(windows, picks, strict=True):
        rows = calendar.slice_indexer(*window["out_of_sample_period"])
        rows = np.arange(rows.start, rows.stop) - first
        returns = runs[pick].returns[rows, 0].copy()
        turnover = runs[pick].turnover[rows, 0].copy()
        if previous is not None and previous != pick:
            switch = abs(
                runs[pick].positions[rows[0], 0] - runs[previous].positions[rows[0] - 1, 0]
            )
            returns[0] += 10.0 / 10_000 * (turnover[0] - switch)
            turnover[0] = switch
        stitched.append(returns)
        traded.append(turnover)
        previous = pick
    stitched_returns = np.concatenate(stitched)
    record = summary["walk_forward"]["out_of_sample"]
    assert record["days"] == len(stitched_returns)
    expected_growth = np.prod(1.0 + stitched_returns) - 1.0
    assert record["cumulative_return"] == pytest.approx(expected_growth, rel=1e-12, abs=1e-14)
    expected_turnover = np.concatenate(traded).sum() * 252 / len(stitched_returns)
    assert record["turnover_per_year"] == pytest.approx(expected_turnover, rel=1e-12)
    assert record["switches"] == sum(a != b for a, b in zip(picks, picks[1:], strict=False))
    # At least one switch changed the position (so the charge was exercised).
    assert any(
        runs[p].positions[calendar.get_loc(pd.Timestamp(w["out_of_sample_period"][0])) - first, 0]
        != runs[q].positions[
            calendar.get_loc(pd.Timestamp(w["out_of_sample_period"][0])) - first - 1, 0
        ]
        for w, p, q in zip(windows[1:], picks[1:], picks[:-1], strict=True)
    )


def dt_of(text: str):  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.date.fromisoformat(text)
