"""Backtest speed on the full SPY history (real data from ../shared/data/market).

Prints the median wall time of:
- a backtest of 6 strategies (buy & hold, the three single filters, the combined
  framework, and a 10% volatility target on it) over every SPY day, in process,
  from the feature table to the result model (target < 50 ms);
- the same six strategies' returns, equity, drawdowns and every headline metric
  computed by plain numpy from the six exposure series (the floor the backtest is
  compared with, measured in the same run: the backtest should stay within 3x);
- recomputing every daily regime with core.rules.compute_regimes (target < 200 ms).

Run from the project root:  .venv/bin/python benchmarks/bench_backtest.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # run as a script from a source checkout

from backtest.runner import BacktestInputs, run_backtest  # noqa: E402
from backtest.schemas import BacktestRequest  # noqa: E402
from core.features import compute_features  # noqa: E402
from core.rules import PUBLISHED_FRAMEWORK, compute_regimes  # noqa: E402

MARKET_DIR = PROJECT_ROOT.parent / "shared" / "data" / "market"
TARGET_BACKTEST_MS = 50.0
TARGET_REGIMES_MS = 200.0

SIX_STRATEGIES = [
    {"kind": "buy_and_hold"},
    {"kind": "single_filter", "filter": "trend"},
    {"kind": "single_filter", "filter": "volatility"},
    {"kind": "single_filter", "filter": "credit"},
    {"kind": "rules"},
    {"kind": "vol_target", "base": {"kind": "rules"}, "target_volatility": 0.10},
]


def _yfinance(name: str) -> pd.Series:
    table = pd.read_csv(MARKET_DIR / f"{name}.csv", skiprows=3, header=None, usecols=[0, 1])
    return pd.Series(table[1].to_numpy(float), index=pd.DatetimeIndex(pd.to_datetime(table[0])))


def _cboe(name: str) -> pd.Series:
    table = pd.read_csv(MARKET_DIR / f"{name}_History.csv")
    dates = pd.to_datetime(table["DATE"], format="%m/%d/%Y")
    return pd.Series(table["CLOSE"].to_numpy(float), index=pd.DatetimeIndex(dates))


def real_closes() -> dict[str, pd.Series]:
    """The closes the published filters read, straight from the CSV files."""
    return {
        "SPY": _yfinance("SPY"),
        "HYG": _yfinance("HYG"),
        "IEF": _yfinance("IEF"),
        "^VIX": _cboe("VIX"),
        "^VIX3M": _cboe("VIX3M"),
    }


def median_ms(action: Callable[[], object], repeat: int) -> float:
    action()  # warm-up: imports, caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def numpy_reference(exposures: np.ndarray, asset_returns: np.ndarray, years: np.ndarray) -> dict:
    """Plain numpy over (days, strategies) arrays: lag-1 positions, daily returns,
    equity, drawdowns, and the metrics the backtest reports."""
    positions = np.vstack([np.zeros((1, exposures.shape[1])), exposures[:-1]])
    returns = positions * asset_returns[:, None]
    equity = np.cumprod(1.0 + returns, axis=0)
    drawdown = equity / np.maximum.accumulate(np.maximum(equity, 1.0), axis=0) - 1.0
    mean, std = returns.mean(axis=0), returns.std(axis=0, ddof=1)
    downside = np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2, axis=0))
    days = len(returns)
    first_of_year = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    traded = np.abs(np.diff(positions, axis=0, prepend=0.0))
    return {
        "cumulative": equity[-1] - 1.0,
        "annualised": equity[-1] ** (252 / days) - 1.0,
        "volatility": std * np.sqrt(252),
        "sharpe": mean / std * np.sqrt(252),
        "sortino": mean / downside * np.sqrt(252),
        "max_drawdown": drawdown.min(axis=0),
        "yearly": np.multiply.reduceat(1.0 + returns, first_of_year, axis=0) - 1.0,
        "invested": (positions >= 1.0).mean(axis=0),
        "turnover": traded.sum(axis=0) * 252 / days,
        "trades": (traded > 0).sum(axis=0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="timed runs per measure")
    args = parser.parse_args()
    if not (MARKET_DIR / "SPY.csv").exists():
        print(f"real market data not found at {MARKET_DIR}", file=sys.stderr)
        return 1

    closes = real_closes()
    features = compute_features(closes)
    inputs = BacktestInputs(features, closes["SPY"])
    request = BacktestRequest.model_validate(
        # From the first SPY day: days before a filter has input follow the abstain policy.
        {
            "strategies": SIX_STRATEGIES,
            "start": features.index[0].date(),
            "equity_sampling": "weekly",
        }
    )
    days = run_backtest(request, inputs).result.period.days

    backtest_ms = median_ms(lambda: run_backtest(request, inputs), args.repeat)
    run = run_backtest(request, inputs)
    span = run.simulation.returns.index
    # Column-major like the engine's arrays: both reduce along each strategy's days.
    exposures = np.asfortranarray(run.simulation.positions.shift(-1).ffill().to_numpy(dtype=float))
    asset_returns = closes["SPY"].reindex(span).pct_change().fillna(0.0).to_numpy()
    years = span.year.to_numpy()
    reference_ms = median_ms(lambda: numpy_reference(exposures, asset_returns, years), args.repeat)
    regimes_ms = median_ms(lambda: compute_regimes(features, PUBLISHED_FRAMEWORK), args.repeat)

    print(
        f"history: {len(features)} SPY days ({features.index[0].date()} .. "
        f"{features.index[-1].date()}), backtest period {days} days"
    )
    print(
        f"backtest, 6 strategies, median of {args.repeat}: {backtest_ms:.1f} ms "
        f"(target < {TARGET_BACKTEST_MS:.0f} ms)"
    )
    print(
        f"plain numpy, the same 6 strategies' returns and metrics, median of {args.repeat}: "
        f"{reference_ms:.1f} ms; backtest / numpy = {backtest_ms / reference_ms:.1f}x "
        "(floor <= 3x)"
    )
    print(
        f"compute_regimes, all days, median of {args.repeat}: {regimes_ms:.1f} ms "
        f"(target < {TARGET_REGIMES_MS:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
