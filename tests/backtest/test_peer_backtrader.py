"""Our engine and backtrader agree on final wealth (zero costs) on the real data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_backtrader import compare, peer_inputs  # noqa: E402

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_buy_and_hold_rules_and_leverage_agree_within_a_tenth_of_a_percent(market_dir):
    rows = compare(peer_inputs(market_dir), start="2016-01-04", end="2024-12-31")
    assert [r["strategy"] for r in rows] == ["Buy & hold", "Rules (published)", "Leveraged 1.5/0.3"]
    for row in rows:
        assert abs(row["gap"]) < 1e-3, row
    # The three strategies really differ, so agreement is not trivial.
    finals = sorted(r["ours"] for r in rows)
    assert finals[0] < finals[1] < finals[2]
