"""Our vectorised engine beside backtrader on the same data, strategies and conventions.

    python benchmarks/bench_backtrader.py [--market DIR] [--start 2006-01-03] [--repeat N] [--short]

Strategies: buy & hold, the three-filter framework, and the leveraged mapping
(1.5x calm / 0.3x distressed) driven by the rule engine's risk-off days as the
distressed call (the same series in both engines; it exercises leverage and
partial exposure). Costs are zero. Prints final wealth from both engines (they
must agree within 0.1%), the in-process time of each, and the speed ratio
(target: at least 50x).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backtrader_peer import replay, targets_from_positions  # noqa: E402

from backtest.runner import BacktestInputs, run_backtest  # noqa: E402
from backtest.schemas import BacktestRequest  # noqa: E402
from core.features import FEATURE_INPUT_SYMBOLS, SPY, compute_features  # noqa: E402
from core.rules import PUBLISHED_FRAMEWORK, compute_regimes  # noqa: E402
from store.sources import read_folder_closes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = [
    {"kind": "buy_and_hold"},
    {"kind": "rules", "preset": "published"},
    {"kind": "model", "mapping": "leveraged", "name": "Leveraged 1.5/0.3"},
]

# The peer holds leverage without paying for it: so does our side of the comparison.
UNFINANCED = {"strategies": STRATEGIES, "financing": False}


def peer_inputs(market: Path) -> BacktestInputs:
    closes = read_folder_closes(market, FEATURE_INPUT_SYMBOLS, today=dt.date.today())
    features = compute_features(closes)
    regimes = compute_regimes(features, PUBLISHED_FRAMEWORK)
    distressed = (regimes["regime_code"] == 2).astype(float).where(regimes["regime_code"].notna())
    model_outputs = pd.DataFrame({"regime": distressed, "p_distressed": distressed})
    return BacktestInputs(features=features, asset_close=closes[SPY], model_outputs=model_outputs)


def compare(inputs: BacktestInputs, start: str, end: str | None = None) -> list[dict]:
    """Final wealth per strategy in both engines, plus both engines' times."""
    request = BacktestRequest.model_validate({**UNFINANCED, "start": start, "end": end})
    started = time.perf_counter()
    run = run_backtest(request, inputs)
    ours_s = time.perf_counter() - started
    calendar = inputs.features.index
    rows = []
    for name in run.simulation.positions.columns:
        positions = run.simulation.positions[name]
        close = inputs.asset_close.reindex(calendar)
        first = calendar.get_loc(positions.index[0]) - 1
        span_close = close.iloc[first : calendar.get_loc(positions.index[-1]) + 1]
        started = time.perf_counter()
        peer = replay(span_close, targets_from_positions(positions, calendar))
        peer_s = time.perf_counter() - started
        ours = float(run.simulation.equity[name].iloc[-1])
        rows.append(
            {
                "strategy": name,
                "ours": ours,
                "backtrader": peer,
                "gap": ours / peer - 1,
                "backtrader_s": peer_s,
            }
        )
    for row in rows:
        row["ours_s_all_strategies"] = ours_s
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", type=Path, default=ROOT.parent / "shared" / "data" / "market")
    parser.add_argument("--start", default="2006-01-03")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--short", action="store_true", help="Fewer repeats.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    repeat = 5 if args.short else args.repeat

    inputs = peer_inputs(args.market)
    rows = compare(inputs, args.start)
    request = BacktestRequest.model_validate({**UNFINANCED, "start": args.start})
    ours = []
    for _ in range(repeat):
        started = time.perf_counter()
        run_backtest(request, inputs)
        ours.append(time.perf_counter() - started)
    ours_s = statistics.median(ours)
    peer_s = sum(r["backtrader_s"] for r in rows)
    print(f"{'strategy':22s} {'ours':>10s} {'backtrader':>10s} {'gap':>9s}")
    for r in rows:
        print(f"{r['strategy']:22s} {r['ours']:10.4f} {r['backtrader']:10.4f} {r['gap']:9.2e}")
    print(
        f"3 strategies from {args.start}: ours {ours_s * 1000:.1f} ms (median of {repeat}), "
        f"backtrader {peer_s * 1000:.0f} ms -> {peer_s / ours_s:.0f}x faster"
    )
    if args.json:
        figures = {
            "ours_ms": ours_s * 1000,
            "backtrader_ms": peer_s * 1000,
            "speed_ratio": peer_s / ours_s,
            "max_abs_gap": max(abs(r["gap"]) for r in rows),
            "strategies": rows,
        }
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
