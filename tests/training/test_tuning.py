"""Baseline tuning by time-series cross-validation inside the training window."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import ConfigError
from tests.training.test_labels import _two_regimes
from training.baselines import BaselineConfig, cv_score, tune_baselines, validation_years


@pytest.fixture(scope="module")
def regimes() -> tuple[pd.DataFrame, pd.Series]:
    """About four years of alternating stressed (40 days) and calm (60 days) blocks."""
    frame = pd.concat([_two_regimes(seed=s) for s in range(10)])
    frame.index = pd.bdate_range("2010-01-01", periods=len(frame), name="date")
    return frame, (frame["vix"] > 25).astype(float)


def test_validation_years_end_with_the_training_window() -> None:
    assert validation_years(pd.Timestamp("2013-06-30"), 2) == [2012, 2013]


def test_cross_validation_reads_only_the_training_window(regimes) -> None:  # type: ignore[no-untyped-def]
    features, labels = regimes
    fit_until = pd.Timestamp("2012-12-31")
    seen = []

    def spy(rows: pd.DataFrame, until: pd.Timestamp) -> pd.DataFrame:
        seen.append((rows.index[-1], until))
        return pd.DataFrame({"call": labels.loc[rows.index]})  # a perfect forecaster

    score = cv_score(spy, features, labels, fit_until=fit_until, horizon=0, n_years=2)
    assert score == 1.0
    assert [until.year for _, until in seen] == [2010, 2011]  # fits end before each year
    assert all(last <= fit_until for last, _ in seen)


def test_a_penalty_that_forbids_switching_loses_to_one_that_allows_it(regimes) -> None:  # type: ignore[no-untyped-def]
    features, labels = regimes
    config = BaselineConfig(jump_penalty_grid=(1e9, 1.0))
    tuned = tune_baselines(features, labels, fit_until=pd.Timestamp("2012-12-31"), config=config)
    assert tuned.jump_penalty == 1.0
    assert tuned.hmm_states == 2  # no grid: unchanged


def test_bad_grids_are_refused() -> None:
    with pytest.raises(ConfigError, match="HMM states must be between 2 and 6"):
        BaselineConfig(hmm_states_grid=(1, 2)).validate()
