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
from typing import NamedTuple

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
    "time_invested": "share of days held: leveraged (exposure > 1), full (= 1), partial "
    "(0 < e < 1), none (0)",
    "turnover": "sum of |position change| per year; the first day's entry from cash counts",
    "trades": "days on which the position changes (the first day's entry counts)",
}


# --- kernels: daily returns along axis 0 -> one value per column ---------------------
#
# Every kernel takes (days,) or (days, strategies) arrays and reduces along the days:
# a 1-D input gives a float (int for counts), a 2-D input an array with one value per
# strategy. One definition serves a single backtest and a block of many variants.


def _result(values: np.ndarray | float) -> np.ndarray | float:
    return float(values) if np.ndim(values) == 0 else values


def _nan_like(returns: np.ndarray) -> np.ndarray | float:
    return _result(np.full(returns.shape[1:], math.nan))


def cumulative_return(returns: np.ndarray) -> np.ndarray | float:
    """prod(1 + r) - 1; 0.0 for no days."""
    return _result(np.prod(1.0 + returns, axis=0) - 1.0)


def _annualised_growth(growth: np.ndarray | float, n_days: int, periods: int):  # type: ignore[no-untyped-def]
    """(growth) ** (periods / n_days) - 1, NaN for no days or a total loss."""
    growth = np.asarray(growth, dtype=float)
    if n_days == 0:
        return _result(np.full(growth.shape, math.nan))
    with np.errstate(invalid="ignore"):
        annual = np.where(growth > 0.0, growth ** (periods / n_days) - 1.0, math.nan)
    return _result(annual)


def annualised_return(returns: np.ndarray, periods: int = TRADING_DAYS) -> np.ndarray | float:
    """Geometric annual return; NaN for no days or a total loss."""
    return _annualised_growth(1.0 + cumulative_return(returns), returns.shape[0], periods)


def daily_std(returns: np.ndarray) -> np.ndarray | float:
    """Sample std (ddof=1); NaN with fewer than two days."""
    if returns.shape[0] < 2:
        return _nan_like(returns)
    return _result(np.std(returns, axis=0, ddof=1))


def annualised_volatility(returns: np.ndarray, periods: int = TRADING_DAYS) -> np.ndarray | float:
    return daily_std(returns) * math.sqrt(periods)


def _ratio(numerator, denominator):  # type: ignore[no-untyped-def]
    """numerator / denominator where the denominator is > 0, else NaN."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    out = np.full(np.broadcast(numerator, denominator).shape, math.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0.0)
    return _result(out)


def sharpe_ratio(
    returns: np.ndarray, risk_free: np.ndarray | None = None, periods: int = TRADING_DAYS
) -> np.ndarray | float:
    """mean / std (ddof=1) * sqrt(periods) of r - rf (raw when ``risk_free`` is None;
    ``risk_free`` is (days,)). NaN when the std is zero or undefined."""
    excess = returns
    if risk_free is not None:
        excess = returns - (risk_free if returns.ndim == 1 else risk_free[:, None])
    if excess.shape[0] == 0:
        return _nan_like(excess)
    return _sharpe(np.mean(excess, axis=0), daily_std(excess), periods)


def _sharpe(mean, std, periods: int):  # type: ignore[no-untyped-def]
    return _ratio(mean * math.sqrt(periods), std)


def sortino_ratio(returns: np.ndarray, periods: int = TRADING_DAYS) -> np.ndarray | float:
    """mean / downside deviation * sqrt(periods), downside over all days with target 0."""
    if returns.shape[0] == 0:
        return _nan_like(returns)
    downside = np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2, axis=0))
    return _ratio(np.mean(returns, axis=0) * math.sqrt(periods), downside)


def drawdowns(returns: np.ndarray) -> np.ndarray:
    """Drawdown per day (shape of ``returns``, values <= 0), wealth starting at 1.0."""
    return _drawdowns_of(np.cumprod(1.0 + returns, axis=0))


def _drawdowns_of(wealth: np.ndarray) -> np.ndarray:
    # The starting wealth 1.0 is a peak too: a loss on the first day is a drawdown.
    peak = np.maximum.accumulate(np.maximum(wealth, 1.0), axis=0)
    return wealth / peak - 1.0


def max_drawdown(returns: np.ndarray) -> np.ndarray | float:
    """Most negative drawdown (<= 0); NaN for no days."""
    if returns.shape[0] == 0:
        return _nan_like(returns)
    return _result(np.min(drawdowns(returns), axis=0))


def _spell_days(drawdown: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of a (days, strategies) drawdown block: trading days of the underwater
    spell holding the max drawdown (0 if none) and of the longest spell.

    A spell is the run of days between two peaks (drawdown >= 0). Laid out column after
    column with a peak row above each column's first day, every spell is a gap between
    consecutive peaks, so both figures come from one sorted array of peak positions."""
    n_days, columns = drawdown.shape
    # Underwater means drawdown < 0 (a NaN day, like a peak, is not underwater).
    at_peak = np.ones((columns, n_days + 1), dtype=bool)
    np.less(drawdown.T, 0.0, out=at_peak[:, 1:])
    np.logical_not(at_peak[:, 1:], out=at_peak[:, 1:])
    flat = at_peak.ravel()
    peaks = np.r_[np.flatnonzero(flat), flat.size]  # the end closes the last spell
    gaps = np.diff(peaks) - 1
    column_start = np.arange(columns) * (n_days + 1)
    longest = np.maximum.reduceat(gaps, np.searchsorted(peaks, column_start))
    worst = column_start + 1 + np.argmin(drawdown, axis=0)
    next_peak = np.searchsorted(peaks, worst)
    holding_worst = np.where(flat[worst], 0, peaks[next_peak] - peaks[next_peak - 1] - 1)
    return holding_worst, longest


def max_drawdown_duration(returns: np.ndarray) -> np.ndarray | int:
    """Trading days of the underwater spell holding the max drawdown (0 if none)."""
    if returns.shape[0] == 0:
        return _counts(np.zeros(returns.shape[1:], dtype=int))
    holding_worst, _ = _spell_days(_as_block(drawdowns(returns)))
    return _counts(holding_worst.reshape(returns.shape[1:]))


def longest_drawdown_duration(returns: np.ndarray) -> np.ndarray | int:
    """Trading days of the longest underwater spell (0 if none)."""
    if returns.shape[0] == 0:
        return _counts(np.zeros(returns.shape[1:], dtype=int))
    _, longest = _spell_days(_as_block(drawdowns(returns)))
    return _counts(longest.reshape(returns.shape[1:]))


def _as_block(values: np.ndarray) -> np.ndarray:
    """A (days,) series as a (days, 1) block; a block as it is."""
    return values.reshape(values.shape[0], -1)


def _counts(values: np.ndarray) -> np.ndarray | int:
    return int(values) if np.ndim(values) == 0 else values


def calmar_ratio(returns: np.ndarray, periods: int = TRADING_DAYS) -> np.ndarray | float:
    """Annualised return / |max drawdown|; NaN without a drawdown."""
    return _calmar(annualised_return(returns, periods), max_drawdown(returns))


def _calmar(annual, worst):  # type: ignore[no-untyped-def]
    worst = np.asarray(worst, dtype=float)
    return _ratio(annual, np.where(worst < 0.0, -worst, math.nan))


def annualised_turnover(turnover: np.ndarray, periods: int = TRADING_DAYS) -> np.ndarray | float:
    """Sum of |position change| per year of ``periods`` days; NaN for no days."""
    n_days = turnover.shape[0]
    if n_days == 0:
        return _nan_like(turnover)
    return _result(np.sum(turnover, axis=0) * periods / n_days)


def trade_count(turnover: np.ndarray) -> np.ndarray | int:
    """Days with a position change."""
    return _counts(np.count_nonzero(turnover > 0.0, axis=0))


class InvestedShares(NamedTuple):
    """Shares of the days on which a position was held above 1x, at exactly 1x, between
    0 and 1x, and not at all; they sum to 1. Floats for a (days,) input, one value per
    strategy for a (days, strategies) block."""

    leveraged: np.ndarray | float  # exposure > 1
    full: np.ndarray | float  # exposure == 1
    partial: np.ndarray | float  # 0 < exposure < 1
    none: np.ndarray | float  # exposure <= 0 (cash)


def time_invested(positions: np.ndarray) -> InvestedShares:
    """Time invested, split into leveraged (> 1), full (= 1), partial (0 < e < 1) and
    none (<= 0): the one definition every report and result uses. NaN for no days."""
    n_days = positions.shape[0]
    if n_days == 0:
        nan = _nan_like(positions)
        return InvestedShares(nan, nan, nan, nan)
    leveraged = np.count_nonzero(positions > 1.0, axis=0)
    full = np.count_nonzero(positions == 1.0, axis=0)
    none = np.count_nonzero(positions <= 0.0, axis=0)
    return InvestedShares(
        leveraged=_result(leveraged / n_days),
        full=_result(full / n_days),
        partial=_result((n_days - leveraged - full - none) / n_days),
        none=_result(none / n_days),
    )


def yearly_growth(returns: np.ndarray, years: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compounded return of each calendar year: ``years`` (days,) gives each day's year
    (sorted); returns (years present, (years,) or (years, strategies) returns)."""
    if years.shape[0] == 0:
        return years, np.empty((0, *returns.shape[1:]))
    first_of_year = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    growth = np.multiply.reduceat(1.0 + returns, first_of_year, axis=0)
    return years[first_of_year], growth - 1.0


def summary(
    returns: np.ndarray,
    positions: np.ndarray,
    turnover: np.ndarray,
    risk_free: np.ndarray | None = None,
    periods: int = TRADING_DAYS,
    wealth: np.ndarray | None = None,
) -> dict[str, np.ndarray | None]:
    """Every headline metric of a (days, strategies) block, one array per metric, each
    intermediate (mean, std, wealth, drawdowns) computed once. Values equal the
    single kernels' above; ``sharpe_excess`` is None without a complete ``risk_free``.
    ``wealth``: cumprod(1 + returns) when the caller already holds it (equity curves)."""
    n_days = returns.shape[0]
    if n_days < 2:
        raise ValueError(f"a summary needs at least two days, got {n_days}")
    mean = np.mean(returns, axis=0)
    std = np.std(returns, axis=0, ddof=1)
    if wealth is None:
        wealth = np.cumprod(1.0 + returns, axis=0)
    drawdown = _drawdowns_of(wealth)
    worst = np.min(drawdown, axis=0)
    holding_worst, longest = _spell_days(drawdown)
    annual = _annualised_growth(wealth[-1], n_days, periods)
    downside = np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2, axis=0))
    invested = time_invested(positions)
    excess = None
    if risk_free is not None and not np.isnan(risk_free).any():
        excess = sharpe_ratio(returns, risk_free, periods)
    return {
        "cumulative_return": wealth[-1] - 1.0,
        "annualised_return": annual,
        "annualised_volatility": std * math.sqrt(periods),
        "daily_mean": mean,
        "daily_std": std,
        "sharpe": _sharpe(mean, std, periods),
        "sharpe_excess": excess,
        "sortino": _ratio(mean * math.sqrt(periods), downside),
        "max_drawdown": worst,
        "max_drawdown_days": holding_worst,
        "longest_drawdown_days": longest,
        "calmar": _calmar(annual, worst),
        "leveraged": invested.leveraged,
        "full": invested.full,
        "partial": invested.partial,
        "none": invested.none,
        "average_exposure": np.mean(positions, axis=0),
        "turnover_per_year": annualised_turnover(turnover, periods),
        "trades": trade_count(turnover),
    }


# --- pandas wrappers -----------------------------------------------------------------


def yearly_returns(returns: pd.Series) -> pd.Series:
    """Compounded return of each calendar year present in ``returns`` (sorted DatetimeIndex)."""
    years, values = yearly_growth(returns.to_numpy(dtype=float), returns.index.year.to_numpy())
    if len(years) == 0:
        return pd.Series(dtype=float, name="return").rename_axis("year")
    return pd.Series(values, index=pd.Index(years, name="year"))


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
