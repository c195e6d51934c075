"""Which trading day the data should have reached by now (NYSE calendar, holidays included).

The clock is passed in, never read here, so tests fix "now".
"""

from __future__ import annotations

import datetime as dt
import warnings
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

CALENDAR_NAME = "XNYS"
CALENDAR_START = "1993-01-01"  # SPY's first year: every stored day is inside the calendar


class TradingCalendar:
    """NYSE sessions; built once (about 0.1 s) and shared by every request."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # exchange_calendars uses pandas APIs deprecated in pandas 3.1, in lazily
            # cached properties: build and warm them up here, once, silently.
            warnings.simplefilter("ignore", category=pd.errors.Pandas4Warning)
            self._calendar = xcals.get_calendar(CALENDAR_NAME, start=CALENDAR_START)
            self._last_closed_session(dt.datetime(2000, 1, 3, 12))
        self._cached = lru_cache(maxsize=256)(self._last_closed_session)

    def expected_last_session(self, now: dt.datetime) -> dt.date:
        """The latest session whose close is at or before ``now`` (aware, or naive UTC).

        Within one minute the answer cannot change, so it is cached per minute
        (keyed by a plain datetime: this runs on every /regime/today request).
        """
        if now.tzinfo is not None:
            now = now.astimezone(dt.UTC).replace(tzinfo=None)
        return self._cached(now.replace(second=0, microsecond=0))

    def _last_closed_session(self, naive_utc_minute: dt.datetime) -> dt.date:
        minute = pd.Timestamp(naive_utc_minute, tz="UTC")
        calendar = self._calendar
        if minute > calendar.last_minute:
            return calendar.last_session.date()
        if minute <= calendar.first_minute:
            return calendar.first_session.date()
        return calendar.minute_to_past_session(minute).date()

    def sessions_between(self, first: dt.date, last: dt.date) -> int:
        """Sessions after ``first`` up to and including ``last`` (0 when last <= first)."""
        if last <= first:
            return 0
        bounds = (self._calendar.first_session, self._calendar.last_session)
        start = min(max(pd.Timestamp(first), bounds[0]), bounds[1])
        end = min(max(pd.Timestamp(last), bounds[0]), bounds[1])
        sessions = self._calendar.sessions_in_range(start, end)
        return int((sessions > pd.Timestamp(first)).sum())

    def closes_from(self, first: dt.date, days: int = 15) -> list[dt.datetime]:
        """Close times (aware UTC) of the sessions from ``first`` over ``days`` calendar days."""
        start = max(pd.Timestamp(first), self._calendar.first_session)
        end = min(start + pd.Timedelta(days=days), self._calendar.last_session)
        sessions = self._calendar.sessions_in_range(start, end)
        return [self._calendar.session_close(s).to_pydatetime() for s in sessions]
