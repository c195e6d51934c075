"""Helpers for feeding the real market history to the service one day at a time.

The expected answers are computed here from the raw files with plain pandas
parsing (not the service's CSV reader) and core's pure functions, so they are
a from-scratch computation on the data known up to each day.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from standardwebhooks import Webhook

ETFS = ("SPY", "HYG", "IEF")
INDICES = {"^VIX": "VIX_History.csv", "^VIX3M": "VIX3M_History.csv"}


@dataclass(frozen=True)
class Bars:
    """One symbol's daily rows: adjusted and raw close, high, low, open, volume."""

    frame: pd.DataFrame  # index date; columns adj_close, close, high, low, open, volume


def read_market(folder: Path, etfs: tuple[str, ...] = ETFS) -> dict[str, Bars]:
    """The feature inputs (and the ETFs ``etfs``) from ../shared/data/market, parsed by
    hand."""
    bars = {}
    for symbol in etfs:
        frame = pd.read_csv(
            folder / f"{symbol}.csv",
            skiprows=3,
            header=None,
            names=["date", "adj_close", "close", "high", "low", "open", "volume"],
        )
        frame["date"] = pd.to_datetime(frame["date"].str[:10])
        bars[symbol] = Bars(frame.set_index("date"))
    for symbol, name in INDICES.items():
        frame = pd.read_csv(folder / name)
        frame.columns = [c.lower() for c in frame.columns]
        frame["date"] = pd.to_datetime(frame["date"], format="%m/%d/%Y")
        frame = frame.set_index("date")
        frame["adj_close"] = frame["close"]
        frame["volume"] = 0
        bars[symbol] = Bars(frame[["adj_close", "close", "high", "low", "open", "volume"]])
    return bars


def closes_until(bars: dict[str, Bars], day: pd.Timestamp) -> dict[str, pd.Series]:
    return {s: b.frame.loc[:day, "adj_close"].rename(s) for s, b in bars.items()}


def write_history(
    folder: Path, market: Path, until: pd.Timestamp, etfs: tuple[str, ...] = ETFS
) -> Path:
    """The market files (the ETFs ``etfs`` and the indices) cut at ``until``, in their
    own layouts."""
    folder.mkdir(parents=True)
    for symbol in etfs:
        lines = (market / f"{symbol}.csv").read_text().splitlines()
        kept = lines[:3] + [line for line in lines[3:] if pd.Timestamp(line[:10]) <= until]
        (folder / f"{symbol}.csv").write_text("\n".join(kept) + "\n")
    for name in INDICES.values():
        lines = (market / name).read_text().splitlines()
        kept = lines[:1] + [
            line
            for line in lines[1:]
            if pd.Timestamp(dt.datetime.strptime(line[:10], "%m/%d/%Y")) <= until
        ]
        (folder / name).write_text("\n".join(kept) + "\n")
    return folder


def write_day(
    folder: Path,
    bars: dict[str, Bars],
    after: pd.Timestamp,
    day: pd.Timestamp,
    etfs: tuple[str, ...] = ETFS,
) -> Path:
    """The rows of (after, day] as yfinance writes them: the ETFs in one
    ``download([...], auto_adjust=False)`` file, each index in its own
    ``download("^VIX")`` file (auto_adjust=True: no Adj Close)."""
    folder.mkdir(parents=True)
    rows_of = {s: _between(bars[s].frame, after, day) for s in etfs}
    fields = [
        ("Adj Close", "adj_close"),
        ("Close", "close"),
        ("High", "high"),
        ("Low", "low"),
        ("Open", "open"),
        ("Volume", "volume"),
    ]
    header = ["Price"] + [name for name, _ in fields for _ in etfs]
    tickers = ["Ticker"] + [s for _ in fields for s in etfs]
    lines = [",".join(header), ",".join(tickers), "Date" + "," * (len(header) - 1)]
    for stamp in rows_of["SPY"].index:
        cells = [f"{stamp:%Y-%m-%d}"]
        for _, column in fields:
            for symbol in etfs:
                value = rows_of[symbol].at[stamp, column]
                cells.append(str(int(value)) if column == "volume" else repr(float(value)))
        lines.append(",".join(cells))
    (folder / "etfs.csv").write_text("\n".join(lines) + "\n")
    for symbol in INDICES:
        rows = _between(bars[symbol].frame, after, day)
        if rows.empty:
            continue
        index_lines = [
            "Price,Close,High,Low,Open,Volume",
            f"Ticker,{symbol},{symbol},{symbol},{symbol},{symbol}",
            "Date,,,,,",
        ]
        for stamp, row in rows.iterrows():
            values = ",".join(repr(float(row[c])) for c in ("close", "high", "low", "open"))
            index_lines.append(f"{stamp:%Y-%m-%d},{values},0")
        name = symbol.lstrip("^")
        (folder / f"{name}.csv").write_text("\n".join(index_lines) + "\n")
    return folder


def _between(frame: pd.DataFrame, after: pd.Timestamp, day: pd.Timestamp) -> pd.DataFrame:
    return frame[(frame.index > after) & (frame.index <= day)]


@dataclass
class Receiver:
    """A loopback webhook receiver that verifies every signature."""

    secret: str = ""
    events: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                try:
                    Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                    receiver.events.append(json.loads(body))
                    self.send_response(204)
                except Exception as error:  # noqa: BLE001 - recorded for the test to fail on
                    receiver.failures.append(str(error))
                    self.send_response(400)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
