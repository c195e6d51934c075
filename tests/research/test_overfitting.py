"""Deflated Sharpe and the probability of backtest overfitting against worked examples."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

from research.overfitting import (
    BlockMoments,
    block_edges,
    expected_max_sharpe,
    probabilistic_sharpe,
    probabilistic_sharpe_of,
    probability_of_backtest_overfitting,
    sharpe_moments,
)


def test_deflated_sharpe_numerical_example_of_the_paper() -> None:
    # Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio", J. Portfolio Management,
    # numerical example: annualised SR 2.5 over T = 1250 daily returns (250 a year),
    # skewness -3, kurtosis 10, N = 100 trials whose annualised SR vary with V = 0.5.
    # The paper gives SR0 = 0.1132 (non-annualised) and DSR = 0.9004.
    threshold = expected_max_sharpe(100, 0.5 / 250)
    assert threshold == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe_of(2.5 / math.sqrt(250), 1250, -3.0, 10.0, threshold)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_expected_max_sharpe_closed_form_against_scipy() -> None:
    # (1 - gamma) * z(1 - 1/N) + gamma * z(1 - 1/(N e)), quantiles from scipy (an
    # implementation independent of the statistics.NormalDist used here).
    norm = pytest.importorskip("scipy.stats").norm
    gamma = 0.5772156649015329
    expected = (1 - gamma) * norm.ppf(1 - 1 / 10) + gamma * norm.ppf(1 - 1 / (10 * math.e))
    assert expected_max_sharpe(10, 1.0) == pytest.approx(expected, rel=1e-12)
    assert expected_max_sharpe(10, 0.25) == pytest.approx(expected / 2, rel=1e-12)
    assert expected_max_sharpe(1, 3.0) == 0.0


def test_sample_moments_by_hand() -> None:
    # Deviations from the mean 0.005: +0.005, -0.025, +0.025, -0.005.
    # m2 = 0.0013 / 4, m3 = 0, m4 = 7.825e-7 / 4; std (ddof=1) = sqrt(0.0013 / 3).
    sharpe, n, skewness, kurtosis = sharpe_moments(np.array([0.01, -0.02, 0.03, 0.0]))
    assert n == 4
    assert sharpe == pytest.approx(0.005 / math.sqrt(0.0013 / 3), rel=1e-12)
    assert skewness == pytest.approx(0.0, abs=1e-12)
    assert kurtosis == pytest.approx((7.825e-7 / 4) / (0.0013 / 4) ** 2, rel=1e-12)


def test_probabilistic_sharpe_of_normal_returns_at_its_own_sharpe_is_one_half() -> None:
    returns = np.random.default_rng(3).normal(0.0004, 0.01, 1000)
    sharpe = returns.mean() / returns.std(ddof=1)
    assert probabilistic_sharpe(returns, sharpe) == pytest.approx(0.5)


def test_a_variant_better_in_every_block_never_overfits() -> None:
    # B = A + 0.001 every day: same std, higher mean, so B has the higher Sharpe on
    # every set of blocks. The in-sample best (B) ranks 2nd of 2 out of sample:
    # w = 2/3, logit ln 2 > 0 in every split, PBO 0.
    a = np.random.default_rng(1).normal(0.0, 0.01, 400)
    returns = np.column_stack([a, a + 0.001])
    result = probability_of_backtest_overfitting(BlockMoments.of(returns, 8))
    assert result.n_splits == math.comb(8, 4) == 70
    assert result.pbo == 0.0
    np.testing.assert_allclose(result.logits, math.log(2.0))


def test_a_variant_that_reverses_out_of_sample_always_overfits() -> None:
    # Two blocks. A = r + 0.002 in block 1 and r - 0.002 in block 2; B = r. In-sample
    # block 1 picks A, which is worse in block 2; in-sample block 2 picks B, which is
    # worse in block 1. Both splits: rank 1 of 2, w = 1/3, logit -ln 2, PBO 1.
    r = np.random.default_rng(2).normal(0.0, 0.01, 200)
    shift = np.r_[np.full(100, 0.002), np.full(100, -0.002)]
    returns = np.column_stack([r + shift, r])
    result = probability_of_backtest_overfitting(BlockMoments.of(returns, 2))
    assert result.pbo == 1.0
    np.testing.assert_allclose(result.logits, -math.log(2.0))


def _cscv_brute_force(returns: np.ndarray, n_blocks: int) -> np.ndarray:
    """CSCV written out plainly from the paper, one split at a time (np.std, sorting)."""
    blocks = np.array_split(np.arange(len(returns)), n_blocks)
    n = returns.shape[1]
    logits = []
    for chosen in combinations(range(n_blocks), n_blocks // 2):
        inside = np.concatenate([blocks[b] for b in chosen])
        outside = np.concatenate([blocks[b] for b in range(n_blocks) if b not in chosen])
        sharpe_in = returns[inside].mean(0) / returns[inside].std(0, ddof=1)
        sharpe_out = returns[outside].mean(0) / returns[outside].std(0, ddof=1)
        best = int(np.argmax(sharpe_in))
        rank = 1 + sum(1 for v in sharpe_out if v < sharpe_out[best])
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
    return np.array(logits)


def test_cscv_equals_a_plain_implementation_on_random_returns() -> None:
    rng = np.random.default_rng(5)
    returns = rng.normal(0.0002, 0.01, (250, 7)) + rng.normal(0, 0.0005, 7)
    expected = _cscv_brute_force(returns, 8)
    result = probability_of_backtest_overfitting(BlockMoments.of(returns, 8))
    np.testing.assert_allclose(result.logits, expected, rtol=1e-12)
    assert result.pbo == pytest.approx(np.mean(expected <= 0))


def test_block_edges_split_as_evenly_as_possible() -> None:
    assert block_edges(10, 4).tolist() == [0, 3, 6, 8, 10]
    with pytest.raises(ValueError, match="blocks"):
        block_edges(3, 4)
