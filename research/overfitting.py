"""How much of a sweep's best figure is luck: deflated Sharpe and the probability of
backtest overfitting. Arrays in, numbers out; Sharpe ratios here are per period
(daily), not annualised.

- Probabilistic Sharpe ratio (Bailey & Lopez de Prado 2012): P(true Sharpe >
  benchmark) given the sample's length, skewness and kurtosis.
- Deflated Sharpe ratio (Bailey & Lopez de Prado 2014, "The Deflated Sharpe
  Ratio"): the probabilistic Sharpe ratio against the largest Sharpe ratio
  expected among ``n_trials`` unskilled strategies.
- Probability of backtest overfitting by combinatorially symmetric
  cross-validation (Bailey, Borwein, Lopez de Prado & Zhu 2015, "The Probability
  of Backtest Overfitting"): the period is cut into S blocks; for every way of
  taking S/2 blocks as in-sample, the variant best in-sample is ranked among all
  variants on the other S/2 blocks; PBO is the share of splits where it ranks in
  the lower half (logit <= 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
MAX_PBO_BLOCKS = 20


def expected_max_sharpe(n_trials: int, trial_variance: float) -> float:
    """Expected largest of ``n_trials`` per-period Sharpe ratios of unskilled strategies
    whose Sharpe estimates vary with ``trial_variance`` (0 for a single trial)."""
    if n_trials < 2:
        return 0.0
    return math.sqrt(trial_variance) * (
        (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
        + EULER_GAMMA * _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    )


def sharpe_moments(returns: np.ndarray) -> tuple[float, int, float, float]:
    """Per-period Sharpe (mean / std, ddof=1), length, skewness and (non-excess)
    kurtosis of a return sample; skewness and kurtosis are the biased moment ratios
    m3 / m2^1.5 and m4 / m2^2 (scipy.stats.skew and kurtosis(fisher=False))."""
    returns = np.asarray(returns, dtype=np.float64)
    n = len(returns)
    if n < 3:
        return math.nan, n, math.nan, math.nan
    std = returns.std(ddof=1)
    centred = returns - returns.mean()
    m2 = float(np.mean(centred**2))
    if not std > 0 or not m2 > 0:
        return math.nan, n, math.nan, math.nan
    skewness = float(np.mean(centred**3)) / m2**1.5
    kurtosis = float(np.mean(centred**4)) / m2**2
    return float(returns.mean() / std), n, skewness, kurtosis


def probabilistic_sharpe_of(
    sharpe: float, n: int, skewness: float, kurtosis: float, benchmark: float = 0.0
) -> float:
    """P(true per-period Sharpe > ``benchmark``) for an estimate ``sharpe`` from ``n``
    periods with the given skewness and (non-excess) kurtosis."""
    if n < 2 or not math.isfinite(sharpe):
        return math.nan
    spread = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not spread > 0:
        return math.nan
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(spread))


def probabilistic_sharpe(returns: np.ndarray, benchmark: float = 0.0) -> float:
    """P(true per-period Sharpe > ``benchmark``) given the sample's length, skew and kurtosis."""
    sharpe, n, skewness, kurtosis = sharpe_moments(returns)
    return probabilistic_sharpe_of(sharpe, n, skewness, kurtosis, benchmark)


def deflated_sharpe(returns: np.ndarray, *, n_trials: int, trial_variance: float) -> float:
    """The probabilistic Sharpe ratio against the best Sharpe expected by luck among
    ``n_trials`` (per-period Sharpe ratios, not annualised)."""
    return probabilistic_sharpe(returns, expected_max_sharpe(n_trials, trial_variance))


@dataclass(frozen=True)
class OverfittingResult:
    """CSCV outcome: ``pbo`` (share of splits with logit <= 0), the logit of each split,
    and how many splits there were."""

    pbo: float
    logits: np.ndarray  # (splits,)
    n_blocks: int
    n_variants: int

    @property
    def n_splits(self) -> int:
        return len(self.logits)


@dataclass(frozen=True)
class BlockMoments:
    """Sums per block of the period, enough to rebuild the Sharpe ratio of any union of
    blocks: ``sums`` and ``squares`` (blocks, variants), ``counts`` (blocks,) days."""

    sums: np.ndarray
    squares: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, returns: np.ndarray, n_blocks: int) -> BlockMoments:
        """Cut (days, variants) returns into ``n_blocks`` contiguous blocks of (nearly)
        equal length, as np.array_split does."""
        edges = block_edges(returns.shape[0], n_blocks)
        return cls(
            sums=np.add.reduceat(returns, edges[:-1], axis=0),
            squares=np.add.reduceat(returns * returns, edges[:-1], axis=0),
            counts=np.diff(edges),
        )


def block_edges(n_days: int, n_blocks: int) -> np.ndarray:
    """Row edges (n_blocks + 1,) of contiguous blocks of nearly equal length."""
    if not 2 <= n_blocks <= n_days:
        raise ValueError(f"need 2 <= blocks <= days, got {n_blocks} blocks of {n_days} days")
    sizes = np.full(n_blocks, n_days // n_blocks)
    sizes[: n_days % n_blocks] += 1
    return np.r_[0, np.cumsum(sizes)]


def probability_of_backtest_overfitting(moments: BlockMoments) -> OverfittingResult:
    """CSCV over the blocks of ``moments`` with the Sharpe ratio as performance.

    For each split c (in-sample: S/2 blocks, out-of-sample: the rest), n* is the
    variant with the highest in-sample Sharpe; its out-of-sample rank r among the N
    variants (1 = worst) gives w = r / (N + 1) and the logit log(w / (1 - w)).
    Ties count as below (a strict rank); an undefined Sharpe ranks lowest. Logits come
    in the order of itertools.combinations(range(S), S / 2) (the in-sample blocks).

    A split and its complement swap in- and out-of-sample, so each pair of splits is
    computed once (the splits holding block 0 and their complements), in a compiled
    loop over splits that holds a few (variants,) arrays at a time.
    """
    n_blocks, n_variants = moments.sums.shape
    if n_blocks % 2 or n_blocks < 2:
        raise ValueError(f"CSCV needs an even number of blocks, got {n_blocks}")
    if n_variants < 2:
        raise ValueError("CSCV needs at least two variants")
    splits = list(combinations(range(n_blocks), n_blocks // 2))
    position = {split: i for i, split in enumerate(splits)}
    halves = [split for split in splits if split[0] == 0]
    complements = [tuple(b for b in range(n_blocks) if b not in split) for split in halves]
    # The compiled kernel loads numba: imported when an estimate is made, so the
    # service and the command line start without it.
    from research.fused import cscv_ranks

    rank_in_half, rank_in_complement = cscv_ranks(
        np.ascontiguousarray(moments.sums, dtype=float),
        np.ascontiguousarray(moments.squares, dtype=float),
        np.asarray(moments.counts, dtype=float),
        np.array(halves, dtype=np.int64),
    )
    logits = np.empty(len(splits))
    for names, rank in ((halves, rank_in_half), (complements, rank_in_complement)):
        relative = rank / (n_variants + 1.0)
        logits[[position[name] for name in names]] = np.log(relative / (1.0 - relative))
    return OverfittingResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        n_blocks=n_blocks,
        n_variants=n_variants,
    )
