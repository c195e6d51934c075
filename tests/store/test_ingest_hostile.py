"""A hostile data source, through `deepregime update --source csv` on both databases.

The published made-up market of tests/operations/test_revisions.py (299 calm NYSE
sessions to 2012-04-04, then the folder of the last 11 with 2012-04-05 new) meets
rows dated on days their calendar is closed, two files for one symbol, a link to a
file outside the folder and dates no market history has. None of it reaches the
prices, features, regimes or the ledger; each is named with its file (and line).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from store.db import make_engine
from store.tables import features, ingest_runs, prices, quarantine
from tests.app.conftest import write_csv_folder
from tests.operations.test_revisions import ledger, update

NEW_DAY = dt.date(2012, 4, 5)
GOOD_FRIDAY = dt.date(2012, 4, 6)


def rows(database_url: str, statement) -> list[tuple]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        found = [tuple(row) for row in connection.execute(statement)]
    engine.dispose()
    return found


def new_day_folder(path: Path, market) -> Path:
    return write_csv_folder(path, market.iloc[-11:])


def append(path: Path, line: str) -> int:
    """Append a data row; returns its line number."""
    text = path.read_text()
    path.write_text(text + line + "\n")
    return text.count("\n") + 1


def test_rows_on_closed_days_never_reach_the_ledger(published, env, tmp_path):
    folder = new_day_folder(tmp_path / "holiday", published)
    spy_line = append(folder / "SPY.csv", "2012-04-06 00:00:00,140.0,140.0,140.0,140.0,140.0,1000")
    vix_line = append(folder / "VIX_History.csv", "04/06/2012,19.0,19.0,19.0,19.0")
    (folder / "DFF.csv").write_text(  # FRED's 7-day series over a weekend and Good Friday
        "date,value\n2012-04-05,0.14\n2012-04-06,0.13\n2012-04-07,0.13\n2012-04-08,0.13\n"
    )
    result = update(folder)
    assert result.exit_code == 0, result.output
    assert "SPY      read 12, inserted 1, updated 0, quarantined 1" in result.output
    assert "^VIX     read 12, inserted 1, updated 0, quarantined 1" in result.output
    assert "DFF      read 4, inserted 2, updated 0, quarantined 0, 2 carried over" in result.output
    assert rows(env, select(quarantine.c.symbol, quarantine.c.line, quarantine.c.reason)) == [
        ("SPY", spy_line, "2012-04-06 is not an XNYS session (Good Friday)"),
        ("^VIX", vix_line, "2012-04-06 is not an XNYS session (Good Friday)"),
    ]
    assert max(day for _, day, _ in ledger(env)) == NEW_DAY  # and nothing on Good Friday
    assert rows(env, select(features.c.date).where(features.c.date > NEW_DAY)) == []
    assert rows(env, select(prices.c.symbol).where(prices.c.date == GOOD_FRIDAY)) == [("DFF",)]

    # A Saturday means the file's dates are wrong: the whole file is refused, named.
    append(folder / "HYG.csv", "2012-04-07 00:00:00,40.0,40.0,40.0,40.0,40.0,1000")
    text = (folder / "HYG.csv").read_text()
    assert "2012-04-04 00:00:00,50.5," in text
    (folder / "HYG.csv").write_text(
        text.replace("2012-04-04 00:00:00,50.5,", "2012-04-04 00:00:00,50,")
    )
    before = ledger(env)
    refused = update(folder)
    assert refused.exit_code == 2, refused.output
    assert (
        f"rejected HYG      rejected: {folder / 'HYG.csv'}, line 15, field 'date': 2012-04-07 "
        "is not an XNYS session (a Saturday): no market opens on a weekend"
    ) in refused.output
    assert "revision applied" not in refused.output  # its change to 2012-04-04 is not read either
    assert ledger(env) == before


def test_two_files_for_one_symbol_are_both_refused(published, env, tmp_path):
    folder = new_day_folder(tmp_path / "twice", published)
    other = folder / "SPY_adjusted.csv"
    other.write_text((folder / "SPY.csv").read_text().replace(",1", ",2"))  # other prices
    before = ledger(env)
    for _ in range(2):  # a rerun refuses them again: the stored history never flips
        result = update(folder)
        assert result.exit_code == 2, result.output
        for path, named in ((folder / "SPY.csv", other), (other, folder / "SPY.csv")):
            assert (
                f"rejected SPY      rejected: {path}: SPY is also in {named}: one file per "
                "symbol in a run, so neither file is read"
            ) in result.output
        assert "revision applied" not in result.output
        assert ledger(env) == before  # no SPY for the new day: nothing new published
        assert (
            rows(
                env,
                select(prices.c.date)
                .where(prices.c.symbol == "SPY")
                .where(prices.c.date == NEW_DAY),
            )
            == []
        )
    other.unlink()
    assert update(folder).exit_code == 0
    assert max(day for _, day, _ in ledger(env)) == NEW_DAY


def test_a_link_leading_outside_the_folder_is_refused_unread(published, env, tmp_path):
    folder = new_day_folder(tmp_path / "linked", published)
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:do-not-echo-this-line\n")
    (folder / "QQQ.csv").symlink_to(secret)
    # A link inside the folder is an ordinary file of it.
    (folder / "kept").mkdir()
    (folder / "IEF.csv").rename(folder / "kept" / "IEF.csv")
    (folder / "IEF.csv").symlink_to(folder / "kept" / "IEF.csv")
    result = update(folder)
    assert result.exit_code == 2, result.output
    assert (
        f"rejected QQQ      rejected: {folder / 'QQQ.csv'}: a symbolic link leading outside "
        f"{folder}: refused unread"
    ) in result.output
    assert "IEF      read 11, inserted 1" in result.output
    messages = rows(env, select(ingest_runs.c.message).where(ingest_runs.c.symbol == "QQQ"))
    assert messages and all("do-not-echo" not in str(m) for m in messages)
    assert "do-not-echo" not in result.output
    assert max(day for _, day, _ in ledger(env)) == NEW_DAY


def test_dates_outside_1900_2100_are_refused_with_file_and_line(published, env, tmp_path):
    folder = new_day_folder(tmp_path / "dates", published)
    header = "Date,Open,High,Low,Close,Adj Close,Volume\n"
    (folder / "SHY.csv").write_text(header + "1899-12-29,1,1,1,1,1,7\n2012-04-05,1,1,1,1,1,7\n")
    (folder / "TLT.csv").write_text(header + "2012-04-05,1,1,1,1,1,7\n0001-01-01,1,1,1,1,1,7\n")
    (folder / "VVIX_History.csv").write_text("DATE,VVIX\n04/05/2012,80\n01/03/2101,81\n")
    result = update(folder)
    assert result.exit_code == 2, result.output
    for path, line, day in (
        ("SHY.csv", 2, "1899-12-29"),
        ("TLT.csv", 3, "0001-01-01"),
        ("VVIX_History.csv", 3, "2101-01-03"),
    ):
        assert (
            f"{folder / path}, line {line}, field 'date': date {day} outside 1900-01-01..2100-12-31"
        ) in result.output
    assert "Traceback" not in result.output
    assert (
        rows(env, select(prices.c.symbol).where(prices.c.symbol.in_(["SHY", "TLT", "^VVIX"]))) == []
    )
    assert max(day for _, day, _ in ledger(env)) == NEW_DAY
