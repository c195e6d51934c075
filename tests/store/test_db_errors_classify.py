"""store.db: SQLite's pragmas, and each database failure classified by its cause.

The causes are made to happen for real on SQLite (a writer holding the
database, a read-only open, a page limit standing in for a full disk), and
checked on constructed driver errors for the rest (PostgreSQL codes, OSError).
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
import time
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from store.db import DATABASE_FAULTS, classify_database_error, make_engine, sqlite_file


def wrapped(kind: type[DBAPIError], driver_error: Exception) -> DBAPIError:
    """A driver error as SQLAlchemy hands it over."""
    return kind("INSERT INTO t VALUES (1)", {}, driver_error)


def sqlite_error(message: str, code: int | None) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    if code is not None:
        error.sqlite_errorcode = code
    return error


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    """A WAL database with one table, written by make_engine's connections."""
    path = tmp_path / "faults.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x)"))
        connection.execute(text("INSERT INTO t VALUES (0)"))
    engine.dispose()
    return path


def insert_one(engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (randomblob(20000))"))


# --- real SQLite faults -----------------------------------------------------------------


def test_sqlite_pragmas(sqlite_db):
    engine = make_engine(f"sqlite:///{sqlite_db}", timeout_s=1.5)
    with engine.connect() as connection:
        pragma = {
            name: connection.execute(text(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        }
    engine.dispose()
    assert pragma == {
        "journal_mode": "wal",
        "busy_timeout": 1500,
        "synchronous": 1,
        "foreign_keys": 1,
    }


def test_a_writer_holding_sqlite_lets_readers_read_and_makes_writers_wait(sqlite_db):
    engine = make_engine(f"sqlite:///{sqlite_db}", timeout_s=0.5)
    holder = sqlite3.connect(sqlite_db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO t VALUES (1)")
        with engine.connect() as connection:  # readers never fail during a write
            assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
        started = time.monotonic()
        with pytest.raises(OperationalError) as raised:
            insert_one(engine)
        assert time.monotonic() - started >= 0.4  # waited out the busy timeout
        fault = classify_database_error(raised.value)
        assert fault.cause == "locked"
        assert fault.detail == "database locked: another writer holds it; retry shortly"
        assert fault.retry_after_s
        holder.execute("ROLLBACK")
        insert_one(engine)  # free again
    finally:
        holder.close()
        engine.dispose()


def test_a_read_only_sqlite_database(sqlite_db, tmp_path):
    copy = tmp_path / "read-only.db"
    shutil.copy(sqlite_db, copy)
    copy.chmod(0o444)  # enough for other users; root writes through it, hence mode=ro
    engine = make_engine(f"sqlite:///file:{copy}?mode=ro&uri=true")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
        with pytest.raises(OperationalError) as raised:
            insert_one(engine)
    finally:
        engine.dispose()
    fault = classify_database_error(raised.value)
    assert fault.cause == "read_only"
    assert fault.detail.startswith("database read-only:")
    assert fault.retry_after_s is None  # someone has to act first


def test_a_full_sqlite_database(sqlite_db):
    engine = make_engine(f"sqlite:///{sqlite_db}")

    @event.listens_for(engine, "connect")
    def _no_room(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute("PRAGMA max_page_count=1")  # clamped to the current size

    try:
        with pytest.raises(OperationalError) as raised:
            insert_one(engine)
    finally:
        engine.dispose()
    fault = classify_database_error(raised.value)
    assert fault.cause == "disk_full"
    assert fault.detail.startswith("database disk full:")
    assert fault.retry_after_s is None


def test_a_file_that_is_not_a_database(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 1000)
    engine = make_engine(f"sqlite:///{garbage}")
    try:
        with pytest.raises(DBAPIError) as raised:
            with engine.connect() as connection:
                connection.execute(text("SELECT count(*) FROM sqlite_master"))
    finally:
        engine.dispose()
    assert classify_database_error(raised.value) == DATABASE_FAULTS["error"]


def test_sqlite_file_behind_each_url_form(tmp_path):
    assert sqlite_file(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db"
    assert sqlite_file(f"sqlite:///file:{tmp_path}/a.db?mode=ro&uri=true") == tmp_path / "a.db"
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("sqlite:///file:mem?mode=memory&uri=true") is None


# --- constructed errors -----------------------------------------------------------------

CONSTRUCTED = [
    # SQLite, with and without the result code the driver attaches
    (wrapped(OperationalError, sqlite_error("database is locked", 5)), "locked"),
    (wrapped(OperationalError, sqlite_error("database table is locked", None)), "locked"),
    (wrapped(OperationalError, sqlite_error("database or disk is full", 13)), "disk_full"),
    (wrapped(OperationalError, sqlite_error("whatever", 13 | (1 << 8))), "disk_full"),
    (
        wrapped(OperationalError, sqlite_error("attempt to write a readonly database", 8)),
        "read_only",
    ),
    (
        wrapped(OperationalError, sqlite_error("attempt to write a readonly database", None)),
        "read_only",
    ),
    (wrapped(OperationalError, sqlite_error("unable to open database file", 14)), "unreachable"),
    (wrapped(OperationalError, sqlite_error("no such table: t", 1)), "error"),
    # PostgreSQL, by SQLSTATE
    (wrapped(OperationalError, psycopg.errors.DiskFull("could not extend file")), "disk_full"),
    (wrapped(InternalError, psycopg.errors.ReadOnlySqlTransaction("read-only")), "read_only"),
    (wrapped(OperationalError, psycopg.errors.LockNotAvailable("could not obtain lock")), "locked"),
    (wrapped(OperationalError, psycopg.errors.DeadlockDetected("deadlock detected")), "locked"),
    (wrapped(OperationalError, psycopg.errors.AdminShutdown("terminating")), "unreachable"),
    (wrapped(OperationalError, psycopg.errors.CannotConnectNow("starting up")), "unreachable"),
    (wrapped(OperationalError, psycopg.errors.ConnectionFailure("lost")), "unreachable"),
    (wrapped(IntegrityError, psycopg.errors.UniqueViolation("duplicate key")), "error"),
    # PostgreSQL connection failures carry no SQLSTATE: their wording says it
    (
        wrapped(
            OperationalError,
            psycopg.OperationalError(
                'connection failed: connection to server at "127.0.0.1", port 1 failed: '
                "Connection refused"
            ),
        ),
        "unreachable",
    ),
    (
        wrapped(OperationalError, psycopg.OperationalError("connection timeout expired")),
        "unreachable",
    ),
    (
        wrapped(
            OperationalError,
            psycopg.OperationalError(
                "consuming input failed: server closed the connection unexpectedly"
            ),
        ),
        "unreachable",
    ),
    # the pool, and the operating system
    (PoolTimeoutError("QueuePool limit of size 5 overflow 10 reached"), "unreachable"),
    (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
    (OSError(errno.EROFS, "Read-only file system"), "read_only"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "unreachable"),
    (ValueError("something else"), "error"),
]


@pytest.mark.parametrize(
    ("error", "cause"),
    CONSTRUCTED,
    ids=[f"{i}-{cause}" for i, (_, cause) in enumerate(CONSTRUCTED)],
)
def test_classify_constructed_errors(error, cause):
    fault = classify_database_error(error)
    assert fault.cause == cause
    assert fault is DATABASE_FAULTS[cause]


def test_an_invalidated_connection_is_unreachable():
    error = DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert classify_database_error(error).cause == "unreachable"


def test_the_cause_is_found_down_the_chain():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise RuntimeError("writing the run failed") from error
    except RuntimeError as error:
        assert classify_database_error(error).cause == "disk_full"


def test_every_cause_is_worded_and_retry_is_offered_where_it_helps():
    assert set(DATABASE_FAULTS) == {"unreachable", "locked", "disk_full", "read_only", "error"}
    for cause, fault in DATABASE_FAULTS.items():
        assert fault.cause == cause and fault.detail.startswith("database ")
    assert {cause for cause, f in DATABASE_FAULTS.items() if f.retry_after_s is None} == {
        "disk_full",
        "read_only",
    }
