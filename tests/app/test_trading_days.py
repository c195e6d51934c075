"""The last NYSE session closed by a given moment (weekends, holidays, early closes)."""

from __future__ import annotations

import datetime as dt

import pytest

from operations.trading_days import TradingCalendar

UTC = dt.UTC


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return TradingCalendar()


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 16:00 New York is 20:00 UTC in summer (EDT), 21:00 UTC in winter (EST).
        (dt.datetime(2024, 7, 2, 19, 59, tzinfo=UTC), dt.date(2024, 7, 1)),
        (dt.datetime(2024, 7, 2, 20, 0, tzinfo=UTC), dt.date(2024, 7, 2)),
        (dt.datetime(2024, 7, 3, 16, 59, tzinfo=UTC), dt.date(2024, 7, 2)),
        # Early close at 13:00 EDT (17:00 UTC) on the eve of Independence Day.
        (dt.datetime(2024, 7, 3, 17, 30, tzinfo=UTC), dt.date(2024, 7, 3)),
        (dt.datetime(2024, 7, 5, 12, 0, tzinfo=UTC), dt.date(2024, 7, 3)),  # July 4th closed
        (dt.datetime(2024, 12, 2, 13, 0, tzinfo=UTC), dt.date(2024, 11, 29)),  # weekend
        (dt.datetime(2024, 12, 31, 21, 0, tzinfo=UTC), dt.date(2024, 12, 31)),  # at the close
        (dt.datetime(2024, 12, 31, 20, 59, tzinfo=UTC), dt.date(2024, 12, 30)),
        (dt.datetime(2025, 1, 9, 22, 0, tzinfo=UTC), dt.date(2025, 1, 8)),  # national mourning
        (dt.datetime(2024, 12, 31, 16, 30), dt.date(2024, 12, 30)),  # naive = UTC
    ],
)
def test_expected_last_session(calendar, now, expected):
    assert calendar.expected_last_session(now) == expected


def test_sessions_between_counts_only_sessions(calendar):
    # Thu 2024-07-03 -> Mon 2024-07-08: the 5th and the 8th (the 4th is a holiday).
    assert calendar.sessions_between(dt.date(2024, 7, 3), dt.date(2024, 7, 8)) == 2
    assert calendar.sessions_between(dt.date(2024, 7, 8), dt.date(2024, 7, 8)) == 0
    assert calendar.sessions_between(dt.date(2024, 7, 9), dt.date(2024, 7, 8)) == 0


def test_closes_after_a_day_include_early_closes(calendar):
    closes = calendar.closes_from(dt.date(2024, 12, 23), days=3)
    # Christmas Eve closes at 13:00 New York (18:00 UTC); Christmas is a holiday.
    assert [c.isoformat() for c in closes] == [
        "2024-12-23T21:00:00+00:00",
        "2024-12-24T18:00:00+00:00",
        "2024-12-26T21:00:00+00:00",
    ]
