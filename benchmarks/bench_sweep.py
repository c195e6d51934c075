"""Sweep speed on the full SPY history (real data from ../shared/data/market).

Runs research/examples/framework_alternatives.yaml (10,368 variants of the
three-filter framework: windows, thresholds, vote tables, hysteresis, lag and
costs) with every headline metric, the walk-forward choice, the probability of
backtest overfitting and the deflated Sharpe ratio, on a local Dask cluster of
two worker processes (target < 30 s on 2 cores), and beside it, in the same run,
the single backtest of one rule set (backtest.runner.run_backtest), so the cost
per variant can be read against it.

``--short`` (CI) runs a 1,728-variant grid (one value on the lag and cost axes, two
on hysteresis) and makes no claim about the target.

Run from the project root:  .venv/bin/python benchmarks/bench_sweep.py [--short]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # run as a script from a source checkout

from bench_backtest import MARKET_DIR, real_closes  # noqa: E402

from backtest.runner import BacktestInputs, run_backtest  # noqa: E402
from backtest.schemas import BacktestRequest  # noqa: E402
from core.features import compute_features  # noqa: E402
from research.cluster import dask_client  # noqa: E402
from research.grid import SweepRequest  # noqa: E402
from research.sweep import run_sweep  # noqa: E402

REQUEST_FILE = PROJECT_ROOT / "research" / "examples" / "framework_alternatives.yaml"
TARGET_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a smaller grid (CI)")
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

    with dask_client(None, workers=args.workers) as client:
        started = time.perf_counter()
        outcome = run_sweep(request, features, days.asset_returns, days.cash_rate, client=client)
        sweep_s = time.perf_counter() - started

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
        "short": args.short,
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if not args.short and sweep_s >= TARGET_S:
        print("target NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
