"""Forecasting targets on hand-made label sequences, and label identity across refits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import ConfigError
from tests.training.test_labels import _two_regimes
from training.config import STANDARDISED_LABELS, Target, WindowConfig
from training.labels import fit_labeler
from training.targets import target_series

NAN = np.nan
LABELS = pd.Series([0.0, 0.0, 1.0, 1.0, 0.0, NAN, 0.0])


@pytest.mark.parametrize(
    ("target", "horizon", "expected"),
    [
        pytest.param(Target.LABEL, 0, [0, 0, 1, 1, 0, NAN, 0], id="now-cast"),
        pytest.param(Target.LABEL, 2, [1, 1, 0, NAN, 0, NAN, NAN], id="label-2-ahead"),
        pytest.param(Target.DISTRESS_WITHIN, 1, [0, 1, 1, 0, NAN, 0, NAN], id="distress-1"),
        pytest.param(Target.DISTRESS_WITHIN, 2, [1, 1, 1, NAN, NAN, NAN, NAN], id="distress-2"),
        pytest.param(Target.CHANGE_WITHIN, 1, [0, 1, 0, 1, NAN, NAN, NAN], id="change-1"),
        pytest.param(Target.CHANGE_WITHIN, 2, [1, 1, 1, NAN, NAN, NAN, NAN], id="change-2"),
    ],
)
def test_targets_read_only_the_next_h_labels(
    target: Target, horizon: int, expected: list[float]
) -> None:
    out = target_series(LABELS, target, horizon)
    np.testing.assert_array_equal(out.to_numpy(), np.asarray(expected, dtype=float))


@pytest.mark.parametrize("target", list(Target))
def test_appending_labels_changes_no_earlier_known_target(target: Target) -> None:
    rng = np.random.default_rng(0)
    labels = pd.Series(rng.integers(0, 2, 300).astype(float))
    short = target_series(labels.iloc[:200], target, 5)
    full = target_series(labels, target, 5).iloc[:200]
    known = short.notna()
    assert known.sum() == 195
    pd.testing.assert_series_equal(short[known], full[known])


def test_a_within_target_needs_a_horizon() -> None:
    with pytest.raises(ConfigError, match="horizon of at least 1"):
        WindowConfig(horizon=0, target=Target.DISTRESS_WITHIN).validate()
    with pytest.raises(ValueError, match="horizon"):
        target_series(LABELS, Target.CHANGE_WITHIN, 0)


def test_expanding_refits_keep_the_identity_of_the_labels() -> None:
    """Refits on growing training windows (as the walk-forward does) call the same days
    distressed: the distressed label is the high-volatility cluster in every refit."""
    frame = pd.concat([_two_regimes(seed=s, stressed_first=s % 2 == 0) for s in range(4)])
    frame.index = pd.bdate_range("2020-01-01", periods=len(frame), name="date")
    stressed = frame["vix"] > 25
    for fit_until in (frame.index[99], frame.index[199], frame.index[-1]):
        labels = fit_labeler(frame, STANDARDISED_LABELS, fit_until=fit_until).labels(frame)
        assert (labels == stressed.astype(float)).all(), fit_until
