"""The price-revision contract: with apply_changes=False changed rows of stored
days are held back in IngestResult.changes (new days are written), the file is
not remembered as ingested, and apply_price_changes writes the held rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from store.ingest import apply_price_changes, ingest_csv_file, ingest_csv_folder, ingest_yfinance
from store.repository import load_price_rows
from store.tables import ingest_runs, prices
from tests.app.conftest import write_csv_folder
from tests.operations.test_revisions import client_for, stored_close, update
from tests.store.days import xnys_days
from tests.store.test_ingest import yf_rows
from tests.store.test_sources import yf_frame

TODAY = dt.date(2025, 1, 15)
DAYS = xnys_days("2024-01-02", periods=10)


def revised(path: Path, *, n_days: int, factor: float, revised_days: int) -> None:
    """The file with ``n_days`` days whose first ``revised_days`` adjusted closes are
    multiplied by ``factor`` (a dividend adjustment, say)."""
    lines = yf_rows(xnys_days("2024-01-02", periods=n_days)).splitlines()
    for i in range(3, 3 + revised_days):
        cells = lines[i].split(",")
        cells[1] = repr(round(float(cells[1]) * factor, 6))
        lines[i] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def stored(engine, symbol: str = "SPY") -> pd.DataFrame:
    with engine.connect() as connection:
        return load_price_rows(connection, symbol=symbol)


def last_run(engine) -> tuple:
    with engine.connect() as connection:
        return tuple(
            connection.execute(
                select(ingest_runs.c.status, ingest_runs.c.fingerprint, ingest_runs.c.message)
                .order_by(ingest_runs.c.id.desc())
                .limit(1)
            ).one()
        )


def test_changed_rows_are_held_back_and_new_days_written(engine, tmp_path):
    folder = tmp_path / "market"
    folder.mkdir()
    path = folder / "SPY.csv"
    path.write_text(yf_rows(DAYS))
    ingest_csv_folder(engine, folder, today=TODAY)
    before = stored(engine)

    revised(path, n_days=12, factor=0.99, revised_days=3)  # 3 revised days, 2 new days
    [result] = ingest_csv_folder(engine, folder, today=TODAY, apply_changes=False)
    assert (result.status, result.inserted, result.updated) == ("ingested", 2, 0)
    changes = result.changes
    assert isinstance(changes.index, pd.DatetimeIndex) and changes.index.name == "date"
    assert list(changes.index) == list(DAYS[:3])
    np.testing.assert_allclose(changes["old_adj_close"], [100.0, 100.1, 100.2])
    np.testing.assert_allclose(changes["new_adj_close"], [99.0, 99.099, 99.198])
    # The full new rows, under the plain names, ready to be written later.
    assert set(changes.columns) >= {"open", "high", "low", "close", "adj_close", "volume"}
    np.testing.assert_allclose(changes["adj_close"], changes["new_adj_close"])
    assert changes["volume"].tolist() == [1000, 1001, 1002]
    assert changes["old_close"].tolist() == changes["new_close"].tolist()  # only adj_close moved

    after = stored(engine)
    assert len(after) == 12  # the new days are written ...
    pd.testing.assert_frame_equal(after.iloc[:10], before)  # ... the stored ones untouched
    assert "held back" in result.summary()
    # Not remembered as ingested: the same file is read again, and held back again.
    status, fingerprint, message = last_run(engine)
    assert (status, fingerprint) == ("ingested", None) and "3 changed row(s)" in message
    [again] = ingest_csv_folder(engine, folder, today=TODAY, apply_changes=False)
    assert (again.status, again.inserted, len(again.changes)) == ("unchanged", 0, 3)
    assert again.message != "file unchanged since last ingest"

    with engine.begin() as connection:
        written = apply_price_changes(connection, symbol="SPY", changes=again.changes, source="csv")
    assert written == 3
    np.testing.assert_allclose(stored(engine)["adj_close"].iloc[:3], [99.0, 99.099, 99.198])
    # Once applied nothing is held, the file is remembered, and the next run skips it.
    [settled] = ingest_csv_folder(engine, folder, today=TODAY, apply_changes=False)
    assert (settled.status, len(settled.changes)) == ("unchanged", 0)
    assert last_run(engine)[1] is not None
    [skipped] = ingest_csv_folder(engine, folder, today=TODAY, apply_changes=False)
    assert skipped.message == "file unchanged since last ingest"


def test_apply_changes_true_overwrites_as_before(engine, tmp_path):
    path = tmp_path / "SPY.csv"
    path.write_text(yf_rows(DAYS))
    ingest_csv_file(engine, path, today=TODAY)
    revised(path, n_days=11, factor=0.99, revised_days=2)
    [result] = ingest_csv_file(engine, path, today=TODAY)
    assert (result.inserted, result.updated, result.changes) == (1, 2, None)
    assert stored(engine)["adj_close"].iloc[0] == 99.0
    assert last_run(engine)[1] is not None


def test_differences_within_the_tolerance_are_not_changes(engine, tmp_path):
    path = tmp_path / "SPY.csv"
    path.write_text(yf_rows(DAYS))
    ingest_csv_file(engine, path, today=TODAY)
    revised(path, n_days=10, factor=1 + 1e-15, revised_days=10)
    [result] = ingest_csv_file(engine, path, today=TODAY, apply_changes=False, force=True)
    assert (result.status, len(result.changes)) == ("unchanged", 0)


def test_a_rolled_back_transaction_writes_no_held_rows(engine, tmp_path):
    path = tmp_path / "SPY.csv"
    path.write_text(yf_rows(DAYS))
    ingest_csv_file(engine, path, today=TODAY)
    revised(path, n_days=10, factor=0.5, revised_days=10)  # the whole history rescaled
    [result] = ingest_csv_file(engine, path, today=TODAY, apply_changes=False)
    assert len(result.changes) == 10
    try:
        with engine.begin() as connection:
            apply_price_changes(connection, symbol="SPY", changes=result.changes, source="csv")
            raise RuntimeError("the caller's policy refuses")
    except RuntimeError:
        pass
    assert stored(engine)["adj_close"].iloc[0] == 100.0


def test_yfinance_holds_back_revisions_of_stored_days(engine):
    def download(symbols, start):
        frame = yf_frame(symbols, auto_adjust=False)
        if start > dt.date(2024, 1, 2):  # the last stored day again, revised, and a new day
            frame.index = pd.DatetimeIndex(["2024-01-03", "2024-01-04"], name="Date")
        return frame

    kwargs = {"today": TODAY, "default_start": dt.date(2024, 1, 1), "download": download}
    ingest_yfinance(engine, ["SPY"], **kwargs)
    [result] = ingest_yfinance(engine, ["SPY"], apply_changes=False, **kwargs)
    assert (result.inserted, result.updated) == (1, 0)
    assert list(result.changes.index) == [pd.Timestamp("2024-01-03")]
    assert (result.changes["old_adj_close"].iloc[0], result.changes["new_adj_close"].iloc[0]) == (
        100.0,
        99.0,
    )
    assert stored(engine).loc["2024-01-03", "adj_close"] == 100.0
    with engine.begin() as connection:
        assert (
            apply_price_changes(connection, symbol="SPY", changes=result.changes, source="yfinance")
            == 1
        )
    with engine.connect() as connection:
        source = connection.execute(
            select(prices.c.source).where(prices.c.date == dt.date(2024, 1, 3))
        ).scalar_one()
    assert (stored(engine).loc["2024-01-03", "adj_close"], source) == (99.0, "yfinance")


# --- judged through `deepregime update` ---------------------------------------------
# The published made-up market of tests/operations/test_revisions.py: 299 calm days
# (risk-on), then a file of the last 21 days with the next day in it.


def fewer_decimals(folder: Path, decimals: int = 2) -> Path:
    """Every file of ``folder`` re-exported with ``decimals`` decimals (volumes as they are)."""
    for path in folder.glob("*.csv"):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            cells = line.split(",")
            if cells[0][:1].isdigit():  # a data row: its date first
                cells[1:] = [f"{float(c):.{decimals}f}" if "." in c else c for c in cells[1:]]
                lines[i] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
    return folder


def revisions_served(database_url: str) -> list[tuple]:
    with client_for(database_url) as client:
        served = client.get("/revisions").json()
    return [(r["symbol"], r["kind"], r["status"], round(r["max_change"], 6)) for r in served]


def test_a_drop_in_the_latest_rows_only_is_a_correction_with_its_sign(published, env, tmp_path):
    market = published
    revised = market.copy()
    latest = market.index[-4:-1]  # the last three published days; the 17 before them as stored
    revised.loc[latest, "SPY"] *= 0.98
    revised.loc[market.index[-15], "^VIX"] = 13.0  # up from 12 (VIX/VIX3M stays below 1)
    result = update(write_csv_folder(tmp_path / "revised", revised.iloc[-21:]))
    assert result.exit_code == 0, result.output
    assert (
        f"revision applied: SPY: 3 stored day(s) revised from {latest[0].date()} to "
        f"{latest[-1].date()} (correction, largest change -2.00%;"
    ) in result.output
    assert "^VIX: 1 stored day(s) revised" in result.output
    assert "(correction, largest change +8.33%;" in result.output
    assert "rescale" not in result.output
    # Corrected where the file says so, and nowhere else: the series was not rescaled.
    first, before_latest = market.index[0], market.index[-5]
    assert stored_close(env, "SPY", first) == market.at[first, "SPY"]
    assert stored_close(env, "SPY", before_latest) == market.at[before_latest, "SPY"]
    assert stored_close(env, "SPY", latest[0]) == pytest.approx(market.at[latest[0], "SPY"] * 0.98)
    assert sorted(revisions_served(env)) == [
        ("SPY", "correction", "applied", -0.02),
        ("^VIX", "correction", "applied", 0.083333),
    ]
    # Rerun with the same file: nothing flips back, nothing more is recorded.
    again = update(tmp_path / "revised")
    assert again.exit_code == 0 and "revision applied" not in again.output
    assert len(revisions_served(env)) == 2


def test_a_re_export_with_fewer_decimals_is_no_correction(published, env, tmp_path):
    market = published
    last_published = market.index[-2]
    folder = fewer_decimals(write_csv_folder(tmp_path / "rounded", market.iloc[-21:]))
    assert "100.00,100.00,100.00,100.00,1000" in (folder / "IEF.csv").read_text()
    result = update(folder)
    assert result.exit_code == 0, result.output
    assert "revision applied" not in result.output and "revision HELD" not in result.output
    assert "published #" in result.output  # the new day, read from the rounded files
    # The stored closes keep their full precision: rounding is no news.
    assert stored_close(env, "SPY", last_published) == market.at[last_published, "SPY"]
    assert revisions_served(env) == []
    # A difference beyond the file's precision is still a correction, its fall signed.
    text = (folder / "HYG.csv").read_text()
    row = f"{last_published:%Y-%m-%d} 00:00:00,{market.at[last_published, 'HYG']:.2f},"
    assert row in text
    (folder / "HYG.csv").write_text(text.replace(row, row[:20] + "50.45,"))
    corrected = update(folder)
    assert corrected.exit_code == 0, corrected.output
    assert (
        f"revision applied: HYG: 1 stored day(s) revised from {last_published.date()} to "
        f"{last_published.date()} (correction, largest change -0.10%;"
    ) in corrected.output
    assert stored_close(env, "HYG", last_published) == 50.45
