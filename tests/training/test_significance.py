"""Bootstrap, deflated Sharpe and permutation code on made-up returns with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from training.significance import (
    bootstrap_intervals,
    deflated_sharpe,
    expected_max_sharpe,
    permutation_pvalue,
    probabilistic_sharpe,
    stationary_bootstrap_indices,
    timing_permutations,
)


def test_bootstrap_blocks_have_the_requested_mean_length() -> None:
    rng = np.random.default_rng(0)
    indices = stationary_bootstrap_indices(500, mean_block=20.0, n_resamples=200, rng=rng)
    assert indices.shape == (200, 500) and indices.min() >= 0 and indices.max() < 500
    continues = np.diff(indices, axis=1) % 500 == 1  # the next day of the same block
    assert continues.mean() == pytest.approx(1 - 1 / 20, abs=0.01)


def test_a_block_of_one_day_is_the_plain_bootstrap() -> None:
    rng = np.random.default_rng(1)
    indices = stationary_bootstrap_indices(1000, mean_block=1.0, n_resamples=5, rng=rng)
    continues = np.diff(indices, axis=1) % 1000 == 1
    assert continues.mean() < 0.01


def test_interval_of_the_mean_covers_it_with_the_textbook_width() -> None:
    rng = np.random.default_rng(2)
    returns = rng.normal(0.001, 0.01, 2000)  # independent days: standard error 0.01 / sqrt(2000)
    (low, high) = bootstrap_intervals(
        returns, {"mean": np.mean}, mean_block=5.0, n_resamples=600, seed=3
    )["mean"]
    assert low < returns.mean() < high
    assert high - low == pytest.approx(2 * 1.645 * 0.01 / np.sqrt(2000), rel=0.2)


def test_expected_max_sharpe_matches_the_closed_form() -> None:
    assert expected_max_sharpe(1, 1.0) == 0.0
    # (1 - gamma) * z(0.9) + gamma * z(1 - 1 / (10 e)) with unit variance.
    assert expected_max_sharpe(10, 1.0) == pytest.approx(1.5746, abs=1e-3)
    assert expected_max_sharpe(10, 0.25) == pytest.approx(1.5746 / 2, abs=1e-3)


def test_probabilistic_and_deflated_sharpe() -> None:
    rng = np.random.default_rng(4)
    returns = rng.normal(0.0005, 0.01, 2520)
    sharpe = returns.mean() / returns.std(ddof=1)
    assert probabilistic_sharpe(returns, benchmark=sharpe) == pytest.approx(0.5)
    alone = deflated_sharpe(returns, n_trials=1, trial_variance=0.0)
    assert alone == pytest.approx(probabilistic_sharpe(returns))
    many = deflated_sharpe(returns, n_trials=100, trial_variance=0.02**2)
    assert many < alone  # more trials, a higher bar for luck


def test_permutation_pvalue_counts_draws_at_least_as_good() -> None:
    assert permutation_pvalue(5.0, np.arange(99.0) / 100) == pytest.approx(0.01)
    assert permutation_pvalue(0.5, np.array([0.1, 0.5, 0.9, np.nan])) == pytest.approx(3 / 4)


def test_perfect_timing_beats_every_permutation_and_random_timing_does_not() -> None:
    rng = np.random.default_rng(5)
    returns = rng.normal(0.0, 0.01, 1000)
    foresight = (returns > 0).astype(float)  # in the market exactly on the up days
    shuffled = timing_permutations(foresight, n=199, seed=6)
    assert shuffled.shape == (1000, 199)
    assert (shuffled.sum(axis=0) == foresight.sum()).all()  # same time invested
    null = (shuffled * returns[:, None]).mean(axis=0)
    assert permutation_pvalue(float((foresight * returns).mean()), null) == pytest.approx(1 / 200)
    coin = rng.integers(0, 2, 1000).astype(float)
    assert permutation_pvalue(float((coin * returns).mean()), null) > 0.05
