"""Peak memory of the streamed ingest on a wide multi-ticker file.

    python benchmarks/bench_ingest.py [--tickers N] [--days N] [--short] [--json FILE]

Writes a yfinance export of N tickers side by side (six columns each, NYSE sessions,
the layout `yfinance.download([...]).to_csv()` writes), about 200 MB by default, and
ingests it into a fresh SQLite file in a process of its own. Prints that process's
peak RSS beside the file's size and beside the reference measured in the same run: a
process that imports the same modules and opens the same database, ingesting nothing.
Target: peak RSS under 300 MB for the 200 MB file (the script fails above it).
--short: a 20 MB file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("Adj Close", "Close", "High", "Low", "Open", "Volume")
TARGET_MB = 300.0

# Run in a child process: its peak RSS is the ingest's alone. With "none" it imports
# and opens the database only: the reference. The peak is the kernel's VmHWM, which
# starts afresh at exec; getrusage's ru_maxrss would carry the parent's size over.
CHILD = textwrap.dedent(
    """
    import datetime as dt, json, sys, time
    from pathlib import Path
    from store.db import make_engine
    from store.ingest import ingest_csv_folder
    from store.migrations import upgrade

    folder, url, what = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    upgrade(url)
    engine = make_engine(url)
    started = time.perf_counter()
    results = []
    if what == "ingest":
        results = ingest_csv_folder(engine, folder, today=dt.date(2025, 1, 15))
    seconds = time.perf_counter() - started
    engine.dispose()
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    print(json.dumps({
        "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
        "seconds": seconds,
        "rows": sum(r.inserted for r in results),
        "rejected": [r.summary() for r in results if r.status == "rejected"][:3],
    }))
    """
)


def sessions(count: int) -> pd.DatetimeIndex:
    """The last ``count`` NYSE sessions up to 2024-12-31."""
    with warnings.catch_warnings():  # pandas 3.1 deprecations inside exchange_calendars
        warnings.simplefilter("ignore")
        calendar = xcals.get_calendar("XNYS", start="1960-01-01", end="2024-12-31")
        return pd.DatetimeIndex(calendar.sessions[-count:])


def write_wide_file(path: Path, tickers: int, days: int, seed: int = 7) -> None:
    """Random walks (0.1% daily volatility: no move the ingest would quarantine), four
    decimals, written block by block so the writer's memory stays small too."""
    rng = np.random.default_rng(seed)
    names = [f"T{i:04d}" for i in range(tickers)]
    with path.open("w", newline="") as handle:
        handle.write(",".join(["Price", *(f for f in FIELDS for _ in names)]) + "\n")
        handle.write(",".join(["Ticker", *(n for _ in FIELDS for n in names)]) + "\n")
        handle.write("Date" + "," * (len(FIELDS) * tickers) + "\n")
        level = rng.uniform(20, 500, tickers)
        dates = sessions(days)
        for start in range(0, days, 500):
            block = dates[start : start + 500]
            steps = rng.normal(0.0002, 0.001, (len(block), tickers))
            closes = level * np.exp(np.cumsum(steps, axis=0))
            level = closes[-1]
            volume = rng.integers(1_000, 10_000_000, (len(block), tickers)).astype(float)
            columns = [closes, closes * 1.002, closes * 1.005, closes * 0.995, closes, volume]
            frame = pd.DataFrame(np.hstack(columns), index=block.strftime("%Y-%m-%d"))
            frame.to_csv(handle, header=False, float_format="%.4f")


def measure(folder: Path, database: Path, what: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), f"sqlite:///{database}", what],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"{what} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=600)
    parser.add_argument("--days", type=int, default=6000)
    parser.add_argument("--short", action="store_true", help="A 20 MB file (CI).")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    if args.short:
        args.days = 700
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        folder = Path(scratch) / "market"
        folder.mkdir()
        path = folder / "WIDE.csv"
        started = time.perf_counter()
        write_wide_file(path, args.tickers, args.days)
        written_s = time.perf_counter() - started
        size_mb = path.stat().st_size / 2**20
        reference = measure(folder, Path(scratch) / "reference.db", "none")
        ingest = measure(folder, Path(scratch) / "ingest.db", "ingest")
    if ingest["rejected"]:
        raise SystemExit(f"the file was rejected: {ingest['rejected']}")
    peak, base = ingest["peak_rss_mb"], reference["peak_rss_mb"]
    print(
        f"file      {size_mb:6.1f} MB: {args.tickers} tickers x {args.days} sessions "
        f"({args.tickers * len(FIELDS) + 1} columns), written in {written_s:.1f} s"
    )
    print(
        f"ingest    peak RSS {peak:6.1f} MB (target < {TARGET_MB:.0f} MB), "
        f"{ingest['rows']:,} rows in {ingest['seconds']:.1f} s"
    )
    print(f"reference peak RSS {base:6.1f} MB: the same process, imports and database, no ingest")
    print(f"          the ingest itself: {peak - base:.1f} MB for a {size_mb:.0f} MB file")
    if args.json:
        figures = {
            "file_mb": size_mb,
            "tickers": args.tickers,
            "sessions": args.days,
            "peak_rss_mb": peak,
            "reference_rss_mb": base,
            "ingest_s": ingest["seconds"],
            "rows": ingest["rows"],
            "target_mb": TARGET_MB,
        }
        args.json.write_text(json.dumps(figures, indent=2))
    if peak >= TARGET_MB:
        raise SystemExit(f"peak RSS {peak:.0f} MB: over the {TARGET_MB:.0f} MB target")


if __name__ == "__main__":
    main()
