"""Ingestion: sources -> validated rows -> prices table, one transaction per file/symbol.

Idempotent: rows already stored with the same values are not rewritten, and a
file whose sha256 matches the last successful run for its symbol(s) is skipped
outright. Every run (including a rejected or failed one) leaves an
``ingest_runs`` row per symbol; quarantined rows are kept in ``quarantine``
with file, line and reason. A file holding several tickers is written in one
transaction and audited per ticker.

Price revisions: with ``apply_changes=False`` rows of days already stored whose
values differ are not written but returned in ``IngestResult.changes``, for a
revision policy to judge and write later with ``apply_price_changes``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.errors import DataValidationError, NoDataError
from store.repository import (
    changed_rows,
    last_price_date,
    load_price_rows,
    price_span,
    upsert,
    utcnow,
)
from store.sources import (
    CHUNK_ROWS,
    PRICE_COLUMNS,
    Downloader,
    PriceChunk,
    csv_symbols,
    file_fingerprint,
    kind_for_symbol,
    normalise_yfinance,
    read_csv_file,
    read_csv_layout,
    symbol_for_file,
    validate_rows,
    yfinance_download,
)
from store.tables import ingest_runs, prices, quarantine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    symbol: str
    target: str
    status: str  # "ingested" | "unchanged" | "rejected"
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    quarantined: int = 0
    message: str = ""
    carried: int = 0  # rows repeating the last open day's value on a closed day, left out
    first_day: dt.date | None = None  # the first day the source gave for the symbol
    # Only with apply_changes=False: stored days whose values changed, not written.
    # Index ``date``; columns PRICE_COLUMNS (the new row) and old_<c>/new_<c> for each.
    changes: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    def summary(self) -> str:
        if self.status == "rejected":
            return f"{self.symbol:8s} rejected: {self.message}"
        if self.status == "unchanged":  # the message says what was held back, if anything
            return f"{self.symbol:8s} unchanged ({self.message or 'nothing new'})"
        held = (
            f", {len(self.changes)} changed held back"
            if self.changes is not None and len(self.changes)
            else ""
        )
        carried = f", {self.carried} carried over closed days left out" if self.carried else ""
        return (
            f"{self.symbol:8s} read {self.rows_read}, inserted {self.inserted}, "
            f"updated {self.updated}, quarantined {self.quarantined}{carried}{held}"
        )


# --- audit rows -------------------------------------------------------------------


def _start_run(
    connection: Connection, *, source: str, target: str, symbol: str, fingerprint: str | None
) -> int:
    return connection.execute(
        insert(ingest_runs)
        .values(
            source=source,
            target=target,
            symbol=symbol,
            status="running",
            rows_read=0,
            rows_inserted=0,
            rows_updated=0,
            rows_quarantined=0,
            fingerprint=fingerprint,
            started_at=utcnow(),
        )
        .returning(ingest_runs.c.id)
    ).scalar_one()


def _finish_run(connection: Connection, run_id: int, result: IngestResult) -> None:
    values: dict[str, Any] = dict(
        status=result.status,
        rows_read=result.rows_read,
        rows_inserted=result.inserted,
        rows_updated=result.updated,
        rows_quarantined=result.quarantined,
        message=result.message or None,
        finished_at=utcnow(),
    )
    if result.changes is not None and len(result.changes):
        # Rows were held back: a rerun must read the file again, not skip it as unchanged.
        values["fingerprint"] = None
    connection.execute(update(ingest_runs).where(ingest_runs.c.id == run_id).values(**values))


def _record(engine: Engine, *, source: str, results: list[IngestResult]) -> list[IngestResult]:
    """Audit rows for runs that wrote nothing, in their own transaction (the data
    one, if any, was rolled back). A failure to record is logged, never raised,
    so that the other files are still ingested."""
    try:
        with engine.begin() as connection:
            for result in results:
                run_id = _start_run(
                    connection,
                    source=source,
                    target=result.target,
                    symbol=result.symbol,
                    fingerprint=None,
                )
                _finish_run(connection, run_id, result)
    except Exception:  # noqa: BLE001 - the result still reports the failure
        log.exception("could not record the ingest run of %s", results[0].target)
    return results


def _rejections(
    engine: Engine, *, source: str, target: str, symbols: list[str], error: Exception
) -> list[IngestResult]:
    if isinstance(error, DataValidationError):
        message = str(error)
    elif isinstance(error, OSError):  # an unreadable file, a failed download
        message = f"{type(error).__name__}: {error}"
    else:  # a bug or a database failure: keep the traceback in the log
        log.error("ingest of %s failed", target, exc_info=error)
        message = f"unexpected error: {type(error).__name__}: {error}"
    results = [IngestResult(s, target, "rejected", message=message) for s in symbols]
    return _record(engine, source=source, results=results)


def _last_fingerprint(connection: Connection, symbol: str) -> str | None:
    return connection.execute(
        select(ingest_runs.c.fingerprint)
        .where(ingest_runs.c.symbol == symbol, ingest_runs.c.status.in_(["ingested", "unchanged"]))
        .order_by(ingest_runs.c.id.desc())
        .limit(1)
    ).scalar()


# --- writing rows -------------------------------------------------------------------


def _price_records(
    frame: pd.DataFrame, *, symbol: str, source: str, now: dt.datetime
) -> list[dict[str, Any]]:
    """Rows of ``prices`` from a frame (index date, PRICE_COLUMNS); NaN -> NULL."""
    values = np.column_stack([frame[c].to_numpy(dtype=float) for c in PRICE_COLUMNS])
    cells = values.astype(object)
    cells[np.isnan(values)] = None
    volume = PRICE_COLUMNS.index("volume")
    has_volume = ~np.isnan(values[:, volume])
    cells[has_volume, volume] = values[has_volume, volume].astype(np.int64).tolist()
    common = {"symbol": symbol, "source": source, "ingested_at": now}
    return [
        {**dict(zip(PRICE_COLUMNS, row, strict=True)), **common, "date": day}
        for day, row in zip(frame.index.date, cells.tolist(), strict=True)
    ]


def changes_frame(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    """Changed rows of stored days: the new row under the plain column names, and
    ``old_<c>`` / ``new_<c>`` for each price column (index ``date``)."""
    old = old.reindex(new.index)
    columns: dict[str, Any] = {c: new[c].to_numpy(dtype=float) for c in PRICE_COLUMNS}
    for c in PRICE_COLUMNS:
        columns[f"old_{c}"] = old[c].to_numpy(dtype=float)
        columns[f"new_{c}"] = new[c].to_numpy(dtype=float)
    return pd.DataFrame(columns, index=pd.DatetimeIndex(new.index, name="date"))


_NO_ROWS = pd.DataFrame(
    {c: pd.Series(dtype=float) for c in PRICE_COLUMNS}, index=pd.DatetimeIndex([], name="date")
)


@dataclass
class _Tally:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    quarantined: int = 0
    carried: int = 0
    first_day: dt.date | None = None
    held: list[pd.DataFrame] = field(default_factory=list)

    def result(self, symbol: str, target: str, apply_changes: bool) -> IngestResult:
        changes = None
        if not apply_changes:  # a frame, empty when nothing changed
            changes = pd.concat(self.held) if self.held else changes_frame(_NO_ROWS, _NO_ROWS)
        status = "ingested" if self.inserted or self.updated else "unchanged"
        message = ""
        if changes is not None and len(changes):
            message = f"{len(changes)} changed row(s) of stored days held back"
        return IngestResult(
            symbol,
            target,
            status,
            rows_read=self.read,
            inserted=self.inserted,
            updated=self.updated,
            quarantined=self.quarantined,
            message=message,
            carried=self.carried,
            first_day=self.first_day,
            changes=changes,
        )


def _write_chunk(
    connection: Connection,
    *,
    run_id: int,
    source: str,
    chunk: PriceChunk,
    stored: pd.DataFrame,
    apply_changes: bool,
    tally: _Tally,
) -> None:
    """Insert new days, upsert (or hold back) changed stored days, keep quarantined rows.

    A stored value the chunk repeats within the precision it is written to (a file
    re-exported with fewer decimals) is not a change: the stored one stays."""
    tally.read += chunk.rows_read
    tally.carried += chunk.carried
    if tally.first_day is None and len(chunk.rows):
        tally.first_day = chunk.rows.index[0].date()
    fresh = changed_rows(chunk.rows, stored, atol=chunk.precision)
    existing = fresh.index.isin(stored.index)
    now = utcnow()
    new_records = _price_records(fresh[~existing], symbol=chunk.symbol, source=source, now=now)
    if new_records:  # plain executemany: the fast bulk path on both databases
        connection.execute(insert(prices), new_records)
    tally.inserted += len(new_records)
    if apply_changes:
        changed = _price_records(fresh[existing], symbol=chunk.symbol, source=source, now=now)
        upsert(connection, prices, changed)
        tally.updated += len(changed)
    elif existing.any():
        tally.held.append(changes_frame(fresh[existing], stored))
    if chunk.quarantined:
        connection.execute(
            insert(quarantine),
            [
                {
                    "run_id": run_id,
                    "symbol": chunk.symbol,
                    "date": q.date,
                    "line": q.line,
                    "reason": q.reason,
                    "raw": q.raw,
                }
                for q in chunk.quarantined
            ],
        )
        tally.quarantined += len(chunk.quarantined)
        for q in chunk.quarantined:
            log.warning("%s quarantined %s line %s: %s", chunk.symbol, q.date, q.line, q.reason)


def apply_price_changes(
    connection: Connection, *, symbol: str, changes: pd.DataFrame, source: str
) -> int:
    """Write rows held back by an ingest with ``apply_changes=False`` (the plain
    PRICE_COLUMNS of ``changes``), in the caller's transaction. Returns the count."""
    missing = [c for c in PRICE_COLUMNS if c not in changes.columns]
    if missing:
        raise ValueError(f"changes for {symbol} lack column(s) {missing}")
    frame = changes.loc[:, list(PRICE_COLUMNS)]
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    return upsert(
        connection, prices, _price_records(frame, symbol=symbol, source=source, now=utcnow())
    )


# --- CSV files ----------------------------------------------------------------------


def ingest_csv_file(
    engine: Engine,
    path: Path,
    *,
    today: dt.date,
    force: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    apply_changes: bool = True,
    symbols: Iterable[str] | None = None,
) -> list[IngestResult]:
    """Ingest one CSV file in one transaction: all of its rows or none. One
    result per series of the file (only those in ``symbols`` when given).

    Never raises for a bad file or an unexpected error: the failure is recorded
    as a rejected run. A concurrent ingest of the same symbol can insert a row
    between our read of the stored rows and our insert; the primary key then
    refuses the duplicate, the transaction rolls back whole, and the file is
    retried once against the now-current table."""
    target = str(path)
    wanted = set(symbols) if symbols is not None else None
    once = functools.partial(
        _ingest_csv_file_once,
        engine,
        path,
        today=today,
        force=force,
        chunk_rows=chunk_rows,
        apply_changes=apply_changes,
        wanted=wanted,
    )
    try:
        try:
            return once()
        except IntegrityError:
            log.info("concurrent write while ingesting %s: retrying", path)
            return once()
    except Exception as error:  # noqa: BLE001 - recorded per file; the folder goes on
        file_symbols = [s for s in csv_symbols(path) if wanted is None or s in wanted]
        return _rejections(
            engine,
            source="csv",
            target=target,
            symbols=file_symbols or [symbol_for_file(path)],
            error=error,
        )


def _stored_rows_of(
    connection: Connection, chunk: PriceChunk, span: tuple[dt.date, dt.date] | None
) -> pd.DataFrame:
    """The stored rows on the chunk's days only (a new day's file reads one row, not
    years); no query when the chunk lies outside the symbol's stored ``span``."""
    days = chunk.rows.index
    if len(days) == 0 or span is None:
        return _NO_ROWS
    first, last = days.min().date(), days.max().date()
    if last < span[0] or first > span[1]:
        return _NO_ROWS
    return load_price_rows(connection, symbol=chunk.symbol, start=first, end=last)


def _ingest_csv_file_once(
    engine: Engine,
    path: Path,
    *,
    today: dt.date,
    force: bool,
    chunk_rows: int,
    apply_changes: bool,
    wanted: set[str] | None,
) -> list[IngestResult]:
    target = str(path)
    layout = read_csv_layout(path)
    symbols = [s.symbol for s in layout.series if wanted is None or s.symbol in wanted]
    fingerprint = file_fingerprint(path)
    with engine.begin() as connection:
        if not force and all(_last_fingerprint(connection, s) == fingerprint for s in symbols):
            results = []
            for symbol in symbols:
                result = IngestResult(
                    symbol, target, "unchanged", message="file unchanged since last ingest"
                )
                run_id = _start_run(
                    connection, source="csv", target=target, symbol=symbol, fingerprint=fingerprint
                )
                _finish_run(connection, run_id, result)
                results.append(result)
            return results
        runs = {
            symbol: _start_run(
                connection, source="csv", target=target, symbol=symbol, fingerprint=fingerprint
            )
            for symbol in symbols
        }
        tallies = {symbol: _Tally() for symbol in symbols}
        spans = {symbol: price_span(connection, symbol=symbol) for symbol in symbols}
        for chunk in read_csv_file(path, today=today, chunk_rows=chunk_rows):
            if chunk.symbol not in runs:
                continue  # a ticker of the file that was not asked for
            _write_chunk(
                connection,
                run_id=runs[chunk.symbol],
                source="csv",
                chunk=chunk,
                stored=_stored_rows_of(connection, chunk, spans[chunk.symbol]),
                apply_changes=apply_changes,
                tally=tallies[chunk.symbol],
            )
        results = []
        for symbol in symbols:
            result = tallies[symbol].result(symbol, target, apply_changes)
            _finish_run(connection, runs[symbol], result)
            results.append(result)
        return results


def csv_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise NoDataError(f"CSV folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
    if not files:
        raise NoDataError(f"no .csv files in {folder}")
    return files


def _leads_outside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is a symbolic link whose target lies outside ``folder``: such a
    file is refused before it is opened, so no line of its target (another user's
    file, a secret) can surface in an error message."""
    return not path.resolve().is_relative_to(folder.resolve())


def _other_sources(files: list[tuple[Path, list[str]]]) -> dict[Path, str]:
    """Files naming a symbol that another file of the folder also names -> why they are
    refused. Two sources of one symbol in one run would each overwrite the other, and
    every rerun would flip the stored history between them, so neither is read."""
    owners: dict[str, list[Path]] = {}
    for path, symbols in files:
        for symbol in symbols:
            owners.setdefault(symbol, []).append(path)
    refused: dict[Path, list[str]] = {}
    for symbol, paths in owners.items():
        for path in paths if len(paths) > 1 else []:
            others = ", ".join(str(other) for other in paths if other != path)
            refused.setdefault(path, []).append(f"{symbol} is also in {others}")
    return {
        path: "; ".join(clashes) + ": one file per symbol in a run, so neither file is read"
        for path, clashes in refused.items()
    }


def ingest_csv_folder(
    engine: Engine,
    folder: Path,
    *,
    today: dt.date,
    symbols: Iterable[str] | None = None,
    force: bool = False,
    apply_changes: bool = True,
) -> list[IngestResult]:
    """Ingest every CSV file of a folder (or only the series in ``symbols``), one
    transaction per file; a failing file never stops the others. Refused unread: a
    symbolic link leading outside the folder, and every file naming a symbol that
    another file names too."""
    wanted = set(symbols) if symbols else None
    files: list[tuple[Path, list[str]]] = []  # in order, with the symbols to take from each
    refused: dict[Path, str] = {}
    for path in csv_files(folder):
        if _leads_outside(path, folder):
            files.append((path, [symbol_for_file(path)]))  # its name only: never opened
            refused[path] = f"a symbolic link leading outside {folder}: refused unread"
            continue
        taken = [s for s in csv_symbols(path) if wanted is None or s in wanted]
        if taken:
            files.append((path, taken))
    refused |= _other_sources([(path, taken) for path, taken in files if path not in refused])
    results: list[IngestResult] = []
    for path, taken in files:
        if path in refused:
            error = DataValidationError(refused[path], source=str(path))
            results.extend(
                _rejections(engine, source="csv", target=str(path), symbols=taken, error=error)
            )
            continue
        results.extend(
            ingest_csv_file(
                engine,
                path,
                today=today,
                force=force,
                apply_changes=apply_changes,
                symbols=wanted,
            )
        )
    return results


# --- yfinance -----------------------------------------------------------------------


def ingest_yfinance(
    engine: Engine,
    symbols: list[str],
    *,
    today: dt.date,
    default_start: dt.date,
    download: Downloader | None = None,
    apply_changes: bool = True,
) -> list[IngestResult]:
    """Fetch each symbol from its last stored date (inclusive, to catch revisions)
    and upsert what is new or changed; one transaction per symbol, and a failing
    symbol (bad data, network, anything) never stops the others."""
    results = []
    for symbol in symbols:
        target = f"yfinance:{symbol}"
        try:
            results.append(
                _ingest_yfinance_symbol(
                    engine,
                    symbol,
                    today=today,
                    default_start=default_start,
                    download=download or yfinance_download,
                    apply_changes=apply_changes,
                )
            )
        except Exception as error:  # noqa: BLE001 - recorded per symbol
            results.extend(
                _rejections(engine, source="yfinance", target=target, symbols=[symbol], error=error)
            )
    return results


def _ingest_yfinance_symbol(
    engine: Engine,
    symbol: str,
    *,
    today: dt.date,
    default_start: dt.date,
    download: Downloader,
    apply_changes: bool,
) -> IngestResult:
    target = f"yfinance:{symbol}"
    with engine.begin() as connection:
        start = last_price_date(connection, symbol=symbol) or default_start
        frame = download([symbol], start)
        rows = normalise_yfinance(frame, [symbol]).get(symbol)
        run_id = _start_run(
            connection, source="yfinance", target=target, symbol=symbol, fingerprint=None
        )
        if rows is None or rows.empty:
            result = IngestResult(symbol, target, "unchanged", message=f"no rows since {start}")
            _finish_run(connection, run_id, result)
            return result
        stored = load_price_rows(connection, symbol=symbol)
        before = stored[stored.index < rows.index[0]]["adj_close"]
        chunk = validate_rows(
            rows,
            symbol=symbol,
            kind=kind_for_symbol(symbol),
            source=target,
            today=today,
            previous=float(before.iloc[-1]) if len(before) else None,
        )
        tally = _Tally()
        _write_chunk(
            connection,
            run_id=run_id,
            source="yfinance",
            chunk=chunk,
            stored=stored,
            apply_changes=apply_changes,
            tally=tally,
        )
        result = tally.result(symbol, target, apply_changes)
        _finish_run(connection, run_id, result)
        return result
