"""CSV formats, the bad-input table, the jump guard and yfinance normalisation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import DataValidationError
from store.sources import (
    normalise_yfinance,
    read_csv_file,
    screen_moves,
    symbol_for_file,
    written_precision,
)
from tests.store.days import xnys_days

TODAY = dt.date(2025, 1, 15)
YF_HEADER = "Price,Price,Close,High,Low,Open,Volume\nTicker,SPY,SPY,SPY,SPY,SPY,SPY\nDate,,,,,,\n"
YF_ROWS = [
    "2024-01-02 00:00:00,100.0,101.0,102.0,99.0,100.5,1000",
    "2024-01-03 00:00:00,101.0,102.0,103.0,100.0,101.5,1100",
    "2024-01-04 00:00:00,99.0,100.0,101.0,98.0,99.5,900",
]
CBOE_HEADER = "DATE,OPEN,HIGH,LOW,CLOSE\n"
CBOE_ROWS = ["01/02/2024,13.0,14.0,12.5,13.2", "01/03/2024,13.5,14.2,13.1,14.0"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def read_all(path: Path, **kwargs) -> tuple[pd.DataFrame, list]:
    chunks = list(read_csv_file(path, today=TODAY, **kwargs))
    rows = pd.concat([c.rows for c in chunks])
    return rows, [q for c in chunks for q in c.quarantined]


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("SPY.csv", "SPY"),
        ("VIX_History.csv", "^VIX"),
        ("VIX3M_History.csv", "^VIX3M"),
        ("DFF.csv", "DFF"),
    ],
)
def test_file_names_map_to_symbols(name, symbol):
    assert symbol_for_file(Path(name)) == symbol


def test_yfinance_export_reads_adjusted_and_raw_close(tmp_path):
    rows, quarantined = read_all(write(tmp_path, "SPY.csv", YF_HEADER + "\n".join(YF_ROWS) + "\n"))
    assert list(rows.index.strftime("%Y-%m-%d")) == ["2024-01-02", "2024-01-03", "2024-01-04"]
    first = rows.iloc[0]
    assert (first["adj_close"], first["close"], first["high"], first["low"], first["open"]) == (
        100.0,
        101.0,
        102.0,
        99.0,
        100.5,
    )
    assert first["volume"] == 1000
    assert quarantined == []


def test_cboe_history_reads_us_dates(tmp_path):
    rows, _ = read_all(
        write(tmp_path, "VIX_History.csv", CBOE_HEADER + "\n".join(CBOE_ROWS) + "\n")
    )
    assert rows.index[1] == pd.Timestamp("2024-01-03")
    assert rows["adj_close"].tolist() == [13.2, 14.0]
    assert np.isnan(rows["volume"]).all()


def test_fred_series_allows_zero_rates(tmp_path):
    rows, quarantined = read_all(
        write(tmp_path, "DFF.csv", "date,value\n2020-04-01,0.0\n2020-04-02,0.05\n")
    )
    assert rows["adj_close"].tolist() == [0.0, 0.05]
    assert quarantined == []


# The bad-input table: (file name, content, expected message, line) -> nothing accepted.
BAD_FILES = [
    ("empty", "SPY.csv", "", "file is empty", 1),
    ("header only", "SPY.csv", YF_HEADER, "no data rows", 4),
    (
        "missing column",
        "SPY.csv",
        "Price,Price,Close,High,Low,Open\nTicker,SPY,SPY,SPY,SPY,SPY\nDate,,,,,\n",
        "missing column(s) ['VOLUME']",
        1,
    ),
    (
        "extra column",
        "VIX_History.csv",
        "DATE,OPEN,HIGH,LOW,CLOSE,EXTRA\n",
        "unexpected column(s) ['EXTRA']",
        1,
    ),
    ("unknown layout", "X.csv", "foo,bar\n1,2\n", "unrecognised header", 1),
    (
        "text in number",
        "SPY.csv",
        YF_HEADER + YF_ROWS[0] + "\n2024-01-03 00:00:00,abc,1,1,1,1,1\n",
        "not a number: 'abc'",
        5,
    ),
    (
        "missing price",
        "SPY.csv",
        YF_HEADER + "2024-01-03 00:00:00,,1,1,1,1,1\n",
        "missing value",
        4,
    ),
    ("bad date", "SPY.csv", YF_HEADER + "2024-13-45 00:00:00,1,1,1,1,1,1\n", "unparseable date", 4),
    (
        "duplicate date",
        "SPY.csv",
        YF_HEADER + YF_ROWS[0] + "\n" + YF_ROWS[0] + "\n",
        "duplicate date 2024-01-02",
        5,
    ),
    (
        "unsorted dates",
        "SPY.csv",
        YF_HEADER + YF_ROWS[1] + "\n" + YF_ROWS[0] + "\n",
        "date out of order 2024-01-02",
        5,
    ),
    ("future date", "SPY.csv", YF_HEADER + "2030-01-02 00:00:00,1,1,1,1,1,1\n", "in the future", 4),
    (
        "date before 1900",
        "SPY.csv",
        YF_HEADER + "1899-12-29 00:00:00,1,1,1,1,1,1\n" + YF_ROWS[0] + "\n",
        "field 'date': date 1899-12-29 outside 1900-01-01..2100-12-31",
        4,
    ),
    (
        "year one",  # pandas reads it, then nothing downstream could (a traceback before)
        "SPY.csv",
        YF_HEADER + YF_ROWS[0] + "\n0001-01-01 00:00:00,1,1,1,1,1,1\n",
        "field 'date': date 0001-01-01 outside 1900-01-01..2100-12-31",
        5,
    ),
    (
        "date after 2100",
        "VIX_History.csv",
        CBOE_HEADER + "01/03/2101,1,1,1,1\n",
        "field 'date': date 2101-01-03 outside 1900-01-01..2100-12-31",
        2,
    ),
    (
        "a Saturday",
        "SPY.csv",
        YF_HEADER + YF_ROWS[0] + "\n2024-01-06 00:00:00,1,1,1,1,1,1\n",
        "field 'date': 2024-01-06 is not an XNYS session (a Saturday): no market opens on a "
        "weekend, so the file's dates are shifted",
        5,
    ),
    (
        "a rate of its own on a Sunday",
        "DFF.csv",
        "date,value\n2024-01-05,5.33\n2024-01-07,5.31\n",
        "2024-01-07 is not a Federal Reserve business day (a Sunday)",
        3,
    ),
    (
        "non-positive price",
        "SPY.csv",
        YF_HEADER + YF_ROWS[0] + "\n2024-01-03 00:00:00,-5,1,1,1,1,1\n" + YF_ROWS[2] + "\n",
        "field 'adj_close': non-positive price: -5 (2024-01-03)",
        5,
    ),
    (
        "ragged row",
        "VIX_History.csv",
        CBOE_HEADER + CBOE_ROWS[0] + ",99,98\n",
        "malformed row",
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "name", "content", "message", "line"), BAD_FILES, ids=[c[0] for c in BAD_FILES]
)
def test_bad_files_are_rejected_with_file_and_line(tmp_path, case, name, content, message, line):
    path = write(tmp_path, name, content)
    with pytest.raises(DataValidationError) as caught:
        read_all(path)
    error = caught.value
    assert message in str(error)
    assert error.source == str(path)
    assert str(path) in str(error)
    if line is not None:
        assert error.line == line


def test_error_in_a_late_chunk_is_raised_before_the_stream_ends(tmp_path):
    rows = [
        f"{d:%Y-%m-%d} 00:00:00,100,100,100,100,100,1" for d in xnys_days("2024-01-02", periods=28)
    ]
    rows[20] = rows[20].replace(",100,", ",oops,", 1)
    path = write(tmp_path, "SPY.csv", YF_HEADER + "\n".join(rows) + "\n")
    with pytest.raises(DataValidationError, match="line 24"):
        list(read_csv_file(path, today=TODAY, chunk_rows=5))


def test_single_bad_print_is_quarantined_without_flagging_the_recovery():
    # The real VVIX defect: 71.73 then an impossible 15.71, then 27.94.
    screen = screen_moves(
        np.array([71.73, 15.71, 27.94, 28.60]), max_ratio=4.0, previous=None, at_end=True
    )
    assert (list(screen.outliers), screen.break_at, screen.decided) == ([1], None, 4)


def test_large_real_moves_of_volatility_indices_pass():
    # VIX on 2018-02-05: 17.31 -> 37.32 (x2.16), a real print.
    screen = screen_moves(np.array([17.31, 37.32]), max_ratio=4.0, previous=None, at_end=True)
    assert (screen.outliers, screen.break_at) == ({}, None)


# --- yfinance -----------------------------------------------------------------


def yf_frame(symbols: list[str], auto_adjust: bool, group_by: str = "column") -> pd.DataFrame:
    """A frame shaped exactly like yfinance.download output (1.x)."""
    dates = pd.DatetimeIndex(["2024-01-02", "2024-01-03"], name="Date")
    fields = ["Close", "High", "Low", "Open", "Volume"]
    if not auto_adjust:
        fields = ["Adj Close", *fields]
    base = {
        "Adj Close": [99.0, 100.0],
        "Close": [100.0, 101.0],
        "High": [101.0, 102.0],
        "Low": [98.0, 99.0],
        "Open": [99.5, 100.5],
        "Volume": [1000, 2000],
    }
    data = {}
    for field in fields:
        for i, symbol in enumerate(symbols):
            values = [v * (i + 1) for v in base[field]]
            key = (field, symbol) if group_by == "column" else (symbol, field)
            data[key] = values
    frame = pd.DataFrame(data, index=dates)
    names = ["Price", "Ticker"] if group_by == "column" else ["Ticker", "Price"]
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=names)
    return frame


def test_yfinance_multiindex_without_auto_adjust():
    out = normalise_yfinance(yf_frame(["SPY", "^VIX"], auto_adjust=False), ["SPY", "^VIX"])
    assert out["SPY"]["adj_close"].tolist() == [99.0, 100.0]
    assert out["SPY"]["close"].tolist() == [100.0, 101.0]
    assert out["^VIX"]["adj_close"].tolist() == [198.0, 200.0]
    assert out["SPY"].index[0] == pd.Timestamp("2024-01-02")


def test_yfinance_auto_adjust_close_is_the_adjusted_close():
    out = normalise_yfinance(yf_frame(["SPY"], auto_adjust=True), ["SPY"])
    assert out["SPY"]["adj_close"].tolist() == [100.0, 101.0]
    assert out["SPY"]["close"].isna().all()  # the raw close is not in an adjusted download


def test_yfinance_grouped_by_ticker_and_flat_columns():
    by_ticker = normalise_yfinance(yf_frame(["SPY", "HYG"], False, "ticker"), ["SPY", "HYG"])
    assert by_ticker["HYG"]["adj_close"].tolist() == [198.0, 200.0]
    flat = yf_frame(["SPY"], auto_adjust=False)
    flat.columns = flat.columns.get_level_values(0)
    assert normalise_yfinance(flat, ["SPY"])["SPY"]["open"].tolist() == [99.5, 100.5]


def test_yfinance_rows_of_other_calendars_are_dropped():
    frame = yf_frame(["SPY", "^VIX"], auto_adjust=False)
    frame.loc[frame.index[0], ("Adj Close", "^VIX")] = np.nan
    out = normalise_yfinance(frame, ["SPY", "^VIX"])
    assert len(out["^VIX"]) == 1 and len(out["SPY"]) == 2


def test_yfinance_empty_download_gives_nothing():
    assert normalise_yfinance(pd.DataFrame(), ["SPY"]) == {}


def test_the_precision_a_file_writes_is_that_of_its_finest_cell_per_column():
    cells = np.array(
        [["100.1", "1.5e-05", "", "1000"], ["100.25", "2E-4", "", "250"]], dtype=object
    )
    blank = cells == ""
    assert written_precision(cells, blank).tolist() == [0.005, 5e-07, 0.0, 0.5]
