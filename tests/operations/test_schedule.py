"""The scheduler: runs after each NYSE close plus the delay, retries a failed update."""

from __future__ import annotations

import datetime as dt

import pytest

from operations.schedule import next_run_at, run_schedule
from operations.trading_days import TradingCalendar

UTC = dt.UTC


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return TradingCalendar()


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Christmas Eve closes at 13:00 New York (18:00 UTC); Christmas is a holiday.
        (
            dt.datetime(2024, 12, 24, 12, 0, tzinfo=UTC),
            dt.datetime(2024, 12, 24, 18, 30, tzinfo=UTC),
        ),
        (
            dt.datetime(2024, 12, 24, 18, 31, tzinfo=UTC),
            dt.datetime(2024, 12, 26, 21, 30, tzinfo=UTC),
        ),
        # Friday evening: the next run is Monday's close.
        (
            dt.datetime(2024, 12, 27, 22, 0, tzinfo=UTC),
            dt.datetime(2024, 12, 30, 21, 30, tzinfo=UTC),
        ),
        # Summer time: the close is 20:00 UTC.
        (dt.datetime(2024, 7, 1, 9, 0, tzinfo=UTC), dt.datetime(2024, 7, 1, 20, 30, tzinfo=UTC)),
    ],
)
def test_next_run_is_the_next_close_plus_the_delay(calendar, now, expected):
    assert next_run_at(calendar, now, dt.timedelta(minutes=30)) == expected


class FakeTime:
    """A clock and a stop event whose wait moves the clock instead of sleeping."""

    def __init__(self, now: dt.datetime, runs: int) -> None:
        self.now = now
        self.runs_left = runs

    def clock(self) -> dt.datetime:
        return self.now

    def is_set(self) -> bool:
        return self.runs_left <= 0

    def wait(self, timeout: float) -> bool:
        self.now += dt.timedelta(seconds=timeout)
        return self.is_set()


def test_runs_after_each_close_and_retries_a_failure(calendar):
    time = FakeTime(dt.datetime(2024, 12, 24, 12, 0, tzinfo=UTC), runs=4)
    calls: list[dt.datetime] = []

    def update() -> None:
        calls.append(time.now)
        time.runs_left -= 1
        if len(calls) == 2:
            raise ConnectionError("database unreachable")

    run_schedule(
        update,
        calendar=calendar,
        delay=dt.timedelta(minutes=30),
        stop=time,  # type: ignore[arg-type]
        clock=time.clock,
        retry_after=dt.timedelta(minutes=5),
    )
    assert calls == [
        dt.datetime(2024, 12, 24, 18, 30, tzinfo=UTC),
        dt.datetime(2024, 12, 26, 21, 30, tzinfo=UTC),  # fails
        dt.datetime(2024, 12, 26, 21, 35, tzinfo=UTC),  # retried five minutes later
        dt.datetime(2024, 12, 27, 21, 30, tzinfo=UTC),
    ]
