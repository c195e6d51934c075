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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import ConfigError, DataValidationError, NoDataError

MAX_LAG_DAYS = 20
MAX_COST_BPS = 1000.0


@dataclass(frozen=True)
class CostModel:
    """Trading and carry costs; all off by default here (a BacktestRequest finances
    leverage unless told not to)."""

    cost_bps: float = 0.0  # per unit of traded exposure, in basis points
    cash_yield: bool = False  # uninvested part (1 - exposure, exposure < 1) earns the cash rate
    financing: bool = False  # leverage above 1x pays the cash rate

    def validate(self) -> CostModel:
        if not 0.0 <= self.cost_bps <= MAX_COST_BPS:
            raise ConfigError(
                f"cost_bps must be between 0 and {MAX_COST_BPS:g}, got {self.cost_bps!r}"
            )
        return self


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
    uninvested_returns: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Daily strategy returns and turnover.

    ``positions``: (days, strategies) held exposure, finite. ``asset_returns`` and
    ``cash_rate``: (days,), finite (cash_rate is ignored unless cash_yield or
    financing). ``cost_rate``: cost per unit of traded exposure (bps / 10_000).
    ``uninvested_returns``: optional (days, strategies) return earned by the
    uninvested part of each strategy (e.g. a defensive asset); where given it
    replaces the cash yield for that part. Returns two (days, strategies)
    arrays: net returns and turnover. The position before the first day is 0 (cash).
    """
    turnover = np.empty_like(positions)
    turnover[0] = np.abs(positions[0])
    np.abs(positions[1:] - positions[:-1], out=turnover[1:])
    returns = positions * asset_returns[:, None] - cost_rate * turnover
    if uninvested_returns is not None:
        returns += np.clip(1.0 - positions, 0.0, None) * uninvested_returns
    elif cash_yield:
        returns += np.clip(1.0 - positions, 0.0, None) * cash_rate[:, None]
    if financing:
        returns -= np.clip(positions - 1.0, 0.0, None) * cash_rate[:, None]
    return returns, turnover


def held_positions(exposures: pd.DataFrame, lag: int = 1) -> pd.DataFrame:
    """Position held over each day: the exposure decided ``lag`` trading days earlier."""
    return exposures.shift(validate_lag(lag))


@dataclass(frozen=True)
class ArraySimulation:
    """A backtest's daily outcome on arrays. Row i is calendar day ``first + i``;
    columns are strategies in the order given."""

    first: int  # position of the period's first day in the calendar
    positions: np.ndarray  # (days, strategies): exposure held over each day
    returns: np.ndarray  # (days, strategies): net of costs
    turnover: np.ndarray  # (days, strategies): |position change| traded at the day's start
    asset_returns: np.ndarray  # (days,)
    cash_rate: np.ndarray | None  # (days,), if supplied
    held_over_days: np.ndarray  # (strategies,): days whose missing exposure kept the position

    @property
    def period(self) -> slice:
        """The period's rows in calendar coordinates."""
        return slice(self.first, self.first + self.returns.shape[0])


def simulate_arrays(
    exposures: np.ndarray,
    asset_returns: np.ndarray,
    calendar: pd.DatetimeIndex,
    names: Sequence[str],
    *,
    lag: int = 1,
    costs: CostModel | None = None,
    cash_rate: np.ndarray | None = None,
    uninvested_returns: np.ndarray | None = None,
    start: int = 0,
    end: int | None = None,
) -> ArraySimulation:
    """Backtest the columns of ``exposures`` (calendar days x strategies, decided at
    each close, NaN without a signal) on one asset, over the common period within
    calendar rows [start, end] (see module doc). ``asset_returns``, ``cash_rate``:
    (days,) on the calendar; ``uninvested_returns``: (days, strategies), the return
    of what each strategy's uninvested part holds (replaces the cash yield).
    ``calendar`` and ``names`` only label error messages."""
    costs = (costs or CostModel()).validate()
    lag = validate_lag(lag)
    n_days, n_strategies = exposures.shape
    if n_strategies == 0:
        raise ConfigError("at least one strategy is needed")
    positions = np.full(exposures.shape, np.nan)
    positions[lag:] = exposures[: n_days - lag]
    first, last = _common_rows(positions, asset_returns, calendar, names, start, end)
    rows = slice(first, last + 1)
    # Column-major: every later step reduces along the days of each strategy.
    held = np.asfortranarray(positions[rows])
    missing = np.isnan(held)
    held_over = missing.sum(axis=0)
    if held_over.any():  # keep the previous position (the first row is complete)
        source = np.where(missing, 0, np.arange(held.shape[0])[:, None])
        held = np.asfortranarray(
            held[np.maximum.accumulate(source, axis=0), np.arange(n_strategies)]
        )
    asset = asset_returns[rows]
    _require_finite(asset, calendar[rows], "asset_returns")
    rate = None if cash_rate is None else cash_rate[rows]
    # Financing costs something only on leveraged days: without any, no rate is needed.
    financing = costs.financing and bool((held > 1.0).any())
    if costs.cash_yield or financing:
        if rate is None:
            raise NoDataError(
                "cash yield, and financing of exposure above 1x, need a daily cash-rate "
                "series (store DFF or BIL, or set cash_yield and financing to false)"
            )
        _require_finite(rate, calendar[rows], "cash_rate")
    uninvested = None if uninvested_returns is None else uninvested_returns[rows]
    if uninvested is not None:
        _require_finite(uninvested, calendar[rows], "uninvested_returns")
    returns, turnover = strategy_returns_kernel(
        held,
        asset,
        np.zeros(held.shape[0]) if rate is None else rate,
        costs.cost_bps / 10_000.0,
        costs.cash_yield,
        financing,
        uninvested,
    )
    return ArraySimulation(first, held, returns, turnover, asset, rate, held_over)


def _common_rows(
    positions: np.ndarray,
    asset_returns: np.ndarray,
    calendar: pd.DatetimeIndex,
    names: Sequence[str],
    start: int,
    end: int | None,
) -> tuple[int, int]:
    """First and last calendar row on which every strategy holds a position and the
    asset has a return, within rows [start, end]. Raises NoDataError when there is none."""
    held = ~np.isnan(positions)
    complete = held.all(axis=1) & ~np.isnan(asset_returns)
    complete[:start] = False
    if end is not None:
        complete[end + 1 :] = False
    if not complete.any():
        ranges = ", ".join(
            f"{name}: {calendar[column.argmax()].date()}.."
            f"{calendar[len(column) - 1 - column[::-1].argmax()].date()}"
            if column.any()
            else f"{name}: never"
            for name, column in zip(names, held.T, strict=True)
        )
        bounds = (
            _row_day(calendar, start, "start of data"),
            _row_day(calendar, end, "end of data"),
        )
        raise NoDataError(
            "no common period: every strategy needs a position on the same days within "
            f"[{bounds[0]}, {bounds[1]}]; positions exist for {ranges}"
        )
    return int(complete.argmax()), len(complete) - 1 - int(complete[::-1].argmax())


def _row_day(calendar: pd.DatetimeIndex, row: int | None, default: str) -> str:
    if row is None:
        return default
    if not 0 <= row < len(calendar):
        return "before the first day of data" if row < 0 else "after the last day of data"
    return str(calendar[row].date())


def calendar_rows(
    calendar: pd.DatetimeIndex,
    start: pd.Timestamp | dt.date | None,
    end: pd.Timestamp | dt.date | None,
) -> tuple[int, int | None]:
    """Calendar rows of the first day >= start and the last day <= end (end row may be -1)."""
    first = 0 if start is None else int(calendar.searchsorted(pd.Timestamp(start), "left"))
    last = None if end is None else int(calendar.searchsorted(pd.Timestamp(end), "right")) - 1
    return first, last


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
    """Backtest one or more exposure series on one asset (pandas edge of simulate_arrays).

    ``exposures``: (days, strategies) exposure decided at each close, NaN where a
    strategy has no signal; index = the asset's trading days (increasing).
    ``asset_returns``: the asset's daily simple total return on the same days.
    ``cash_rate``: daily rate earned over each day (needed only with cash yield
    or financing). Returns a Simulation over the common period (see module doc).
    """
    calendar = exposures.index
    first, last = calendar_rows(calendar, start, end)
    arrays = simulate_arrays(
        exposures.to_numpy(dtype=float),
        asset_returns.reindex(calendar).to_numpy(dtype=float),
        calendar,
        [str(name) for name in exposures.columns],
        lag=lag,
        costs=costs,
        cash_rate=None if cash_rate is None else cash_rate.reindex(calendar).to_numpy(dtype=float),
        start=first,
        end=last,
    )
    return as_simulation(arrays, calendar, exposures.columns)


def as_simulation(
    arrays: ArraySimulation, calendar: pd.DatetimeIndex, columns: Sequence[object]
) -> Simulation:
    """The pandas view of an ArraySimulation (for plots, reports and tests)."""
    span = calendar[arrays.period]
    columns = pd.Index(columns)
    return Simulation(
        positions=pd.DataFrame(arrays.positions, index=span, columns=columns),
        returns=pd.DataFrame(arrays.returns, index=span, columns=columns),
        turnover=pd.DataFrame(arrays.turnover, index=span, columns=columns),
        asset_returns=pd.Series(arrays.asset_returns, index=span),
        cash_rate=None if arrays.cash_rate is None else pd.Series(arrays.cash_rate, index=span),
        held_over_days=pd.Series(arrays.held_over_days, index=columns).astype(int),
    )


def _require_finite(values: np.ndarray, days: pd.DatetimeIndex, field: str) -> None:
    bad = ~np.isfinite(values)
    if bad.ndim > 1:
        bad = bad.any(axis=1)
    if bad.any():
        raise DataValidationError(
            f"missing on {int(bad.sum())} day(s) of the backtest period, "
            f"first {days[int(bad.argmax())].date()}",
            field=field,
        )
