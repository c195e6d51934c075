"""Sweep speed on the full SPY history (real data from ../shared/data/market).

Runs research/examples/framework_alternatives.yaml (10,368 variants of the
three-filter framework: windows, thresholds, vote tables, hysteresis, lag and
costs) with every headline metric, the walk-forward choice, the probability of
backtest overfitting and the deflated Sharpe ratio, on a local Dask cluster of
two worker processes (target < 30 s on 2 cores). Beside it, in the same run:

- the single backtest of one rule set (backtest.runner.run_backtest);
- the variants evaluated in this process, chunk by chunk (research.batch: signals,
  positions, returns and every figure in compiled passes): variants per second and
  the peak resident memory;
- the floor: plain batched numpy computing the same returns (costs), equity,
  drawdown and headline metrics from the same (days, variants) positions, already
  built; the compiled figures alone are timed on the same positions.

``--long`` adds a 100,000-variant grid (more thresholds, hysteresis, lags and
costs) on 2 workers (target < 30 s), then that sweep on a separate scheduler with
1, 2 and 4 worker processes (target: 1.8x from 1 to 2 workers).
``--short`` (CI) runs a 1,728-variant grid (one value on the lag and cost axes, two
on hysteresis) and makes no claim about the targets.

Run from the project root:  .venv/bin/python benchmarks/bench_sweep.py [--short | --long]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # run as a script from a source checkout

from bench_backtest import MARKET_DIR, median_ms, real_closes  # noqa: E402

from backtest.metrics import TRADING_DAYS  # noqa: E402
from backtest.runner import BacktestInputs, run_backtest  # noqa: E402
from backtest.schemas import BacktestRequest  # noqa: E402
from core.features import compute_features  # noqa: E402
from research.batch import SweepData, evaluate_variants, prepare, variant_layout  # noqa: E402
from research.cluster import dask_client  # noqa: E402
from research.fused import OBJECTIVE_ROW, fused_figures  # noqa: E402
from research.grid import SweepRequest  # noqa: E402
from research.overfitting import block_edges  # noqa: E402
from research.sweep import run_sweep  # noqa: E402

REQUEST_FILE = PROJECT_ROOT / "research" / "examples" / "framework_alternatives.yaml"
TARGET_S = 30.0
TARGET_SCALING = 1.8  # speed-up from 1 to 2 workers
CHUNK = 2000  # variants per chunk in this process
# The long mode's grid: 4 * 5 * 6 * 2 * 5 * 3 * 5 * 2 * 3 = 108,000 variants.
LONG_GRID = {
    "trend": {"windows": [100, 150, 200, 250], "thresholds": [0.98, 0.99, 1.0, 1.01, 1.02]},
    "volatility": {"thresholds": [0.9, 0.95, 1.0, 1.05, 1.1, 1.15]},
    "credit": {"windows": [100, 252], "thresholds": [-2.0, -1.5, -1.0, -0.5, 0.0]},
    "hysteresis": [
        {},
        {"confirm_days": 3},
        {"confirm_days": 5},
        {"min_dwell_days": 10},
        {"confirm_days": 3, "min_dwell_days": 10},
    ],
    "lag": [1, 2],
    "cost_bps": [0, 5, 10],
}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def numpy_floor(positions: np.ndarray, data: SweepData, cost_rate: np.ndarray) -> np.ndarray:
    """Plain batched numpy: returns net of costs, equity, drawdown and the headline
    metrics of (days, variants) positions (the floor the sweep is compared with)."""
    asset = data.asset_returns[data.period]
    turnover = np.abs(np.diff(positions, axis=0, prepend=0.0))
    returns = positions * asset[:, None] - cost_rate * turnover
    wealth = np.cumprod(1.0 + returns, axis=0)
    drawdown = wealth / np.maximum.accumulate(np.maximum(wealth, 1.0), axis=0) - 1.0
    mean, std = returns.mean(axis=0), returns.std(axis=0, ddof=1)
    worst = drawdown.min(axis=0)
    annual = wealth[-1] ** (TRADING_DAYS / len(returns)) - 1.0
    downside = np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2, axis=0))
    root = math.sqrt(TRADING_DAYS)
    return np.vstack(
        [
            mean / std * root,
            annual,
            std * root,
            worst,
            annual / -worst,
            mean / downside * root,
            wealth[-1] - 1.0,
            turnover.sum(axis=0) * TRADING_DAYS / len(returns),
        ]
    )


def in_process(request: SweepRequest, data: SweepData) -> dict[str, float]:
    """The evaluation of every variant here, chunk by chunk, and beside it on one chunk
    the compiled figures alone and the numpy floor, from the same positions."""
    grid = request.grid
    evaluate_variants(data, grid, np.arange(min(10, grid.size)))  # compile (or load) once
    rss_before = _peak_rss_mib()
    started = time.perf_counter()
    for start in range(0, grid.size, CHUNK):
        evaluate_variants(data, grid, np.arange(start, min(start + CHUNK, grid.size)))
    evaluate_s = time.perf_counter() - started
    peak = _peak_rss_mib()

    indices = np.arange(min(CHUNK, grid.size))
    layout = variant_layout(grid, data.readings, indices)
    rows = np.arange(data.first, data.last + 1)[:, None] - layout.lag[None, :]
    positions = layout.block.exposure[layout.column[None, :], rows]  # (days, variants)
    rate = np.zeros(data.n_days)
    windows = np.array([w.in_stop for w in data.windows], dtype=np.int64)
    edges = block_edges(data.n_days, data.pbo_blocks).astype(np.int64)

    def fused() -> None:
        fused_figures(
            layout.block.exposure, layout.column, layout.lag, layout.cost_rate,
            data.asset_returns[data.period], rate, data.first, False, False, windows,
            OBJECTIVE_ROW[data.objective], edges,
        )  # fmt: skip

    fused_ms = median_ms(fused, 3)
    floor_ms = median_ms(lambda: numpy_floor(positions, data, layout.cost_rate), 3)
    n = len(indices)
    return {
        "evaluate_s": evaluate_s,
        "variants_per_s": grid.size / evaluate_s,
        "per_variant_ms": evaluate_s * 1000.0 / grid.size,
        "fused_per_variant_ms": fused_ms / n,
        "numpy_floor_per_variant_ms": floor_ms / n,
        "peak_rss_mib": peak,
        "rss_growth_mib": peak - rss_before,
    }


def timed_sweep(request: SweepRequest, features, days, workers: int):  # type: ignore[no-untyped-def]
    with dask_client(None, workers=workers) as client:
        started = time.perf_counter()
        outcome = run_sweep(request, features, days.asset_returns, days.cash_rate, client=client)
        return time.perf_counter() - started, outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--short", action="store_true", help="a smaller grid (CI)")
    mode.add_argument("--long", action="store_true", help="100,000 variants and scale-out")
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if not (MARKET_DIR / "SPY.csv").exists():
        print(f"real market data not found at {MARKET_DIR}", file=sys.stderr)
        return 1

    closes = real_closes()
    features = compute_features(closes)
    inputs = BacktestInputs(features, closes["SPY"])
    days = inputs.calendar_arrays()

    payload = yaml.safe_load(REQUEST_FILE.read_text(encoding="utf-8"))
    if args.short:
        payload["grid"].update(lag=[1], cost_bps=[0], hysteresis=[{}, {"confirm_days": 3}])
    request = SweepRequest.model_validate(payload)

    single = BacktestRequest.model_validate(
        {"strategies": [{"kind": "rules"}], "start": features.index[0].date(), "store": False}
    )
    run_backtest(single, inputs)  # warm-up
    single_times = []
    for _ in range(9):
        started = time.perf_counter()
        run_backtest(single, inputs)
        single_times.append(time.perf_counter() - started)
    single_ms = statistics.median(single_times) * 1000.0

    data = prepare(request, features, days.asset_returns, days.cash_rate)
    here = in_process(request, data)
    sweep_s, outcome = timed_sweep(request, features, days, args.workers)

    variants = request.grid.size
    summary = outcome.summary
    per_variant_ms = sweep_s * 1000.0 / variants
    print(
        f"sweep: {variants:,} variants ({summary['signals']:,} distinct signals) over "
        f"{summary['period']['days']:,} days on {args.workers} Dask workers: {sweep_s:.1f} s"
        + ("" if args.short else f" (target < {TARGET_S:.0f} s)")
    )
    print(
        f"single backtest of one rule set, median of 9: {single_ms:.1f} ms; "
        f"sweep per variant {per_variant_ms:.2f} ms ({single_ms / per_variant_ms:.1f}x a "
        "single backtest's speed, with the walk-forward and overfitting figures)"
    )
    print(
        "timings: " + ", ".join(f"{name} {value:.1f} s" for name, value in outcome.timings.items())
    )
    print(
        f"in this process: {here['variants_per_s']:,.0f} variants/s "
        f"({here['per_variant_ms']:.3f} ms a variant, signals included); peak resident "
        f"memory {here['peak_rss_mib']:.0f} MiB (+{here['rss_growth_mib']:.0f} MiB while "
        f"evaluating, chunks of {CHUNK:,})"
    )
    print(
        f"figures alone from built positions: compiled {here['fused_per_variant_ms']:.3f} ms "
        f"a variant vs plain numpy {here['numpy_floor_per_variant_ms']:.3f} ms "
        f"({here['numpy_floor_per_variant_ms'] / here['fused_per_variant_ms']:.1f}x faster); "
        f"whole variant {here['per_variant_ms'] / here['numpy_floor_per_variant_ms']:.2f}x "
        "the numpy floor"
    )
    chosen = summary["chosen"]
    overfitting = summary["overfitting"] or {}
    out_of_sample = summary["walk_forward"]["out_of_sample"]
    print(
        f"chosen: Sharpe {chosen['metrics']['sharpe']:.2f}, deflated Sharpe "
        f"{chosen['deflated_sharpe']:.2f}; PBO {overfitting.get('pbo', float('nan')):.2f}; "
        f"walk-forward out-of-sample Sharpe {out_of_sample['sharpe']:.2f}"
    )
    figures = {
        "variants": variants,
        "sweep_s": sweep_s,
        "single_backtest_ms": single_ms,
        "per_variant_ms": per_variant_ms,
        "timings": outcome.timings,
        "in_process": here,
        "short": args.short,
    }
    met = args.short or sweep_s < TARGET_S
    if args.long:
        met &= long_mode(payload, features, days, figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if not met:
        print("target NOT met")
    return 0


def long_mode(payload: dict, features, days, figures: dict) -> bool:  # type: ignore[no-untyped-def]
    payload = {**payload, "grid": {**payload["grid"], **LONG_GRID}}
    request = SweepRequest.model_validate(payload)
    variants = request.grid.size
    seconds = {}
    for workers in (2, 1, 4):
        seconds[workers], outcome = timed_sweep(request, features, days, workers)
        print(
            f"long: {variants:,} variants on {workers} Dask worker(s): "
            f"{seconds[workers]:.1f} s ({variants / seconds[workers]:,.0f} variants/s; "
            + ", ".join(f"{name} {value:.1f} s" for name, value in outcome.timings.items())
            + ")"
            + (f" (target < {TARGET_S:.0f} s)" if workers == 2 else "")
        )
    scaling = {w: seconds[1] / seconds[w] for w in seconds}
    print(
        "scale-out from 1 worker: "
        + ", ".join(f"{w} workers {scaling[w]:.2f}x" for w in (2, 4))
        + f" (target {TARGET_SCALING}x at 2; the machine's cores bound the 4-worker figure)"
    )
    figures["long"] = {"variants": variants, "seconds": seconds, "speed_up": scaling}
    return seconds[2] < TARGET_S and scaling[2] >= TARGET_SCALING


if __name__ == "__main__":
    raise SystemExit(main())
