"""Price sources behind one interface: a folder of CSV files, or yfinance.

Both yield ``PriceChunk`` objects: validated rows of one symbol (index = date,
columns ``PRICE_COLUMNS``), plus the rows quarantined on the way.

What rejects a whole file (``DataValidationError`` naming file, line and field;
the caller writes nothing from it): an unreadable header, missing, unknown or
duplicate columns, rows with the wrong number of fields, unparseable dates or
numbers, duplicate, unsorted or future dates, dates outside 1900-2100, a row
dated on a weekend, non-finite or out-of-range numbers, non-positive prices,
negative volume, high below low, and a level break of the adjusted close that
persists. What is quarantined row by row: a row dated on a holiday of its
series' calendar (store.calendars), and a one-day spike of the adjusted close
that reverts on the next row (or an isolated first or last row out of line with
its neighbour).

Why a weekend refuses the file but a holiday only its row: no exchange and no
Reserve Bank ever opens on a weekend, so a weekend date means the file's dates
are wrong (shifted by a time-zone conversion, or on another market's calendar),
and then every row of it is suspect; a file whose dates are shifted by a day
and span a week always has one. A holiday row is what real sources print: Cboe
publishes index values from its extended session on some NYSE holidays (20 rows
of VIX_History.csv), and refusing the whole VIX history for them would stop the
service. FRED fills its 7-day DFF series on days the Fed is closed with the last
business day's rate: such a repeated row carries no observation and is left
out (counted), while one with a rate of its own is quarantined.

CSV layouts read (see ../shared/data/market/README.md). Header lines are
recognised by what they hold, not counted, and columns are mapped by name:
- yfinance ``to_csv``: a ``Price`` line (field names: Adj Close, Close, High,
  Low, Open, Volume), optional ``Ticker`` line(s) (one symbol per column; a
  file may hold several tickers), an optional ``Date`` line. Without an
  ``Adj Close`` column (``auto_adjust=True``) Close is the adjusted close. In
  the files of the market folder a column named ``Price`` is the adjusted close.
- one line of column names: Cboe ``DATE,OPEN,HIGH,LOW,CLOSE`` (MM/DD/YYYY
  dates), Cboe single value ``DATE,<NAME>``, FRED ``date,value`` or
  ``observation_date,<SERIES>``, or ``Date,Open,High,Low,Close,Adj Close,Volume``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import itertools
import math
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataValidationError
from store.calendars import EXCHANGE, FED, FIRST_DAY, LAST_DAY, closed_days, closure, describe

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close", "volume")
PRICE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close")
CHUNK_ROWS = 50_000
# A block of rows holds at most this many cells: each is a Python string with its
# parsed number beside it (about 130 bytes in all), so a file hundreds of columns wide
# is read in fewer rows at a time and memory stays bounded whatever its width.
CHUNK_CELLS = 400_000

# Beyond these a number is a corrupt cell, not a market print: no listed price
# or index level comes near 1e9, and a volume must fit the BIGINT column (9.2e18).
MAX_PRICE = 1e9
MAX_VOLUME = 1e15


class SeriesKind(StrEnum):
    ETF = "etf"  # adjusted total-return close
    INDEX = "index"  # Cboe index level
    RATE = "rate"  # FRED rate in percent per year (may be zero or negative)


# The calendar each kind of series prints on (store.calendars).
SERIES_CALENDAR: dict[SeriesKind, str] = {
    SeriesKind.ETF: EXCHANGE,
    SeriesKind.INDEX: EXCHANGE,
    SeriesKind.RATE: FED,
}

# Largest plausible one-day move of the adjusted close, as a price ratio.
# Volatility indices really do move x3 in a day (VIX9D on 2018-02-05); ETFs
# (adjusted) never moved more than ~x1.25 in this data.
MAX_DAILY_RATIO: dict[SeriesKind, float | None] = {
    SeriesKind.ETF: 1.5,
    SeriesKind.INDEX: 4.0,
    SeriesKind.RATE: None,
}


@dataclass(frozen=True)
class QuarantinedRow:
    date: dt.date | None
    line: int | None
    reason: str
    raw: str


@dataclass
class PriceChunk:
    symbol: str
    kind: SeriesKind
    rows: pd.DataFrame  # index: DatetimeIndex "date"; columns PRICE_COLUMNS (float, NaN = NULL)
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    rows_read: int = 0
    # Rows on days the series' calendar is closed that repeat the last open day's
    # value (FRED's fill of a 7-day series): no observation, left out.
    carried: int = 0
    # Per price column, half a unit of the last decimal place the file writes: a value
    # read from it stands for anything that close ("100.12": 100.115 .. 100.125).
    precision: dict[str, float] = field(default_factory=dict)


def symbol_for_file(path: Path) -> str:
    """File name -> symbol: ``VIX_History.csv`` -> ``^VIX``, ``SPY.csv`` -> ``SPY``."""
    stem = path.stem
    if stem.endswith("_History"):
        return "^" + stem.removesuffix("_History").upper()
    return stem.upper()


def kind_for_symbol(symbol: str) -> SeriesKind:
    return SeriesKind.INDEX if symbol.startswith("^") else SeriesKind.ETF


def file_fingerprint(path: Path) -> str:
    """sha256 of the file's bytes, read in blocks (large files are never loaded whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- header recognition (pure) --------------------------------------------------

# Field names as files spell them, normalised (lower case, '_' as space) -> price column.
_FIELD_NAMES = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adj close": "adj_close",
    "adjusted close": "adj_close",
    "volume": "volume",
    "value": "adj_close",  # FRED
}
# What yfinance always writes besides the (optional) adjusted close.
_YF_REQUIRED = ("close", "high", "low", "open", "volume")
_DATE_FORMATS = (
    (re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T].*)?"), "%Y-%m-%d"),
    (re.compile(r"\d{1,2}/\d{1,2}/\d{4}(?:\s.*)?"), "%m/%d/%Y"),  # Cboe, US order
)


@dataclass(frozen=True)
class SeriesLayout:
    """One series of a file: its symbol and which cell holds which price column."""

    symbol: str
    kind: SeriesKind
    cells: dict[str, int]  # price column -> index of the cell in a row; always has adj_close


@dataclass(frozen=True)
class CsvLayout:
    name: str
    header_end: int  # line number of the last header line
    n_fields: int  # cells per data row
    date_format: str | None  # None: no data row to look at
    series: tuple[SeriesLayout, ...]


def _normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").strip().lower().split())


def date_format_of(cell: str) -> str | None:
    """The strptime format of a date cell (time and zone suffixes ignored), or None."""
    text = cell.strip()
    for pattern, fmt in _DATE_FORMATS:
        if pattern.fullmatch(text):
            return fmt
    return None


def line_role(cells: list[str]) -> str:
    """What a line holds: 'blank', 'data', 'price', 'ticker', 'index', 'columns' or 'unknown'."""
    if not any(cell.strip() for cell in cells):
        return "blank"
    first = _normalise(cells[0])
    if date_format_of(cells[0]) is not None:
        return "data"
    if first == "price":
        return "price"
    if first == "ticker":
        return "ticker"
    if first in ("date", "datetime", "observation date"):
        # yfinance writes the index name on a line of its own: "Date,,,,,,".
        return "columns" if any(cell.strip() for cell in cells[1:]) else "index"
    return "unknown"


def parse_header(
    header: list[tuple[int, list[str]]],
    first_data: tuple[int, list[str]] | None,
    *,
    source: str,
    file_symbol: str,
) -> CsvLayout:
    """The layout of a file from its header lines ((line number, cells), blank lines left out)
    and its first data row. Raises DataValidationError naming the offending line."""
    data_line = first_data[0] if first_data else (header[-1][0] + 1 if header else 1)
    date_format = date_format_of(first_data[1][0]) if first_data else None
    by_role: dict[str, list[tuple[int, list[str]]]] = {}
    for line, cells in header:
        role = line_role(cells)
        if role == "unknown":
            raise DataValidationError(
                f"unrecognised header line {','.join(cells)!r}: expected the Price/Ticker/Date "
                "lines of a yfinance export, a line of column names (DATE,OPEN,HIGH,LOW,CLOSE; "
                "date,value; ...) or a data row starting with a date",
                source=source,
                line=line,
            )
        by_role.setdefault(role, []).append((line, cells))
    header_end = header[-1][0] if header else 0
    if "price" in by_role:
        extra = by_role.get("columns", [])[:1]
        if extra or len(by_role["price"]) > 1:
            line, cells = extra[0] if extra else by_role["price"][1]
            raise DataValidationError(
                f"second line of column names {','.join(cells)!r} after the Price line",
                source=source,
                line=line,
            )
        series = _yfinance_series(by_role, source=source, file_symbol=file_symbol)
        n_fields = len(by_role["price"][0][1])
        return CsvLayout("yfinance export", header_end, n_fields, date_format, series)
    if "columns" in by_role:
        if len(by_role["columns"]) > 1 or "ticker" in by_role:
            line, cells = (by_role["columns"][1:] or by_role["ticker"])[0]
            raise DataValidationError(
                f"header line {','.join(cells)!r} does not fit a file with one line of "
                "column names",
                source=source,
                line=line,
            )
        line, cells = by_role["columns"][0]
        single = _named_columns_series(cells, line=line, source=source, file_symbol=file_symbol)
        return CsvLayout("column names", header_end, len(cells), date_format, (single,))
    if not header and first_data is None:
        raise DataValidationError("file is empty", source=source, line=1)
    raise DataValidationError(
        "no column names before the data: expected a yfinance Price line or a line of "
        "column names (DATE,...)",
        source=source,
        line=header[0][0] if header else data_line,
    )


def _header_problem(
    missing: list[str], extra: list[str], duplicate: list[str], *, owner: str = ""
) -> str | None:
    parts = []
    if missing:
        parts.append(f"missing column(s) {missing}")
    if extra:
        parts.append(f"unexpected column(s) {extra}")
    if duplicate:
        parts.append(f"duplicate column(s) {duplicate}")
    if not parts:
        return None
    return "; ".join(parts) + (f" for {owner}" if owner else "")


def _yfinance_series(
    by_role: dict[str, list[tuple[int, list[str]]]], *, source: str, file_symbol: str
) -> tuple[SeriesLayout, ...]:
    price_line, names = by_role["price"][0]
    tickers_by_line = by_role.get("ticker", [])
    if tickers_by_line:
        ticker_line, tickers = tickers_by_line[0]
        for line, other in tickers_by_line[1:]:  # the market folder repeats its Ticker line
            if [c.strip() for c in other] != [c.strip() for c in tickers]:
                raise DataValidationError(
                    "Ticker lines disagree", source=source, line=line, field="Ticker"
                )
        if len(tickers) != len(names):
            raise DataValidationError(
                f"Ticker line has {len(tickers)} cells, the Price line {len(names)}",
                source=source,
                line=ticker_line,
            )
        symbols = [cell.strip().upper() for cell in tickers]
        empty = [i for i in range(1, len(symbols)) if not symbols[i]]
        if empty:
            raise DataValidationError(
                f"no ticker for column {empty[0] + 1} ({names[empty[0]].strip()!r})",
                source=source,
                line=ticker_line,
            )
    else:
        symbols = [file_symbol] * len(names)
    columns_of: dict[str, dict[str, int]] = {}
    extra: list[str] = []
    duplicate: list[str] = []
    for i in range(1, len(names)):
        name = _normalise(names[i])
        # In the market folder's files a column named "Price" is the adjusted close.
        column = "adj_close" if name == "price" else _FIELD_NAMES.get(name)
        if column is None or column == "adj_close" and name == "value":
            extra.append(names[i].strip())
            continue
        cells = columns_of.setdefault(symbols[i], {})
        if column in cells:
            duplicate.append(names[i].strip())
        cells[column] = i
    problems = []
    for symbol, cells in columns_of.items():
        missing = [c.upper() for c in _YF_REQUIRED if c not in cells]
        owner = symbol if len(columns_of) > 1 else ""
        problem = _header_problem(missing, [], [], owner=owner)
        if problem:
            problems.append(problem)
    if not columns_of:
        problems.append(f"missing column(s) {[c.upper() for c in _YF_REQUIRED]}")
    general = _header_problem([], extra, duplicate)
    if duplicate and not tickers_by_line:
        general = f"{general} (a file of several tickers needs a Ticker line)"
    if general:
        problems.insert(0, general)
    if problems:
        raise DataValidationError("; ".join(problems), source=source, line=price_line)
    return tuple(
        SeriesLayout(symbol, kind_for_symbol(symbol), _adjusted(cells))
        for symbol, cells in columns_of.items()
    )


def _named_columns_series(
    cells: list[str], *, line: int, source: str, file_symbol: str
) -> SeriesLayout:
    """One line of column names, the date first: Cboe, FRED, or a flat OHLC export."""
    first = cells[0].strip()
    names = [cell.strip() for cell in cells[1:]]
    if len(names) == 1:  # DATE,VVIX / date,value / observation_date,DFF: a single value
        is_fred = first == "date" or _normalise(first) == "observation date"
        kind = SeriesKind.RATE if is_fred else _kind_of_named(first, file_symbol)
        if _FIELD_NAMES.get(_normalise(names[0])) in ("open", "high", "low", "volume"):
            raise DataValidationError(
                f"missing column(s) ['CLOSE'] (only {names[0]!r})", source=source, line=line
            )
        return SeriesLayout(file_symbol, kind, {"adj_close": 1})
    mapped: dict[str, int] = {}
    extra: list[str] = []
    duplicate: list[str] = []
    for i, name in enumerate(names, start=1):
        column = _FIELD_NAMES.get(_normalise(name))
        if column is None or _normalise(name) == "value":
            extra.append(name)
        elif column in mapped:
            duplicate.append(name)
        else:
            mapped[column] = i
    missing = [] if {"adj_close", "close"} & set(mapped) else ["CLOSE"]
    problem = _header_problem(missing, extra, duplicate)
    if problem:
        raise DataValidationError(problem, source=source, line=line)
    return SeriesLayout(file_symbol, _kind_of_named(first, file_symbol), _adjusted(mapped))


def _kind_of_named(date_cell: str, file_symbol: str) -> SeriesKind:
    # Cboe writes an upper-case DATE column: index levels, whatever the file is called.
    return SeriesKind.INDEX if date_cell == "DATE" else kind_for_symbol(file_symbol)


def _adjusted(cells: dict[str, int]) -> dict[str, int]:
    """Without an adjusted-close column the close is the adjusted one (yfinance
    auto_adjust=True, index levels) and the raw close is unknown."""
    if "adj_close" in cells:
        return dict(cells)
    out = {c: i for c, i in cells.items() if c != "close"}
    out["adj_close"] = cells["close"]
    return out


# --- value checks (pure) --------------------------------------------------------


# Fields of a block parsed at a time: the transient copies of a whole wide block's
# text (fixed-width strings, pandas' conversion buffers) would not be small.
_FIELDS_AT_A_TIME = 64


@dataclass(frozen=True)
class TextBlock:
    """A block of data rows as read, parsed once for every series of the file."""

    cells: np.ndarray  # object, rows x fields: the text of each cell
    numbers: np.ndarray  # float, rows x fields: NaN where a cell holds no number
    blank: np.ndarray  # bool, rows x fields: an empty cell
    precision: np.ndarray  # float, per field: ``written_precision`` of its cells

    @classmethod
    def parse(cls, cells: np.ndarray) -> TextBlock:
        numbers = np.full(cells.shape, np.nan)
        blank = np.zeros(cells.shape, dtype=bool)
        precision = np.zeros(cells.shape[1])
        for first in range(1, cells.shape[1], _FIELDS_AT_A_TIME):  # the date is no number
            fields = slice(first, first + _FIELDS_AT_A_TIME)
            text = cells[:, fields]
            # to_numeric ignores surrounding blanks; only cells it cannot read are
            # looked at again.
            read = pd.to_numeric(pd.Series(text.ravel()), errors="coerce").to_numpy(float)
            numbers[:, fields] = read.reshape(text.shape)
            for j, i in zip(*np.nonzero(np.isnan(numbers[:, fields])), strict=True):
                blank[j, first + i] = not str(text[j, i]).strip()
            precision[fields] = written_precision(text, blank[:, fields])
        return cls(cells, numbers, blank, precision)


def written_precision(cells: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """Per column of number cells (rows x columns), half a unit of the finest decimal
    place written in it (``["100.1", "100.25"]`` -> 0.005; ``["1.5e-05"]`` -> 5e-07);
    0.0 for a column of blanks only.

    The finest place in the column, not each cell's own: an export to two decimals
    that drops trailing zeros writes 100.10 as "100.1", which is still good to 0.005."""
    text = np.strings.strip(np.asarray(cells, dtype=str))
    dot = np.strings.find(text, ".")
    decimals = np.where(dot >= 0, np.strings.str_len(text) - dot - 1, 0).astype(np.int64)
    for j, i in zip(*np.nonzero(np.strings.find(np.strings.lower(text), "e") >= 0), strict=True):
        mantissa, _, power = str(text[j, i]).lower().partition("e")  # "1.5e-05": 1 + 5
        try:
            decimals[j, i] = len(mantissa.partition(".")[2]) - int(power)
        except ValueError:  # not a number at all: refused where it is read
            decimals[j, i] = 0
    none = np.iinfo(np.int64).min
    decimals[blank] = none
    finest = decimals.max(axis=0, initial=none)
    written = finest > none
    return np.where(written, 0.5 * 10.0 ** -np.where(written, finest, 0).astype(float), 0.0)


def parse_series(
    block: TextBlock,
    series: SeriesLayout,
    *,
    dates: pd.DatetimeIndex,
    lines: np.ndarray,
    source: str,
    skip_empty: bool,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, float]]:
    """Numbers of one series from a block of rows.

    Returns the frame (index date, PRICE_COLUMNS, NaN = NULL), the mask of rows
    kept (with ``skip_empty`` a row whose cells of this series are all empty is
    another ticker's trading day and is left out) and each column's
    ``written_precision``."""
    fields = list(series.cells.values())
    blank = block.blank[:, fields]
    keep = ~blank.all(axis=1) if skip_empty else np.ones(len(blank), dtype=bool)
    for column, i in series.cells.items():
        # 'nan' text parses to NaN: a written-out missing value is not an empty cell.
        bad = np.isnan(block.numbers[:, i]) & ~block.blank[:, i] & keep
        if column == "adj_close":
            bad |= block.blank[:, i] & keep
        if bad.any():
            j = int(np.argmax(bad))
            cell = block.cells[j, i]
            what = "missing value" if block.blank[j, i] else f"not a number: {cell!r}"
            raise DataValidationError(what, source=source, line=int(lines[j]), field=column)
    parsed = {
        column: block.numbers[keep, series.cells[column]]
        if column in series.cells
        else np.full(int(keep.sum()), np.nan)
        for column in PRICE_COLUMNS
    }
    frame = pd.DataFrame(parsed, index=pd.DatetimeIndex(dates[keep], name="date"))
    precision = {column: float(block.precision[i]) for column, i in series.cells.items()}
    return frame, keep, precision


def check_values(
    frame: pd.DataFrame, *, kind: SeriesKind, source: str, lines: np.ndarray | None
) -> None:
    """Reject the first row (in file order) holding a number no market prints:
    non-finite, out of range, a non-positive price (rates may be zero or
    negative), a negative volume or a high below the low."""
    # (row, order of the check, field, reason) of the first row failing each check
    problems: list[tuple[int, int, str, str]] = []

    def note(mask: np.ndarray, column: str, values: np.ndarray, reason: str) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            problems.append((i, len(problems), column, reason.format(v=values[i])))

    for column in (*PRICE_FIELDS, "volume"):
        values = frame[column].to_numpy(dtype=float)
        finite = np.isfinite(values)  # NaN (an empty cell, NULL) is allowed
        limit = MAX_VOLUME if column == "volume" else MAX_PRICE
        note(np.isinf(values), column, values, "not a finite number: {v}")
        with np.errstate(invalid="ignore"):
            huge = finite & (np.abs(values) > limit)
            note(huge, column, values, "out of range: {v:g} (limit " + f"{limit:g})")
            if column == "volume":
                note(finite & (values < 0), column, values, "negative volume: {v:g}")
            elif kind is not SeriesKind.RATE:
                note(finite & (values <= 0), column, values, "non-positive price: {v:g}")
    high, low = frame["high"].to_numpy(dtype=float), frame["low"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        inverted = high < low  # False where either is missing
    if inverted.any():
        i = int(np.argmax(inverted))
        problems.append((i, len(problems), "high", f"high {high[i]:g} below low {low[i]:g}"))
    if problems:
        i, _, column, reason = min(problems)
        raise DataValidationError(
            f"{reason} ({frame.index[i].date()})",
            source=source,
            line=None if lines is None else int(lines[i]),
            field=column,
        )


def check_dates(
    dates: pd.DatetimeIndex,
    *,
    previous: pd.Timestamp | None,
    today: dt.date,
    source: str,
    lines: np.ndarray | None,
) -> None:
    """Dates must lie in FIRST_DAY..LAST_DAY, increase strictly (also across chunks)
    and not lie in the future."""

    def refuse_first(failing: np.ndarray, reason: Callable[[int], str]) -> None:
        if failing.any():
            i = int(np.argmax(failing))
            line = None if lines is None else int(lines[i])
            raise DataValidationError(reason(i), source=source, line=line, field="date")

    values = dates.to_numpy()
    day = np.datetime_as_string(values, unit="D")  # also years pandas cannot make a date of
    outside = (values < np.datetime64(FIRST_DAY)) | (values > np.datetime64(LAST_DAY))
    refuse_first(outside, lambda i: f"date {day[i]} outside {FIRST_DAY}..{LAST_DAY}")
    # The date before each row: the previous chunk's last one before the first row.
    first = np.datetime64("NaT") if previous is None else previous.to_datetime64()
    before = np.concatenate([np.array([first], dtype=values.dtype), values])
    not_increasing = values <= before[:-1]  # False against NaT
    refuse_first(
        not_increasing,
        lambda i: f"{'duplicate date' if values[i] == before[i] else 'date out of order'} {day[i]}",
    )
    refuse_first(
        values > np.datetime64(today),
        lambda i: f"date {day[i]} is in the future (today is {today})",
    )


# --- calendars (pure) --------------------------------------------------------------


@dataclass(frozen=True)
class CalendarScreen:
    """Outcome of ``screen_calendar`` over a run of rows in date order."""

    keep: np.ndarray  # rows dated on a day the series' calendar is open
    closed: dict[int, str]  # row -> reason: a row of its own on a holiday, to quarantine
    carried: int  # rows repeating the last open day's value on a closed day: left out
    weekend: int | None  # the first row dated on a weekend: the file is refused
    last_open: float | None  # the value on the last open day so far


def screen_calendar(
    dates: pd.DatetimeIndex, values: np.ndarray, *, kind: SeriesKind, last_open: float | None
) -> CalendarScreen:
    """Judge each row by the calendar of its series (see the module docstring).

    ``values`` are the rows' adjusted closes (a rate's value); ``last_open`` is the
    value on the last open day before them (None at the start of a file)."""
    calendar = SERIES_CALENDAR[kind]
    closed = closed_days(calendar, dates)
    # The value on the last open day up to each row (NaN before the first one).
    latest = np.maximum.accumulate(np.where(closed, -1, np.arange(len(dates))))
    last = np.where(latest >= 0, values[np.maximum(latest, 0)], np.nan)
    if last_open is not None:
        last = np.where(np.isnan(last), last_open, last)
    carried = np.zeros(len(dates), dtype=bool)
    if kind is SeriesKind.RATE:  # only FRED fills the days its calendar is closed
        carried = closed & (values == last)
    own = closed & ~carried
    weekend = own & (dates.day_of_week >= 5)
    return CalendarScreen(
        keep=~closed,
        closed={
            int(i): f"{dates[i].date()} is not {describe(calendar)} ({closure(calendar, dates[i])})"
            for i in np.flatnonzero(own)
        },
        carried=int(carried.sum()),
        weekend=int(np.argmax(weekend)) if weekend.any() else None,
        last_open=float(last[-1]) if len(last) and not np.isnan(last[-1]) else last_open,
    )


def _refuse_weekend(dates: pd.DatetimeIndex, i: int, kind: SeriesKind, **where: Any) -> None:
    calendar = SERIES_CALENDAR[kind]
    raise DataValidationError(
        f"{dates[i].date()} is not {describe(calendar)} ({closure(calendar, dates[i])}): "
        "no market opens on a weekend, so the file's dates are shifted (a time-zone "
        "conversion?) or on another calendar, and every row of it is suspect",
        field="date",
        **where,
    )


# --- one-day spikes and level breaks (pure) ---------------------------------------


@dataclass(frozen=True)
class MoveScreen:
    """Outcome of ``screen_moves`` over a run of adjusted closes."""

    decided: int  # rows [0, decided) are judged; the rest wait for the rows after them
    outliers: dict[int, str]  # row -> reason, to quarantine
    break_at: int | None  # row where a level break starts (the file is rejected)
    break_reason: str
    last_accepted: float | None


def screen_moves(
    values: np.ndarray, *, max_ratio: float | None, previous: float | None, at_end: bool
) -> MoveScreen:
    """Judge each move beyond ``max_ratio`` by the rows on both sides of it.

    - x away then back on the next row: a one-day spike, that row is quarantined;
    - x away and still there on the next row: a level break (``break_at``);
    - a first row (with no ``previous``) out of line with both rows after it
      while they agree, or a last row out of line with the one before, is
      quarantined as well.
    Values must be positive. Without ``at_end`` the last rows may stay undecided
    until the next rows arrive (at most two)."""
    n = len(values)
    if max_ratio is None or n == 0:
        last = float(values[-1]) if n else previous
        return MoveScreen(n, {}, None, "", last)
    bound = math.log(max_ratio)

    def far(a: float, b: float) -> bool:
        return abs(math.log(a / b)) > bound

    logs = np.log(values)
    steps = np.abs(np.diff(logs, prepend=logs[0] if previous is None else math.log(previous)))
    # The usual case: no move near the bound (a first row needs two rows after it to judge).
    lookahead = previous is not None or n >= 3 or at_end
    if lookahead and not (steps > bound).any():
        return MoveScreen(n, {}, None, "", float(values[-1]))
    outliers: dict[int, str] = {}
    p = previous
    i = 0
    while i < n:
        v = float(values[i])
        if p is None:  # nothing before this row: judge it by the two rows after it
            if i + 2 >= n and not at_end:
                break
            after, later = (float(values[i + 1]), float(values[i + 2])) if i + 2 < n else (v, v)
            if far(after, v) and far(later, v) and not far(later, after):
                outliers[i] = (
                    f"absurd one-day move: first row {v:g} against {after:g} and {later:g} "
                    f"on the next rows (x{v / after:.3g})"
                )
                i += 1
                continue
            p, i = v, i + 1
            continue
        if not far(v, p):
            p, i = v, i + 1
            continue
        if i + 1 >= n:
            if not at_end:
                break
            outliers[i] = (
                f"absurd one-day move: {v:g} after {p:g} (x{v / p:.3g}) on the last row, "
                "with no later row to confirm it"
            )
            i += 1
            continue
        after = float(values[i + 1])
        if not far(after, p):
            outliers[i] = (
                f"absurd one-day move: {v:g} between {p:g} and {after:g} (x{v / p:.3g}, "
                "reverted the next day)"
            )
            i += 1
            continue
        reason = (
            f"x{v / p:.3g} ({p:g} -> {v:g}) and still {after:g} on the next row"
            if not far(after, v)
            else f"x{v / p:.3g} ({p:g} -> {v:g}), then {after:g} on the next row"
        )
        return MoveScreen(i, outliers, i, reason, p)
    return MoveScreen(i, outliers, None, "", p)


def _level_break(day: pd.Timestamp, size: str) -> str:
    return (
        f"level break on {day.date()}: adj_close moves {size}; a persistent break is not "
        "a bad print (an unadjusted split, a rescaled history or another instrument?)"
    )


class _SeriesStream:
    """Validates one series chunk by chunk, holding back the last rows until the
    rows after them (needed to tell a spike from a level break) have been read."""

    def __init__(self, layout: SeriesLayout, *, source: str, skip_empty: bool) -> None:
        self.layout = layout
        self.source = source
        self.skip_empty = skip_empty
        self.max_ratio = MAX_DAILY_RATIO[layout.kind]
        self.last_accepted: float | None = None
        self.last_open: float | None = None
        self.rows_read = 0
        self.precision: dict[str, float] = {}
        self.held = pd.DataFrame(
            {c: np.array([], dtype=float) for c in PRICE_COLUMNS},
            index=pd.DatetimeIndex([], name="date"),
        )
        self.held_lines = np.array([], dtype=int)
        self.held_cells: list[list[str]] = []

    def push(
        self,
        block: TextBlock,
        *,
        dates: pd.DatetimeIndex,
        lines: np.ndarray,
        rows: list[list[str]],
    ) -> PriceChunk:
        """Validate a block of rows (parsed, and ``rows`` as read)."""
        frame, keep, precision = parse_series(
            block,
            self.layout,
            dates=dates,
            lines=lines,
            source=self.source,
            skip_empty=self.skip_empty,
        )
        kept_lines = lines[keep]
        check_values(frame, kind=self.layout.kind, source=self.source, lines=kept_lines)
        kept_rows = list(itertools.compress(rows, keep))
        read = len(frame)
        self.rows_read += read
        for column, value in precision.items():  # the finest the file has written so far
            self.precision[column] = min(value, self.precision.get(column, value))
        calendar = screen_calendar(
            frame.index,
            frame["adj_close"].to_numpy(dtype=float),
            kind=self.layout.kind,
            last_open=self.last_open,
        )
        if calendar.weekend is not None:
            i = calendar.weekend
            _refuse_weekend(
                frame.index, i, self.layout.kind, source=self.source, line=int(kept_lines[i])
            )
        self.last_open = calendar.last_open
        closed = [
            QuarantinedRow(
                frame.index[i].date(), int(kept_lines[i]), reason, ",".join(kept_rows[i])
            )
            for i, reason in calendar.closed.items()
        ]
        on_calendar = calendar.keep
        frame, kept_lines = frame[on_calendar], kept_lines[on_calendar]
        kept_rows = list(itertools.compress(kept_rows, on_calendar))
        if len(self.held):
            frame = pd.concat([self.held, frame])
            kept_lines = np.concatenate([self.held_lines, kept_lines])
            kept_rows = self.held_cells + kept_rows
        chunk = self._screen(frame, kept_lines, kept_rows, read, at_end=False)
        chunk.quarantined = sorted(closed + chunk.quarantined, key=lambda q: q.line or 0)
        chunk.carried = calendar.carried
        return chunk

    def finish(self, last_line: int) -> PriceChunk:
        if self.rows_read == 0:  # e.g. a ticker yfinance failed to download: empty columns
            raise DataValidationError(
                f"no values for {self.layout.symbol} on any row", source=self.source, line=last_line
            )
        return self._screen(self.held, self.held_lines, self.held_cells, 0, at_end=True)

    def _screen(
        self,
        frame: pd.DataFrame,
        lines: np.ndarray,
        rows: list[list[str]],
        read: int,
        at_end: bool,
    ) -> PriceChunk:
        values = frame["adj_close"].to_numpy(dtype=float) if len(frame) else np.array([])
        screen = screen_moves(
            values, max_ratio=self.max_ratio, previous=self.last_accepted, at_end=at_end
        )
        if screen.break_at is not None:
            i = screen.break_at
            raise DataValidationError(
                _level_break(frame.index[i], screen.break_reason),
                source=self.source,
                line=int(lines[i]),
                field="adj_close",
            )
        self.last_accepted = screen.last_accepted
        n = screen.decided
        self.held, self.held_lines, self.held_cells = frame.iloc[n:], lines[n:], rows[n:]
        decided = frame.iloc[:n]
        outliers = np.zeros(n, dtype=bool)
        outliers[list(screen.outliers)] = True
        quarantined = [
            QuarantinedRow(
                date=decided.index[i].date(),
                line=int(lines[i]),
                reason=reason,
                raw=",".join(rows[i]),
            )
            for i, reason in sorted(screen.outliers.items())
        ]
        return PriceChunk(
            symbol=self.layout.symbol,
            kind=self.layout.kind,
            rows=decided[~outliers],
            quarantined=quarantined,
            rows_read=read,
            precision=dict(self.precision),
        )


def validate_rows(
    frame: pd.DataFrame,
    *,
    symbol: str,
    kind: SeriesKind,
    source: str,
    today: dt.date,
    previous: float | None = None,
) -> PriceChunk:
    """Validate a whole series already in memory (a yfinance download), in date order.

    ``previous`` is the stored adjusted close just before the first row, if any."""
    if len(frame):
        check_dates(frame.index, previous=None, today=today, source=source, lines=None)
    check_values(frame, kind=kind, source=source, lines=None)

    def quarantined(rows: pd.DataFrame, i: int, reason: str) -> QuarantinedRow:
        raw = ",".join(str(v) for v in rows.iloc[i].tolist())
        return QuarantinedRow(date=rows.index[i].date(), line=None, reason=reason, raw=raw)

    read = len(frame)
    values = frame["adj_close"].to_numpy(dtype=float)
    calendar = screen_calendar(frame.index, values, kind=kind, last_open=previous)
    if calendar.weekend is not None:
        _refuse_weekend(frame.index, calendar.weekend, kind, source=source)
    closed = [quarantined(frame, i, reason) for i, reason in calendar.closed.items()]
    frame = frame[calendar.keep]
    values = frame["adj_close"].to_numpy(dtype=float)
    screen = screen_moves(values, max_ratio=MAX_DAILY_RATIO[kind], previous=previous, at_end=True)
    if screen.break_at is not None:
        raise DataValidationError(
            _level_break(frame.index[screen.break_at], screen.break_reason),
            source=source,
            field="adj_close",
        )
    outliers = np.zeros(len(frame), dtype=bool)
    outliers[list(screen.outliers)] = True
    spikes = [quarantined(frame, i, reason) for i, reason in sorted(screen.outliers.items())]
    return PriceChunk(
        symbol=symbol,
        kind=kind,
        rows=frame[~outliers],
        quarantined=sorted(closed + spikes, key=lambda q: q.date or dt.date.min),
        rows_read=read,
        carried=calendar.carried,
    )


# --- reading CSV files (I/O) ------------------------------------------------------


def _read_header(
    reader: Iterable[list[str]], line_of: Callable[[], int]
) -> tuple[list[tuple[int, list[str]]], tuple[int, list[str]] | None]:
    """Header lines (blank lines left out) up to the first data row, and that row."""
    header: list[tuple[int, list[str]]] = []
    for cells in reader:
        role = line_role(cells)
        if role == "blank":
            continue
        if role == "data":
            return header, (line_of(), cells)
        header.append((line_of(), cells))
        if role == "unknown" or len(header) > 20:
            break  # parse_header reports it; never read a headerless file to its end
    return header, None


def _layout_of(reader: Any, path: Path) -> tuple[CsvLayout, tuple[int, list[str]]]:
    """Read the header lines and the first data row through ``reader`` (a csv.reader)."""
    header, first = _read_header(reader, lambda: reader.line_num)
    layout = parse_header(header, first, source=str(path), file_symbol=symbol_for_file(path))
    if first is None:
        raise DataValidationError(
            "no data rows after the header", source=str(path), line=layout.header_end + 1
        )
    return layout, first


def read_csv_layout(path: Path) -> CsvLayout:
    """The layout (symbols, columns) of a CSV file, from its first lines only."""
    stream = _read_csv(path, today=None, chunk_rows=CHUNK_ROWS)
    try:
        layout = next(stream)
    finally:
        stream.close()
    assert isinstance(layout, CsvLayout)
    return layout


def csv_symbols(path: Path) -> list[str]:
    """Symbols a CSV file holds (from its Ticker line, else its name); never raises."""
    try:
        return [series.symbol for series in read_csv_layout(path).series]
    except (DataValidationError, OSError):
        return [symbol_for_file(path)]


def read_csv_file(
    path: Path, *, today: dt.date, chunk_rows: int = CHUNK_ROWS
) -> Iterator[PriceChunk]:
    """Stream a CSV file as validated chunks, one per series and block of rows
    (the file is never loaded whole).

    The caller must consume every chunk inside one transaction: a
    DataValidationError may come from any chunk, and nothing may be written then.
    """
    stream = _read_csv(path, today=today, chunk_rows=chunk_rows)
    next(stream)  # the layout
    yield from stream  # type: ignore[misc]


def _read_csv(
    path: Path, *, today: dt.date | None, chunk_rows: int
) -> Generator[CsvLayout | PriceChunk, None, None]:
    """The file's layout, then its validated chunks (stops after the layout if ``today``
    is None). Decoding and CSV quoting errors become DataValidationError."""
    source = str(path)
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            layout, first = _layout_of(reader, path)
            yield layout
            if today is None:
                return
            date_format = layout.date_format or ""
            multi = len(layout.series) > 1
            streams = [
                _SeriesStream(series, source=source, skip_empty=multi) for series in layout.series
            ]
            previous_date: pd.Timestamp | None = None
            for lines, block in _blocks(reader, first, layout, source, chunk_rows):
                cells = np.array(block, dtype=object).reshape(len(block), layout.n_fields)
                dates = _parse_dates(cells[:, 0], date_format, source, lines)
                check_dates(dates, previous=previous_date, today=today, source=source, lines=lines)
                previous_date = dates[-1]
                parsed = TextBlock.parse(cells)
                for stream in streams:
                    yield stream.push(parsed, dates=dates, lines=lines, rows=block)
                del block, cells, parsed  # before the next block is read, not after
            for stream in streams:
                yield stream.finish(reader.line_num)
        except UnicodeDecodeError as error:
            raise DataValidationError(
                f"not a UTF-8 text file ({error.reason})", source=source
            ) from None
        except csv.Error as error:
            raise DataValidationError(
                f"malformed CSV: {error}", source=source, line=reader.line_num or None
            ) from None


def _blocks(
    reader: Any,
    first: tuple[int, list[str]],
    layout: CsvLayout,
    source: str,
    chunk_rows: int,
) -> Iterator[tuple[np.ndarray, list[list[str]]]]:
    """Data rows in blocks of ``chunk_rows`` (fewer in a file so wide that a block
    would pass CHUNK_CELLS cells), with their line numbers; blank lines are skipped,
    a row with the wrong number of fields is refused."""
    lines: list[int] = []
    block: list[list[str]] = []

    expected = layout.n_fields
    chunk_rows = max(1, min(chunk_rows, CHUNK_CELLS // expected))
    numbered = itertools.chain([first], ((reader.line_num, cells) for cells in reader))
    for line, cells in numbered:
        if len(cells) != expected:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line
            raise DataValidationError(
                f"malformed row: {len(cells)} fields, expected {expected}",
                source=source,
                line=line,
            )
        lines.append(line)
        block.append(cells)
        if len(block) >= chunk_rows:
            yield np.array(lines), block
            lines, block = [], []
    if block:
        yield np.array(lines), block


def _parse_dates(
    text: np.ndarray, date_format: str, source: str, lines: np.ndarray
) -> pd.DatetimeIndex:
    # The day only: yfinance may add a time and a zone ("2024-11-04 00:00:00-05:00").
    day = pd.Series([cell.strip().split(" ", 1)[0].split("T", 1)[0] for cell in text])
    dates = pd.to_datetime(day, format=date_format, errors="coerce")
    if dates.isna().any():
        i = int(np.argmax(dates.isna().to_numpy()))
        raise DataValidationError(
            f"unparseable date {text[i]!r} (expected {date_format})",
            source=source,
            line=int(lines[i]),
            field="date",
        )
    return pd.DatetimeIndex(dates.to_numpy(), name="date")


# --- yfinance -----------------------------------------------------------------

_YF_FIELDS = {
    "Adj Close": "adj_close",
    "Close": "close",
    "High": "high",
    "Low": "low",
    "Open": "open",
    "Volume": "volume",
}

Downloader = Callable[..., pd.DataFrame]


def yfinance_download(symbols: list[str], start: dt.date) -> pd.DataFrame:
    """The real download (needs the network). Raw prices plus 'Adj Close'."""
    import yfinance

    return yfinance.download(
        symbols,
        start=start.isoformat(),
        auto_adjust=False,
        actions=False,
        progress=False,
        group_by="column",
        threads=False,
    )


def normalise_yfinance(frame: pd.DataFrame, symbols: list[str]) -> dict[str, pd.DataFrame]:
    """Split ``yfinance.download`` output into one price frame per symbol.

    Handles MultiIndex columns in either order ((Price, Ticker) with
    ``group_by='column'``, (Ticker, Price) with ``group_by='ticker'``), flat
    columns for a single symbol, and ``auto_adjust`` on (no 'Adj Close': the
    'Close' column is already adjusted, the raw close is unknown) or off.
    Rows where the symbol has no adjusted close (other symbols' trading days)
    are dropped.
    """
    if frame is None or frame.empty:
        return {}
    out: dict[str, pd.DataFrame] = {}
    for symbol in symbols:
        if isinstance(frame.columns, pd.MultiIndex):
            level = next(
                (
                    lvl
                    for lvl in range(frame.columns.nlevels)
                    if symbol in frame.columns.get_level_values(lvl)
                ),
                None,
            )
            if level is None:
                continue
            sub = frame.xs(symbol, axis=1, level=level)
        else:
            sub = frame
        fields = {str(c): c for c in sub.columns}
        if not {"Close"} <= set(fields):
            raise DataValidationError(
                f"yfinance frame for {symbol} has no 'Close' column (columns: {sorted(fields)})",
                source="yfinance",
                field="Close",
            )
        adjusted = "Adj Close" in fields
        data = {
            name: pd.to_numeric(sub[fields[yf_name]], errors="coerce").to_numpy(dtype=float)
            if yf_name in fields
            else np.full(len(sub), np.nan)
            for yf_name, name in _YF_FIELDS.items()
        }
        if not adjusted:  # auto_adjust=True: Close is the adjusted close
            data["adj_close"] = data["close"]
            data["close"] = np.full(len(sub), np.nan)
        index = pd.DatetimeIndex(pd.to_datetime(sub.index), name="date")
        if index.tz is not None:
            index = index.tz_localize(None)
        result = pd.DataFrame(data, index=index.normalize()).loc[:, list(PRICE_COLUMNS)]
        out[symbol] = result[result["adj_close"].notna()].sort_index()
    return out


def read_folder_closes(
    folder: Path, symbols: tuple[str, ...] | list[str], *, today: dt.date
) -> dict[str, pd.Series]:
    """Adjusted closes of ``symbols`` straight from a CSV folder (no database):
    for benchmarks and offline scripts. Quarantined rows are left out, as in the store."""
    closes: dict[str, list[pd.Series]] = {}
    for path in sorted(folder.glob("*.csv")):
        if not set(csv_symbols(path)) & set(symbols):
            continue
        for chunk in read_csv_file(path, today=today):
            if chunk.symbol in symbols:
                closes.setdefault(chunk.symbol, []).append(chunk.rows["adj_close"])
    return {symbol: pd.concat(parts).rename(symbol) for symbol, parts in closes.items()}
