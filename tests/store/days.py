"""Trading days for made-up price files: the ingest refuses a row dated on a weekend
and quarantines one dated on a holiday, so test files keep to the NYSE's sessions
(read from exchange_calendars itself, not from the code under test)."""

from __future__ import annotations

import warnings
from functools import cache

import exchange_calendars as xcals
import pandas as pd


@cache
def _xnys() -> xcals.ExchangeCalendar:
    with warnings.catch_warnings():  # pandas 3.1 deprecations inside exchange_calendars
        warnings.simplefilter("ignore", category=pd.errors.Pandas4Warning)
        calendar = xcals.get_calendar("XNYS", start="1990-01-01", end="2030-12-31")
        calendar.sessions  # noqa: B018 - built here, under the filter
    return calendar


def xnys_days(
    start: str | None = None, *, periods: int | None = None, end: str | None = None
) -> pd.DatetimeIndex:
    """``periods`` NYSE sessions from ``start`` on (or up to ``end``), or all between."""
    sessions = _xnys().sessions
    first = 0 if start is None else int(sessions.searchsorted(pd.Timestamp(start)))
    last = len(sessions) if end is None else int(sessions.searchsorted(pd.Timestamp(end), "right"))
    if periods is not None:
        first, last = (first, first + periods) if start is not None else (last - periods, last)
    return pd.DatetimeIndex(sessions[first:last], name="date")
