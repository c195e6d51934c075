"""A file of several hundred MB is streamed: memory stays bounded and the
first bad row stops the read with its line number."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.store.test_ingest import yf_rows

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

MEASURE = textwrap.dedent(
    """
    import datetime as dt, json, resource, sys
    from pathlib import Path
    from core.errors import DataValidationError
    from store.sources import file_fingerprint, read_csv_file

    path = Path(sys.argv[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    digest = file_fingerprint(path)
    rows = 0
    try:
        for chunk in read_csv_file(path, today=dt.date(2025, 1, 15)):
            rows += len(chunk.rows)
        message = None
    except DataValidationError as error:
        message = str(error)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (after - before) / 1024, "rows": rows, "message": message}))
    """
)


def test_several_hundred_mb_file_is_streamed(tmp_path):
    path = tmp_path / "SPY.csv"
    valid = yf_rows(pd.bdate_range("1990-01-01", periods=2000))
    last_line = valid.rstrip("\n").rsplit("\n", 1)[1]
    repeated = (last_line + "\n") * 100_000  # ~6 MB of the same (duplicate) day
    with path.open("w") as handle:
        handle.write(valid)
        for _ in range(60):
            handle.write(repeated)
    size_mb = path.stat().st_size / 2**20
    assert size_mb > 250
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["message"].endswith("field 'date': duplicate date 1997-08-29")
    assert f"line {3 + 2000 + 1}" in report["message"]
    assert report["growth_mb"] < 100, f"{report['growth_mb']:.0f} MB for a {size_mb:.0f} MB file"
