"""Stored backtest runs: the request as posted, the result as returned, and the time taken.

Both documents are stored as JSON (``backtest_runs.request`` / ``.result``) so a
run can be served again exactly as it was computed, whatever the code does later.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from store.repository import utcnow
from store.tables import backtest_runs


@dataclass(frozen=True)
class StoredRun:
    id: str
    created_at: dt.datetime  # UTC
    request: dict[str, Any]
    result: dict[str, Any]
    duration_ms: float


def new_run_id() -> str:
    return str(uuid.uuid4())


def save_run(
    connection: Connection,
    *,
    request: dict[str, Any],
    result: dict[str, Any],
    duration_ms: float,
    run_id: str | None = None,
    created_at: dt.datetime | None = None,
) -> StoredRun:
    """Insert one run (JSON-compatible ``request`` and ``result``) and return it with its id."""
    run = StoredRun(
        id=run_id or new_run_id(),
        created_at=created_at or utcnow(),
        request=request,
        result=result,
        duration_ms=float(duration_ms),
    )
    connection.execute(
        insert(backtest_runs).values(
            id=run.id,
            created_at=run.created_at,
            request=run.request,
            result=run.result,
            duration_ms=run.duration_ms,
        )
    )
    return run


def load_run(connection: Connection, *, run_id: str) -> StoredRun | None:
    """The stored run with this id, or None."""
    row = connection.execute(
        select(
            backtest_runs.c.id,
            backtest_runs.c.created_at,
            backtest_runs.c.request,
            backtest_runs.c.result,
            backtest_runs.c.duration_ms,
        ).where(backtest_runs.c.id == run_id)
    ).first()
    if row is None:
        return None
    created_at = row.created_at
    if created_at.tzinfo is None:  # SQLite drops the zone; it was written in UTC
        created_at = created_at.replace(tzinfo=dt.UTC)
    return StoredRun(row.id, created_at, row.request, row.result, row.duration_ms)
