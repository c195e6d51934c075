"""Strategy configs: validation naming the field, conversion to core, daily exposures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from backtest.schemas import BacktestRequest
from backtest.signals import SignalInputs, build_signal, vol_target_exposure
from backtest.strategies import (
    EnsembleConfig,
    ModelConfig,
    RulesConfig,
    SingleFilterConfig,
    StrategyConfig,
)
from core.enums import FilterName, UnavailablePolicy
from core.errors import NoDataError
from core.policies import MODEL_LEVERAGED
from core.rules import PLATFORM_VARIANT, PUBLISHED_FRAMEWORK

STRATEGY = TypeAdapter(StrategyConfig)
DAYS = pd.bdate_range("2022-01-03", periods=8, name="date")


def parse_error(payload: dict) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as caught:
        BacktestRequest.model_validate(payload)
    first = caught.value.errors()[0]
    return first["loc"], first["msg"]


BUY_AND_HOLD = {"kind": "buy_and_hold"}


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        pytest.param(
            {"strategies": [BUY_AND_HOLD], "cost_bps": 2000}, "cost_bps", "1000", id="cost_bps"
        ),
        pytest.param({"strategies": [BUY_AND_HOLD], "lag": 0}, "lag", "1", id="lag-0"),
        pytest.param({"strategies": []}, "strategies", "at least 1", id="no-strategy"),
        pytest.param(
            {"strategies": [{"kind": "model", "calm_exposure": 4}]},
            "calm_exposure",
            "3",
            id="exposure-above-3",
        ),
        pytest.param(
            {"strategies": [{"kind": "rules", "trend": {"window": 1}}]},
            "window",
            "2",
            id="window",
        ),
        pytest.param(
            {"strategies": [{"kind": "rules", "table": {"caution_exposure": -0.5}}]},
            "caution_exposure",
            "0",
            id="table-exposure",
        ),
        pytest.param(
            {"strategies": [{"kind": "vol_target", "base": BUY_AND_HOLD, "target_volatility": 0}]},
            "target_volatility",
            "greater than 0",
            id="target-vol",
        ),
        pytest.param(
            {"strategies": [{"kind": "rules", "credit": {"tresh": -1}}]},
            "tresh",
            "Extra inputs",
            id="typo",
        ),
        pytest.param(
            {"strategies": [{"kind": "single_filter", "filter": "momentum"}]},
            "filter",
            "trend",
            id="filter-name",
        ),
    ],
)
def test_validation_errors_name_the_field(payload: dict, field: str, message: str) -> None:
    loc, msg = parse_error(payload)
    assert field in [str(part) for part in loc]
    assert message in msg


def test_unknown_preset_lists_the_choices() -> None:
    loc, msg = parse_error({"strategies": [{"kind": "rules", "preset": "mine"}]})
    assert loc[-1] == "preset"
    assert "'platform', 'published'" in msg


def test_inconsistent_vote_table_names_the_parameters() -> None:
    _, msg = parse_error(
        {"strategies": [{"kind": "rules", "table": {"caution_votes": 3, "risk_off_votes": 2}}]}
    )
    assert "caution_votes <= risk_off_votes" in msg


def test_request_refuses_reversed_dates_and_repeated_names() -> None:
    _, msg = parse_error({"strategies": [BUY_AND_HOLD], "start": "2020-01-02", "end": "2019-01-02"})
    assert "start 2020-01-02 is after end 2019-01-02" in msg
    _, msg = parse_error({"strategies": [BUY_AND_HOLD, BUY_AND_HOLD]})
    assert "repeated: ['Buy & hold']" in msg


def test_configs_convert_to_the_core_rule_sets() -> None:
    assert RulesConfig().rule_set() == PUBLISHED_FRAMEWORK
    assert RulesConfig(preset="platform").rule_set() == PLATFORM_VARIANT
    assert SingleFilterConfig(filter=FilterName.CREDIT).rule_set() == PUBLISHED_FRAMEWORK.only(
        FilterName.CREDIT
    )
    assert ModelConfig(mapping="leveraged").model_mapping() == MODEL_LEVERAGED


def test_overrides_change_only_what_they_name() -> None:
    config = STRATEGY.validate_python(
        {
            "kind": "rules",
            "credit": {"threshold": -1.5},
            "unavailable": "firing",
            "hysteresis": {"confirm_days": 3},
        }
    )
    rule_set = config.rule_set()
    assert rule_set.credit.threshold == -1.5
    assert rule_set.credit.window == 252  # the preset's
    assert rule_set.trend == PUBLISHED_FRAMEWORK.trend
    assert rule_set.unavailable is UnavailablePolicy.FIRING
    assert rule_set.hysteresis.confirm_days == 3
    assert rule_set.hysteresis.min_dwell_days == 1


def test_request_schema_is_generated_for_the_api() -> None:
    schema = BacktestRequest.model_json_schema()
    strategy_kinds = schema["$defs"]["VolTargetConfig"]["properties"]["base"]["discriminator"]
    assert set(strategy_kinds["mapping"]) == {
        "buy_and_hold",
        "rules",
        "single_filter",
        "model",
        "ensemble",
        "vol_target",
        "rule_set",
        "allocation",
    }


# --- daily exposures -------------------------------------------------------------------


def hand_features(spy: list[float], vix_ratio: list[float] | None = None) -> pd.DataFrame:
    """Feature table with the columns the filters read (others NaN)."""
    days = DAYS[: len(spy)]
    return pd.DataFrame(
        {
            "spy_close": spy,
            "vix_vix3m": vix_ratio if vix_ratio is not None else [np.nan] * len(spy),
            "hyg_ief": [np.nan] * len(spy),
        },
        index=days,
        dtype=float,
    )


def test_single_filter_exposure_changes_on_the_day_it_fires() -> None:
    # SMA(3) on day 5 = (10 + 10 + 9) / 3 = 9.67 > 9: trend fires at day 5's close; day 6
    # (9 < 9.33) still fires; day 7 (9 = SMA 9) is clear. Days 0-1 have no SMA yet.
    features = hand_features([10, 10, 10, 10, 10, 9, 9, 9])
    config = STRATEGY.validate_python(
        {"kind": "single_filter", "filter": "trend", "trend": {"window": 3}}
    )
    signal = build_signal(config, SignalInputs(features, pd.Series(0.0, index=features.index)))
    np.testing.assert_array_equal(signal.exposure, [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(signal.no_input, [True, True] + [False] * 6)
    assert list(signal.regime_names()) == ["risk-on"] * 5 + ["risk-off"] * 2 + ["risk-on"]


def test_days_without_any_filter_input_follow_the_unavailable_policy() -> None:
    # Volatility alone, ratio missing on the first three days, then 1.2 (fires), 0.9 (clear).
    features = hand_features([10] * 5, [np.nan, np.nan, np.nan, 1.2, 0.9])
    returns = pd.Series(0.0, index=features.index)
    abstain = build_signal(
        SingleFilterConfig(filter=FilterName.VOLATILITY), SignalInputs(features, returns)
    )
    np.testing.assert_array_equal(abstain.exposure, [1.0, 1.0, 1.0, 0.0, 1.0])  # no vote: 100%
    np.testing.assert_array_equal(abstain.no_input, [True, True, True, False, False])
    firing = build_signal(
        SingleFilterConfig(filter=FilterName.VOLATILITY, unavailable=UnavailablePolicy.FIRING),
        SignalInputs(features, returns),
    )
    np.testing.assert_array_equal(firing.exposure, [0.0, 0.0, 0.0, 0.0, 1.0])


def model_outputs(regime: list[float], p: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"regime": regime, "p_distressed": p}, index=DAYS[: len(regime)])


def test_model_strategies_map_the_regime_to_exposure() -> None:
    features = hand_features([10] * 4)
    outputs = model_outputs([0, 1, np.nan, 0], [0.2, 0.7, np.nan, 0.6])
    inputs = SignalInputs(features, pd.Series(0.0, index=features.index), outputs)
    filtered = build_signal(ModelConfig(), inputs)
    levered = build_signal(ModelConfig(mapping="leveraged"), inputs)
    by_probability = build_signal(ModelConfig(signal="probability"), inputs)
    np.testing.assert_array_equal(filtered.exposure, [1.0, 0.0, np.nan, 1.0])
    np.testing.assert_array_equal(levered.exposure, [1.5, 0.3, np.nan, 1.5])
    np.testing.assert_array_equal(by_probability.exposure, [1.0, 0.0, np.nan, 0.0])
    assert list(filtered.regime_names()) == ["calm", "distressed", None, "calm"]


def test_model_strategy_without_model_outputs_is_a_clear_error() -> None:
    features = hand_features([10] * 4)
    with pytest.raises(NoDataError, match="'Model leveraged' needs the classifier's daily"):
        build_signal(
            ModelConfig(mapping="leveraged"),
            SignalInputs(features, pd.Series(0.0, index=features.index)),
        )


def test_ensemble_adds_the_model_vote_to_the_filters() -> None:
    # Volatility fires on days 1 and 2; the model calls distress on days 2 and 3.
    features = hand_features([10] * 4, [0.9, 1.1, 1.1, 0.9])
    outputs = model_outputs([0, 0, 1, 1], [0.1, 0.1, 0.9, 0.9])
    config = EnsembleConfig(trend={"enabled": False}, credit={"enabled": False})
    signal = build_signal(
        config, SignalInputs(features, pd.Series(0.0, index=features.index), outputs)
    )
    # Votes 0, 1, 2, 1 -> risk-on 100%, caution 50%, risk-off 0%, caution 50%.
    np.testing.assert_array_equal(signal.exposure, [1.0, 0.5, 0.0, 0.5])


def test_vol_target_scales_by_target_over_past_realised_vol() -> None:
    days = pd.bdate_range("2022-01-03", periods=5)
    returns = pd.Series([np.nan, 0.01, -0.01, 0.01, 0.05], index=days)
    base = pd.Series(1.0, index=days)
    exposure = vol_target_exposure(
        base, returns, target_volatility=0.10, lookback_days=2, max_leverage=2.0
    )
    # Day 2: returns +1%, -1% -> sample std sqrt(0.0002) -> annual sqrt(0.0002 * 252).
    expected_day2 = 0.10 / math.sqrt(0.0002 * 252)  # 0.4454
    assert np.isnan(exposure.iloc[0]) and np.isnan(exposure.iloc[1])
    assert exposure.iloc[2] == pytest.approx(expected_day2, rel=1e-12)
    assert exposure.iloc[3] == pytest.approx(expected_day2, rel=1e-12)
    # Day 4 sees +1%, +5%: std sqrt(0.0008) -> 0.10 / sqrt(0.0008 * 252).
    assert exposure.iloc[4] == pytest.approx(0.10 / math.sqrt(0.0008 * 252), rel=1e-12)


def test_vol_target_uses_only_returns_known_at_the_close() -> None:
    days = pd.bdate_range("2022-01-03", periods=60)
    rng = np.random.default_rng(5)
    returns = pd.Series(rng.normal(0, 0.01, 60), index=days)
    base = pd.Series(1.0, index=days)
    before = vol_target_exposure(
        base, returns, target_volatility=0.15, lookback_days=20, max_leverage=3.0
    )
    shocked = returns.copy()
    shocked.iloc[40:] *= 8.0  # a volatility shock from day 40 on
    after = vol_target_exposure(
        base, shocked, target_volatility=0.15, lookback_days=20, max_leverage=3.0
    )
    pd.testing.assert_series_equal(before.iloc[:40], after.iloc[:40])
    assert after.iloc[40] < before.iloc[40]  # the shock counts from its own close


def test_vol_target_caps_leverage_and_keeps_zero_exposure() -> None:
    days = pd.bdate_range("2022-01-03", periods=4)
    quiet = pd.Series([0.0, 0.0001, -0.0001, 0.0], index=days)
    base = pd.Series([1.0, 1.0, 0.0, 1.0], index=days)
    exposure = vol_target_exposure(
        base, quiet, target_volatility=0.2, lookback_days=2, max_leverage=1.5
    )
    np.testing.assert_array_equal(exposure.iloc[1:], [1.5, 0.0, 1.5])
