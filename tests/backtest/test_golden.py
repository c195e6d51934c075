"""Every figure of a backtest on the real history equals the golden file to 1e-12.

``golden/backtest_results.json`` was written by ``golden/make_golden.py`` with the
pandas-based engine that the array kernel replaced; three requests cover six
strategies from the first day, the default start with daily curves, and costs,
cash yield, financing, lag 2, hysteresis, model, ensemble and volatility target
over a bounded period."""

from __future__ import annotations

import json
import math

import pytest

from tests.backtest.golden.make_golden import GOLDEN, MARKET, golden_inputs, results

pytestmark = pytest.mark.realdata


def assert_same(actual, expected, path="result"):  # type: ignore[no-untyped-def]
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert sorted(actual) == sorted(expected), f"{path}: keys differ"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: length"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, int | float), path
        assert math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-12), (
            f"{path}: {actual!r} != {expected!r}"
        )
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.skipif(not MARKET.exists(), reason="real market data folder absent")
def test_backtests_on_the_real_history_equal_the_golden_results():
    expected = json.loads(GOLDEN.read_text())
    actual = json.loads(json.dumps(results(golden_inputs())))
    assert_same(actual, expected)
