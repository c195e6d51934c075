"""Faults during ingestion: a process killed mid-write, and concurrent ingests.

Each case ends by comparing the prices table with a clean single ingest of the
same files: no partial rows, no duplicates, nothing missing.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from store.db import make_engine
from store.ingest import ingest_csv_folder
from store.tables import ingest_runs, prices
from tests.store.days import xnys_days
from tests.store.test_ingest import yf_rows

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2025, 1, 15)


def market_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "market"
    folder.mkdir()
    (folder / "SPY.csv").write_text(yf_rows(xnys_days("1990-01-02", periods=6000), start=50))
    (folder / "HYG.csv").write_text(
        yf_rows(xnys_days("2000-01-03", periods=3000), start=60, symbol="HYG")
    )
    return folder


def table_snapshot(engine) -> list[tuple]:
    columns = [prices.c.symbol, prices.c.date, prices.c.adj_close, prices.c.close, prices.c.volume]
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(select(*columns).order_by(prices.c.symbol, prices.c.date))
        ]


CRASHING_INGEST = textwrap.dedent(
    """
    import datetime as dt, os, signal, sys
    from pathlib import Path
    import store.ingest as ingest
    from store.db import make_engine

    original = ingest.upsert
    calls = {"n": 0}

    def crash_after_some_writes(connection, table, rows):
        calls["n"] += 1
        if calls["n"] == 3:  # a few chunks are already written inside the transaction
            os.kill(os.getpid(), signal.SIGKILL)
        return original(connection, table, rows)

    ingest.upsert = crash_after_some_writes
    read = ingest.read_csv_file
    ingest.read_csv_file = lambda path, today, chunk_rows: read(path, today=today, chunk_rows=1000)
    engine = make_engine(sys.argv[1])
    ingest.ingest_csv_folder(engine, Path(sys.argv[2]), today=dt.date(2025, 1, 15))
    """
)


def test_ingest_killed_mid_write_leaves_no_partial_rows(database_url, tmp_path):
    folder = market_folder(tmp_path)
    # Force the update path (upsert) for every chunk by pre-loading different values.
    engine = make_engine(database_url)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASHING_INGEST.replace('calls["n"] == 3', "False"),
            database_url,
            str(folder),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    clean = table_snapshot(engine)
    # Rewrite every price so the next ingest updates rows chunk by chunk, then crash it.
    (folder / "SPY.csv").write_text(yf_rows(xnys_days("1990-01-02", periods=6000), start=51))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_INGEST, database_url, str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -9  # SIGKILL, mid-transaction
    assert table_snapshot(engine) == clean  # nothing of the killed run is visible
    with engine.connect() as connection:
        statuses = [row[0] for row in connection.execute(select(ingest_runs.c.status))]
    assert "running" not in statuses  # its audit row died with its transaction

    rerun = ingest_csv_folder(engine, folder, today=TODAY)
    assert [r.status for r in rerun] == ["unchanged", "ingested"]
    fresh_url = (
        database_url.replace("deepregime.db", "fresh.db")
        if database_url.startswith("sqlite")
        else None
    )
    after = table_snapshot(engine)
    engine.dispose()
    assert len(after) == len(clean) == 9000
    if fresh_url:  # compare with a clean ingest of the new files into a new database
        from store.migrations import upgrade

        upgrade(fresh_url)
        fresh = make_engine(fresh_url)
        ingest_csv_folder(fresh, folder, today=TODAY)
        assert table_snapshot(fresh) == after
        fresh.dispose()


def test_concurrent_ingests_of_the_same_folder_agree_with_one(database_url, tmp_path):
    folder = market_folder(tmp_path)
    engines = [make_engine(database_url) for _ in range(2)]
    results: list = []
    errors: list = []

    def run(engine) -> None:
        try:
            results.append(ingest_csv_folder(engine, folder, today=TODAY))
        except Exception as error:  # noqa: BLE001 - the assertion below reports it
            errors.append(error)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert all(r.status in ("ingested", "unchanged") for batch in results for r in batch)
    snapshot = table_snapshot(engines[0])
    assert len(snapshot) == 9000
    assert len({(row[0], row[1]) for row in snapshot}) == 9000  # no duplicates
    for engine in engines:
        engine.dispose()


def test_a_database_error_mid_file_rolls_it_back_and_the_folder_goes_on(
    database_url, tmp_path, monkeypatch
):
    import store.ingest as ingest

    folder = market_folder(tmp_path)
    engine = make_engine(database_url)
    ingest_csv_folder(engine, folder, today=TODAY)
    clean = table_snapshot(engine)
    # New values for every row of both files, so each chunk goes through upsert.
    (folder / "HYG.csv").write_text(
        yf_rows(xnys_days("2000-01-03", periods=3000), start=61, symbol="HYG")
    )
    (folder / "SPY.csv").write_text(yf_rows(xnys_days("1990-01-02", periods=6000), start=51))
    calls = {"n": 0}
    original_upsert, original_read = ingest.upsert, ingest.read_csv_file

    def failing_upsert(connection, table, rows):
        calls["n"] += 1
        if calls["n"] == 3:  # two chunks of HYG.csv are written inside its transaction
            raise OperationalError("UPDATE prices", {}, Exception("server closed the connection"))
        return original_upsert(connection, table, rows)

    monkeypatch.setattr(ingest, "upsert", failing_upsert)
    monkeypatch.setattr(
        ingest,
        "read_csv_file",
        lambda path, today, chunk_rows: original_read(path, today=today, chunk_rows=500),
    )
    results = ingest_csv_folder(engine, folder, today=TODAY)
    assert [(r.symbol, r.status) for r in results] == [("HYG", "rejected"), ("SPY", "ingested")]
    assert results[0].message.startswith("unexpected error: OperationalError")
    after = table_snapshot(engine)
    assert [row for row in after if row[0] == "HYG"] == [row for row in clean if row[0] == "HYG"]
    assert [row[2] for row in after if row[0] == "SPY"][:2] == [51.0, 51.1]
    with engine.connect() as connection:
        audit = connection.execute(
            select(ingest_runs.c.symbol, ingest_runs.c.status).order_by(ingest_runs.c.id)
        ).all()
    assert [tuple(row) for row in audit][-2:] == [("HYG", "rejected"), ("SPY", "ingested")]
    engine.dispose()
