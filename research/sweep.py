"""Run a sweep: chunks of variants evaluated (on Dask workers or here), then the
walk-forward choice, its stitched out-of-sample record, the probability of backtest
overfitting and the deflated Sharpe ratio of the chosen variant.

Pure apart from the optional Dask client: inputs are arrays already loaded.

Walk-forward: for each window (research.batch.walk_forward_windows) the variant
with the highest in-sample objective (NaN ranks lowest) is held over the next
out-of-sample years; the stitched series takes each window's days from that
variant's own backtest, except that a switch between variants is traded (and charged
the new variant's cost) from the position the previous variant held the day before.

The chosen variant is the one with the highest objective over the whole period:
its deflated Sharpe ratio counts every variant of the grid as a trial, with the
variance of their per-day Sharpe ratios.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtest import metrics
from research.batch import (
    METRICS,
    ChunkResult,
    SweepData,
    VariantPositions,
    evaluate_variants,
    headline_metrics,
    prepare,
    returns_of,
    variant_positions,
)
from research.grid import SweepRequest
from research.overfitting import (
    BlockMoments,
    deflated_sharpe,
    expected_max_sharpe,
    probability_of_backtest_overfitting,
)

Progress = Callable[[int, int], None]  # (variants done, variants in all)


class SweepCancelled(Exception):
    """The sweep was asked to stop before it finished."""


@dataclass
class SweepOutcome:
    """Every variant's figures and the sweep's summary (JSON-ready)."""

    metrics: dict[str, np.ndarray]  # name -> (variants,)
    objective: np.ndarray  # (variants,)
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def variant_rows(self, request: SweepRequest) -> list[dict[str, Any]]:
        """One row per variant: index, rank by objective (1 = best), parameters, figures."""
        order = np.argsort(
            -np.where(np.isnan(self.objective), -np.inf, self.objective), kind="stable"
        )
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(1, len(order) + 1)
        grid = request.grid
        names = list(self.metrics)
        columns = [self.metrics[name].tolist() for name in names]
        return [
            {
                "variant": i,
                "rank": int(rank[i]),
                "objective": _finite(self.objective[i]),
                "parameters": grid.variant(i).parameters(),
                "metrics": {
                    name: _finite(column[i]) for name, column in zip(names, columns, strict=True)
                },
            }
            for i in range(len(order))
        ]


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def chunk_ranges(n_variants: int, chunk: int) -> list[tuple[int, int]]:
    return [(start, min(start + chunk, n_variants)) for start in range(0, n_variants, chunk)]


def run_sweep(
    request: SweepRequest,
    features: pd.DataFrame,
    asset_returns: np.ndarray,
    cash_rate: np.ndarray | None = None,
    *,
    client: Any | None = None,
    chunk_variants: int = 500,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SweepOutcome:
    """Evaluate every variant of ``request.grid`` and summarise.

    ``client``: a dask.distributed Client; each chunk of ``chunk_variants`` variants is
    one task, the shared data is scattered once. Without a client the chunks run here.
    ``should_stop`` is asked after each chunk; when it answers True the remaining tasks
    are cancelled and SweepCancelled is raised.
    """
    started = time.perf_counter()
    data = prepare(request, features, asset_returns, cash_rate)
    prepared = time.perf_counter()
    ranges = chunk_ranges(request.grid.size, chunk_variants)
    results = _evaluate(data, request, ranges, client, progress, should_stop)
    evaluated = time.perf_counter()
    outcome = summarise(request, data, results)
    outcome.timings = {
        "prepare_s": prepared - started,
        "evaluate_s": evaluated - prepared,
        "summarise_s": time.perf_counter() - evaluated,
    }
    return outcome


def _evaluate(
    data: SweepData,
    request: SweepRequest,
    ranges: list[tuple[int, int]],
    client: Any | None,
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
) -> list[ChunkResult]:
    total = request.grid.size
    done = 0
    results: list[ChunkResult] = []
    if client is None:
        for start, stop in ranges:
            if should_stop is not None and should_stop():
                raise SweepCancelled("cancelled")
            results.append(evaluate_variants(data, request.grid, np.arange(start, stop)))
            done += stop - start
            if progress is not None:
                progress(done, total)
        return results
    from distributed import as_completed  # imported only when a cluster is used

    shared = client.scatter(data, broadcast=True)
    grid = client.scatter(request.grid, broadcast=True)
    futures = [
        client.submit(evaluate_variants, shared, grid, np.arange(start, stop), pure=False)
        for start, stop in ranges
    ]
    try:
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            done += len(result.indices)
            if progress is not None:
                progress(done, total)
            if should_stop is not None and done < total and should_stop():
                raise SweepCancelled("cancelled")
    finally:
        client.cancel(futures + [shared, grid])
    return results


def summarise(request: SweepRequest, data: SweepData, results: list[ChunkResult]) -> SweepOutcome:
    """Join the chunks (any order) and compute the walk-forward and overfitting figures."""
    results = sorted(results, key=lambda r: int(r.indices[0]))
    order = np.concatenate([r.indices for r in results])
    if not np.array_equal(order, np.arange(request.grid.size)):
        raise RuntimeError("sweep chunks do not cover every variant exactly once")
    figures = {name: np.concatenate([r.metrics[name] for r in results]) for name in METRICS}
    in_sample = np.hstack([r.in_sample for r in results])  # (windows, variants)
    moments = BlockMoments(
        sums=np.hstack([r.moments.sums for r in results]),
        squares=np.hstack([r.moments.squares for r in results]),
        counts=results[0].moments.counts,
    )
    objective = figures[request.objective.value]
    calendar = data.calendar[data.period]
    grid = request.grid

    ranked = np.where(np.isnan(in_sample), -np.inf, in_sample)
    picks = ranked.argmax(axis=1)  # (windows,)
    best = int(np.argmax(np.where(np.isnan(objective), -np.inf, objective)))
    needed = np.unique(np.r_[picks, best])
    positions = variant_positions(data, grid, needed)
    returns, turnover = returns_of(data, positions)
    column = {int(v): j for j, v in enumerate(needed)}
    stitched_returns, stitched_turnover = stitch(
        data, positions, returns, turnover, [column[int(pick)] for pick in picks]
    )

    windows = []
    offset = data.windows[0].in_stop  # the stitched series' first row in the period
    for window, pick in zip(data.windows, picks, strict=True):
        out_returns = stitched_returns[window.in_stop - offset : window.out_stop - offset]
        windows.append(
            {
                "in_sample_period": [
                    str(calendar[0].date()),
                    str(calendar[window.in_stop - 1].date()),
                ],
                "out_of_sample_period": [
                    str(calendar[window.in_stop].date()),
                    str(calendar[window.out_stop - 1].date()),
                ],
                "variant": int(pick),
                "parameters": grid.variant(int(pick)).parameters(),
                "in_sample_objective": _finite(in_sample[len(windows), pick]),
                "out_of_sample": _figures_of(out_returns),
            }
        )

    best_returns = returns[:, column[best]]
    daily_sharpe = figures["sharpe"] / math.sqrt(metrics.TRADING_DAYS)
    finite_sharpe = daily_sharpe[np.isfinite(daily_sharpe)]
    trial_variance = float(np.var(finite_sharpe, ddof=1)) if len(finite_sharpe) > 1 else 0.0
    n_trials = grid.size
    pbo = probability_of_backtest_overfitting(moments) if grid.size > 1 else None
    summary = {
        "variants": grid.size,
        "signals": grid.n_signals,
        "objective": request.objective.value,
        "period": {
            "start": str(calendar[0].date()),
            "end": str(calendar[-1].date()),
            "days": data.n_days,
        },
        "chosen": {
            "variant": best,
            "parameters": grid.variant(best).parameters(),
            "config": grid.variant(best).config().model_dump(mode="json", exclude_none=True),
            "lag": grid.variant(best).lag,
            "cost_bps": grid.variant(best).cost_bps,
            "metrics": {name: _finite(figures[name][best]) for name in METRICS},
            "deflated_sharpe": _finite(
                deflated_sharpe(best_returns, n_trials=n_trials, trial_variance=trial_variance)
            ),
            "expected_max_sharpe_daily": expected_max_sharpe(n_trials, trial_variance),
            "trials": n_trials,
            "trial_sharpe_variance_daily": trial_variance,
        },
        "walk_forward": {
            "first_in_sample_years": request.walk_forward.first_in_sample_years,
            "step_years": request.walk_forward.step_years,
            "windows": windows,
            "out_of_sample": {
                "start": windows[0]["out_of_sample_period"][0],
                "end": windows[-1]["out_of_sample_period"][1],
                **_figures_of(stitched_returns),
                "turnover_per_year": _finite(metrics.annualised_turnover(stitched_turnover)),
                "switches": int(np.count_nonzero(picks[1:] != picks[:-1])),
            },
        },
        "overfitting": None
        if pbo is None
        else {
            "pbo": pbo.pbo,
            "blocks": pbo.n_blocks,
            "splits": pbo.n_splits,
            "median_logit": float(np.median(pbo.logits)),
            "method": "CSCV, Sharpe ratio (Bailey, Borwein, Lopez de Prado & Zhu 2015)",
        },
        "notes": [
            "the stitched out-of-sample series takes each window's days from its chosen "
            "variant's own backtest; a switch between variants trades from the previous "
            "variant's position and is charged the new variant's cost"
        ],
    }
    return SweepOutcome(metrics=figures, objective=objective, summary=summary)


def stitch(
    data: SweepData,
    positions: VariantPositions,
    returns: np.ndarray,
    turnover: np.ndarray,
    picks: list[int],
) -> tuple[np.ndarray, np.ndarray]:
    """The walk-forward's out-of-sample returns and turnover: each window's days from
    its pick (a column of ``returns``); on a window's first day after a switch, the
    trade is from the previous pick's position, charged at the new pick's cost."""
    parts, traded = [], []
    for k, (window, pick) in enumerate(zip(data.windows, picks, strict=True)):
        days = slice(window.in_stop, window.out_stop)
        part, trade = returns[days, pick].copy(), turnover[days, pick].copy()
        if k > 0 and pick != picks[k - 1]:
            before = positions.held[window.in_stop - 1, picks[k - 1]]
            switch = abs(positions.held[window.in_stop, pick] - before)
            part[0] += positions.cost_rate[pick] * (trade[0] - switch)
            trade[0] = switch
        parts.append(part)
        traded.append(trade)
    return np.concatenate(parts), np.concatenate(traded)


def _figures_of(returns: np.ndarray) -> dict[str, float | None]:
    """Headline figures of one return series (turnover is not defined across variants)."""
    block = headline_metrics(returns[:, None], np.zeros((len(returns), 1)))
    block.pop("turnover_per_year")
    return {name: _finite(values[0]) for name, values in block.items()} | {"days": len(returns)}
