"""What the forecasts are worth in a portfolio, after costs, and whether that is luck.

Strategies on SPY, each exposure decided at the close of day t and held from
close t to close t+1 (lag 1), paying ``cost_bps`` per unit of exposure traded
(``backtest.engine.simulate``); no cash yield. From a calibrated p(distressed):

- ``filter``: 1.0 when p < 0.5, else 0.0;
- ``leveraged``: 1.5 when p < 0.5, else 0.3;
- ``scaled``: 1 - p (fully invested only when distress is ruled out).

Per strategy: Sharpe and max drawdown with stationary block bootstrap
intervals, the Sharpe difference against buy & hold and against the rules
(paired bootstrap: both series resampled on the same days), the deflated Sharpe
ratio over every strategy tried, and a timing-permutation p-value (the same
exposures on shuffled days).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.engine import CostModel, simulate
from core.policies import DISTRESSED_PROBABILITY
from core.rules import PUBLISHED_FRAMEWORK, compute_regimes
from training.significance import (
    deflated_sharpe,
    permutation_pvalue,
    stationary_bootstrap_indices,
    timing_permutations,
)

TRADING_DAYS = 252
BUY_AND_HOLD = "buy_and_hold"
RULES = "rules"
VALUE_COLUMNS: tuple[str, ...] = (
    "days",
    "annualised_return",
    "sharpe",
    "sharpe_low",
    "sharpe_high",
    "max_drawdown",
    "max_drawdown_low",
    "max_drawdown_high",
    "mean_exposure",
    "turnover",
    "sharpe_minus_buy_and_hold_low",
    "sharpe_minus_buy_and_hold_high",
    "sharpe_minus_rules_low",
    "sharpe_minus_rules_high",
    "deflated_sharpe",
    "timing_p_value",
)


@dataclass(frozen=True)
class EconomicsConfig:
    cost_bps: float = 10.0
    mean_block: float = 20.0  # mean bootstrap block length in trading days
    n_resamples: int = 1000
    n_permutations: int = 500
    level: float = 0.9
    seed: int = 0


def probability_exposures(p: pd.Series, name: str) -> pd.DataFrame:
    """``<name>:filter``, ``<name>:leveraged`` and ``<name>:scaled`` from a calibrated
    p(distressed) per day (NaN stays NaN)."""
    calm = p < DISTRESSED_PROBABILITY
    known = p.notna()
    return pd.DataFrame(
        {
            f"{name}:filter": np.where(known, calm.astype(float), np.nan),
            f"{name}:leveraged": np.where(known, np.where(calm, 1.5, 0.3), np.nan),
            f"{name}:scaled": 1.0 - p,
        },
        index=p.index,
    )


def rules_exposure(features: pd.DataFrame) -> pd.Series:
    """The published three-filter framework's exposure (1.0 / 0.5 / 0.0) per day."""
    return compute_regimes(features, PUBLISHED_FRAMEWORK)["exposure"].rename(RULES)


def sharpe_rows(returns: np.ndarray) -> np.ndarray:
    """Annualised Sharpe (mean / std, ddof 1) of each row of [k, n] daily returns."""
    std = returns.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(std > 0, returns.mean(axis=1) / std * np.sqrt(TRADING_DAYS), np.nan)


def max_drawdown_rows(returns: np.ndarray) -> np.ndarray:
    """Worst peak-to-trough loss (negative) of each row of [k, n] daily returns."""
    wealth = np.cumprod(1.0 + returns, axis=1)
    peak = np.maximum.accumulate(np.maximum(wealth, 1.0), axis=1)
    return (wealth / peak - 1.0).min(axis=1)


def net_returns(
    exposures: pd.DataFrame, asset_returns: pd.Series, cost_bps: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily returns net of costs and the turnover of each strategy (lag 1)."""
    simulation = simulate(exposures, asset_returns, lag=1, costs=CostModel(cost_bps=cost_bps))
    return simulation.returns, simulation.turnover


def economic_value(
    exposures: pd.DataFrame, asset_returns: pd.Series, config: EconomicsConfig = EconomicsConfig()
) -> pd.DataFrame:
    """One row per strategy (``exposures`` columns plus buy & hold; a column named
    ``rules`` is the benchmark of ``sharpe_minus_rules``), VALUE_COLUMNS."""
    frame = exposures.copy()
    frame.insert(0, BUY_AND_HOLD, 1.0)
    returns, turnover = net_returns(frame, asset_returns, config.cost_bps)
    matrix = returns.to_numpy(dtype=np.float64).T  # [strategies, days]
    n_days = matrix.shape[1]
    rng = np.random.default_rng(config.seed)
    indices = stationary_bootstrap_indices(
        n_days, mean_block=config.mean_block, n_resamples=config.n_resamples, rng=rng
    )
    tail = (1.0 - config.level) / 2.0
    quantiles = [tail, 1.0 - tail]
    # [strategies, resamples]: every strategy resampled on the same days (paired).
    boot_sharpe = np.stack([sharpe_rows(row[indices]) for row in matrix])
    boot_drawdown = np.stack([max_drawdown_rows(row[indices]) for row in matrix])
    names = list(returns.columns)
    per_period = matrix.mean(axis=1) / matrix.std(axis=1, ddof=1)
    trial_variance = float(np.nanvar(per_period[1:], ddof=1)) if len(names) > 2 else 0.0
    observed_sharpe = sharpe_rows(matrix)
    rows = {}
    for k, name in enumerate(names):
        row = {
            "days": float(n_days),
            "annualised_return": float(np.prod(1.0 + matrix[k]) ** (TRADING_DAYS / n_days) - 1),
            "sharpe": float(observed_sharpe[k]),
            "max_drawdown": float(max_drawdown_rows(matrix[k : k + 1])[0]),
            "mean_exposure": float(frame[name].reindex(returns.index).mean()),
            "turnover": float(turnover[name].sum() / n_days * TRADING_DAYS),
        }
        row["sharpe_low"], row["sharpe_high"] = _interval(boot_sharpe[k], quantiles)
        row["max_drawdown_low"], row["max_drawdown_high"] = _interval(boot_drawdown[k], quantiles)
        for benchmark in (BUY_AND_HOLD, RULES):
            low, high = (np.nan, np.nan)
            if benchmark in names and benchmark != name:
                difference = boot_sharpe[k] - boot_sharpe[names.index(benchmark)]
                low, high = _interval(difference, quantiles)
            row[f"sharpe_minus_{benchmark}_low"], row[f"sharpe_minus_{benchmark}_high"] = low, high
        row["deflated_sharpe"] = deflated_sharpe(
            matrix[k], n_trials=max(len(names) - 1, 1), trial_variance=trial_variance
        )
        row["timing_p_value"] = (
            np.nan if name == BUY_AND_HOLD else _timing_p_value(frame[name], asset_returns, config)
        )
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").loc[:, list(VALUE_COLUMNS)]


def _interval(values: np.ndarray, quantiles: list[float]) -> tuple[float, float]:
    """Percentile interval of the finite values (NaN, NaN when there are none)."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, quantiles)
    return float(low), float(high)


def _timing_p_value(
    exposure: pd.Series, asset_returns: pd.Series, config: EconomicsConfig
) -> float:
    """Share of day-shuffled copies of ``exposure`` whose net Sharpe is at least its own."""
    known = exposure.dropna()
    shuffled = timing_permutations(known.to_numpy(), n=config.n_permutations, seed=config.seed + 1)
    frame = pd.DataFrame(shuffled, index=known.index)
    frame.insert(0, "observed", known)
    returns, _ = net_returns(frame, asset_returns, config.cost_bps)
    sharpe = sharpe_rows(returns.to_numpy(dtype=np.float64).T)
    return permutation_pvalue(float(sharpe[0]), sharpe[1:])
