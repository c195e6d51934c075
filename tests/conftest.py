"""Shared fixtures: seeded made-up market data, and fresh migrated databases on
SQLite and PostgreSQL.

PostgreSQL tests use DEEPREGIME_TEST_POSTGRES_URL (default: the local server's
``test`` database, used only to create and drop a private database per
session). With DEEPREGIME_REQUIRE_POSTGRES=1 (set by .ci/run) an unreachable
server fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from store.db import make_engine
from store.migrations import upgrade

MARKET_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "market"
POSTGRES_URL = os.environ.get(
    "DEEPREGIME_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("DEEPREGIME_REQUIRE_POSTGRES") == "1"


def _postgres_unavailable_reason() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {error.__class__.__name__}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    reason = _postgres_unavailable_reason()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    return POSTGRES_URL


def _create_postgres_database(server_url: str) -> str:
    name = f"deepregime_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'deepregime.db'}"
        upgrade(url)
        yield url
        return
    server = request.getfixturevalue("postgres_server")
    url = _create_postgres_database(server)
    try:
        upgrade(url)
        yield url
    finally:
        _drop_postgres_database(server, url)


@pytest.fixture
def engine(database_url: str):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def market_dir() -> Path:
    if not (MARKET_DIR / "SPY.csv").exists():
        pytest.skip(f"real market data not found at {MARKET_DIR}")
    return MARKET_DIR


def make_closes(
    n_days: int = 600, seed: int = 7, start: str = "2010-01-04"
) -> dict[str, pd.Series]:
    """Seeded random-walk closes for the five feature inputs on business days."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=n_days, name="date")
    spy = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, n_days)))
    vix = np.exp(np.log(18) + np.cumsum(rng.normal(0, 0.05, n_days)) * 0.3)
    vix3m = vix * np.exp(rng.normal(0.05, 0.04, n_days))
    hyg = 80 * np.exp(np.cumsum(rng.normal(0.0001, 0.004, n_days)))
    ief = 100 * np.exp(np.cumsum(rng.normal(0.0001, 0.003, n_days)))
    return {
        "SPY": pd.Series(spy, index=dates),
        "^VIX": pd.Series(vix, index=dates),
        "^VIX3M": pd.Series(vix3m, index=dates),
        "HYG": pd.Series(hyg, index=dates),
        "IEF": pd.Series(ief, index=dates),
    }


@pytest.fixture(scope="module")
def closes() -> dict[str, pd.Series]:
    return make_closes()
