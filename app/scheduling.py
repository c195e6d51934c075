"""``deepregime serve --schedule``: the daily cycle inside the serving process.

A daemon thread runs operations.schedule.run_schedule with the process's own
model and engine, and drops the cached answers after each update. The lock the
update takes keeps several replicas (or an `updater` service beside them) from
running it twice; the one that comes second finds nothing new.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from app.state import ServiceState
from operations.schedule import run_schedule
from operations.update import run_update

log = logging.getLogger("deepregime.app")


def start_scheduler(state: ServiceState, stop: threading.Event) -> threading.Thread | None:
    """Start the scheduler thread when the settings ask for it; None otherwise."""
    settings = state.settings
    if not settings.schedule_updates:
        return None

    def update() -> None:
        report = run_update(
            state.engine,
            settings=settings,
            model=state.model,
            trigger="schedule",
            lock_wait_s=settings.update_lock_wait_s,
        )
        state.cache.clear()
        log.info("scheduled update #%s: %s", report.run_id, report.status)

    thread = threading.Thread(
        target=run_schedule,
        args=(update,),
        kwargs={
            "calendar": state.calendar,
            "delay": dt.timedelta(minutes=settings.schedule_delay_minutes),
            "stop": stop,
            "clock": lambda: dt.datetime.now(dt.UTC),
        },
        name="deepregime-scheduler",
        daemon=True,
    )
    thread.start()
    return thread
