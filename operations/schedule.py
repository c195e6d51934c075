"""Run the daily cycle after each NYSE close, with no cron: the scheduler loop.

``next_run_at`` is pure (calendar and clock passed in); ``run_schedule`` sleeps
until then, runs ``operations.update.run_update`` and, when an update fails
(database down, source unreachable), retries every few minutes until it
succeeds or the next close comes.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from operations.trading_days import TradingCalendar

log = logging.getLogger("deepregime.schedule")
RETRY_AFTER = dt.timedelta(minutes=5)


def next_run_at(calendar: TradingCalendar, now: dt.datetime, delay: dt.timedelta) -> dt.datetime:
    """The first NYSE session close plus ``delay`` strictly after ``now`` (aware UTC)."""
    for close in calendar.closes_from(now.date() - dt.timedelta(days=1)):
        if close + delay > now:
            return close + delay
    raise RuntimeError(f"no NYSE session after {now} in the calendar")


def run_schedule(
    update: Callable[[], object],
    *,
    calendar: TradingCalendar,
    delay: dt.timedelta,
    stop: threading.Event,
    clock: Callable[[], dt.datetime],
    retry_after: dt.timedelta = RETRY_AFTER,
) -> None:
    """Call ``update`` after each close + ``delay`` until ``stop`` is set."""
    due = next_run_at(calendar, clock(), delay)
    while not stop.is_set():
        log.info("next update at %s", due.isoformat(timespec="minutes"))
        if stop.wait(max(0.0, (due - clock()).total_seconds())):
            return
        try:
            update()
            due = next_run_at(calendar, clock(), delay)
        except Exception as error:  # noqa: BLE001 - the loop must outlive any one failure
            retry = clock() + retry_after
            due = min(retry, next_run_at(calendar, clock(), delay))
            log.warning("scheduled update failed (%s); retrying at %s", error, due.isoformat())
