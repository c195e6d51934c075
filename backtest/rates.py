"""Daily cash rates for cash yield, financing and the excess Sharpe ratio.

Both functions return the rate *earned over day t* (from close t-1 to close t)
on the asset's trading calendar, as a decimal (0.0002 = 2 bp per day), so it
pairs with the engine's daily returns.

- DFF (FRED effective fed funds rate, percent per year, stored as symbol "DFF"
  with the value in ``adj_close``): the rate published for the last calendar
  day on or before the close of t-1 (at most 5 days old), divided by 100 and by
  252, is earned on day t. Simple accrual per trading day: a year of 252 trading
  days accrues the annual rate.
- BIL (T-bill ETF adjusted closes): its own total return over day t.

NaN where the source has no value yet (BIL before 2007-05-30).
"""

from __future__ import annotations

import pandas as pd

from backtest.metrics import TRADING_DAYS
from core.errors import ConfigError
from core.features import align_to_calendar, simple_returns

DFF = "DFF"
BIL = "BIL"


def daily_rate_from_annual_percent(
    annual_percent: pd.Series, calendar: pd.DatetimeIndex
) -> pd.Series:
    """Rate earned on each calendar day t: annual percent known at close t-1 / 100 / 252."""
    known = align_to_calendar(annual_percent.dropna().sort_index(), calendar)
    return (known.shift(1) / 100.0 / TRADING_DAYS).rename("cash_rate")


def daily_rate_from_prices(closes: pd.Series, calendar: pd.DatetimeIndex) -> pd.Series:
    """Total return of a cash-like ETF over each calendar day t (close t-1 to close t)."""
    aligned = align_to_calendar(closes.dropna().sort_index(), calendar)
    return simple_returns(aligned, 1).rename("cash_rate")


def daily_cash_rate(source: str, series: pd.Series, calendar: pd.DatetimeIndex) -> pd.Series:
    """Daily rate from a stored series named by ``source`` ("DFF" or "BIL")."""
    if source == DFF:
        return daily_rate_from_annual_percent(series, calendar)
    if source == BIL:
        return daily_rate_from_prices(series, calendar)
    raise ConfigError(f"rate source must be {DFF!r} or {BIL!r}, got {source!r}")
