"""A file of several hundred MB is streamed: memory stays bounded and the
first bad row stops the read with its line number."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.store.days import xnys_days
from tests.store.test_ingest import yf_rows

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

# Memory is the kernel's VmHWM (peak RSS since exec): getrusage's ru_maxrss would
# start at pytest's own size, carried over the fork, and hide any growth below it.
MEASURE = textwrap.dedent(
    """
    import datetime as dt, json, sys
    from pathlib import Path
    from core.errors import DataValidationError
    from store.sources import file_fingerprint, read_csv_file

    def peak_kb():
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return int(status["VmHWM"].split()[0])

    path = Path(sys.argv[1])
    before = peak_kb()
    digest = file_fingerprint(path)
    rows = 0
    try:
        for chunk in read_csv_file(path, today=dt.date(2025, 1, 15)):
            rows += len(chunk.rows)
        message = None
    except DataValidationError as error:
        message = str(error)
    after = peak_kb()
    print(json.dumps({"growth_mb": (after - before) / 1024, "rows": rows, "message": message}))
    """
)


def measure(path: Path) -> dict:
    """Read ``path`` in a process of its own: rows read, the error, memory growth."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_several_hundred_mb_file_is_streamed(tmp_path):
    path = tmp_path / "SPY.csv"
    valid = yf_rows(xnys_days("1990-01-02", periods=2000))
    last_line = valid.rstrip("\n").rsplit("\n", 1)[1]
    repeated = (last_line + "\n") * 100_000  # ~6 MB of the same (duplicate) day
    with path.open("w") as handle:
        handle.write(valid)
        for _ in range(60):
            handle.write(repeated)
    size_mb = path.stat().st_size / 2**20
    assert size_mb > 250
    report = measure(path)
    assert report["message"].endswith("field 'date': duplicate date 1997-11-25")
    assert f"line {3 + 2000 + 1}" in report["message"]
    assert report["growth_mb"] < 100, f"{report['growth_mb']:.0f} MB for a {size_mb:.0f} MB file"


def test_a_wide_file_of_many_tickers_is_read_in_blocks_of_bounded_size(tmp_path):
    """Hundreds of tickers side by side: a block holds a bounded number of cells, not
    of rows, so memory stays flat however wide the file; its last row is bad."""
    path = tmp_path / "WIDE.csv"
    tickers = [f"T{i:03d}" for i in range(150)]
    fields = ("Adj Close", "Close", "High", "Low", "Open", "Volume")
    days = xnys_days("1990-01-02", periods=8000)
    cells = ",".join(["101.2500"] * (5 * len(tickers)) + ["1000000"] * len(tickers))
    with path.open("w") as handle:
        handle.write(",".join(["Price", *(f for f in fields for _ in tickers)]) + "\n")
        handle.write(",".join(["Ticker", *(t for _ in fields for t in tickers)]) + "\n")
        for day in days:
            handle.write(f"{day:%Y-%m-%d},{cells}\n")
        handle.write(f"{days[-1]:%Y-%m-%d},{cells}\n")
    size_mb = path.stat().st_size / 2**20
    assert size_mb > 60
    report = measure(path)
    assert report["message"].endswith(
        f"line {2 + 8000 + 1}, field 'date': duplicate date 2021-09-30"
    )
    assert report["rows"] > 150 * 7000  # the blocks before the last were read and validated
    assert report["growth_mb"] < 80, f"{report['growth_mb']:.0f} MB for a {size_mb:.0f} MB file"
