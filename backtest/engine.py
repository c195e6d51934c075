"""The vectorised backtest engine: exposures in, daily strategy returns out.

Timing (no look-ahead): ``exposure[t]`` is decided from data known at the close
of day t. With an execution lag of L days (default 1) the position *held over*
day t, i.e. from close t-1 to close t, is ``exposure[t - L]`` on the asset's
trading calendar. A lag of 0 would trade on the close that produced the signal
and is refused.

Strategy return on day t, for a held position h = position[t]:

    r_strategy[t] = h * r_asset[t]
                    + cash_yield * max(1 - h, 0) * cash_rate[t]   # uninvested part earns cash
                    - financing  * max(h - 1, 0) * cash_rate[t]   # leverage above 1x is borrowed
                    - cost_bps / 10_000 * |h[t] - h[t-1]|         # traded exposure pays costs

``r_asset[t]`` is the simple return of the adjusted close from t-1 to t (total
return). ``cash_rate[t]`` is the daily rate earned over day t (see
backtest.rates). A backtest starts in cash, so the first day's entry is traded
and costed like any other position change.

Several strategies run together as the columns of one DataFrame; they share one
period: the contiguous span from the first day on which every strategy holds a
position to the last such day (clipped to the requested start and end). Inside
that span a missing exposure keeps the previous position (counted per strategy
as ``held_over_days``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import ConfigError, DataValidationError, NoDataError

MAX_LAG_DAYS = 20
MAX_COST_BPS = 1000.0


@dataclass(frozen=True)
class CostModel:
    """Trading and carry costs; all off by default."""

    cost_bps: float = 0.0  # per unit of traded exposure, in basis points
    cash_yield: bool = False  # uninvested part (1 - exposure, exposure < 1) earns the cash rate
    financing: bool = False  # leverage above 1x pays the cash rate

    def validate(self) -> CostModel:
        if not 0.0 <= self.cost_bps <= MAX_COST_BPS:
            raise ConfigError(
                f"cost_bps must be between 0 and {MAX_COST_BPS:g}, got {self.cost_bps!r}"
            )
        return self

    @property
    def needs_cash_rate(self) -> bool:
        return self.cash_yield or self.financing


@dataclass(frozen=True)
class Simulation:
    """Daily outcome of a backtest over its period (index: trading days, columns: strategies)."""

    positions: pd.DataFrame  # exposure held over each day
    returns: pd.DataFrame  # strategy returns net of costs
    turnover: pd.DataFrame  # |position change| traded at the start of each day
    asset_returns: pd.Series  # r_asset over the same days
    cash_rate: pd.Series | None  # daily cash rate over the same days, if supplied
    held_over_days: pd.Series  # per strategy: days whose missing exposure kept the position

    @property
    def equity(self) -> pd.DataFrame:
        """Wealth after each day, starting from 1.0 the evening before the first day."""
        return (1.0 + self.returns).cumprod()


def validate_lag(lag: int) -> int:
    if lag < 1:
        raise ConfigError(
            f"lag must be at least 1 day, got {lag!r}: a lag of 0 trades on the close that "
            "produced the signal (look-ahead)"
        )
    if lag > MAX_LAG_DAYS:
        raise ConfigError(f"lag must be between 1 and {MAX_LAG_DAYS} days, got {lag!r}")
    return lag


def strategy_returns_kernel(
    positions: np.ndarray,
    asset_returns: np.ndarray,
    cash_rate: np.ndarray,
    cost_rate: float,
    cash_yield: bool,
    financing: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Daily strategy returns and turnover.

    ``positions``: (days, strategies) held exposure, finite. ``asset_returns`` and
    ``cash_rate``: (days,), finite (cash_rate is ignored unless cash_yield or
    financing). ``cost_rate``: cost per unit of traded exposure (bps / 10_000).
    Returns two (days, strategies) arrays: net returns and turnover. The
    position before the first day is 0 (cash).
    """
    previous = np.vstack([np.zeros((1, positions.shape[1])), positions[:-1]])
    turnover = np.abs(positions - previous)
    returns = positions * asset_returns[:, None] - cost_rate * turnover
    if cash_yield:
        returns = returns + np.clip(1.0 - positions, 0.0, None) * cash_rate[:, None]
    if financing:
        returns = returns - np.clip(positions - 1.0, 0.0, None) * cash_rate[:, None]
    return returns, turnover


def held_positions(exposures: pd.DataFrame, lag: int = 1) -> pd.DataFrame:
    """Position held over each day: the exposure decided ``lag`` trading days earlier."""
    return exposures.shift(validate_lag(lag))


def common_span(
    positions: pd.DataFrame,
    asset_returns: pd.Series,
    start: pd.Timestamp | dt.date | None = None,
    end: pd.Timestamp | dt.date | None = None,
) -> pd.DatetimeIndex:
    """Days from the first to the last on which every strategy holds a position and the
    asset has a return, within [start, end]. Raises NoDataError when there is none."""
    days = positions.index
    complete = positions.notna().all(axis=1) & asset_returns.reindex(days).notna()
    if start is not None:
        complete &= days >= pd.Timestamp(start)
    if end is not None:
        complete &= days <= pd.Timestamp(end)
    if not complete.any():
        held = positions.notna()
        ranges = ", ".join(
            f"{column}: {held[column].idxmax().date()}..{held[column][::-1].idxmax().date()}"
            if held[column].any()
            else f"{column}: never"
            for column in held
        )
        raise NoDataError(
            "no common period: every strategy needs a position on the same days within "
            f"[{_day(start, 'start of data')}, {_day(end, 'end of data')}]; "
            f"positions exist for {ranges}"
        )
    first, last = complete.idxmax(), complete[::-1].idxmax()
    return pd.DatetimeIndex(days[(days >= first) & (days <= last)], name=days.name)


def _day(value: pd.Timestamp | dt.date | None, default: str) -> str:
    return default if value is None else str(pd.Timestamp(value).date())


def simulate(
    exposures: pd.DataFrame,
    asset_returns: pd.Series,
    *,
    lag: int = 1,
    costs: CostModel | None = None,
    cash_rate: pd.Series | None = None,
    start: pd.Timestamp | dt.date | None = None,
    end: pd.Timestamp | dt.date | None = None,
) -> Simulation:
    """Backtest one or more exposure series on one asset.

    ``exposures``: (days, strategies) exposure decided at each close, NaN where a
    strategy has no signal; index = the asset's trading days (increasing).
    ``asset_returns``: the asset's daily simple total return on the same days.
    ``cash_rate``: daily rate earned over each day (needed only with cash yield
    or financing). Returns a Simulation over the common period (see module doc).
    """
    costs = (costs or CostModel()).validate()
    if exposures.shape[1] == 0:
        raise ConfigError("at least one strategy is needed")
    positions = held_positions(exposures.astype(float), lag)
    span = common_span(positions, asset_returns, start, end)
    held = positions.loc[span]
    held_over = held.isna().sum()
    held = held.ffill()
    asset = asset_returns.reindex(span).astype(float)
    _require_finite(asset, "asset_returns")
    rate = None
    if cash_rate is not None:
        rate = cash_rate.reindex(span).astype(float)
    if costs.needs_cash_rate:
        if rate is None:
            raise NoDataError("cash yield and financing need a daily cash-rate series")
        _require_finite(rate, "cash_rate")
    returns, turnover = strategy_returns_kernel(
        held.to_numpy(),
        asset.to_numpy(),
        np.zeros(len(span)) if rate is None else rate.to_numpy(),
        costs.cost_bps / 10_000.0,
        costs.cash_yield,
        costs.financing,
    )
    return Simulation(
        positions=held,
        returns=pd.DataFrame(returns, index=span, columns=held.columns),
        turnover=pd.DataFrame(turnover, index=span, columns=held.columns),
        asset_returns=asset,
        cash_rate=rate,
        held_over_days=held_over.astype(int),
    )


def _require_finite(series: pd.Series, field: str) -> None:
    missing = series.index[~np.isfinite(series.to_numpy())]
    if len(missing):
        raise DataValidationError(
            f"missing on {len(missing)} day(s) of the backtest period, first {missing[0].date()}",
            field=field,
        )
