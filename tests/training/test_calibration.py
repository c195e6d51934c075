"""Calibration and probability scores on made-up forecasts with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from inference.calibration import apply_calibration, sigmoid, temperature_scale
from inference.card import Calibration, CalibrationMethod
from training.calibration import (
    brier_score,
    brier_skill,
    expected_calibration_error,
    fit_calibration,
    fit_temperature,
    probability_scores,
    reliability_table,
)
from training.config import CalibrationConfig


def _overconfident(n: int = 20_000, temperature: float = 3.0, seed: int = 0):  # type: ignore[no-untyped-def]
    """Truths drawn from sigmoid(z); the forecast reports sigmoid(z * temperature)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < sigmoid(z)).astype(float)
    return sigmoid(z * temperature), y


def test_temperature_scaling_recovers_a_known_overconfidence() -> None:
    p, y = _overconfident()
    assert fit_temperature(p, y) == pytest.approx(3.0, rel=0.05)


def test_calibration_lowers_ece_and_brier_and_keeps_the_ranking() -> None:
    p, y = _overconfident()
    for method in (CalibrationMethod.TEMPERATURE, CalibrationMethod.ISOTONIC):
        calibration = fit_calibration(p, y, CalibrationConfig(method=method))
        q = apply_calibration(p, calibration)
        assert expected_calibration_error(y, q) < 0.02 < expected_calibration_error(y, p)
        assert brier_score(y, q) < brier_score(y, p)
        order = np.argsort(p, kind="stable")
        assert (np.diff(q[order]) >= -1e-12).all()  # monotone: the ranking never changes


def test_apply_calibration_keeps_nan_and_passes_through_without_one() -> None:
    p = np.array([0.1, np.nan, 0.9])
    np.testing.assert_array_equal(apply_calibration(p, None), p)
    out = apply_calibration(p, Calibration(method=CalibrationMethod.TEMPERATURE, temperature=1.0))
    np.testing.assert_allclose(out, p)
    assert temperature_scale(np.array([0.5]), 7.0)[0] == pytest.approx(0.5)


def test_brier_and_skill_on_hand_computed_values() -> None:
    y = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.75, 0.25, 0.5, np.nan])
    assert brier_score(y, p) == pytest.approx((0.0625 + 0.0625 + 0.25) / 3)
    climatology = np.full(4, 0.5)  # Brier 0.25 on every day
    assert brier_skill(y, p, climatology) == pytest.approx(1 - 0.125 / 0.25)
    assert np.isnan(brier_skill(y, p, y))  # a perfect reference leaves no skill to measure


def test_ece_is_the_day_weighted_gap_per_bin() -> None:
    # Bin [0.2, 0.3): p 0.2 on 4 days, one distressed (gap 0.05); bin [0.9, 1.0]: p 0.9 twice,
    # both distressed (gap 0.1). ECE = 4/6 * 0.05 + 2/6 * 0.1.
    p = np.array([0.2, 0.2, 0.2, 0.2, 0.9, 0.9])
    y = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    table = reliability_table(y, p)
    assert list(table.index) == [2, 9] and list(table["days"]) == [4, 2]
    assert expected_calibration_error(y, p) == pytest.approx(4 / 6 * 0.05 + 2 / 6 * 0.1)


def test_probability_scores_name_every_reference() -> None:
    p, y = _overconfident(n=2000)
    scores = probability_scores(y, p, base_rate=float(y.mean()), persistence=y[::-1].copy())
    assert set(scores) == {
        "brier",
        "brier_skill_climatology",
        "ece",
        "brier_skill_persistence",
    }
