"""The default market's answers, ledger bodies and backtest metrics are byte-identical
to those of the service before markets existed.

default_market.json was written by default_market_capture.py run with the service at
commit b6e85d9; this test runs the same script with the current code, in a process of
its own (its own settings and database), and compares the bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


def test_default_market_is_byte_identical_to_before_markets(tmp_path, market_dir):
    out = tmp_path / "now.json"
    done = subprocess.run(
        [sys.executable, str(HERE / "default_market_capture.py"), str(out)],
        env={**os.environ, "DEEPREGIME_MARKET_DIR": str(market_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    before = (HERE / "default_market.json").read_text()
    assert out.read_text() == before
