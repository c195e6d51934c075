"""Performance metrics, each defined once: array kernels plus thin pandas wrappers.

Kernels take 1-D float arrays of *daily simple returns* of one strategy (one
value per trading day of the backtest period, already net of costs) and return
floats. Wrappers take pandas objects, align and label, and call the kernels.

Conventions (also printed in every report through ``CONVENTIONS``):

- Annualisation uses ``TRADING_DAYS = 252`` days per year.
- Cumulative return: prod(1 + r) - 1. Annualised return is geometric:
  (1 + cumulative) ** (252 / n_days) - 1.
- Volatility and the daily std use the sample std (ddof=1).
- Sharpe (raw, as both published tables report it): mean(r) / std(r) * sqrt(252),
  no risk-free rate. Excess Sharpe: the same on r - rf (rf = daily cash rate).
- Sortino: mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(252) (target 0, all days
  in the denominator).
- Drawdown on day t: wealth(t) / max(wealth up to t) - 1, where wealth starts at
  1.0 the evening before the first day (so a first-day loss is a drawdown).
  Max drawdown is the most negative value (<= 0). Its duration is the number of
  trading days of the underwater spell that contains it (from the first day
  below the peak to the last day before wealth regains it, or to the end of the
  period if it never does).
- Calmar: annualised return / |max drawdown|.
- Undefined values (zero std, no drawdown, empty input) are NaN in kernels and
  ``None`` in result models.

NaN policy: kernels expect finite inputs (the engine produces no NaN inside a
backtest period); a NaN in the input propagates to the result.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

TRADING_DAYS = 252

CONVENTIONS: dict[str, str] = {
    "annualisation": f"{TRADING_DAYS} trading days per year",
    "annualised_return": "geometric: (1 + cumulative) ** (252 / days) - 1",
    "volatility": "sample std (ddof=1) of daily returns * sqrt(252)",
    "sharpe": "raw: mean / std (ddof=1) of daily returns * sqrt(252), no risk-free rate",
    "sharpe_excess": "mean / std of (daily return - daily cash rate) * sqrt(252)",
    "sortino": "mean / sqrt(mean(min(r, 0)^2)) * sqrt(252), target 0",
    "max_drawdown": "min over days of wealth / running peak - 1, wealth starting at 1.0",
    "drawdown_days": "trading days of the underwater spell holding the max drawdown",
    "calmar": "annualised return / |max drawdown|",
    "time_invested": "share of days held: full (exposure >= 1), partial (0 < e < 1), none (0)",
    "turnover": "sum of |position change| per year; the first day's entry from cash counts",
    "trades": "days on which the position changes (the first day's entry counts)",
}


# --- kernels: 1-D numpy arrays of daily returns -> float -----------------------------


def cumulative_return(returns: np.ndarray) -> float:
    """prod(1 + r) - 1; 0.0 for an empty array."""
    return float(np.prod(1.0 + returns) - 1.0)


def annualised_return(returns: np.ndarray, periods: int = TRADING_DAYS) -> float:
    """Geometric annual return; NaN for an empty array or a total loss."""
    n_days = returns.shape[0]
    growth = 1.0 + cumulative_return(returns)
    if n_days == 0 or growth <= 0.0:
        return math.nan
    return float(growth ** (periods / n_days) - 1.0)


def daily_std(returns: np.ndarray) -> float:
    """Sample std (ddof=1); NaN with fewer than two days."""
    if returns.shape[0] < 2:
        return math.nan
    return float(np.std(returns, ddof=1))


def annualised_volatility(returns: np.ndarray, periods: int = TRADING_DAYS) -> float:
    return daily_std(returns) * math.sqrt(periods)


def sharpe_ratio(
    returns: np.ndarray, risk_free: np.ndarray | None = None, periods: int = TRADING_DAYS
) -> float:
    """mean / std (ddof=1) * sqrt(periods) of r - rf (raw when ``risk_free`` is None).

    NaN when the std is zero or undefined.
    """
    excess = returns if risk_free is None else returns - risk_free
    std = daily_std(excess)
    if not std > 0.0:
        return math.nan
    return float(np.mean(excess) / std * math.sqrt(periods))


def sortino_ratio(returns: np.ndarray, periods: int = TRADING_DAYS) -> float:
    """mean / downside deviation * sqrt(periods), downside over all days with target 0."""
    if returns.shape[0] == 0:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if not downside > 0.0:
        return math.nan
    return float(np.mean(returns) / downside * math.sqrt(periods))


def drawdowns(returns: np.ndarray) -> np.ndarray:
    """Drawdown per day (shape of ``returns``, values <= 0), wealth starting at 1.0."""
    wealth = np.cumprod(1.0 + returns)
    # The starting wealth 1.0 is a peak too: a loss on the first day is a drawdown.
    peak = np.maximum.accumulate(np.maximum(wealth, 1.0))
    return wealth / peak - 1.0


def max_drawdown(returns: np.ndarray) -> float:
    """Most negative drawdown (<= 0); NaN for an empty array."""
    if returns.shape[0] == 0:
        return math.nan
    return float(np.min(drawdowns(returns)))


def underwater_spells(returns: np.ndarray) -> np.ndarray:
    """Length in days of the underwater spell each day belongs to (0 when at a peak)."""
    return _spells(drawdowns(returns))


def _spells(drawdown: np.ndarray) -> np.ndarray:
    underwater = drawdown < 0.0
    # Each run of underwater days shares the count of peaks seen before it.
    spell_id = np.cumsum(~underwater)
    lengths = np.bincount(spell_id, weights=underwater).astype(int)
    return np.where(underwater, lengths[spell_id], 0)


def max_drawdown_duration(returns: np.ndarray) -> int:
    """Trading days of the underwater spell holding the max drawdown (0 if none)."""
    if returns.shape[0] == 0:
        return 0
    drawdown = drawdowns(returns)
    return int(_spells(drawdown)[np.argmin(drawdown)])


def longest_drawdown_duration(returns: np.ndarray) -> int:
    """Trading days of the longest underwater spell (0 if none)."""
    if returns.shape[0] == 0:
        return 0
    return int(np.max(underwater_spells(returns)))


def calmar_ratio(returns: np.ndarray, periods: int = TRADING_DAYS) -> float:
    """Annualised return / |max drawdown|; NaN without a drawdown."""
    worst = max_drawdown(returns)
    if not worst < 0.0:
        return math.nan
    return annualised_return(returns, periods) / abs(worst)


def annualised_turnover(turnover: np.ndarray, periods: int = TRADING_DAYS) -> float:
    """Sum of |position change| per year of ``periods`` days; NaN for an empty array."""
    n_days = turnover.shape[0]
    if n_days == 0:
        return math.nan
    return float(np.sum(turnover) * periods / n_days)


def trade_count(turnover: np.ndarray) -> int:
    """Days with a position change."""
    return int(np.count_nonzero(turnover > 0.0))


def time_invested(positions: np.ndarray) -> tuple[float, float, float]:
    """Shares of days held fully (>= 1), partly (0 < e < 1) and not at all (<= 0)."""
    n_days = positions.shape[0]
    if n_days == 0:
        return (math.nan, math.nan, math.nan)
    full = np.count_nonzero(positions >= 1.0)
    none = np.count_nonzero(positions <= 0.0)
    return (full / n_days, (n_days - full - none) / n_days, none / n_days)


# --- pandas wrappers -----------------------------------------------------------------


def yearly_returns(returns: pd.Series) -> pd.Series:
    """Compounded return of each calendar year present in ``returns`` (sorted DatetimeIndex)."""
    years = returns.index.year.to_numpy()
    if len(years) == 0:
        return pd.Series(dtype=float, name="return").rename_axis("year")
    first_of_year = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    growth = np.multiply.reduceat(1.0 + returns.to_numpy(dtype=float), first_of_year)
    return pd.Series(growth - 1.0, index=pd.Index(years[first_of_year], name="year"))


def regime_distribution(codes: np.ndarray, labels: tuple[str, ...]) -> dict[str, float]:
    """Share of days in each regime: ``codes`` are positions in ``labels`` (float, NaN for
    unknown days, which are left out). Every label appears, with 0.0 when never held."""
    known = codes[~np.isnan(codes)].astype(int)
    if known.size == 0:
        return {}
    counts = np.bincount(known, minlength=len(labels))
    return {label: float(count / known.size) for label, count in zip(labels, counts, strict=True)}


def drawdown_series(returns: pd.Series) -> pd.Series:
    """Daily drawdown of a return series, same index."""
    return pd.Series(drawdowns(returns.to_numpy(dtype=float)), index=returns.index)
