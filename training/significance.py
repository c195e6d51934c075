"""Is a strategy's edge more than luck? Bootstrap intervals, deflated Sharpe, permutations.

Arrays in, numbers out; inputs are daily simple returns without NaN.

- Stationary block bootstrap (Politis & Romano 1994): resamples keep runs of
  consecutive days (geometric block lengths with mean ``mean_block``), so
  volatility clustering survives resampling. Percentile intervals.
- Deflated Sharpe ratio (Bailey & Lopez de Prado 2014): the probability that the
  true Sharpe ratio exceeds the best one expected among ``n_trials`` unskilled
  strategies, allowing for skewness, fat tails and sample length.
- Permutation p-value: (1 + #null >= observed) / (1 + #null), never 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

# Defined once in the serving-safe research package (no scipy, no torch); re-exported here.
from research.overfitting import (  # noqa: F401
    EULER_GAMMA,
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
)


def stationary_bootstrap_indices(
    n: int, *, mean_block: float, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """[n_resamples, n] row indices: each row is a run of blocks that start at a uniform
    day and continue day after day (wrapping round), ending with probability 1/mean_block."""
    if n < 1 or mean_block < 1:
        raise ValueError(f"need n >= 1 and mean_block >= 1, got n={n!r}, mean_block={mean_block!r}")
    starts = rng.integers(0, n, size=(n_resamples, n))
    new_block = rng.random((n_resamples, n)) < 1.0 / mean_block
    new_block[:, 0] = True
    # Position within the current block: days since the last block start.
    step = np.arange(n)[None, :]
    last_start = np.maximum.accumulate(np.where(new_block, step, 0), axis=1)
    block_start = np.take_along_axis(starts, last_start, axis=1)
    return (block_start + (step - last_start)) % n


def bootstrap_intervals(
    returns: np.ndarray,
    statistics: Mapping[str, Callable[[np.ndarray], float]],
    *,
    mean_block: float = 20.0,
    n_resamples: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile ``level`` interval of each statistic over stationary-bootstrap resamples."""
    returns = np.asarray(returns, dtype=np.float64)
    rng = np.random.default_rng(seed)
    indices = stationary_bootstrap_indices(
        len(returns), mean_block=mean_block, n_resamples=n_resamples, rng=rng
    )
    tail = (1.0 - level) / 2.0
    out = {}
    for name, statistic in statistics.items():
        values = np.array([statistic(returns[row]) for row in indices])
        values = values[np.isfinite(values)]
        out[name] = (float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail)))
    return out


def permutation_pvalue(observed: float, null: np.ndarray) -> float:
    """One-sided p-value of ``observed`` against null draws (larger = better)."""
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    return float((1 + np.sum(null >= observed)) / (1 + len(null)))


def timing_permutations(exposure: np.ndarray, *, n: int, seed: int = 0) -> np.ndarray:
    """[len(exposure), n] copies of ``exposure`` with its days shuffled: the same time in
    each exposure level, with the timing destroyed."""
    rng = np.random.default_rng(seed)
    exposure = np.asarray(exposure, dtype=np.float64)
    return np.column_stack([rng.permutation(exposure) for _ in range(n)])
