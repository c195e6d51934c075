"""Ingestion into SQLite and PostgreSQL: idempotent, transactional, audited."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from core.rules import PUBLISHED_FRAMEWORK
from store.ingest import ingest_csv_file, ingest_csv_folder, ingest_yfinance
from store.pipeline import refresh_features, refresh_regimes
from store.repository import load_closes, load_features, load_price_rows
from store.tables import ingest_runs, prices, quarantine
from tests.conftest import MARKET_DIR
from tests.store.days import xnys_days
from tests.store.test_sources import CBOE_HEADER, YF_HEADER, yf_frame

TODAY = dt.date(2025, 1, 15)


def yf_rows(days: pd.DatetimeIndex, start: float = 100.0, symbol: str = "SPY") -> str:
    """A file in the market folder's yfinance layout; its Ticker line names ``symbol``."""
    lines = [
        f"{d:%Y-%m-%d} 00:00:00,{start + i * 0.1:.4f},{start + i * 0.1 + 1:.4f},1,1,1,{1000 + i}"
        for i, d in enumerate(days)
    ]
    return YF_HEADER.replace("SPY", symbol) + "\n".join(lines) + "\n"


def make_folder(tmp_path: Path, n_days: int = 30) -> Path:
    folder = tmp_path / "market"
    folder.mkdir()
    days = xnys_days("2024-01-02", periods=n_days)
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
    days = xnys_days("2024-01-02", periods=31)
    text = yf_rows(days).replace("2024-01-02 00:00:00,100.0000", "2024-01-02 00:00:00,99.5000")
    (folder / "SPY.csv").write_text(text)
    [result] = ingest_csv_file(engine, folder / "SPY.csv", today=TODAY)
    assert (result.status, result.inserted, result.updated) == ("ingested", 1, 1)
    with engine.connect() as connection:
        closes = load_closes(connection, symbols=["SPY"])["SPY"]
    assert closes.iloc[0] == 99.5 and len(closes) == 31


def test_a_bad_row_late_in_the_file_writes_nothing(engine, tmp_path):
    folder = make_folder(tmp_path)
    days = xnys_days("2024-01-02", periods=40)
    lines = yf_rows(days).splitlines()
    lines[-3] = lines[-3].replace("00:00:00,", "00:00:00,n/a,", 1).rsplit(",", 1)[0]
    (folder / "SPY.csv").write_text("\n".join(lines) + "\n")
    [result] = ingest_csv_file(engine, folder / "SPY.csv", today=TODAY, chunk_rows=7)
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
    [result] = ingest_csv_file(engine, folder / "VVIX_History.csv", today=TODAY)
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


# --- real layouts, and failures that never stop the folder ------------------------------

SAMPLES = {
    "yfinance_SPY_auto_adjust_false.csv": {"SPY": (40, 562.9656982421875, 569.8099975585938)},
    "yfinance_SPY_auto_adjust_true.csv": {"SPY": (40, 562.9656982421875, None)},
    "yfinance_HYG_SPY_two_tickers.csv": {
        "HYG": (40, 75.26201629638672, 78.97000122070312),
        "SPY": (40, 562.9656982421875, 569.8099975585938),
    },
}


def runs(engine) -> list[tuple]:
    columns = [ingest_runs.c[c] for c in ("symbol", "status", "rows_inserted", "fingerprint")]
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(*columns).order_by(ingest_runs.c.id))]


@pytest.mark.parametrize("name", list(SAMPLES))
def test_yfinance_samples_are_stored_per_ticker(engine, tmp_path, name):
    samples = MARKET_DIR.parent / "samples"
    if not (samples / name).exists():
        pytest.skip(f"yfinance samples not found at {samples}")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(samples / name, folder / "download.csv")  # the name says nothing
    results = ingest_csv_folder(engine, folder, today=TODAY)
    expected = SAMPLES[name]
    assert [(r.symbol, r.status, r.inserted) for r in results] == [
        (symbol, "ingested", rows) for symbol, (rows, _, _) in expected.items()
    ]
    with engine.connect() as connection:
        for symbol, (rows, adj_close, close) in expected.items():
            stored = load_price_rows(connection, symbol=symbol)
            first = stored.loc["2024-11-04"]
            assert len(stored) == rows and first["adj_close"] == adj_close
            assert first["close"] == close if close is not None else pd.isna(first["close"])
    assert [r[:3] for r in runs(engine)] == [
        (s, "ingested", n) for s, (n, _, _) in expected.items()
    ]
    again = ingest_csv_folder(engine, folder, today=TODAY)
    assert {r.status for r in again} == {"unchanged"}
    assert count(engine, prices) == sum(rows for rows, _, _ in expected.values())


def two_ticker_file(path: Path, n_days: int = 10, bump: float = 0.0) -> Path:
    days = xnys_days("2024-01-02", periods=n_days)
    lines = [f"{d:%Y-%m-%d},{50 + i},{20 + i + bump},1,1,1,1,1,1,1,1" for i, d in enumerate(days)]
    path.write_text(
        "Price,Close,Close,High,High,Low,Low,Open,Open,Volume,Volume\n"
        "Ticker,AAA,BBB,AAA,BBB,AAA,BBB,AAA,BBB,AAA,BBB\nDate,,,,,,,,,,\n" + "\n".join(lines) + "\n"
    )
    return path


def test_a_two_ticker_file_is_one_transaction_and_audited_per_ticker(engine, tmp_path):
    folder = tmp_path / "pair"
    folder.mkdir()
    path = two_ticker_file(folder / "pair.csv")
    first = ingest_csv_folder(engine, folder, today=TODAY)
    assert [(r.symbol, r.inserted) for r in first] == [("AAA", 10), ("BBB", 10)]
    assert ingest_csv_folder(engine, folder, today=TODAY, symbols=["BBB"])[0].status == "unchanged"
    two_ticker_file(path, bump=0.5)  # BBB revised
    revised = ingest_csv_file(engine, path, today=TODAY)
    assert [(r.symbol, r.status, r.updated) for r in revised] == [
        ("AAA", "unchanged", 0),
        ("BBB", "ingested", 10),
    ]
    # A bad value of one ticker rejects the file: neither ticker is written.
    path.write_text(path.read_text().replace(",20.5,", ",inf,", 1))
    rejected = ingest_csv_file(engine, path, today=TODAY)
    assert [(r.symbol, r.status) for r in rejected] == [("AAA", "rejected"), ("BBB", "rejected")]
    assert "line 4, field 'adj_close': not a finite number: inf" in rejected[0].message
    assert [r[:2] for r in runs(engine)][-2:] == [("AAA", "rejected"), ("BBB", "rejected")]


def test_only_the_tickers_asked_for_are_ingested(engine, tmp_path):
    folder = tmp_path / "pair"
    folder.mkdir()
    two_ticker_file(folder / "pair.csv")
    (folder / "SPY.csv").write_text(yf_rows(xnys_days("2024-01-02", periods=5)))
    results = ingest_csv_folder(engine, folder, today=TODAY, symbols=["BBB"])
    assert [(r.symbol, r.inserted) for r in results] == [("BBB", 10)]
    assert count(engine, prices, symbol="AAA") == 0


def test_a_failing_file_never_skips_the_others(engine, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    days = xnys_days("2024-01-02", periods=10)
    (folder / "AAA.csv").write_text(yf_rows(days, symbol="AAA"))
    bad = yf_rows(days, symbol="BBB").replace(
        "2024-01-03 00:00:00,100.1000", "2024-01-03 00:00:00,inf"
    )
    (folder / "BBB.csv").write_text(bad)
    broken = yf_rows(days, symbol="CCC").splitlines()
    broken[8:] = [line.replace(",10", ",5", 1) for line in broken[8:]]  # halved from line 9 on
    (folder / "CCC.csv").write_text("\n".join(broken) + "\n")
    (folder / "DDD.csv").write_bytes(b"DATE,VVIX\n01/02/2024,\xff\n")
    (folder / "EEE.csv").write_text(yf_rows(days, symbol="EEE"))
    results = {r.symbol: r for r in ingest_csv_folder(engine, folder, today=TODAY)}
    assert {s: r.status for s, r in results.items()} == {
        "AAA": "ingested",
        "BBB": "rejected",
        "CCC": "rejected",
        "DDD": "rejected",
        "EEE": "ingested",
    }
    assert results["BBB"].message == (
        f"{folder / 'BBB.csv'}, line 5, field 'adj_close': not a finite number: inf (2024-01-03)"
    )
    assert results["CCC"].message.startswith(
        f"{folder / 'CCC.csv'}, line 9, field 'adj_close': level break on 2024-01-09: "
        "adj_close moves x0.503 (100.4 -> 50.5) and still 50.6 on the next row"
    )
    assert "not a UTF-8 text file" in results["DDD"].message
    assert {row[0] for row in runs(engine)} == {"AAA", "BBB", "CCC", "DDD", "EEE"}
    assert count(engine, prices) == 20  # nothing from a rejected file
    assert count(engine, prices, symbol="EEE") == 10


def test_an_unexpected_error_is_recorded_and_the_folder_goes_on(engine, tmp_path, monkeypatch):
    import store.ingest as ingest

    folder = make_folder(tmp_path)
    original = ingest.price_span

    def failing(connection, *, symbol):
        if symbol == "SPY":
            raise RuntimeError("disk on fire")
        return original(connection, symbol=symbol)

    monkeypatch.setattr(ingest, "price_span", failing)
    results = ingest_csv_folder(engine, folder, today=TODAY)
    assert [(r.symbol, r.status) for r in results] == [("SPY", "rejected"), ("^VIX", "ingested")]
    assert results[0].message == "unexpected error: RuntimeError: disk on fire"
    assert [r[:2] for r in runs(engine)] == [("SPY", "rejected"), ("^VIX", "ingested")]
    assert count(engine, prices, symbol="SPY") == 0


def test_spikes_and_bad_first_rows_are_quarantined_not_the_rest(engine, tmp_path):
    folder = tmp_path / "q"
    folder.mkdir()
    days = xnys_days("2024-01-02", periods=20)
    lines = yf_rows(days).splitlines()
    lines[3] = lines[3].replace("00:00:00,100.0000", "00:00:00,1000.0000")  # bad first row
    lines[12] = lines[12].replace("00:00:00,100.9000", "00:00:00,1009.0000")  # spike
    (folder / "SPY.csv").write_text("\n".join(lines) + "\n")
    [result] = ingest_csv_folder(engine, folder, today=TODAY)
    assert (result.status, result.inserted, result.quarantined) == ("ingested", 18, 2)
    with engine.connect() as connection:
        kept = connection.execute(
            select(quarantine.c.line, quarantine.c.date, quarantine.c.reason).order_by(
                quarantine.c.line
            )
        ).all()
    assert [(line, day) for line, day, _ in kept] == [
        (4, dt.date(2024, 1, 2)),
        (13, dt.date(2024, 1, 16)),
    ]
    assert all("absurd one-day move" in reason for _, _, reason in kept)


def test_yfinance_failures_are_recorded_per_symbol(engine):
    def download(symbols, start):
        if symbols == ["BAD"]:
            raise ConnectionError("no route to host")
        if symbols == ["NONE"]:
            return pd.DataFrame()
        return yf_frame(symbols, auto_adjust=False)

    results = ingest_yfinance(
        engine,
        ["BAD", "NONE", "SPY"],
        today=TODAY,
        default_start=dt.date(2024, 1, 1),
        download=download,
    )
    assert [(r.symbol, r.status) for r in results] == [
        ("BAD", "rejected"),
        ("NONE", "unchanged"),
        ("SPY", "ingested"),
    ]
    assert results[0].message == "ConnectionError: no route to host"
    assert [r[:2] for r in runs(engine)] == [
        ("BAD", "rejected"),
        ("NONE", "unchanged"),
        ("SPY", "ingested"),
    ]
