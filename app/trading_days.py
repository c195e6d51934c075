"""Which trading day the data should have reached by now (NYSE calendar, holidays included).

The clock is passed in, never read here, so tests fix "now".
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

CALENDAR_NAME = "XNYS"
CALENDAR_START = "1993-01-01"  # SPY's first year: every stored day is inside the calendar


class TradingCalendar:
    """NYSE sessions; built once (about 0.1 s) and shared by every request."""

    def __init__(self) -> None:
        self._calendar = xcals.get_calendar(CALENDAR_NAME, start=CALENDAR_START)
        self._cached = lru_cache(maxsize=256)(self._last_closed_session)

    def expected_last_session(self, now: dt.datetime) -> dt.date:
        """The latest session whose close is at or before ``now`` (aware or UTC-naive).

        Within one minute the answer cannot change, so it is cached per minute.
        """
        moment = pd.Timestamp(now)
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
        return self._cached(moment.floor("min"))

    def _last_closed_session(self, minute: pd.Timestamp) -> dt.date:
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
        sessions = self._calendar.sessions_in_range(pd.Timestamp(first), pd.Timestamp(last))
        return int((sessions > pd.Timestamp(first)).sum())
