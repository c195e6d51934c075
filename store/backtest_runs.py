"""Stored backtest runs: the request as posted, the result as returned, and the time taken.

Both documents are stored as JSON (``backtest_runs.request`` / ``.result``) so a
run can be served again exactly as it was computed, whatever the code does later.
A run may carry the client's idempotency key (unique: a retried POST finds the
run instead of storing another) and records its size, so ``prune_runs`` can keep
the table within a count, a total size and an age.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from store.repository import utcnow
from store.tables import backtest_runs


@dataclass(frozen=True)
class StoredRun:
    id: str
    created_at: dt.datetime  # UTC
    request: dict[str, Any]
    result: dict[str, Any] | str  # str: JSON text (as saved from SerialisedJSON)
    duration_ms: float
    idempotency_key: str | None = None
    request_sha256: str | None = None


def new_run_id() -> str:
    return str(uuid.uuid4())


def save_run(
    connection: Connection,
    *,
    request: dict[str, Any],
    result: dict[str, Any] | str,
    duration_ms: float,
    run_id: str | None = None,
    created_at: dt.datetime | None = None,
    idempotency_key: str | None = None,
    request_sha256: str | None = None,
    size_bytes: int = 0,
) -> StoredRun:
    """Insert one run (JSON-compatible ``request`` and ``result``; ``result`` may be its
    JSON text already serialised, store.db.SerialisedJSON) and return it with its id.

    A second run with the same ``idempotency_key`` violates its unique constraint
    (IntegrityError): the caller reads the first with ``run_by_idempotency_key``."""
    run = StoredRun(
        id=run_id or new_run_id(),
        created_at=created_at or utcnow(),
        request=request,
        result=result,
        duration_ms=float(duration_ms),
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
    )
    connection.execute(
        insert(backtest_runs).values(
            id=run.id,
            created_at=run.created_at,
            request=run.request,
            result=run.result,
            duration_ms=run.duration_ms,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
            size_bytes=int(size_bytes),
        )
    )
    return run


_COLUMNS = (
    backtest_runs.c.id,
    backtest_runs.c.created_at,
    backtest_runs.c.request,
    backtest_runs.c.result,
    backtest_runs.c.duration_ms,
    backtest_runs.c.idempotency_key,
    backtest_runs.c.request_sha256,
)


def _stored(row: Any) -> StoredRun:
    created_at = row.created_at
    if created_at.tzinfo is None:  # SQLite drops the zone; it was written in UTC
        created_at = created_at.replace(tzinfo=dt.UTC)
    return StoredRun(
        row.id,
        created_at,
        row.request,
        row.result,
        row.duration_ms,
        row.idempotency_key,
        row.request_sha256,
    )


def load_run(connection: Connection, *, run_id: str) -> StoredRun | None:
    """The stored run with this id, or None."""
    row = connection.execute(select(*_COLUMNS).where(backtest_runs.c.id == run_id)).first()
    return None if row is None else _stored(row)


def run_by_idempotency_key(connection: Connection, *, key: str) -> StoredRun | None:
    """The run stored under this idempotency key, or None."""
    row = connection.execute(
        select(*_COLUMNS).where(backtest_runs.c.idempotency_key == key)
    ).first()
    return None if row is None else _stored(row)


def prune_runs(
    connection: Connection,
    *,
    keep_runs: int,
    keep_bytes: int,
    older_than: dt.datetime,
) -> int:
    """Delete the oldest runs until at most ``keep_runs`` remain, their sizes sum to at
    most ``keep_bytes``, and none was created before ``older_than``. The newest run is
    kept even when it alone is larger than ``keep_bytes``. Returns how many went."""
    removed = connection.execute(
        delete(backtest_runs).where(backtest_runs.c.created_at < older_than)
    ).rowcount
    total = connection.execute(
        select(func.count(), func.coalesce(func.sum(backtest_runs.c.size_bytes), 0))
    ).one()
    if total[0] <= keep_runs and total[1] <= keep_bytes:
        return removed
    newest_first = connection.execute(
        select(backtest_runs.c.id, backtest_runs.c.size_bytes).order_by(
            backtest_runs.c.created_at.desc(), backtest_runs.c.id.desc()
        )
    ).all()
    kept, size = 0, 0
    for _, run_size in newest_first:
        if kept > 0 and (kept >= keep_runs or size + run_size > keep_bytes):
            break  # this run and every older one go
        kept += 1
        size += run_size
    doomed = [run_id for run_id, _ in newest_first[kept:]]
    for first in range(0, len(doomed), 500):  # bounded IN lists
        chunk = doomed[first : first + 500]
        removed += connection.execute(
            delete(backtest_runs).where(backtest_runs.c.id.in_(chunk))
        ).rowcount
    return removed
