"""Feature table: hand-computed values, missing inputs, calendar alignment, point in time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import NoDataError
from core.features import (
    FEATURE_COLUMNS,
    MODEL_FEATURES,
    align_to_calendar,
    compute_features,
    rolling_zscore,
)
from tests.conftest import make_closes


def test_columns_are_the_declared_feature_list(closes):
    table = compute_features(closes)
    assert tuple(table.columns) == FEATURE_COLUMNS
    assert MODEL_FEATURES == ("ret_1d", "ret_5d", "ret_20d", "rv_5d", "rv_20d", "vix")
    assert table.index.equals(closes["SPY"].index)


def test_returns_and_volatility_match_hand_computation():
    dates = pd.bdate_range("2020-01-01", periods=8)
    spy = pd.Series([100, 102, 101, 105, 103, 104, 110, 108], index=dates, dtype=float)
    table = compute_features({"SPY": spy})
    assert np.isnan(table["ret_1d"].iloc[0])
    assert table["ret_1d"].iloc[1] == pytest.approx(0.02)
    assert table["ret_5d"].iloc[5] == pytest.approx(104 / 100 - 1)
    daily = [102 / 100 - 1, 101 / 102 - 1, 105 / 101 - 1, 103 / 105 - 1, 104 / 103 - 1]
    assert table["rv_5d"].iloc[5] == pytest.approx(np.std(daily, ddof=1))
    assert np.isnan(table["rv_5d"].iloc[4])  # only four daily returns so far


def test_sma_ratio_and_zscore_need_a_full_window(closes):
    table = compute_features(closes)
    assert table["spy_sma200"].iloc[:199].isna().all()
    spy = closes["SPY"]
    assert table["spy_sma200"].iloc[199] == pytest.approx(spy.iloc[:200].mean())
    assert table["spy_close_sma200"].iloc[250] == pytest.approx(
        spy.iloc[250] / spy.iloc[51:251].mean()
    )
    ratio = closes["HYG"] / closes["IEF"]
    window = ratio.iloc[300 - 251 : 301]
    expected = (ratio.iloc[300] - window.mean()) / window.std(ddof=1)
    assert table["hyg_ief_z252"].iloc[300] == pytest.approx(expected)
    assert table["hyg_ief_z252"].iloc[:251].isna().all()


def test_rolling_zscore_of_a_known_series():
    series = pd.Series([1.0, 2.0, 3.0, 4.0])
    z = rolling_zscore(series, 3)
    assert np.isnan(z.iloc[1])
    assert z.iloc[2] == pytest.approx((3 - 2) / 1.0)
    assert z.iloc[3] == pytest.approx((4 - 3) / 1.0)


def test_missing_inputs_stay_missing_never_zero(closes):
    without_credit = {k: v for k, v in closes.items() if k not in ("HYG", "IEF", "^VIX3M")}
    table = compute_features(without_credit)
    for column in ("hyg_ief", "hyg_ief_z252", "vix3m", "vix_vix3m"):
        assert table[column].isna().all(), column
    assert table["vix"].notna().all()


def test_other_calendars_are_forward_filled_at_most_five_days():
    spy_days = pd.DatetimeIndex(
        ["2024-01-02", "2024-01-03", "2024-01-08", "2024-01-09", "2024-01-10"]
    )
    vix = pd.Series([13.0, 14.0], index=pd.DatetimeIndex(["2024-01-02", "2024-01-04"]))
    aligned = align_to_calendar(vix, spy_days)
    # 01-03 has no print: the 01-02 value (1 day old) serves; 01-08 and 01-09
    # use the 01-04 value (4 and 5 days old); 01-10 is 6 days old -> missing.
    assert aligned.tolist()[:4] == [13.0, 13.0, 14.0, 14.0]
    assert np.isnan(aligned.iloc[4])


def test_a_print_after_the_spy_day_is_never_used():
    spy_days = pd.DatetimeIndex(["2024-01-02", "2024-01-03"])
    vix = pd.Series([20.0], index=pd.DatetimeIndex(["2024-01-03"]))
    assert np.isnan(align_to_calendar(vix, spy_days).iloc[0])


def test_no_spy_is_a_clear_error():
    with pytest.raises(NoDataError, match="SPY"):
        compute_features({"^VIX": pd.Series([1.0], index=pd.DatetimeIndex(["2024-01-02"]))})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_days=st.integers(260, 420), cut=st.integers(1, 259))
def test_appending_future_rows_never_changes_earlier_features(seed, n_days, cut):
    closes = make_closes(n_days=n_days, seed=seed)
    full = compute_features(closes)
    end = closes["SPY"].index[n_days - cut - 1]
    past = compute_features({k: v[v.index <= end] for k, v in closes.items()})
    pd.testing.assert_frame_equal(past, full.loc[past.index], check_exact=True)
