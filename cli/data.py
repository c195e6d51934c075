"""Data commands: database migrations, and the steps of `deepregime update` one by one
(ingestion, features, rule signals: no model outputs, no publication)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Connection

from cli.common import engine, fail, handles_errors, print_json, settings, transaction
from core.rules import rule_set_preset
from store import migrations
from store.ingest import ingest_csv_folder, ingest_yfinance
from store.locks import REFRESH_LOCK, held_lock
from store.pipeline import refresh_features, refresh_regimes
from store.repository import price_summary

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
@handles_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    url = settings().database_url
    migrations.upgrade(url, revision)
    db = engine(check_schema=False)
    current = migrations.current_revision(db)
    db.dispose()
    typer.echo(f"database {_safe_url(url)} at revision {current}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@handles_errors
def ingest(
    source: Annotated[
        str | None, typer.Option(help="'csv' or 'yfinance' (default: DEEPREGIME_DATA_SOURCE).")
    ] = None,
    path: Annotated[
        Path | None,
        typer.Option(help="CSV folder for --source csv (default: DEEPREGIME_DATA_PATH)."),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated symbols (default: DEEPREGIME_SYMBOLS; csv: every file)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Re-read files even when unchanged.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Load daily prices into the store (idempotent; one transaction per file/symbol)."""
    config = settings()
    chosen = source or config.data_source
    wanted = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    today = dt.date.today()
    if chosen not in ("csv", "yfinance"):
        fail(f"unknown source {chosen!r}: choose 'csv' or 'yfinance'")
    db = engine()
    started = time.perf_counter()
    try:
        # The lock `deepregime update` takes: one writer of prices at a time.
        with held_lock(db, REFRESH_LOCK, wait_s=config.update_lock_wait_s):
            if chosen == "csv":
                results = ingest_csv_folder(
                    db, path or config.data_path, today=today, symbols=wanted, force=force
                )
            else:
                results = ingest_yfinance(
                    db,
                    wanted or config.symbols,
                    today=today,
                    default_start=dt.date.fromisoformat(config.yfinance_start),
                )
    finally:
        db.dispose()
    elapsed = time.perf_counter() - started
    if as_json:
        print_json([r.__dict__ for r in results])
    else:
        for result in results:
            typer.echo(result.summary())
        inserted = sum(r.inserted for r in results)
        updated = sum(r.updated for r in results)
        rejected = [r for r in results if r.status == "rejected"]
        verdict = (
            "nothing changed"
            if not inserted and not updated
            else f"{inserted} inserted, {updated} updated"
        )
        typer.echo(
            f"ingest ({chosen}): {len(results)} series, {verdict}, "
            f"{len(rejected)} rejected in {elapsed:.2f}s"
        )
    if any(r.status == "rejected" for r in results):
        raise typer.Exit(code=1)


@handles_errors
def features(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Recompute the daily feature table from stored prices (writes changed days only)."""
    with _locked_transaction() as connection:
        result = refresh_features(connection)
    print_json(result.__dict__) if as_json else typer.echo(result.summary())


@handles_errors
def signals(
    rule_set: Annotated[
        str | None,
        typer.Option(help="Rule-set preset ('published' or 'platform'; default from settings)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Recompute features and the rule engine's daily regimes (writes changed days only)."""
    preset = rule_set_preset(rule_set or settings().rule_set)
    with _locked_transaction() as connection:
        feature_result = refresh_features(connection)
        regime_result = refresh_regimes(connection, preset)
    if as_json:
        print_json({"features": feature_result.__dict__, "regimes": regime_result.__dict__})
    else:
        typer.echo(feature_result.summary())
        typer.echo(regime_result.summary())


@handles_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Rows and date span per stored symbol."""
    with transaction() as connection:
        summary = price_summary(connection)
    if as_json:
        print_json(summary)
        return
    if not summary:
        typer.echo("no prices stored yet: run `deepregime ingest`")
    for row in summary:
        typer.echo(f"{row['symbol']:8s} {row['rows']:6d} rows  {row['first']} .. {row['last']}")


@contextmanager
def _locked_transaction() -> Iterator[Connection]:
    """One transaction under the update lock (these commands are steps of the update)."""
    db = engine()
    try:
        with held_lock(db, REFRESH_LOCK, wait_s=settings().update_lock_wait_s):
            with db.begin() as connection:
                yield connection
    finally:
        db.dispose()


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("ingest")(ingest)
    app.command("features")(features)
    app.command("signals")(signals)
    app.command("status")(status)
