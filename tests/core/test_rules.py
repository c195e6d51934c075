"""Rule engine: filter states, vote table, unavailable policy, hysteresis, presets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.enums import FilterName, Regime, UnavailablePolicy
from core.errors import ConfigError
from core.features import compute_features
from core.rules import (
    PLATFORM_VARIANT,
    PUBLISHED_FRAMEWORK,
    FilterRule,
    Hysteresis,
    RuleSet,
    apply_hysteresis,
    compute_regimes,
    rule_set_preset,
    switches_per_year,
)
from tests.conftest import make_closes


def frame(trend: list[float], vol: list[float], z: list[float]) -> pd.DataFrame:
    """Features whose filter values are exactly the given numbers (windows of 1)."""
    index = pd.bdate_range("2024-01-01", periods=len(trend), name="date")
    return pd.DataFrame({"spy_close": trend, "vix_vix3m": vol, "hyg_ief": z}, index=index)


def test_vote_table_maps_counts_to_published_regimes_and_exposures():
    ruleset = PUBLISHED_FRAMEWORK
    votes = np.array([0, 1, 2, 3])
    codes = ruleset.table.regime_codes(votes)
    assert codes.tolist() == [0, 1, 2, 2]
    assert ruleset.table.exposure_of_codes(codes.astype(float)).tolist() == [1.0, 0.5, 0.0, 0.0]


def test_each_filter_fires_on_its_side_of_the_threshold():
    closes = make_closes(n_days=400, seed=3)
    features = compute_features(closes)
    out = compute_regimes(features, PUBLISHED_FRAMEWORK)
    day = out.index[350]
    trend = features.loc[day, "spy_close"] / features["spy_close"].iloc[151:351].mean()
    assert out.loc[day, "trend_value"] == pytest.approx(trend)
    assert out.loc[day, "trend_state"] == ("firing" if trend < 1.0 else "clear")
    vol = features.loc[day, "vix_vix3m"]
    assert out.loc[day, "volatility_state"] == ("firing" if vol > 1.0 else "clear")
    expected_votes = (
        out.loc[day, ["trend_state", "volatility_state", "credit_state"]] == "firing"
    ).sum()
    assert out.loc[day, "votes"] == expected_votes


def test_unavailable_filters_abstain_by_default_and_are_counted():
    features = compute_features(make_closes(n_days=230, seed=1))  # < 252 days: credit unavailable
    out = compute_regimes(features, PUBLISHED_FRAMEWORK)
    assert (out["credit_state"] == "unavailable").all()
    assert (out["trend_state"].iloc[:199] == "unavailable").all()  # SMA200 not full yet
    assert (out["available"].iloc[:199] == 1).all()  # volatility only
    assert (out["available"].iloc[199:] == 2).all()  # trend and volatility
    only_vol = out.iloc[:199]
    expected = np.where(only_vol["volatility_state"] == "firing", "caution", "risk-on")
    assert only_vol["regime"].tolist() == expected.tolist()


def test_no_regime_when_no_filter_has_input():
    closes = {k: v for k, v in make_closes(n_days=230, seed=1).items() if k != "^VIX3M"}
    out = compute_regimes(compute_features(closes), PUBLISHED_FRAMEWORK)
    assert out["regime"].iloc[:199].isna().all()
    assert np.isnan(out["exposure"].iloc[:199]).all()
    assert out["regime"].iloc[199:].notna().all()


def test_unavailable_can_count_as_firing():
    features = compute_features(make_closes(n_days=230, seed=1))
    conservative = RuleSet(name="strict", unavailable=UnavailablePolicy.FIRING)
    out = compute_regimes(features, conservative)
    assert (out["votes"].iloc[199:] >= 1).all()
    assert (out["regime"].iloc[199:] != Regime.RISK_ON.value).all()


def test_single_filter_is_all_in_or_all_out():
    features = compute_features(make_closes(n_days=400, seed=5))
    out = compute_regimes(features, PUBLISHED_FRAMEWORK.only(FilterName.TREND))
    assert set(out.columns) >= {"trend_state"} and "credit_state" not in out
    firing = out["trend_state"] == "firing"
    assert (out.loc[firing, "exposure"] == 0.0).all()
    assert (out.loc[out["trend_state"] == "clear", "exposure"] == 1.0).all()


def test_platform_variant_differs_only_in_credit():
    assert PLATFORM_VARIANT.credit == FilterRule(threshold=-2.0, window=100)
    assert PLATFORM_VARIANT.trend == PUBLISHED_FRAMEWORK.trend
    assert PLATFORM_VARIANT.volatility == PUBLISHED_FRAMEWORK.volatility
    assert PLATFORM_VARIANT.table == PUBLISHED_FRAMEWORK.table
    assert PLATFORM_VARIANT.version != PUBLISHED_FRAMEWORK.version
    assert rule_set_preset("platform") is PLATFORM_VARIANT
    with pytest.raises(ConfigError, match="unknown rule set 'nope'"):
        rule_set_preset("nope")


def test_bad_parameters_are_refused_with_the_value():
    with pytest.raises(ConfigError, match="window must be between 2 and 2520 days, got 0"):
        RuleSet(name="x", trend=FilterRule(threshold=1.0, window=0)).validate()
    with pytest.raises(ConfigError, match="confirm_days"):
        RuleSet(name="x", hysteresis=Hysteresis(confirm_days=0)).validate()


def test_confirmation_delays_a_switch_until_n_days_agree():
    raw = pd.Series([0, 0, 2, 0, 2, 2, 2, 1, 1, 1], dtype=float)
    out = apply_hysteresis(raw, Hysteresis(confirm_days=3))
    # The one-day blip at 2 is ignored; 2 takes effect on its third day (index 6).
    assert out.tolist() == [0, 0, 0, 0, 0, 0, 2, 2, 2, 1]


def test_minimum_dwell_holds_a_regime():
    raw = pd.Series([0, 2, 0, 0, 0, 2, 2, 0], dtype=float)
    out = apply_hysteresis(raw, Hysteresis(min_dwell_days=3))
    assert out.tolist() == [0, 0, 0, 0, 0, 2, 2, 2]


def test_hysteresis_off_is_identity():
    raw = pd.Series([0, 1, np.nan, 2, 0], dtype=float)
    pd.testing.assert_series_equal(apply_hysteresis(raw, Hysteresis()), raw)


def test_switches_per_year_counts_changes():
    index = pd.to_datetime(["2023-12-28", "2023-12-29", "2024-01-02", "2024-01-03", "2024-01-04"])
    regimes = pd.Series(["risk-on", "caution", "caution", "risk-on", "risk-off"], index=index)
    assert switches_per_year(regimes).to_dict() == {2023: 1, 2024: 2}


def test_appending_future_rows_never_changes_earlier_regimes():
    closes = make_closes(n_days=500, seed=11)
    full = compute_regimes(compute_features(closes), PUBLISHED_FRAMEWORK)
    cut = closes["SPY"].index[420]
    past_closes = {k: v[v.index <= cut] for k, v in closes.items()}
    past = compute_regimes(compute_features(past_closes), PUBLISHED_FRAMEWORK)
    pd.testing.assert_frame_equal(past, full.loc[past.index])
