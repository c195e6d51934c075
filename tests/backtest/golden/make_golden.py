"""Writes golden backtest results on the real history (../shared/data/market).

The file it writes was produced by the pandas-based engine before the kernel
became array-based; tests/backtest/test_golden.py checks that every figure of
today's engine equals it to 1e-12. Rerun only on a deliberate change of a
convention:  .venv/bin/python tests/backtest/golden/make_golden.py

Two deliberate changes were carried into the file since, every other figure checked
unchanged: time invested in four shares (the old ``full``, exposure >= 1, is now
``leveraged`` (> 1) plus ``full`` (= 1); "Model leveraged" moved 73% of its days from
full to leveraged), and financing of leverage on by default (the two requests that do
not set it now say ``financing: true``; they hold no leverage, so no figure moved).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from backtest.rates import daily_cash_rate  # noqa: E402
from backtest.runner import BacktestInputs, run_backtest  # noqa: E402
from backtest.schemas import BacktestRequest  # noqa: E402
from core.features import compute_features  # noqa: E402

MARKET = ROOT.parent / "shared" / "data" / "market"
GOLDEN = Path(__file__).with_name("backtest_results.json")

SIX = [
    {"kind": "buy_and_hold"},
    {"kind": "single_filter", "filter": "trend"},
    {"kind": "single_filter", "filter": "volatility"},
    {"kind": "single_filter", "filter": "credit"},
    {"kind": "rules"},
    {"kind": "vol_target", "base": {"kind": "rules"}, "target_volatility": 0.10},
]
MODEL = [
    {"kind": "model"},
    {"kind": "model", "mapping": "leveraged"},
    {"kind": "ensemble"},
    {"kind": "rules", "preset": "platform", "hysteresis": {"confirm_days": 3, "min_dwell_days": 5}},
    {"kind": "vol_target", "base": {"kind": "model", "mapping": "leveraged"}, "max_leverage": 1.5},
]
REQUESTS = {
    "six_from_first_day": {"strategies": SIX, "start": "1993-01-29", "equity_sampling": "weekly"},
    "six_default_start_daily": {"strategies": SIX, "equity_sampling": "daily"},
    "costs_cash_financing_lag2": {
        "strategies": SIX + MODEL,
        "cost_bps": 10,
        "cash_yield": True,
        "financing": True,
        "lag": 2,
        "start": "2008-01-02",
        "end": "2022-06-30",
        "equity_sampling": "monthly",
    },
}


def yfinance(name: str) -> pd.Series:
    table = pd.read_csv(MARKET / f"{name}.csv", skiprows=3, header=None, usecols=[0, 1])
    return pd.Series(table[1].to_numpy(float), index=pd.DatetimeIndex(pd.to_datetime(table[0])))


def cboe(name: str) -> pd.Series:
    table = pd.read_csv(MARKET / f"{name}_History.csv")
    dates = pd.to_datetime(table["DATE"], format="%m/%d/%Y")
    return pd.Series(table["CLOSE"].to_numpy(float), index=pd.DatetimeIndex(dates))


def dff() -> pd.Series:
    table = pd.read_csv(MARKET / "DFF.csv")
    return pd.Series(
        table.iloc[:, 1].to_numpy(float), index=pd.DatetimeIndex(pd.to_datetime(table.iloc[:, 0]))
    )


def golden_inputs() -> BacktestInputs:
    closes = {
        "SPY": yfinance("SPY"),
        "HYG": yfinance("HYG"),
        "IEF": yfinance("IEF"),
        "^VIX": cboe("VIX"),
        "^VIX3M": cboe("VIX3M"),
    }
    features = compute_features(closes)
    # A made-up but deterministic model: distressed when 20-day realised vol is high.
    distressed = (features["rv_20d"] > 0.012).astype(float)
    outputs = pd.DataFrame(
        {"regime": distressed, "p_distressed": 0.25 + 0.5 * distressed}, index=features.index
    )
    return BacktestInputs(
        features,
        closes["SPY"],
        cash_rate=daily_cash_rate("DFF", dff(), features.index),
        cash_rate_source="DFF",
        model_outputs=outputs,
    )


def results(inputs: BacktestInputs) -> dict[str, dict]:
    return {
        name: run_backtest(BacktestRequest.model_validate(body), inputs).result.model_dump(
            mode="json"
        )
        for name, body in REQUESTS.items()
    }


if __name__ == "__main__":
    np.seterr(all="ignore")
    GOLDEN.write_text(json.dumps(results(golden_inputs()), indent=None, sort_keys=True))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
