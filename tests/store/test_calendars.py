"""Each input's calendar: rows on a day it does not trade never get through.

The days pinned here are public facts: the NYSE closes on Good Friday and trades on
Columbus Day; the Federal Reserve Banks do the reverse, stay open on the Friday
before a Saturday holiday and close on the Monday after a Sunday one.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from core.errors import DataValidationError
from store.calendars import EXCHANGE, FED, closed_days, closure
from store.sources import SeriesKind, read_csv_file, screen_calendar, validate_rows
from tests.conftest import MARKET_DIR

TODAY = dt.date(2025, 1, 15)

CLOSED = [
    (EXCHANGE, "2024-03-29", True, "Good Friday"),
    (EXCHANGE, "2024-10-14", False, None),  # Columbus Day: the exchange trades
    (EXCHANGE, "2022-06-20", True, "Juneteenth National Independence Day"),  # Sunday's
    (EXCHANGE, "2004-06-11", True, "a closure of the exchange"),  # Reagan's funeral
    (EXCHANGE, "2024-01-06", True, "a Saturday"),
    (EXCHANGE, "2024-01-08", False, None),
    (FED, "2024-03-29", False, None),  # Good Friday: the Fed works
    (FED, "2024-10-14", True, "Columbus Day"),
    (FED, "2024-11-11", True, "Veterans Day"),
    (FED, "2021-12-31", False, None),  # New Year's Day 2022 fell on a Saturday
    (FED, "2022-12-26", True, "Christmas Day"),  # Christmas 2022 fell on a Sunday
    (FED, "1970-10-12", True, "Columbus Day"),  # a fixed date before 1971 ...
    (FED, "1971-10-11", True, "Columbus Day"),  # ... the second Monday since
    (FED, "1975-10-27", True, "Veterans Day"),  # the fourth Monday of October, 1971-1977
    (FED, "1975-11-11", False, None),
    (FED, "2024-01-07", True, "a Sunday"),
]


@pytest.mark.parametrize(("calendar", "day", "closed", "why"), CLOSED)
def test_calendars_know_their_closed_days(calendar, day, closed, why):
    stamp = pd.Timestamp(day)
    assert closed_days(calendar, pd.DatetimeIndex([stamp])).tolist() == [closed]
    if closed:
        assert closure(calendar, stamp) == why


def screen(days: list[str], values: list[float], kind: SeriesKind, last_open=None):
    return screen_calendar(
        pd.DatetimeIndex(days), np.array(values, dtype=float), kind=kind, last_open=last_open
    )


def test_a_holiday_print_is_set_apart_and_a_weekend_row_flagged():
    holiday = screen(
        ["2022-05-27", "2022-05-30", "2022-05-31"], [25.7, 26.5, 26.2], SeriesKind.INDEX
    )
    assert holiday.keep.tolist() == [True, False, True]
    assert holiday.closed == {1: "2022-05-30 is not an XNYS session (Memorial Day)"}
    assert (holiday.weekend, holiday.carried) == (None, 0)
    weekend = screen(["2024-01-05", "2024-01-06"], [100, 101], SeriesKind.ETF)
    assert weekend.weekend == 1


def test_a_rate_carried_over_closed_days_is_left_out_and_one_of_its_own_is_not():
    # FRED's DFF fills Saturday and Sunday with Friday's rate; Columbus Day 2024 too.
    filled = screen(
        ["2024-10-11", "2024-10-12", "2024-10-13", "2024-10-14", "2024-10-15"],
        [4.83, 4.83, 4.83, 4.83, 4.83],
        SeriesKind.RATE,
    )
    assert (filled.keep.tolist(), filled.carried, filled.closed) == (
        [True, False, False, False, True],
        3,
        {},
    )
    # A chunk may start on a closed day: the last open day's rate comes from before it.
    continued = screen(["2024-10-12", "2024-10-15"], [4.83, 4.84], SeriesKind.RATE, last_open=4.83)
    assert (continued.carried, continued.last_open) == (1, 4.84)
    own = screen(["2024-10-11", "2024-10-14"], [4.83, 4.90], SeriesKind.RATE)
    assert own.closed == {1: "2024-10-14 is not a Federal Reserve business day (Columbus Day)"}
    assert own.weekend is None
    weekend = screen(["2024-10-11", "2024-10-12"], [4.83, 4.90], SeriesKind.RATE)
    assert weekend.weekend == 1


def read(path, chunk_rows: int) -> tuple[pd.DataFrame, list, int]:
    """Rows kept, rows quarantined and rows carried over closed days, of a whole file."""
    chunks = list(read_csv_file(path, today=TODAY, chunk_rows=chunk_rows))
    quarantined = [q for c in chunks for q in c.quarantined]
    return pd.concat([c.rows for c in chunks]), quarantined, sum(c.carried for c in chunks)


@pytest.mark.parametrize("chunk_rows", [1, 2, 50_000])
def test_holiday_rows_are_quarantined_with_line_and_reason(tmp_path, chunk_rows):
    path = tmp_path / "VIX_History.csv"
    path.write_text(
        "DATE,OPEN,HIGH,LOW,CLOSE\n05/27/2022,27.5,27.54,25.57,25.72\n"
        "05/30/2022,26.16,26.81,26.08,26.54\n05/31/2022,27.47,28.35,25.94,26.19\n"
    )
    rows, [q], _ = read(path, chunk_rows)
    assert list(rows.index) == [pd.Timestamp("2022-05-27"), pd.Timestamp("2022-05-31")]
    assert (q.date, q.line, q.raw) == (
        dt.date(2022, 5, 30),
        3,
        "05/30/2022,26.16,26.81,26.08,26.54",
    )
    assert q.reason == "2022-05-30 is not an XNYS session (Memorial Day)"


@pytest.mark.parametrize("chunk_rows", [1, 3, 50_000])
def test_a_7_day_rate_keeps_its_business_days(tmp_path, chunk_rows):
    path = tmp_path / "DFF.csv"
    path.write_text(
        "observation_date,DFF\n2024-10-10,4.83\n2024-10-11,4.83\n2024-10-12,4.83\n"
        "2024-10-13,4.83\n2024-10-14,4.83\n2024-10-15,4.84\n"
    )
    rows, quarantined, carried = read(path, chunk_rows)
    assert [d.day for d in rows.index] == [10, 11, 15]
    assert (carried, quarantined) == (3, [])


def test_a_weekend_row_refuses_the_whole_file(tmp_path):
    path = tmp_path / "IEF.csv"
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-05,1,1,1,1,1,7\n")
    path.write_text(path.read_text() + "2024-01-07,1,1,1,1,1,7\n2024-01-08,1,1,1,1,1,7\n")
    with pytest.raises(DataValidationError) as caught:
        list(read_csv_file(path, today=TODAY))
    assert (caught.value.line, caught.value.field) == (3, "date")
    assert "2024-01-07 is not an XNYS session (a Sunday)" in str(caught.value)


@pytest.mark.realdata
def test_the_real_dff_and_vix_files_on_their_calendars():
    if not (MARKET_DIR / "DFF.csv").exists():
        pytest.skip(f"real market data not found at {MARKET_DIR}")
    today = dt.date(2025, 1, 1)
    dff = list(read_csv_file(MARKET_DIR / "DFF.csv", today=today))
    # 25,752 daily rates 1954-07-01 .. 2024-12-31: every one on a closed day repeats the
    # last business day's but 12 (1954-1979 holidays); those are quarantined.
    quarantined = [q for c in dff for q in c.quarantined]
    assert sum(c.rows_read for c in dff) == 25_752
    assert sum(c.carried for c in dff) == 7_976 and len(quarantined) == 12
    assert (quarantined[0].date, quarantined[-1].date) == (
        dt.date(1954, 7, 5),
        dt.date(1979, 5, 28),
    )
    assert sum(len(c.rows) for c in dff) == 25_752 - 7_976 - 12
    vix = [
        q for c in read_csv_file(MARKET_DIR / "VIX_History.csv", today=today) for q in c.quarantined
    ]
    assert len(vix) == 20 and vix[1].reason == "2022-05-30 is not an XNYS session (Memorial Day)"


def test_a_download_keeps_to_the_calendar_too():
    def frame(days: list[str]) -> pd.DataFrame:
        values = np.linspace(100.0, 101.0, len(days))
        columns = {c: values for c in ("open", "high", "low", "close", "adj_close")}
        return pd.DataFrame(
            {**columns, "volume": 1000.0}, index=pd.DatetimeIndex(days, name="date")
        )

    chunk = validate_rows(
        frame(["2024-03-27", "2024-03-28", "2024-03-29", "2024-04-01"]),
        symbol="SPY",
        kind=SeriesKind.ETF,
        source="yfinance:SPY",
        today=TODAY,
    )
    assert [d.day for d in chunk.rows.index] == [27, 28, 1]
    assert [(q.date, q.reason) for q in chunk.quarantined] == [
        (dt.date(2024, 3, 29), "2024-03-29 is not an XNYS session (Good Friday)")
    ]
    with pytest.raises(
        DataValidationError, match=r"^yfinance:SPY, field 'date': 2024-03-30 is not"
    ):
        validate_rows(
            frame(["2024-03-28", "2024-03-30"]),
            symbol="SPY",
            kind=SeriesKind.ETF,
            source="yfinance:SPY",
            today=TODAY,
        )
