"""Engine and session construction for SQLite (embedded default) and PostgreSQL, and the
classification of database failures into causes people can act on."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker


def sqlite_file(url: str | URL) -> Path | None:
    """The file behind a SQLite URL (plain path or ``file:`` URI), None for in-memory."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.query.get("uri") == "true" and database.startswith("file:"):
        if parsed.query.get("mode") == "memory":
            return None
        database = database.removeprefix("file:").split("?", 1)[0]
    if database in ("", ":memory:"):
        return None
    return Path(database)


class SerialisedJSON(str):
    """JSON text already serialised: a JSON column stores it as it is (a large document
    answered as bytes need not be serialised a second time to be stored)."""


def serialise_json(value: object) -> str:
    """The engines' JSON serialiser: json.dumps, except for SerialisedJSON text."""
    return str(value) if isinstance(value, SerialisedJSON) else json.dumps(value)


def make_engine(url: str, timeout_s: float = 3.0) -> Engine:
    """Engine with bounded connect/lock waits, so a dead database fails fast.

    SQLite: the file's folder is created; WAL lets readers run beside a writer;
    a second writer waits up to ``timeout_s`` (busy_timeout) before failing;
    ``synchronous=NORMAL`` is durable across application crashes in WAL mode
    without an fsync per commit; ``check_same_thread=False`` lets FastAPI's
    thread pool share connections.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": timeout_s},
            json_serializer=serialise_json,
        )
        busy_timeout_ms = max(1, round(timeout_s * 1000))

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            # busy_timeout first: switching to WAL may itself wait for another writer.
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=timeout_s,
        json_serializer=serialise_json,
        # utf8 explicitly: a server initialised as SQL_ASCII would otherwise hand
        # text back as bytes.
        connect_args={"connect_timeout": max(1, int(timeout_s)), "client_encoding": "utf8"},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# --- why the database failed ----------------------------------------------------------

FaultCause = Literal["unreachable", "locked", "disk_full", "read_only", "error"]


@dataclass(frozen=True)
class DatabaseFault:
    """Why a database operation failed, worded for the API, readiness and the command line."""

    cause: FaultCause
    detail: str
    # Seconds worth waiting before a retry; None when retrying cannot help until someone acts.
    retry_after_s: int | None


DATABASE_FAULTS: dict[FaultCause, DatabaseFault] = {
    fault.cause: fault
    for fault in (
        DatabaseFault(
            "unreachable",
            "database unreachable: cannot connect, or the connection was lost; retry shortly",
            5,
        ),
        DatabaseFault("locked", "database locked: another writer holds it; retry shortly", 2),
        DatabaseFault(
            "disk_full",
            "database disk full: no space left to write; free space on the database's disk",
            None,
        ),
        DatabaseFault(
            "read_only",
            "database read-only: it refuses writes (read-only file, mount or server)",
            None,
        ),
        DatabaseFault("error", "database error; retry shortly", 5),
    )
}

# PostgreSQL SQLSTATEs; class 08 (connection exception) is matched by prefix.
_SQLSTATE_CAUSES: dict[str, FaultCause] = {
    "53100": "disk_full",  # disk_full
    "25006": "read_only",  # read_only_sql_transaction (a standby, or default_transaction_read_only)
    "55P03": "locked",  # lock_not_available
    "40P01": "locked",  # deadlock_detected
    "40001": "locked",  # serialization_failure
    "57P01": "unreachable",  # admin_shutdown
    "57P02": "unreachable",  # crash_shutdown
    "57P03": "unreachable",  # cannot_connect_now (starting up, shutting down)
    "53300": "unreachable",  # too_many_connections
}

# SQLite primary result codes (extended codes carry them in the low byte).
_SQLITE_CAUSES: dict[int, FaultCause] = {
    5: "locked",  # SQLITE_BUSY
    6: "locked",  # SQLITE_LOCKED
    8: "read_only",  # SQLITE_READONLY
    13: "disk_full",  # SQLITE_FULL
    14: "unreachable",  # SQLITE_CANTOPEN
}

_ERRNO_CAUSES: dict[int, FaultCause] = {
    errno.ENOSPC: "disk_full",
    errno.EDQUOT: "disk_full",
    errno.EROFS: "read_only",
}

# For errors that carry no code (drivers' connection failures, wrapped messages).
_MESSAGE_CAUSES: tuple[tuple[str, FaultCause], ...] = (
    ("database is locked", "locked"),
    ("database table is locked", "locked"),
    ("database or disk is full", "disk_full"),
    ("no space left on device", "disk_full"),
    ("readonly database", "read_only"),
    ("read-only transaction", "read_only"),
    ("connection refused", "unreachable"),
    ("could not connect", "unreachable"),
    ("connection to server", "unreachable"),
    ("timeout expired", "unreachable"),
    ("server closed the connection", "unreachable"),
    ("connection is closed", "unreachable"),
    ("consuming input failed", "unreachable"),
    ("terminating connection", "unreachable"),
    ("connection reset", "unreachable"),
    ("broken pipe", "unreachable"),
    ("unable to open database file", "unreachable"),
)


def _causal_chain(error: BaseException) -> Iterator[BaseException]:
    """The error, the driver error it wraps, and what it was raised from."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending += [orig if isinstance(orig, BaseException) else None]
        pending += [current.__cause__, current.__context__]


def _coded_cause(error: BaseException) -> FaultCause | None:
    if isinstance(error, PoolTimeoutError):
        return "unreachable"  # no connection within the timeout
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return "unreachable"
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str):
        if sqlstate.startswith("08"):
            return "unreachable"
        if sqlstate in _SQLSTATE_CAUSES:
            return _SQLSTATE_CAUSES[sqlstate]
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int) and sqlite_code & 0xFF in _SQLITE_CAUSES:
        return _SQLITE_CAUSES[sqlite_code & 0xFF]
    if isinstance(error, OSError):
        if error.errno in _ERRNO_CAUSES:
            return _ERRNO_CAUSES[error.errno]
        if isinstance(error, ConnectionError | TimeoutError):
            return "unreachable"
    return None


def _worded_cause(error: BaseException) -> FaultCause | None:
    message = str(error).lower()
    return next((cause for text, cause in _MESSAGE_CAUSES if text in message), None)


def classify_database_error(error: BaseException) -> DatabaseFault:
    """The cause of a database failure: error codes first, then the drivers' wording."""
    chain = list(_causal_chain(error))
    for find in (_coded_cause, _worded_cause):
        for link in chain:
            cause = find(link)
            if cause is not None:
                return DATABASE_FAULTS[cause]
    return DATABASE_FAULTS["error"]
