"""Named locks held as rows of the ``locks`` table, safe on SQLite and PostgreSQL.

Inserting the row acquires the lock; a primary-key conflict means another
process holds it; deleting the row releases it. A holder that died without
releasing leaves its row behind, so a row older than ``stale_after`` may be
taken over (the takeover deletes exactly that old row, so two processes racing
for a stale lock cannot both win).

Each step runs in its own short transaction on the given engine, so the lock is
visible to other processes while the work it guards runs.
"""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from core.errors import DeepRegimeError
from store.repository import utcnow
from store.tables import locks

REFRESH_LOCK = "refresh"
DEFAULT_STALE_AFTER = dt.timedelta(hours=1)


class LockHeldError(DeepRegimeError):
    """The named lock is held by another holder (and is not stale)."""

    def __init__(self, name: str, holder: str, acquired_at: dt.datetime) -> None:
        self.name = name
        self.holder = holder
        self.acquired_at = acquired_at
        super().__init__(
            f"lock {name!r} is held by {holder} since {acquired_at.isoformat(timespec='seconds')}"
        )


def new_holder() -> str:
    """A holder name unique to this call: host, then a random suffix."""
    return f"{socket.gethostname()[:80]}:{uuid.uuid4().hex[:12]}"


def _as_utc(moment: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _try_insert(engine: Engine, name: str, holder: str, now: dt.datetime) -> bool:
    try:
        with engine.begin() as connection:
            connection.execute(insert(locks).values(name=name, holder=holder, acquired_at=now))
        return True
    except IntegrityError:
        return False


def acquire(
    engine: Engine,
    name: str,
    holder: str,
    *,
    stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
    now: dt.datetime | None = None,
) -> None:
    """Take lock ``name`` for ``holder`` or raise LockHeldError naming the current holder.

    A lock acquired more than ``stale_after`` before ``now`` is taken over.
    """
    now = now or utcnow()
    if _try_insert(engine, name, holder, now):
        return
    with engine.begin() as connection:
        row = connection.execute(
            select(locks.c.holder, locks.c.acquired_at).where(locks.c.name == name)
        ).first()
        if row is not None:
            current_holder, acquired_at = row
            if now - _as_utc(acquired_at) <= stale_after:
                raise LockHeldError(name, current_holder, _as_utc(acquired_at))
            # Delete only the stale row we saw: a racing takeover then deletes nothing.
            connection.execute(
                delete(locks).where(
                    locks.c.name == name,
                    locks.c.holder == current_holder,
                    locks.c.acquired_at == acquired_at,
                )
            )
    if not _try_insert(engine, name, holder, now):
        held = current_lock(engine, name)
        current_holder, since = held if held is not None else ("another process", now)
        raise LockHeldError(name, current_holder, since)


def release(engine: Engine, name: str, holder: str) -> bool:
    """Release ``name`` if ``holder`` still holds it; False when it did not."""
    with engine.begin() as connection:
        result = connection.execute(
            delete(locks).where(locks.c.name == name, locks.c.holder == holder)
        )
    return result.rowcount > 0


def current_lock(engine: Engine, name: str) -> tuple[str, dt.datetime] | None:
    """Holder and acquisition time of ``name``, or None when free."""
    with engine.connect() as connection:
        row = connection.execute(
            select(locks.c.holder, locks.c.acquired_at).where(locks.c.name == name)
        ).first()
    return (row[0], _as_utc(row[1])) if row else None


@contextmanager
def held_lock(
    engine: Engine,
    name: str,
    *,
    holder: str | None = None,
    stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
) -> Iterator[str]:
    """Hold ``name`` for the duration of the block (released even on error); yields the holder."""
    holder = holder or new_holder()
    acquire(engine, name, holder, stale_after=stale_after)
    try:
        yield holder
    finally:
        release(engine, name, holder)
