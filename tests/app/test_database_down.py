"""The database goes away or refuses work: /health stays up, /ready says why, data
routes answer 503 quickly naming the cause, and the service recovers by itself.

Each cause is made to happen for real: a closed port and a cut TCP proxy
(unreachable), another writer holding SQLite (locked), a read-only open
or a PostgreSQL database set read-only (read_only), a page limit standing in
for a full disk (disk_full).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from app.problems import install_problem_handlers
from app.readiness import _guarded
from app.settings import Settings
from store.db import DATABASE_FAULTS, sqlite_file
from store.locks import REFRESH_LOCK, held_lock
from tests.app.conftest import admin, running
from tests.app.tcp_proxy import TcpProxy

CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:1/deepregime"
BACKTEST = {"strategies": [{"kind": "buy_and_hold"}]}
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def timed_get(client, path: str, **options):
    started = time.perf_counter()
    response = client.get(path, **options)
    return response, time.perf_counter() - started


def with_options(settings: Settings, **options: object) -> Settings:
    return Settings(**{**settings.model_dump(), "cache_ttl_s": 0, **options}, _env_file=None)


def assert_database_fault(response, cause: str) -> None:
    """A 503 problem naming ``cause``, with Retry-After only where a retry can help."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    fault = DATABASE_FAULTS[cause]
    assert (body["cause"], body["detail"]) == (cause, fault.detail)
    if fault.retry_after_s is None:
        assert "retry-after" not in response.headers
    else:
        assert response.headers["retry-after"] == str(fault.retry_after_s)


def test_unreachable_database_at_start(tmp_path):
    settings = Settings(
        database_url=CLOSED_PORT_URL, model_dir=tmp_path / "models", db_timeout_s=1, _env_file=None
    )
    with running(settings) as client:
        assert client.get("/health").status_code == 200
        ready, _ = timed_get(client, "/ready")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"]["ok"] is False
        assert checks["database"]["detail"].startswith("unreachable: OperationalError:")
        assert checks["migrations"]["detail"] == "unknown: database unreachable"
        for path, params in (("/regime/today", {}), ("/regimes", {}), ("/regime/2012-04-05", {})):
            response, seconds = timed_get(client, path, params=params)
            assert_database_fault(response, "unreachable")
            assert response.json()["detail"].startswith("database unreachable:")
            assert seconds < 2.0, path
        started = time.perf_counter()
        posted = client.post("/backtest", json=BACKTEST)
        assert_database_fault(posted, "unreachable")
        assert time.perf_counter() - started < 2.0
        assert "deepregime_data_age_days NaN" in client.get("/metrics").text


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_the_service_recovers_when_the_database_returns(settings):
    target = make_url(settings.database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    through_proxy = with_options(settings, database_url=proxied, db_timeout_s=1)
    try:
        with running(through_proxy) as client:
            assert client.get("/regime/today").status_code == 200
            proxy.stop()
            down, seconds = timed_get(client, "/regime/today")
            assert_database_fault(down, "unreachable")
            assert seconds < 2.0
            assert client.get("/health").status_code == 200
            ready = client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"]["detail"].startswith("unreachable:")
            proxy.start()  # same port: the database is back
            assert client.get("/regime/today").status_code == 200
            assert client.get("/ready").status_code == 200
    finally:
        proxy.stop()


@SQLITE_ONLY
def test_another_writer_holding_sqlite_answers_503_locked(settings):
    holder = sqlite3.connect(sqlite_file(settings.database_url), isolation_level=None)
    try:
        with running(with_options(settings, db_timeout_s=1)) as client:
            holder.execute("BEGIN IMMEDIATE")
            holder.execute("DELETE FROM backtest_runs")  # a write: the holder owns the writer lock
            assert client.get("/regimes").status_code == 200  # readers go on reading
            started = time.perf_counter()
            blocked = client.post("/backtest", json=BACKTEST)
            assert_database_fault(blocked, "locked")
            assert blocked.json()["detail"] == (
                "database locked: another writer holds it; retry shortly"
            )
            assert 0.9 <= time.perf_counter() - started < 5  # waited out the busy timeout
            holder.execute("ROLLBACK")
            assert client.post("/backtest", json=BACKTEST).status_code == 201
    finally:
        holder.close()


@SQLITE_ONLY
def test_a_read_only_sqlite_database_answers_503_read_only(settings, tmp_path):
    copy = tmp_path / "read-only.db"
    shutil.copy(sqlite_file(settings.database_url), copy)
    copy.chmod(0o444)  # enough for other users; root writes through it, hence mode=ro
    read_only = with_options(settings, database_url=f"sqlite:///file:{copy}?mode=ro&uri=true")
    with running(read_only) as client:
        assert client.get("/regime/today").status_code == 200  # reads are served
        assert client.get("/ready").status_code == 200
        assert_database_fault(client.post("/backtest", json=BACKTEST), "read_only")


@SQLITE_ONLY
def test_a_full_disk_answers_503_disk_full(settings):
    def no_room(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute("PRAGMA max_page_count=1")  # clamped to the current size

    # Research in the serving process, so the jobs use the engine this test hobbles.
    with running(with_options(settings, research_processes=0)) as client:
        engine = client.app.state.service.engine
        event.listen(engine, "connect", no_room)
        engine.dispose()  # the pool's next connections have no room to grow
        assert_database_fault(client.post("/backtest", json=BACKTEST), "disk_full")
        event.remove(engine, "connect", no_room)
        engine.dispose()  # space freed
        assert client.post("/backtest", json=BACKTEST).status_code == 201


def test_a_file_that_is_not_a_database_is_named_by_readiness(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 1000)
    settings = Settings(
        database_url=f"sqlite:///{garbage}", model_dir=tmp_path / "models", _env_file=None
    )
    with running(settings) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        database = ready.json()["checks"]["database"]
        assert database["detail"] == "error: DatabaseError: file is not a database"
        assert_database_fault(client.get("/regimes"), "error")


def test_readiness_names_the_cause_of_a_failed_check():
    def locked():
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))

    check = _guarded(locked)
    assert (check.ok, check.detail) == (
        False,
        "failed: locked: OperationalError: database is locked",
    )


@SQLITE_ONLY
def test_readiness_says_when_a_refresh_is_running(settings):
    engine_url = settings.database_url
    with running(settings) as client:
        with held_lock(client.app.state.service.engine, REFRESH_LOCK, holder="cron:42"):
            ready = client.get("/ready")
            assert ready.status_code == 200
            detail = ready.json()["checks"]["database"]["detail"]
            assert detail.startswith("reachable; a refresh is running (held by cron:42 since 20")
            busy = client.post("/admin/refresh", headers=admin())
            assert busy.status_code == 409 and "held by cron:42" in busy.json()["detail"]
        assert client.get("/ready").json()["checks"]["database"]["detail"] == "reachable"
    assert Path(f"{sqlite_file(engine_url)}.refresh.lock").read_text() == ""


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_read_only_postgres_database_answers_503_read_only(settings):
    name = make_url(settings.database_url).database
    owner = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    try:
        with running(settings) as client:
            with owner.connect() as connection:
                connection.execute(
                    text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
                )
            client.app.state.service.engine.dispose()  # new sessions start read-only
            assert client.get("/regime/today").status_code == 200
            assert_database_fault(client.post("/backtest", json=BACKTEST), "read_only")
            with owner.connect() as connection:
                connection.execute(
                    text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
                )
            client.app.state.service.engine.dispose()
            assert client.post("/backtest", json=BACKTEST).status_code == 201
    finally:
        owner.dispose()


def test_application_mistakes_stay_500_and_name_nothing():
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/duplicate")
    def duplicate() -> None:
        raise IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/duplicate")
    assert response.status_code == 500
    assert "cause" not in response.json()
