"""The days each input is expected to print on: its calendar.

Two calendars, both built once per process, over the only dates a file may hold
(FIRST_DAY..LAST_DAY):

- ``XNYS``, the New York Stock Exchange as exchange_calendars models it: ETFs trade
  on it, and the Cboe indices are set against it (what they print on an exchange
  holiday comes from Cboe's extended session, not from a day the ETFs traded).
- ``FED``, the Federal Reserve's business days, for the effective fed funds rate
  (FRED's DFF). Neither XNYS nor pandas' ``USFederalHolidayCalendar`` is that
  calendar. The NYSE closes on Good Friday, when the Fed works and DFF prints a rate
  of its own, and trades on Columbus and Veterans Day, when the Fed is closed.
  pandas moves a Saturday holiday to the Friday before, the federal government's
  rule, but the Reserve Banks stay open that Friday (e.g. 2021-12-31) and only move
  a Sunday holiday to Monday. Hence the federal holidays below, observed the Fed's
  way, with their pre-1971 fixed dates. On FRED's DFF 1954-2024 this calendar leaves
  12 rows (1954-1979) with a rate of their own on a day it calls a holiday; every
  other row on a closed day repeats the last business day's rate.
"""

from __future__ import annotations

import datetime as dt
import warnings
from functools import cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd
from dateutil.relativedelta import MO
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    DateOffset,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USThanksgivingDay,
    sunday_to_monday,
)

EXCHANGE = "XNYS"
FED = "FED"
CALENDARS = (EXCHANGE, FED)
# A file's dates must lie in these bounds: wider than any market history, and inside
# what every calendar, pandas and both databases represent.
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2100, 12, 31)

# The Uniform Monday Holiday Act moved four holidays to Mondays from 1971 on.
_BEFORE_1971 = {"end_date": "1970-12-31"}
_SINCE_1971 = {"start_date": "1971-01-01"}


def _fixed(name: str, month: int, day: int, **bounds: str) -> Holiday:
    return Holiday(name, month=month, day=day, observance=sunday_to_monday, **bounds)


def _monday(name: str, month: int, nth: int, **bounds: str) -> Holiday:
    return Holiday(name, month=month, day=1, offset=DateOffset(weekday=MO(nth)), **bounds)


class FedHolidayCalendar(AbstractHolidayCalendar):
    """Holidays of the Federal Reserve Banks (see the module docstring)."""

    rules = [
        _fixed("New Year's Day", 1, 1),
        USMartinLutherKingJr,  # from 1986
        _fixed("Washington's Birthday", 2, 22, **_BEFORE_1971),
        _monday("Washington's Birthday", 2, 3, **_SINCE_1971),
        _fixed("Memorial Day", 5, 30, **_BEFORE_1971),
        Holiday("Memorial Day", month=5, day=31, offset=DateOffset(weekday=MO(-1)), **_SINCE_1971),
        _fixed("Juneteenth", 6, 19, start_date="2022-01-01"),  # the Fed's first one
        _fixed("Independence Day", 7, 4),
        USLaborDay,
        _fixed("Columbus Day", 10, 12, **_BEFORE_1971),
        _monday("Columbus Day", 10, 2, **_SINCE_1971),
        _fixed("Veterans Day", 11, 11, **_BEFORE_1971),
        _monday("Veterans Day", 10, 4, start_date="1971-01-01", end_date="1977-12-31"),
        _fixed("Veterans Day", 11, 11, start_date="1978-01-01"),
        USThanksgivingDay,
        _fixed("Christmas Day", 12, 25),
    ]


@cache
def _exchange() -> xcals.ExchangeCalendar:
    with warnings.catch_warnings():
        # exchange_calendars uses pandas APIs deprecated in pandas 3.1.
        warnings.simplefilter("ignore", category=pd.errors.Pandas4Warning)
        return xcals.get_calendar(EXCHANGE, start=str(FIRST_DAY), end=str(LAST_DAY))


@cache
def _closures(calendar: str) -> tuple[pd.DatetimeIndex, dict[pd.Timestamp, str]]:
    """Weekdays the calendar is closed on, and the names of the closures that have one."""
    if calendar == FED:
        named = FedHolidayCalendar().holidays(FIRST_DAY, LAST_DAY, return_name=True)
        return pd.DatetimeIndex(named.index).sort_values(), dict(named.items())
    exchange = _exchange()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=pd.errors.Pandas4Warning)
        weekdays = pd.bdate_range(FIRST_DAY, LAST_DAY)
        closed = weekdays[~weekdays.isin(exchange.sessions)]
        named = exchange.regular_holidays.holidays(FIRST_DAY, LAST_DAY, return_name=True)
    return closed, {day: str(name) for day, name in named.items() if day in closed}


def closed_days(calendar: str, dates: pd.DatetimeIndex) -> np.ndarray:
    """Per date, whether ``calendar`` (EXCHANGE or FED) is closed that day: a weekend or
    a holiday. Dates must lie in FIRST_DAY..LAST_DAY."""
    holidays, _ = _closures(calendar)
    days = dates.to_numpy(dtype="datetime64[ns]")
    found = holidays.to_numpy(dtype="datetime64[ns]")
    at = np.minimum(np.searchsorted(found, days), len(found) - 1)
    return np.asarray(dates.day_of_week >= 5) | (found[at] == days)


def closure(calendar: str, day: pd.Timestamp) -> str:
    """Why ``calendar`` is closed on ``day``: 'a Saturday', 'Memorial Day', ..."""
    if day.weekday() >= 5:
        return f"a {day.day_name()}"
    _, names = _closures(calendar)
    return names.get(day, "a closure of the exchange" if calendar == EXCHANGE else "a holiday")


def describe(calendar: str) -> str:
    return "an XNYS session" if calendar == EXCHANGE else "a Federal Reserve business day"
