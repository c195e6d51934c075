"""The runner's array paths agree with the pandas definitions they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.runner import _switches_per_year
from core.rules import switches_per_year


@pytest.mark.parametrize("seed", range(20))
def test_switches_per_year_on_arrays_equals_the_pandas_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 900))
    codes = rng.integers(0, 3, n).astype(float)
    codes[rng.random(n) < 0.1] = np.nan
    regime = pd.Series(codes, index=pd.bdate_range("1999-06-01", periods=n))
    expected = {int(year): int(count) for year, count in switches_per_year(regime).items()}
    assert _switches_per_year(regime) == expected


def test_switches_per_year_without_a_regime_is_empty():
    regime = pd.Series([np.nan, np.nan], index=pd.bdate_range("2020-01-01", periods=2))
    assert _switches_per_year(regime) == {}
