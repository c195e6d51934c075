"""The daily cycle from the terminal: ``deepregime update`` and ``deepregime schedule``."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from cli.common import engine, fail, handles_errors, print_json, settings
from operations.models import load_active_model
from operations.schedule import run_schedule
from operations.trading_days import TradingCalendar
from operations.update import UpdateReport, run_update

log = logging.getLogger("deepregime")

SourceOption = Annotated[
    str | None, typer.Option(help="'csv' or 'yfinance' (default: DEEPREGIME_DATA_SOURCE).")
]
PathOption = Annotated[
    Path | None, typer.Option(help="CSV folder for --source csv (default: DEEPREGIME_DATA_PATH).")
]


def _update_once(source: str | None, path: Path | None, accept_revisions: bool) -> UpdateReport:
    config = settings()
    if source not in (None, "csv", "yfinance"):
        fail(f"unknown source {source!r}: choose 'csv' or 'yfinance'")
    db = engine()
    try:
        return run_update(
            db,
            settings=config,
            model=load_active_model(db, config.model_dir),
            trigger="cli",
            source=source,
            path=path,
            accept_revisions=accept_revisions,
            lock_wait_s=config.update_lock_wait_s,
        )
    finally:
        db.dispose()


@handles_errors
def update(
    source: SourceOption = None,
    path: PathOption = None,
    accept_revisions: Annotated[
        bool,
        typer.Option("--accept-revisions", help="Apply revisions that change published answers."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run the daily cycle: ingest, features, regimes, model outputs, publish, notify.

    Exit 0 when done or when there was nothing new; 2 when done but a file was
    rejected or a revision held (named in the output); 1 on failure.
    """
    report = _update_once(source, path, accept_revisions)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        for line in report.summary_lines():
            typer.echo(line)
    if report.exit_code:
        raise typer.Exit(code=report.exit_code)


@handles_errors
def schedule(
    source: SourceOption = None,
    path: PathOption = None,
) -> None:
    """Run the update after every NYSE close plus DEEPREGIME_SCHEDULE_DELAY_MINUTES,
    until stopped (SIGTERM or Ctrl-C). For a compose service or a host without cron."""
    config = settings()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def once() -> None:
        report = _update_once(source, path, accept_revisions=False)
        for line in report.summary_lines():
            typer.echo(line)

    typer.echo(f"scheduling updates {config.schedule_delay_minutes:g} min after each NYSE close")
    run_schedule(
        once,
        calendar=TradingCalendar(),
        delay=dt.timedelta(minutes=config.schedule_delay_minutes),
        stop=stop,
        clock=lambda: dt.datetime.now(dt.UTC),
    )


def register(app: typer.Typer) -> None:
    app.command("update")(update)
    app.command("schedule")(schedule)
