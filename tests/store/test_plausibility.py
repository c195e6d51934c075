"""Implausible values: a one-day spike is quarantined (that row only), a level
break that persists or a number no market prints rejects the file, with file,
line and field; a bad first row never drags the rest of the file with it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import DataValidationError
from store.sources import SeriesKind, read_csv_file, screen_moves, validate_rows
from tests.store.days import xnys_days

TODAY = dt.date(2025, 1, 15)
HEADER = "Price,Adj Close,Close,High,Low,Open,Volume\nTicker,SPY,SPY,SPY,SPY,SPY,SPY\nDate,,,,,,\n"
FIRST_LINE = 4  # line of the first data row under HEADER


def closes_file(tmp_path: Path, closes: list[float], name: str = "SPY.csv") -> Path:
    """A yfinance file whose adjusted (and raw) close is ``closes``, with a sane OHLC."""
    days = xnys_days("2024-01-02", periods=len(closes))
    lines = [
        f"{d:%Y-%m-%d},{c!r},{c!r},{c * 1.01!r},{c * 0.99!r},{c!r},{1000 + i}"
        for i, (d, c) in enumerate(zip(days, closes, strict=True))
    ]
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


def read(path: Path, chunk_rows: int = 50_000) -> tuple[pd.DataFrame, list]:
    chunks = list(read_csv_file(path, today=TODAY, chunk_rows=chunk_rows))
    return pd.concat([c.rows for c in chunks]), [q for c in chunks for q in c.quarantined]


def steady(n: int, level: float = 100.0) -> list[float]:
    return [level * (1 + 0.001 * i) for i in range(n)]


# --- spikes are quarantined, row by row ---------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5, 50_000])
def test_a_one_day_spike_that_reverts_is_quarantined_alone(tmp_path, chunk_rows):
    closes = steady(12)
    closes[6] *= 10  # x10 on one day, back the next
    rows, quarantined = read(closes_file(tmp_path, closes), chunk_rows)
    assert len(rows) == 11 and pd.Timestamp("2024-01-10") not in rows.index
    [q] = quarantined
    assert (q.line, q.date) == (FIRST_LINE + 6, dt.date(2024, 1, 10))
    assert "absurd one-day move" in q.reason and "reverted the next day" in q.reason
    assert q.raw.startswith("2024-01-10,1006.0")


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 50_000])
def test_a_bad_first_row_is_quarantined_and_the_rest_kept(tmp_path, chunk_rows):
    closes = [1000.0, *steady(9)]  # the first print is x10 the level of every later row
    rows, quarantined = read(closes_file(tmp_path, closes), chunk_rows)
    assert rows["adj_close"].tolist() == steady(9)
    assert [(q.line, q.date) for q in quarantined] == [(FIRST_LINE, dt.date(2024, 1, 2))]
    assert "first row 1000" in quarantined[0].reason


def test_a_spike_on_the_last_row_is_quarantined_until_a_later_row_confirms_it(tmp_path):
    closes = [*steady(5), 500.0]
    rows, quarantined = read(closes_file(tmp_path, closes))
    assert len(rows) == 5
    assert [q.line for q in quarantined] == [FIRST_LINE + 5]
    assert "no later row to confirm it" in quarantined[0].reason
    # The next day's file shows the new level holding: now it is a level break.
    with pytest.raises(DataValidationError, match="level break on 2024-01-09"):
        read(closes_file(tmp_path, [*closes, 501.0]))


def test_the_real_vvix_defect_quarantines_only_its_row(tmp_path):
    path = tmp_path / "VVIX_History.csv"
    path.write_text("DATE,VVIX\n03/06/2006,71.73\n03/15/2006,15.71\n03/16/2006,27.94\n")
    rows, quarantined = read(path)
    assert rows["adj_close"].tolist() == [71.73, 27.94]
    assert [(q.line, q.raw) for q in quarantined] == [(3, "03/15/2006,15.71")]


def test_index_levels_may_move_further_than_etfs(tmp_path):
    # x2.2 in a day is a real VIX move (2018-02-05) but impossible for an adjusted ETF close.
    path = tmp_path / "VIX_History.csv"
    path.write_text("DATE,OPEN,HIGH,LOW,CLOSE\n02/02/2018,1,1,1,17.31\n02/05/2018,1,1,1,37.32\n")
    rows, quarantined = read(path)
    assert len(rows) == 2 and quarantined == []


def test_rates_are_not_screened_for_moves(tmp_path):
    path = tmp_path / "DFF.csv"
    path.write_text("date,value\n2020-03-02,1.5\n2020-03-03,0.0\n2020-03-04,-0.1\n2020-03-05,4\n")
    rows, quarantined = read(path)
    assert rows["adj_close"].tolist() == [1.5, 0.0, -0.1, 4.0] and quarantined == []


# --- a level break rejects the file -------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [1, 4, 50_000])
def test_a_persistent_level_break_rejects_the_file(tmp_path, chunk_rows):
    closes = [100.0] * 6 + [50.0] * 6  # halved from the 7th row on
    path = closes_file(tmp_path, closes)
    with pytest.raises(DataValidationError) as caught:
        read(path, chunk_rows)
    error = caught.value
    assert (error.source, error.line, error.field) == (str(path), FIRST_LINE + 6, "adj_close")
    assert str(error).startswith(f"{path}, line {FIRST_LINE + 6}, field 'adj_close': ")
    assert error.reason.startswith(
        "level break on 2024-01-10: adj_close moves x0.5 (100 -> 50) and still 50 on the next row"
    )


def test_screen_moves_decisions():
    def screen(values, previous=None, at_end=True, ratio=1.5):
        return screen_moves(
            np.array(values, dtype=float), max_ratio=ratio, previous=previous, at_end=at_end
        )

    assert screen([100, 101, 500, 102]).outliers.keys() == {2}
    assert screen([100, 101, 50, 51]).break_at == 2
    assert screen([10, 100, 101, 102]).outliers.keys() == {0}
    assert screen([100, 101, 1000]).outliers.keys() == {2}
    # Against the stored close before the download: the first row is a spike or a break.
    assert screen([500, 100], previous=100).outliers.keys() == {0}
    assert screen([50, 51], previous=100).break_at == 0
    # Without the end of the data, rows that need the next ones to be judged wait for them.
    assert screen([100, 101, 500], at_end=False).decided == 2
    assert screen([100], at_end=False).decided == 0
    assert screen([1, 2, 3], ratio=None).decided == 3


# --- numbers no market prints reject the file, naming line and field ---------------------

GOOD = "2024-01-02,100,100,101,99,100,1000"
BAD_VALUES = [
    ("inf", "2024-01-03,inf,100,101,99,100,1000", "adj_close", "not a finite number: inf"),
    ("-inf", "2024-01-03,100,-inf,101,99,100,1000", "close", "not a finite number: -inf"),
    ("Infinity", "2024-01-03,100,100,Infinity,99,100,1000", "high", "not a finite number: inf"),
    ("nan text", "2024-01-03,100,100,101,nan,100,1000", "low", "not a number: 'nan'"),
    ("NaN adj close", "2024-01-03,NaN,100,101,99,100,1000", "adj_close", "not a number: 'NaN'"),
    ("huge price", "2024-01-03,100,100,101,99,1e30,1000", "open", "out of range: 1e+30"),
    ("huge volume", "2024-01-03,100,100,101,99,100,1e30", "volume", "out of range: 1e+30"),
    ("negative volume", "2024-01-03,100,100,101,99,100,-5", "volume", "negative volume: -5"),
    ("zero price", "2024-01-03,0,100,101,99,100,1000", "adj_close", "non-positive price: 0"),
    ("negative price", "2024-01-03,100,100,101,-99,100,1000", "low", "non-positive price: -99"),
    ("high below low", "2024-01-03,100,100,98,99,100,1000", "high", "high 98 below low 99"),
]


@pytest.mark.parametrize("chunk_rows", [1, 50_000])
@pytest.mark.parametrize(
    ("case", "row", "field", "reason"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES]
)
def test_impossible_numbers_reject_the_file(tmp_path, case, row, field, reason, chunk_rows):
    path = tmp_path / "SPY.csv"
    path.write_text(HEADER + f"{GOOD}\n{row}\n")
    with pytest.raises(DataValidationError) as caught:
        read(path, chunk_rows)
    error = caught.value
    assert (error.line, error.field) == (FIRST_LINE + 1, field)
    assert f"{path}, line {FIRST_LINE + 1}, field '{field}': {reason}" in str(error)
    if "not a number" not in reason:  # a parsed value: the day is named too
        assert str(error).endswith("(2024-01-03)")


def test_impossible_numbers_in_a_download_are_rejected_too():
    frame = pd.DataFrame(
        {
            "open": [1.0, 1.0],
            "high": [1.0, 1.0],
            "low": [1.0, 1.0],
            "close": [1.0, 1.0],
            "adj_close": [1.0, np.inf],
            "volume": [1.0, 1.0],
        },
        index=pd.DatetimeIndex(["2024-01-02", "2024-01-03"], name="date"),
    )
    with pytest.raises(DataValidationError) as caught:
        validate_rows(frame, symbol="SPY", kind=SeriesKind.ETF, source="yfinance:SPY", today=TODAY)
    assert str(caught.value) == (
        "yfinance:SPY, field 'adj_close': not a finite number: inf (2024-01-03)"
    )


def test_a_spike_in_a_download_is_quarantined_against_the_stored_close():
    frame = pd.DataFrame(
        {c: [100.0, 1000.0, 101.0] for c in ("open", "high", "low", "close", "adj_close")},
        index=pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"], name="date"),
    ).assign(volume=1.0)
    chunk = validate_rows(
        frame, symbol="SPY", kind=SeriesKind.ETF, source="yfinance:SPY", today=TODAY, previous=99.0
    )
    assert chunk.rows["adj_close"].tolist() == [100.0, 101.0]
    assert [q.date for q in chunk.quarantined] == [dt.date(2024, 1, 3)]
