"""Named locks that die with their holder, so an outage or a crash never leaves one behind.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a
  dedicated connection checked out for as long as the lock is held. If that
  connection dies, the server drops the lock with it. The holder's name is the
  connection's ``application_name``; ``current_lock`` reads it back from
  ``pg_locks`` / ``pg_stat_activity``.
- SQLite file: ``flock`` on ``<database>.<name>.lock`` beside the database
  file. The kernel releases it when the holding process exits, however it
  exits. The holder writes its name and the time into the file after locking
  and empties it on release.
- SQLite in memory: a lock local to this process (nothing else can see the database).

Acquiring never waits unless asked (``wait_s``): the API answers 409 at once,
the command line may wait for a running refresh to finish.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from core.errors import DeepRegimeError
from store.db import sqlite_file
from store.repository import utcnow

log = logging.getLogger("deepregime.store")

REFRESH_LOCK = "refresh"
UNKNOWN_HOLDER = "another process"
POLL_EVERY_S = 0.2
# Lock names become part of a file name: keep them plain.
_LOCK_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class LockHeldError(DeepRegimeError):
    """The named lock is held by another holder."""

    def __init__(self, name: str, holder: str, acquired_at: dt.datetime) -> None:
        self.name = name
        self.holder = holder
        self.acquired_at = acquired_at
        super().__init__(
            f"lock {name!r} is held by {holder} since {acquired_at.isoformat(timespec='seconds')}"
        )


def new_holder() -> str:
    """A holder name unique to this call: host, process id, then a random suffix.

    At most 57 characters, so PostgreSQL's ``application_name`` (63) keeps it whole.
    """
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name``, namespaced away from other applications' keys."""
    digest = hashlib.sha256(f"deepregime:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _Lock(Protocol):
    """One attempt at one named lock on one database."""

    def try_acquire(self, holder: str) -> bool:
        """Take the lock without waiting; True when this attempt now holds it."""
        ...

    def release(self) -> None:
        """Give back a lock this attempt holds (never raises for a lock already lost)."""
        ...

    def owner(self) -> tuple[str, dt.datetime] | None:
        """Who holds the lock now, in any process, and since when; None when free."""
        ...


class _AdvisoryLock:
    """PostgreSQL: a session-level advisory lock on a connection kept for the duration."""

    _OWNER = text(
        "SELECT a.application_name, a.pid, a.query_start "
        "FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid = :high AND l.objid = :low"
    )

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.key = advisory_key(name)
        self._connection: Connection | None = None

    def try_acquire(self, holder: str) -> bool:
        # Autocommit: the connection must not sit idle in a transaction while the lock is held.
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        won = False
        try:
            won = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar_one()
            if won:
                # Last statement on this session, so query_start says when the lock was taken.
                connection.execute(
                    text("SELECT set_config('application_name', :holder, false)"),
                    {"holder": holder},
                )
        except BaseException:
            # A session that may hold the lock must not go back to the pool: close it for real.
            connection.invalidate()
            connection.close()
            raise
        if not won:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            released = connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
            ).scalar_one()
            connection.execute(text("RESET application_name"))
            if not released:
                log.warning("lock %r was no longer held when released", self.name)
        except DBAPIError as error:
            # The session is gone, and the server released the lock with it.
            log.warning("lock %r: its connection was lost (%s)", self.name, type(error).__name__)
            connection.invalidate()
        finally:
            connection.close()

    def owner(self) -> tuple[str, dt.datetime] | None:
        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        with self.engine.connect() as connection:
            row = connection.execute(
                self._OWNER, {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF}
            ).first()
        if row is None:
            return None
        application_name, pid, query_start = row
        holder = application_name or f"PostgreSQL backend {pid}"
        return holder, (query_start or utcnow()).astimezone(dt.UTC)


class _FileLock:
    """SQLite file: ``flock`` on a file beside the database, released by the kernel on exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self, holder: str) -> bool:
        # os.open's descriptors are not inherited by child processes (close-on-exec).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        record = json.dumps({"holder": holder, "acquired_at": utcnow().isoformat()}).encode()
        try:
            os.pwrite(fd, record, 0)
            os.ftruncate(fd, len(record))
        except BaseException:
            os.close(fd)  # closing releases the lock
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # an empty file says "free" without taking the lock to ask
        finally:
            os.close(fd)  # the file itself stays: unlinking it would let two holders in

    def owner(self) -> tuple[str, dt.datetime] | None:
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            return None
        # A non-empty file whose lock is free was left by a holder that died.
        if not content or not self._locked_elsewhere():
            return None
        try:
            record = json.loads(content)
            return record["holder"], dt.datetime.fromisoformat(record["acquired_at"])
        except (ValueError, KeyError, TypeError):
            return UNKNOWN_HOLDER, utcnow()  # caught between locking and writing its name

    def _locked_elsewhere(self) -> bool:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also drops the shared probe lock, if taken
        return False


class _ProcessLock:
    """SQLite in memory: only this process can reach the database, so a local lock suffices."""

    _owners: ClassVar[dict[str, tuple[str, dt.datetime]]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str) -> None:
        self.name = name

    def try_acquire(self, holder: str) -> bool:
        with self._guard:
            if self.name in self._owners:
                return False
            self._owners[self.name] = (holder, utcnow())
            return True

    def release(self) -> None:
        with self._guard:
            self._owners.pop(self.name, None)

    def owner(self) -> tuple[str, dt.datetime] | None:
        with self._guard:
            return self._owners.get(self.name)


def _lock_for(engine: Engine, name: str) -> _Lock:
    if not _LOCK_NAME.fullmatch(name):
        raise ValueError(f"lock name {name!r}: use 1-64 letters, digits, '_' or '-'")
    backend = engine.dialect.name
    if backend == "postgresql":
        return _AdvisoryLock(engine, name)
    if backend == "sqlite":
        path = sqlite_file(engine.url)
        return _ProcessLock(name) if path is None else _FileLock(Path(f"{path}.{name}.lock"))
    raise NotImplementedError(f"no lock implementation for {backend}")


# Locks this process holds, so release() can find the one acquire() took.
_held: dict[tuple[str, str, str], _Lock] = {}
_held_guard = threading.Lock()


def _held_key(engine: Engine, name: str, holder: str) -> tuple[str, str, str]:
    return engine.url.render_as_string(hide_password=True), name, holder


def acquire(engine: Engine, name: str, holder: str | None = None, *, wait_s: float = 0) -> str:
    """Take lock ``name``, polling up to ``wait_s`` seconds; returns the holder.

    Raises LockHeldError naming the current holder when it is still held after
    ``wait_s``. Pair with release(); prefer held_lock(), which cannot forget to.
    """
    holder = holder or new_holder()
    deadline = time.monotonic() + wait_s
    while True:
        lock = _lock_for(engine, name)
        if lock.try_acquire(holder):
            with _held_guard:
                _held[_held_key(engine, name, holder)] = lock
            return holder
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            holder_now, since = lock.owner() or (UNKNOWN_HOLDER, utcnow())
            raise LockHeldError(name, holder_now, since)
        time.sleep(min(POLL_EVERY_S, remaining))


def release(engine: Engine, name: str, holder: str) -> bool:
    """Release ``name`` if ``holder`` holds it in this process; False when it does not."""
    with _held_guard:
        lock = _held.pop(_held_key(engine, name, holder), None)
    if lock is None:
        return False
    lock.release()
    return True


def current_lock(engine: Engine, name: str) -> tuple[str, dt.datetime] | None:
    """Holder and acquisition time of ``name`` (held by any process), or None when free."""
    return _lock_for(engine, name).owner()


@contextmanager
def held_lock(
    engine: Engine,
    name: str,
    *,
    holder: str | None = None,
    stale_after: dt.timedelta | None = None,
    wait_s: float = 0,
) -> Iterator[str]:
    """Hold ``name`` for the duration of the block (released even on error); yields the holder.

    ``stale_after`` is ignored: a dead holder's lock is released by the server
    or the kernel, so there is nothing stale to take over.
    """
    del stale_after
    holder = acquire(engine, name, holder, wait_s=wait_s)
    try:
        yield holder
    finally:
        release(engine, name, holder)


PUBLISH_LOCK = "publish"  # never the same key as a session lock this process holds


def hold_for_transaction(connection: Connection, name: str) -> None:
    """Also hold ``name`` inside the caller's transaction (PostgreSQL: a transaction-level
    advisory lock, released at commit or rollback).

    The session lock of ``held_lock`` lives on its own connection; if that connection
    dies mid-update the server frees it and another updater may start. Taking this
    one around the writes that must not interleave (recompute and publish) keeps two
    such updaters from publishing at once: the second waits, then reads the first's
    publications. SQLite needs nothing: its file lock lives as long as the process.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)})
