"""Ingestion into SQLite and PostgreSQL: idempotent, transactional, audited."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from core.rules import PUBLISHED_FRAMEWORK
from store.ingest import ingest_csv_file, ingest_csv_folder, ingest_yfinance
from store.pipeline import refresh_features, refresh_regimes
from store.repository import load_closes, load_features
from store.tables import ingest_runs, prices, quarantine
from tests.store.test_sources import CBOE_HEADER, YF_HEADER, yf_frame

TODAY = dt.date(2025, 1, 15)


def yf_rows(days: pd.DatetimeIndex, start: float = 100.0) -> str:
    lines = [
        f"{d:%Y-%m-%d} 00:00:00,{start + i * 0.1:.4f},{start + i * 0.1 + 1:.4f},1,1,1,{1000 + i}"
        for i, d in enumerate(days)
    ]
    return YF_HEADER + "\n".join(lines) + "\n"


def make_folder(tmp_path: Path, n_days: int = 30) -> Path:
    folder = tmp_path / "market"
    folder.mkdir()
    days = pd.bdate_range("2024-01-02", periods=n_days)
    (folder / "SPY.csv").write_text(yf_rows(days))
    (folder / "VIX_History.csv").write_text(
        CBOE_HEADER + "".join(f"{d:%m/%d/%Y},1,1,1,{15 + i % 3}\n" for i, d in enumerate(days))
    )
    return folder


def count(engine, table, **where) -> int:
    statement = select(func.count()).select_from(table)
    for column, value in where.items():
        statement = statement.where(table.c[column] == value)
    with engine.connect() as connection:
        return connection.execute(statement).scalar_one()


def test_folder_ingest_then_rerun_changes_nothing(engine, tmp_path):
    folder = make_folder(tmp_path)
    first = ingest_csv_folder(engine, folder, today=TODAY)
    assert [(r.symbol, r.status, r.inserted) for r in first] == [
        ("SPY", "ingested", 30),
        ("^VIX", "ingested", 30),
    ]
    assert count(engine, prices) == 60
    second = ingest_csv_folder(engine, folder, today=TODAY)
    assert [r.status for r in second] == ["unchanged", "unchanged"]
    assert count(engine, prices) == 60
    forced = ingest_csv_folder(engine, folder, today=TODAY, force=True)
    assert [(r.status, r.inserted, r.updated) for r in forced] == [("unchanged", 0, 0)] * 2


def test_appended_and_revised_rows_are_the_only_writes(engine, tmp_path):
    folder = make_folder(tmp_path)
    ingest_csv_folder(engine, folder, today=TODAY)
    days = pd.bdate_range("2024-01-02", periods=31)
    text = yf_rows(days).replace("2024-01-02 00:00:00,100.0000", "2024-01-02 00:00:00,99.5000")
    (folder / "SPY.csv").write_text(text)
    result = ingest_csv_file(engine, folder / "SPY.csv", today=TODAY)
    assert (result.status, result.inserted, result.updated) == ("ingested", 1, 1)
    with engine.connect() as connection:
        closes = load_closes(connection, symbols=["SPY"])["SPY"]
    assert closes.iloc[0] == 99.5 and len(closes) == 31


def test_a_bad_row_late_in_the_file_writes_nothing(engine, tmp_path):
    folder = make_folder(tmp_path)
    days = pd.bdate_range("2024-01-02", periods=40)
    lines = yf_rows(days).splitlines()
    lines[-3] = lines[-3].replace("00:00:00,", "00:00:00,n/a,", 1).rsplit(",", 1)[0]
    (folder / "SPY.csv").write_text("\n".join(lines) + "\n")
    result = ingest_csv_file(engine, folder / "SPY.csv", today=TODAY, chunk_rows=7)
    assert result.status == "rejected"
    assert (
        f"{folder / 'SPY.csv'}, line 41, field 'adj_close': not a number: 'n/a'" == result.message
    )
    assert count(engine, prices) == 0  # earlier chunks were rolled back
    assert count(engine, ingest_runs, status="rejected") == 1


def test_quarantined_rows_are_kept_with_line_and_reason(engine, tmp_path):
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "VVIX_History.csv").write_text(
        "DATE,VVIX\n03/06/2006,71.73\n03/15/2006,15.71\n03/16/2006,72.0\n"
    )
    result = ingest_csv_file(engine, folder / "VVIX_History.csv", today=TODAY)
    assert (result.inserted, result.quarantined) == (2, 1)
    with engine.connect() as connection:
        row = connection.execute(
            select(quarantine.c.symbol, quarantine.c.line, quarantine.c.date, quarantine.c.raw)
        ).one()
    assert tuple(row) == ("^VVIX", 3, dt.date(2006, 3, 15), "03/15/2006,15.71")


def test_yfinance_is_incremental_from_the_last_stored_date(engine):
    calls = []

    def fake_download(symbols, start):
        calls.append((tuple(symbols), start))
        frame = yf_frame(symbols, auto_adjust=False)
        if start > dt.date(2024, 1, 2):  # a later call returns the last day again plus one new day
            frame.index = pd.DatetimeIndex(["2024-01-03", "2024-01-04"], name="Date")
        return frame

    first = ingest_yfinance(
        engine, ["SPY"], today=TODAY, default_start=dt.date(2024, 1, 1), download=fake_download
    )
    assert (first[0].status, first[0].inserted) == ("ingested", 2)
    second = ingest_yfinance(
        engine, ["SPY"], today=TODAY, default_start=dt.date(2024, 1, 1), download=fake_download
    )
    assert calls[1] == (("SPY",), dt.date(2024, 1, 3))
    # 01-03 comes back with the values of the frame's first row, so it is an update.
    assert (second[0].inserted, second[0].updated) == (1, 1)
    assert count(engine, prices, source="yfinance") == 3


def test_features_and_regimes_are_recomputed_incrementally(engine, tmp_path):
    folder = make_folder(tmp_path, n_days=260)
    ingest_csv_folder(engine, folder, today=TODAY)
    with engine.begin() as connection:
        first = refresh_features(connection)
        regimes = refresh_regimes(connection, PUBLISHED_FRAMEWORK)
    assert (first.rows, first.written) == (260, 260)
    assert regimes.written == 260
    with engine.begin() as connection:
        assert refresh_features(connection).written == 0
        assert refresh_regimes(connection, PUBLISHED_FRAMEWORK).written == 0
        stored = load_features(connection)
    assert stored["hyg_ief"].isna().all()  # no HYG/IEF ingested: NULL, never zero
    assert stored["vix"].iloc[0] == 15.0
