"""Model-driven strategies over SPY, run through the project's backtest engine.

Timing: an exposure decided at the close of day t (from data known then) is
held from close t to close t+1 (``backtest.engine.simulate`` with lag 1). No
costs, no cash yield: the published classifier's table states none. The
strategies are the published ones: buy & hold, regime filter (calm 1.0,
distressed 0.0) and leveraged regime (calm 1.5, distressed 0.3), with the
mappings from core.policies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest import metrics
from backtest.engine import simulate
from core.policies import MODEL_FILTER, MODEL_LEVERAGED, model_exposure

BUY_AND_HOLD = "buy_and_hold"
REGIME_FILTER = "regime_filter"
LEVERAGED_REGIME = "leveraged_regime"
PERFORMANCE_COLUMNS: tuple[str, ...] = (
    "days",
    "cumulative_return",
    "annualised_return",
    "sharpe",
    "daily_mean",
    "daily_std",
    "max_drawdown",
    "mean_exposure",
)


def regime_exposures(regime: pd.Series, prefix: str = "") -> pd.DataFrame:
    """Filter and leveraged exposures from a 0/1 regime series (NaN stays NaN)."""
    return pd.DataFrame(
        {
            f"{prefix}{REGIME_FILTER}": model_exposure(regime, MODEL_FILTER),
            f"{prefix}{LEVERAGED_REGIME}": model_exposure(regime, MODEL_LEVERAGED),
        },
        index=regime.index,
    )


def performance_table(
    exposures: pd.DataFrame,
    spy_returns: pd.Series,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per strategy (plus buy & hold) over their common period.

    ``exposures``: columns = strategies, decided at each close, indexed by SPY
    days; ``spy_returns``: SPY's daily total return on the same days (ret_1d).
    Returns PERFORMANCE_COLUMNS per strategy (decimals: 0.05 = 5%).
    """
    frame = exposures.copy()
    frame.insert(0, BUY_AND_HOLD, 1.0)
    simulation = simulate(frame, spy_returns, lag=1, start=start, end=end)
    rows = {}
    for name in simulation.returns.columns:
        daily = simulation.returns[name].to_numpy(dtype=float)
        rows[name] = {
            "days": float(len(daily)),
            "cumulative_return": metrics.cumulative_return(daily),
            "annualised_return": metrics.annualised_return(daily),
            "sharpe": metrics.sharpe_ratio(daily),
            "daily_mean": float(np.mean(daily)),
            "daily_std": metrics.daily_std(daily),
            "max_drawdown": metrics.max_drawdown(daily),
            "mean_exposure": float(simulation.positions[name].mean()),
        }
    return pd.DataFrame.from_dict(rows, orient="index").loc[:, list(PERFORMANCE_COLUMNS)]


def yearly_strategy_returns(exposures: pd.DataFrame, spy_returns: pd.Series) -> pd.DataFrame:
    """Compounded return of buy & hold and each strategy per calendar year [year x strategy]."""
    frame = exposures.copy()
    frame.insert(0, BUY_AND_HOLD, 1.0)
    simulation = simulate(frame, spy_returns, lag=1)
    return pd.DataFrame(
        {name: metrics.yearly_returns(simulation.returns[name]) for name in frame.columns}
    )


def equity_curves(exposures: pd.DataFrame, spy_returns: pd.Series) -> pd.DataFrame:
    """Wealth (1.0 the evening before the first day) of buy & hold and each strategy."""
    frame = exposures.copy()
    frame.insert(0, BUY_AND_HOLD, 1.0)
    return simulate(frame, spy_returns, lag=1).equity
