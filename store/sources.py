"""Price sources behind one interface: a folder of CSV files, or yfinance.

Both yield ``PriceChunk`` objects: validated rows of one symbol (index = date,
columns ``PRICE_COLUMNS``), plus the rows quarantined on the way. Structural
problems (missing or extra columns, unparseable dates or numbers, duplicate,
unsorted or future dates, an empty file) raise ``DataValidationError`` naming
file, line and field, and the caller writes nothing for that file. Implausible
values (non-positive prices, absurd one-day jumps) are quarantined row by row.

CSV formats read (see ../shared/data/market/README.md):
- yfinance export: three header lines, then ``date, adj close, close, high, low, open, volume``
- Cboe OHLC history: ``DATE,OPEN,HIGH,LOW,CLOSE`` with MM/DD/YYYY dates
- Cboe single-value history: ``DATE,<NAME>`` (VVIX, SKEW)
- FRED series: ``date,value`` (ISO dates, percent per year)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataValidationError

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close", "volume")
CHUNK_ROWS = 50_000


class SeriesKind(StrEnum):
    ETF = "etf"  # adjusted total-return close
    INDEX = "index"  # Cboe index level
    RATE = "rate"  # FRED rate in percent per year (may be zero or negative)


# Largest plausible one-day move, as a price ratio, before a row is quarantined.
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


def symbol_for_file(path: Path) -> str:
    """File name -> symbol: ``VIX_History.csv`` -> ``^VIX``, ``SPY.csv`` -> ``SPY``."""
    stem = path.stem
    if stem.endswith("_History"):
        return "^" + stem.removesuffix("_History").upper()
    return stem.upper()


def file_fingerprint(path: Path) -> str:
    """sha256 of the file's bytes, read in blocks (large files are never loaded whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CsvLayout:
    """How one CSV format maps to price columns."""

    name: str
    header_lines: int
    columns: tuple[str, ...]  # names given to the file's columns, in order
    date_format: str
    kind: SeriesKind
    required: tuple[str, ...]  # price columns that must hold a number on every row


def _detect_layout(path: Path, first_line: str) -> CsvLayout:
    header = [cell.strip() for cell in first_line.strip().split(",")]
    upper = [cell.upper() for cell in header]
    source = str(path)
    if upper[:1] == ["PRICE"]:
        expected = ["PRICE", "PRICE", "CLOSE", "HIGH", "LOW", "OPEN", "VOLUME"]
        alternative = ["PRICE", "ADJ CLOSE", "CLOSE", "HIGH", "LOW", "OPEN", "VOLUME"]
        if upper not in (expected, alternative):
            _raise_header(source, header, expected)
        return CsvLayout(
            "yfinance export",
            3,
            ("date", "adj_close", "close", "high", "low", "open", "volume"),
            "%Y-%m-%d",
            SeriesKind.ETF,
            ("adj_close",),
        )
    if upper[:1] == ["DATE"] and len(upper) >= 5 or upper == ["DATE", "OPEN"]:
        expected = ["DATE", "OPEN", "HIGH", "LOW", "CLOSE"]
        if upper != expected:
            _raise_header(source, header, expected)
        return CsvLayout(
            "Cboe OHLC history",
            1,
            ("date", "open", "high", "low", "adj_close"),
            "%m/%d/%Y",
            SeriesKind.INDEX,
            ("adj_close",),
        )
    if header[:1] == ["date"] or upper[:1] == ["OBSERVATION_DATE"]:
        if len(header) != 2:
            _raise_header(source, header, ["date", "value"])
        return CsvLayout(
            "FRED series", 1, ("date", "adj_close"), "%Y-%m-%d", SeriesKind.RATE, ("adj_close",)
        )
    if upper[:1] == ["DATE"]:
        if len(header) != 2:
            _raise_header(source, header, ["DATE", "<VALUE>"])
        return CsvLayout(
            "Cboe single-value history",
            1,
            ("date", "adj_close"),
            "%m/%d/%Y",
            SeriesKind.INDEX,
            ("adj_close",),
        )
    raise DataValidationError(
        f"unrecognised header {first_line.strip()!r}: expected a yfinance export, "
        "a Cboe history (DATE,...) or a FRED series (date,value)",
        source=source,
        line=1,
    )


def _raise_header(source: str, header: list[str], expected: list[str]) -> None:
    missing = [c for c in expected if c.upper() not in [h.upper() for h in header]]
    extra = [h for h in header if h.upper() not in [c.upper() for c in expected]]
    parts = []
    if missing:
        parts.append(f"missing column(s) {missing}")
    if extra:
        parts.append(f"unexpected column(s) {extra}")
    if not parts:
        parts.append(f"columns {header} are not in the expected order {expected}")
    raise DataValidationError("; ".join(parts), source=source, line=1)


class JumpGuard:
    """Quarantines values whose ratio to the last accepted value exceeds the bound.

    Compares with the last *accepted* value so a single bad print is caught
    without also flagging the return to normal on the next row."""

    def __init__(self, max_ratio: float | None, last_value: float | None = None) -> None:
        self.max_log_move = math.log(max_ratio) if max_ratio else None
        self.last_value = last_value

    def check(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of values to quarantine (values must be positive)."""
        flagged = np.zeros(len(values), dtype=bool)
        if self.max_log_move is None:
            if len(values):
                self.last_value = float(values[-1])
            return flagged
        for i, value in enumerate(values):  # few thousand floats per file: cheap
            if (
                self.last_value is not None
                and abs(math.log(value / self.last_value)) > self.max_log_move
            ):
                flagged[i] = True
                continue
            self.last_value = float(value)
        return flagged


def validate_rows(
    frame: pd.DataFrame,
    *,
    symbol: str,
    kind: SeriesKind,
    source: str,
    lines: np.ndarray | None,
    guard: JumpGuard,
    today: dt.date,
    raw_text: pd.DataFrame | None = None,
) -> PriceChunk:
    """Validate parsed rows (index date, numeric PRICE_COLUMNS) in file order.

    Raises DataValidationError for future dates; quarantines non-positive
    prices and absurd jumps. Duplicates and order are checked by the caller,
    which sees rows across chunks."""
    dates = frame.index
    future = dates.date > today if len(dates) else np.array([], dtype=bool)
    if future.any():
        i = int(np.argmax(future))
        raise DataValidationError(
            f"date {dates[i].date()} is in the future (today is {today})",
            source=source,
            line=None if lines is None else int(lines[i]),
            field="date",
        )
    quarantined: list[QuarantinedRow] = []
    price_columns = ["open", "high", "low", "close", "adj_close"]
    values = frame[price_columns].to_numpy(dtype=float)
    if kind is SeriesKind.RATE:
        bad_value = np.zeros(len(frame), dtype=bool)
    else:
        bad_value = np.nan_to_num(values, nan=1.0).min(axis=1) <= 0
    keep = ~bad_value
    jump = np.zeros(len(frame), dtype=bool)
    jump[keep] = guard.check(frame["adj_close"].to_numpy(dtype=float)[keep])
    for i in np.flatnonzero(bad_value | jump):
        column = price_columns[int(np.argmin(np.nan_to_num(values[i], nan=1.0)))]
        reason = (
            f"non-positive price in '{column}': {values[i][price_columns.index(column)]}"
            if bad_value[i]
            else f"absurd one-day move: {frame['adj_close'].iloc[i]} "
            f"vs last accepted {guard_last(guard, frame, i, jump)}"
        )
        quarantined.append(
            QuarantinedRow(
                date=dates[i].date(),
                line=None if lines is None else int(lines[i]),
                reason=reason,
                raw=",".join(raw_text.iloc[i].tolist())
                if raw_text is not None
                else ",".join(str(v) for v in frame.iloc[i].tolist()),
            )
        )
    accepted = frame[~(bad_value | jump)]
    return PriceChunk(
        symbol=symbol, kind=kind, rows=accepted, quarantined=quarantined, rows_read=len(frame)
    )


def guard_last(guard: JumpGuard, frame: pd.DataFrame, i: int, jump: np.ndarray) -> float | None:
    """Last accepted adj_close before row i (for the quarantine message)."""
    previous = frame["adj_close"].to_numpy(dtype=float)[:i][~jump[:i]]
    return float(previous[-1]) if len(previous) else guard.last_value


def read_csv_file(
    path: Path, *, today: dt.date, last_value: float | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[PriceChunk]:
    """Stream a CSV file as validated chunks (the file is never loaded whole).

    The caller must consume every chunk inside one transaction: a
    DataValidationError may come from any chunk, and nothing may be written then.
    """
    source = str(path)
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        first_line = handle.readline()
    if not first_line.strip():
        raise DataValidationError("file is empty", source=source, line=1)
    layout = _detect_layout(path, first_line)
    symbol = symbol_for_file(path)
    guard = JumpGuard(MAX_DAILY_RATIO[layout.kind], last_value)
    previous_date: pd.Timestamp | None = None
    rows_seen = 0
    try:
        reader = pd.read_csv(
            path,
            skiprows=layout.header_lines,
            header=None,
            dtype=str,
            keep_default_na=False,
            chunksize=chunk_rows,
            encoding="utf-8-sig",
            on_bad_lines="error",
            engine="c",
        )
        for raw in reader:
            if raw.empty:
                continue
            lines = np.arange(len(raw)) + layout.header_lines + rows_seen + 1
            rows_seen += len(raw)
            raw = _name_columns(raw, layout, source, lines)
            frame = _parse_chunk(raw, layout, source, lines)
            dates = frame.index
            _check_order(dates, previous_date, source, lines)
            previous_date = dates[-1]
            yield validate_rows(
                frame,
                symbol=symbol,
                kind=layout.kind,
                source=source,
                lines=lines,
                guard=guard,
                today=today,
                raw_text=raw,
            )
    except pd.errors.EmptyDataError:
        pass  # header lines only: reported below as "no data rows"
    except pd.errors.ParserError as error:
        raise DataValidationError(f"malformed row: {error}".strip(), source=source) from None
    if rows_seen == 0:
        raise DataValidationError(
            "no data rows after the header", source=source, line=layout.header_lines + 1
        )


def _name_columns(
    raw: pd.DataFrame, layout: CsvLayout, source: str, lines: np.ndarray
) -> pd.DataFrame:
    """Check the field count of every row, then name the columns."""
    expected = len(layout.columns)
    if raw.shape[1] != expected:
        raise DataValidationError(
            f"malformed row: {raw.shape[1]} fields, expected {expected}",
            source=source,
            line=int(lines[0]),
        )
    short = raw.isna().any(axis=1).to_numpy()  # the parser pads short rows with NaN
    if short.any():
        i = int(np.argmax(short))
        fields = int(raw.iloc[i].notna().sum())
        raise DataValidationError(
            f"malformed row: {fields} fields, expected {expected}",
            source=source,
            line=int(lines[i]),
        )
    raw.columns = list(layout.columns)
    return raw


def _parse_chunk(
    raw: pd.DataFrame, layout: CsvLayout, source: str, lines: np.ndarray
) -> pd.DataFrame:
    date_text = raw["date"].str.strip().str.slice(0, 10)
    dates = pd.to_datetime(date_text, format=layout.date_format, errors="coerce")
    if dates.isna().any():
        i = int(np.argmax(dates.isna().to_numpy()))
        raise DataValidationError(
            f"unparseable date {raw['date'].iloc[i]!r} (expected {layout.date_format})",
            source=source,
            line=int(lines[i]),
            field="date",
        )
    parsed: dict[str, Any] = {}
    for column in PRICE_COLUMNS:
        if column not in raw:
            parsed[column] = np.full(len(raw), np.nan)
            continue
        text = raw[column].str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        not_numeric = numbers.isna() & (text != "")
        missing = (text == "") & (column in layout.required)
        bad = (not_numeric | missing).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            what = "missing value" if missing.iloc[i] else f"not a number: {raw[column].iloc[i]!r}"
            raise DataValidationError(what, source=source, line=int(lines[i]), field=column)
        parsed[column] = numbers.to_numpy(dtype=float)
    return pd.DataFrame(parsed, index=pd.DatetimeIndex(dates.to_numpy(), name="date"))


def _check_order(
    dates: pd.DatetimeIndex, previous: pd.Timestamp | None, source: str, lines: np.ndarray
) -> None:
    values = dates.to_numpy()
    steps = np.diff(values)
    if previous is not None and len(values):
        steps = np.concatenate([[values[0] - previous.to_datetime64()], steps])
        offset = 0
    else:
        offset = 1
    not_increasing = steps <= np.timedelta64(0, "ns")
    if not_increasing.any():
        i = int(np.argmax(not_increasing)) + offset
        problem = (
            "duplicate date"
            if steps[i - offset] == np.timedelta64(0, "ns")
            else "date out of order"
        )
        raise DataValidationError(
            f"{problem} {dates[i].date()}", source=source, line=int(lines[i]), field="date"
        )


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


def kind_for_symbol(symbol: str) -> SeriesKind:
    return SeriesKind.INDEX if symbol.startswith("^") else SeriesKind.ETF


def read_folder_closes(
    folder: Path, symbols: tuple[str, ...] | list[str], *, today: dt.date
) -> dict[str, pd.Series]:
    """Adjusted closes of ``symbols`` straight from a CSV folder (no database):
    for benchmarks and offline scripts. Quarantined rows are left out, as in the store."""
    closes: dict[str, pd.Series] = {}
    for path in sorted(folder.glob("*.csv")):
        symbol = symbol_for_file(path)
        if symbol in symbols:
            chunks = [c.rows["adj_close"] for c in read_csv_file(path, today=today)]
            closes[symbol] = pd.concat(chunks).rename(symbol)
    return closes
