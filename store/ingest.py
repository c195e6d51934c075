"""Ingestion: sources -> validated rows -> prices table, one transaction per file/symbol.

Idempotent: rows already stored with the same values are not rewritten, and a
file whose sha256 matches the last successful run for its symbol is skipped
outright. Every run (including a rejected one) leaves an ``ingest_runs`` row;
quarantined rows are kept in ``quarantine`` with file, line and reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.errors import DataValidationError, NoDataError
from store.repository import changed_rows, last_price_date, load_price_rows, upsert, utcnow
from store.sources import (
    CHUNK_ROWS,
    MAX_DAILY_RATIO,
    PRICE_COLUMNS,
    Downloader,
    JumpGuard,
    PriceChunk,
    file_fingerprint,
    kind_for_symbol,
    normalise_yfinance,
    read_csv_file,
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

    def summary(self) -> str:
        if self.status == "rejected":
            return f"{self.symbol:8s} rejected: {self.message}"
        if self.status == "unchanged":
            return f"{self.symbol:8s} unchanged ({self.message or 'nothing new'})"
        return (
            f"{self.symbol:8s} read {self.rows_read}, inserted {self.inserted}, "
            f"updated {self.updated}, quarantined {self.quarantined}"
        )


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
    connection.execute(
        update(ingest_runs)
        .where(ingest_runs.c.id == run_id)
        .values(
            status=result.status,
            rows_read=result.rows_read,
            rows_inserted=result.inserted,
            rows_updated=result.updated,
            rows_quarantined=result.quarantined,
            message=result.message or None,
            finished_at=utcnow(),
        )
    )


def _record_rejection(
    engine: Engine, *, source: str, target: str, symbol: str, error: Exception
) -> IngestResult:
    """Audit row for a rejected file, in its own transaction (the data one was rolled back)."""
    result = IngestResult(symbol=symbol, target=target, status="rejected", message=str(error))
    with engine.begin() as connection:
        run_id = _start_run(
            connection, source=source, target=target, symbol=symbol, fingerprint=None
        )
        _finish_run(connection, run_id, result)
    return result


def _write_chunks(
    connection: Connection,
    *,
    run_id: int,
    source: str,
    chunks: Iterable[PriceChunk],
    stored: pd.DataFrame,
) -> tuple[int, int, int, int]:
    """Upsert new/changed rows of each chunk and its quarantined rows; returns counts."""
    read = inserted = updated = quarantined = 0
    now = utcnow()
    for chunk in chunks:
        read += chunk.rows_read
        fresh = changed_rows(chunk.rows.loc[:, list(PRICE_COLUMNS)], stored)
        existing = fresh.index.isin(stored.index)
        updated += int(existing.sum())
        inserted += int((~existing).sum())
        records = []
        for day, row in zip(fresh.index, fresh.itertuples(index=False), strict=True):
            record = {
                c: (None if pd.isna(v) else float(v))
                for c, v in zip(PRICE_COLUMNS, row, strict=True)
            }
            if record["volume"] is not None:
                record["volume"] = int(record["volume"])
            record.update(symbol=chunk.symbol, date=day.date(), source=source, ingested_at=now)
            records.append(record)
        new_records = [r for r, is_old in zip(records, existing, strict=True) if not is_old]
        if new_records:  # plain executemany: the fast bulk path on both databases
            connection.execute(insert(prices), new_records)
        upsert(
            connection, prices, [r for r, is_old in zip(records, existing, strict=True) if is_old]
        )
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
            quarantined += len(chunk.quarantined)
            for q in chunk.quarantined:
                log.warning("%s quarantined %s line %s: %s", chunk.symbol, q.date, q.line, q.reason)
    return read, inserted, updated, quarantined


def _last_fingerprint(connection: Connection, symbol: str) -> str | None:
    return connection.execute(
        select(ingest_runs.c.fingerprint)
        .where(ingest_runs.c.symbol == symbol, ingest_runs.c.status.in_(["ingested", "unchanged"]))
        .order_by(ingest_runs.c.id.desc())
        .limit(1)
    ).scalar()


def ingest_csv_file(
    engine: Engine,
    path: Path,
    *,
    today: dt.date,
    force: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> IngestResult:
    """Ingest one CSV file in one transaction: all of its rows or none.

    A concurrent ingest of the same symbol can insert a row between our read of
    the stored rows and our insert; the primary key then refuses the duplicate,
    the transaction rolls back whole, and the file is retried once against the
    now-current table."""
    try:
        return _ingest_csv_file_once(engine, path, today=today, force=force, chunk_rows=chunk_rows)
    except IntegrityError:
        log.info("concurrent write to %s: retrying %s", symbol_for_file(path), path)
        return _ingest_csv_file_once(engine, path, today=today, force=force, chunk_rows=chunk_rows)


def _ingest_csv_file_once(
    engine: Engine, path: Path, *, today: dt.date, force: bool, chunk_rows: int
) -> IngestResult:
    symbol, target = symbol_for_file(path), str(path)
    try:
        fingerprint = file_fingerprint(path)
        with engine.begin() as connection:
            if not force and _last_fingerprint(connection, symbol) == fingerprint:
                result = IngestResult(
                    symbol, target, "unchanged", message="file unchanged since last ingest"
                )
                run_id = _start_run(
                    connection, source="csv", target=target, symbol=symbol, fingerprint=fingerprint
                )
                _finish_run(connection, run_id, result)
                return result
            run_id = _start_run(
                connection, source="csv", target=target, symbol=symbol, fingerprint=fingerprint
            )
            stored = load_price_rows(connection, symbol=symbol)
            read, inserted, updated, quarantined = _write_chunks(
                connection,
                run_id=run_id,
                source="csv",
                chunks=read_csv_file(path, today=today, chunk_rows=chunk_rows),
                stored=stored,
            )
            status = "ingested" if inserted or updated else "unchanged"
            result = IngestResult(symbol, target, status, read, inserted, updated, quarantined)
            _finish_run(connection, run_id, result)
            return result
    except (DataValidationError, OSError, UnicodeDecodeError) as error:
        if isinstance(error, UnicodeDecodeError):
            error = DataValidationError(f"not a UTF-8 text file ({error.reason})", source=target)
        return _record_rejection(engine, source="csv", target=target, symbol=symbol, error=error)


def csv_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise NoDataError(f"CSV folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
    if not files:
        raise NoDataError(f"no .csv files in {folder}")
    return files


def ingest_csv_folder(
    engine: Engine,
    folder: Path,
    *,
    today: dt.date,
    symbols: Iterable[str] | None = None,
    force: bool = False,
) -> list[IngestResult]:
    """Ingest every CSV file of a folder (or only those mapping to ``symbols``)."""
    wanted = set(symbols) if symbols else None
    return [
        ingest_csv_file(engine, path, today=today, force=force)
        for path in csv_files(folder)
        if wanted is None or symbol_for_file(path) in wanted
    ]


def ingest_yfinance(
    engine: Engine,
    symbols: list[str],
    *,
    today: dt.date,
    default_start: dt.date,
    download: Downloader | None = None,
) -> list[IngestResult]:
    """Fetch each symbol from its last stored date (inclusive, to catch revisions)
    and upsert what is new or changed; one transaction per symbol."""
    results = []
    for symbol in symbols:
        target = f"yfinance:{symbol}"
        try:
            with engine.begin() as connection:
                last = last_price_date(connection, symbol=symbol)
                start = last or default_start
                frame = (download or yfinance_download)([symbol], start)
                rows = normalise_yfinance(frame, [symbol]).get(symbol)
                if rows is None or rows.empty:
                    results.append(
                        IngestResult(symbol, target, "unchanged", message=f"no rows since {start}")
                    )
                    continue
                stored = load_price_rows(connection, symbol=symbol)
                before = stored[stored.index < rows.index[0]]["adj_close"]
                guard = JumpGuard(
                    MAX_DAILY_RATIO[kind_for_symbol(symbol)],
                    float(before.iloc[-1]) if len(before) else None,
                )
                chunk = validate_rows(
                    rows,
                    symbol=symbol,
                    kind=kind_for_symbol(symbol),
                    source=target,
                    lines=None,
                    guard=guard,
                    today=today,
                )
                run_id = _start_run(
                    connection, source="yfinance", target=target, symbol=symbol, fingerprint=None
                )
                read, inserted, updated, quarantined = _write_chunks(
                    connection, run_id=run_id, source="yfinance", chunks=[chunk], stored=stored
                )
                status = "ingested" if inserted or updated else "unchanged"
                result = IngestResult(symbol, target, status, read, inserted, updated, quarantined)
                _finish_run(connection, run_id, result)
                results.append(result)
        except DataValidationError as error:
            results.append(
                _record_rejection(
                    engine, source="yfinance", target=target, symbol=symbol, error=error
                )
            )
    return results
