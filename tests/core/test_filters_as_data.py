"""Filters as data: each kind's reading on made-up numbers worked out by hand, votes,
weights, the continuous score, hysteresis, the vol-target overlay, JSON and checks."""

from __future__ import annotations

import hashlib
import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from core.enums import UnavailablePolicy
from core.errors import ConfigError
from core.features import compute_features
from core.filters import FILTER_KINDS, FilterSpec, Readings, filter_inputs
from core.rules import PLATFORM_VARIANT, PUBLISHED_FRAMEWORK, Hysteresis, RegimeTable
from core.rulesets import RuleSetDefinition, ScoreMap, VolTarget, evaluate
from tests.conftest import make_closes


def days(n: int) -> pd.DatetimeIndex:
    return pd.bdate_range("2024-01-01", periods=n, name="date")


def frame(**columns: list[float]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=days(n), dtype=float)


def read(spec: FilterSpec, data: pd.DataFrame) -> list[float]:
    return Readings(data).read(spec).tolist()


def close(values: list[float], expected: list[float]) -> None:
    assert len(values) == len(expected)
    for got, want in zip(values, expected, strict=True):
        if math.isnan(want):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(want, rel=1e-12)


NAN = float("nan")


def test_level_of_one_series_and_of_a_ratio():
    data = frame(A=[2.0, 4.0, 3.0], B=[1.0, 2.0, 4.0])
    close(read(FilterSpec.of("a", "level", ["A"]), data), [2.0, 4.0, 3.0])
    close(read(FilterSpec.of("r", "level", ["A", "B"]), data), [2.0, 2.0, 0.75])


def test_price_over_sma_and_over_ema():
    data = frame(X=[1.0, 2.0, 3.0, 4.0])
    sma = FilterSpec.of("t", "sma_ratio", ["X"], params={"window": 2})
    close(read(sma, data), [NAN, 2 / 1.5, 3 / 2.5, 4 / 3.5])
    # EMA span 3: alpha 0.5, seeded on the first close: 1, 1.5, 2.25, 3.125; shown from day 3.
    ema = FilterSpec.of("e", "ema_ratio", ["X"], params={"window": 3})
    close(read(ema, data), [NAN, NAN, 3 / 2.25, 4 / 3.125])


def test_dual_sma_crossover():
    data = frame(X=[1.0, 2.0, 3.0, 4.0])
    spec = FilterSpec.of("c", "sma_crossover", ["X"], params={"fast": 2, "slow": 3})
    close(read(spec, data), [NAN, NAN, 2.5 / 2.0, 3.5 / 3.0])


def test_regression_slope_is_the_annualised_log_growth():
    growth = 0.01  # per day: ln(close) = 0.01 * t exactly
    data = frame(X=list(np.exp(growth * np.arange(6))))
    spec = FilterSpec.of("s", "regression_slope", ["X"], params={"window": 4})
    close(read(spec, data), [NAN, NAN, NAN, 2.52, 2.52, 2.52])
    # A kink: logs 0, 0, 0, 3 -> slope of (t - 1.5) . y / sum (t - 1.5)^2 = 4.5 / 5 per day.
    kinked = frame(X=list(np.exp([0.0, 0.0, 0.0, 3.0])))
    close(read(spec, kinked), [NAN, NAN, NAN, 0.9 * 252])


def test_zscore_of_a_series_and_of_a_ratio():
    data = frame(X=[1.0, 2.0, 3.0, 10.0], Y=[1.0, 1.0, 1.0, 1.0])
    spec = FilterSpec.of("z", "zscore", ["X"], params={"window": 3})
    # Day 3: [1, 2, 3] mean 2, sd 1; day 4: [2, 3, 10] mean 5, sd sqrt(38 / 2).
    expected = [NAN, NAN, 1.0, 5.0 / math.sqrt(19.0)]
    close(read(spec, data), expected)
    close(read(FilterSpec.of("q", "zscore", ["X", "Y"], params={"window": 3}), data), expected)


def test_volatility_term_slope():
    data = frame(S=[20.0, 14.0], M=[18.0, 16.0], L=[16.0, 18.0])
    spec = FilterSpec.of("v", "term_slope", ["S", "M", "L"])
    close(read(spec, data), [4.0 / 18.0, -4.0 / 16.0])


def test_realised_over_implied_volatility():
    data = frame(P=[100.0, 101.0, 99.99], V=[20.0, 20.0, 20.0])
    spec = FilterSpec.of("rv", "realised_implied", ["P", "V"], params={"window": 2})
    # Returns +1% and -1%: sample sd = sqrt(0.01^2 + 0.01^2) = 0.0141421...
    realised = math.sqrt(2 * 0.01**2) * math.sqrt(252) * 100
    close(read(spec, data), [NAN, NAN, realised / 20.0])


def test_realised_vol_ratio_by_hand():
    # Returns +1%, -1%, +1%, -2%; sample sds by the standard library's statistics.stdev.
    prices = [100.0, 101.0, 99.99, 99.99 * 1.01, 99.99 * 1.01 * 0.98]
    data = frame(P=prices)
    spec = FilterSpec.of("rv", "realised_vol_ratio", ["P"], params={"fast": 2, "slow": 3})
    returns = [0.01, -0.01, 0.01, -0.02]
    day3 = statistics.stdev(returns[1:3]) / statistics.stdev(returns[0:3])
    day4 = statistics.stdev(returns[2:4]) / statistics.stdev(returns[1:4])
    close(read(spec, data), [NAN, NAN, NAN, day3, day4])


def test_every_kind_has_a_hand_test_above():
    assert set(FILTER_KINDS) == {
        "level",
        "sma_ratio",
        "ema_ratio",
        "sma_crossover",
        "regression_slope",
        "zscore",
        "term_slope",
        "realised_implied",
        "realised_vol_ratio",
    }


def test_missing_symbol_makes_the_filter_unavailable_not_an_error():
    data = frame(A=[1.0, 2.0])
    out = evaluate(
        RuleSetDefinition(
            "x",
            (
                FilterSpec.of("a", "level", ["A"], threshold=1.5, fires="above"),
                FilterSpec.of("b", "level", ["ZZZ"]),
            ),
        ),
        Readings(data),
    )
    assert out.states[:, 1].tolist() == [2, 2]
    assert out.available.tolist() == [1, 1]
    assert out.regime_code.tolist() == [0.0, 1.0]


def two_filters(**changes) -> RuleSetDefinition:
    filters = (
        FilterSpec.of("a", "level", ["A"], threshold=0.0, fires="above", weight=2.0),
        FilterSpec.of("b", "level", ["B"], threshold=0.0, fires="below", weight=1.0),
    )
    return RuleSetDefinition("w", filters, **changes)


def test_weighted_votes_pick_the_regime():
    # a fires when A > 0 (weight 2); b fires when B < 0 (weight 1).
    data = frame(A=[-1.0, 1.0, -1.0, 1.0], B=[1.0, 1.0, -1.0, -1.0])
    table = RegimeTable(caution_votes=1, risk_off_votes=2)
    out = evaluate(two_filters(table=table), Readings(data))
    assert out.votes.tolist() == [0.0, 2.0, 1.0, 3.0]
    assert out.regime_code.tolist() == [0.0, 2.0, 1.0, 2.0]
    assert out.exposure.tolist() == [1.0, 0.0, 0.5, 0.0]
    frac = evaluate(two_filters(table=RegimeTable(0.5, 2.5)), Readings(data))
    assert frac.regime_code.tolist() == [0.0, 1.0, 1.0, 2.0]


def test_unavailable_counts_as_firing_with_its_weight():
    data = frame(A=[NAN, NAN], B=[1.0, -1.0])
    out = evaluate(two_filters(unavailable=UnavailablePolicy.FIRING), Readings(data))
    assert out.votes.tolist() == [2.0, 3.0]


def test_continuous_score_maps_to_exposure_through_points():
    # Score = 2 * A + 1 * B; points: score -1 -> 0%, score 1 -> 100%, linear between.
    data = frame(A=[0.0, 0.25, 1.0, -1.0, NAN], B=[0.0, 0.0, 0.0, 0.0, NAN])
    rule_set = two_filters(score=ScoreMap(((-1.0, 0.0), (1.0, 1.0))))
    out = evaluate(rule_set, Readings(data))
    close(out.votes.tolist(), [0.0, 0.5, 2.0, -2.0, NAN])
    close(out.exposure.tolist(), [0.5, 0.75, 1.0, 0.0, NAN])
    close(out.regime_code.tolist(), [1.0, 1.0, 0.0, 2.0, NAN])


def test_hysteresis_confirms_then_holds():
    data = frame(A=[-1.0, 1.0, -1.0, 1.0, 1.0, -1.0, -1.0])
    spec = FilterSpec.of("a", "level", ["A"], threshold=0.0, fires="above")
    confirm = RuleSetDefinition("h", (spec,), table=RegimeTable(1, 1), hysteresis=Hysteresis(2))
    # Raw regimes 0 2 0 2 2 0 0: a switch needs two days of agreement.
    assert evaluate(confirm, Readings(data)).regime_code.tolist() == [0, 0, 0, 0, 2, 2, 0]
    dwell = RuleSetDefinition("d", (spec,), table=RegimeTable(1, 1), hysteresis=Hysteresis(1, 3))
    # Every regime in effect (the first one too) is held three days: day 1 is still
    # day 2 of risk-on; the switch on day 3 holds through day 5; day 6 switches back.
    assert evaluate(dwell, Readings(data)).regime_code.tolist() == [0, 0, 0, 2, 2, 2, 0]


def test_vol_target_overlay_scales_by_realised_volatility():
    data = frame(A=[-1.0] * 4, SPY=[100.0, 101.0, 99.99, 100.9899])
    spec = FilterSpec.of("a", "level", ["A"], threshold=0.0, fires="above")
    overlay = VolTarget(target_volatility=0.1, lookback_days=2, max_leverage=1.0)
    out = evaluate(RuleSetDefinition("v", (spec,), vol_target=overlay), Readings(data))
    realised = math.sqrt(2 * 0.01**2) * math.sqrt(252)  # returns +1%, -1%, +1%
    close(out.exposure.tolist(), [NAN, NAN, 0.1 / realised, 0.1 / realised])


def test_a_reading_is_computed_once_for_many_variants():
    readings = Readings(frame(X=[1.0, 2.0, 3.0, 4.0, 5.0]))
    for threshold in (0.9, 1.0, 1.1):
        spec = FilterSpec.of("t", "sma_ratio", ["X"], threshold=threshold, params={"window": 2})
        evaluate(RuleSetDefinition(f"v{threshold}", (spec,)), readings)
    assert len(readings._cache) == 1


def test_published_presets_read_as_data_give_todays_regimes():
    features = compute_features(make_closes(n_days=700, seed=5))
    for preset in (PUBLISHED_FRAMEWORK, PLATFORM_VARIANT):
        definition = preset.definition()
        assert [f.kind for f in definition.filters] == ["sma_ratio", "level", "zscore"]
        out = evaluate(definition, Readings(filter_inputs(features)))
        # Hand formula of the three filters on the feature table.
        trend = features["spy_close"] / features["spy_close"].rolling(200).mean()
        credit = features["hyg_ief"].rolling(preset.credit.window)
        z = (features["hyg_ief"] - credit.mean()) / credit.std()
        votes = (
            (trend < 1.0).astype(int)
            + (features["vix_vix3m"] > 1.0).astype(int)
            + (z < preset.credit.threshold).astype(int)
        )
        known = trend.notna() & z.notna()
        assert (out.votes[known.to_numpy()] == votes[known].to_numpy()).all()


def test_no_look_ahead_appending_days_changes_nothing_before():
    closes = make_closes(n_days=500, seed=11)
    closes["QQQ"] = closes["SPY"] * 0.5
    full = compute_features(closes)
    cut = compute_features({k: v.iloc[:400] for k, v in closes.items()})
    filters = tuple(
        FilterSpec.of(name, kind, inputs, params=params)
        for name, kind, inputs, params in (
            ("e", "ema_ratio", ["QQQ"], {"window": 50}),
            ("s", "regression_slope", ["SPY"], {"window": 60}),
            ("c", "sma_crossover", ["SPY"], {"fast": 20, "slow": 100}),
            ("z", "zscore", ["HYG", "IEF"], {"window": 100}),
            ("r", "realised_implied", ["SPY", "^VIX"], {"window": 20}),
        )
    )
    rule_set = RuleSetDefinition(
        "all", filters, hysteresis=Hysteresis(3, 5), vol_target=VolTarget()
    )
    a = evaluate(rule_set, Readings(filter_inputs(full, closes))).frame().iloc[:400]
    b = evaluate(
        rule_set, Readings(filter_inputs(cut, {k: v.iloc[:400] for k, v in closes.items()}))
    ).frame()
    pd.testing.assert_frame_equal(a, b)


def test_json_round_trip_and_fingerprint_of_canonical_json():
    rule_set = two_filters(hysteresis=Hysteresis(2, 3), vol_target=VolTarget(0.12, 30, 1.5))
    document = json.loads(json.dumps(rule_set.to_dict()))
    again = RuleSetDefinition.from_dict(document)
    assert again == rule_set and hash(again) == hash(rule_set)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    assert rule_set.fingerprint == hashlib.sha256(text.encode()).hexdigest()
    assert rule_set.version == f"w-{rule_set.fingerprint[:8]}"
    changed = two_filters(hysteresis=Hysteresis(2, 4), vol_target=VolTarget(0.12, 30, 1.5))
    assert changed.fingerprint != rule_set.fingerprint


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "x", "filters": [{"name": "a", "kind": "nope"}]}, "unknown kind 'nope'"),
        ({"name": "x", "filters": []}, "'filters' must be a non-empty list"),
        ({"filters": [{"name": "a", "kind": "level"}]}, "'name' is required"),
        (
            {"name": "x", "filters": [{"name": "a", "kind": "sma_ratio", "params": {"window": 1}}]},
            "window must be between 2",
        ),
        (
            {"name": "x", "filters": [{"name": "a", "kind": "level", "params": {"window": 5}}]},
            "takes no parameter 'window'",
        ),
        (
            {"name": "x", "filters": [{"name": "a", "kind": "level", "fires": "sideways"}]},
            "fires must be 'below' or 'above'",
        ),
        (
            {"name": "x", "filters": [{"name": "a", "kind": "level", "colour": 1}]},
            "unknown field 'colour'",
        ),
        (
            {
                "name": "x",
                "filters": [{"name": "a", "kind": "level"}],
                "hysteresis": {"confirm_days": 1.5},
            },
            "hysteresis.confirm_days must be a whole",
        ),
        (
            {
                "name": "x",
                "filters": [{"name": "a", "kind": "level"}],
                "table": {"caution_votes": 3, "risk_off_votes": 2},
            },
            "caution_votes <= risk_off_votes",
        ),
        (
            {
                "name": "x",
                "filters": [{"name": "a", "kind": "level"}],
                "score": {"points": [[0, 0]]},
            },
            "at least two",
        ),
        (
            {
                "name": "x",
                "filters": [{"name": "a", "kind": "level"}, {"name": "a", "kind": "level"}],
            },
            "two filters named 'a'",
        ),
        (
            {"name": "x", "filters": [{"name": "a", "kind": "term_slope", "inputs": ["A"]}]},
            "reads 3 input(s), got 1",
        ),
    ],
)
def test_bad_definitions_are_refused_naming_the_field(document, message):
    with pytest.raises(ConfigError, match=None) as error:
        RuleSetDefinition.from_dict(document)
    assert message in str(error.value)
