"""Every figure a sweep keeps for a variant, in one compiled pass over its days.

research.batch builds, for a chunk of variants, the exposure each distinct signal
decides at each close. From there a variant is (signal column, lag, cost): this
kernel walks its days once and computes, without storing any (days, variants)
array, the same numbers as backtest.engine.strategy_returns_kernel followed by
backtest.metrics' kernels (the conventions are theirs; tests/research check the
two agree to 1e-12):

- position of day i: the exposure decided ``lag`` rows earlier; turnover |change|,
  the position before the first day being 0; the return net of costs, plus cash
  yield on the uninvested part and minus financing of leverage when asked for;
- wealth, running peak (the starting 1.0 counts) and the deepest drawdown;
- mean and sample variance (Welford's running form, so that every walk-forward
  window's in-sample prefix reads its own figures on the way), downside deviation;
- per block of the period, the sums of r and r^2 for the overfitting estimate.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from backtest.metrics import TRADING_DAYS
from research.grid import Objective

# Row order of the kernel's metric output (research.batch.METRICS names them).
SHARPE, ANNUAL, VOLATILITY, MAX_DRAWDOWN, CALMAR, SORTINO, CUMULATIVE, TURNOVER = range(8)
OBJECTIVE_ROW = {
    Objective.SHARPE: SHARPE,
    Objective.CALMAR: CALMAR,
    Objective.ANNUALISED_RETURN: ANNUAL,
    Objective.SORTINO: SORTINO,
    Objective.MAX_DRAWDOWN: MAX_DRAWDOWN,
}


@numba.njit(cache=True, nogil=True)
def _ratio(numerator: float, denominator: float) -> float:
    # backtest.metrics._ratio: defined only where the denominator is positive.
    return numerator / denominator if denominator > 0.0 else math.nan


@numba.njit(cache=True, nogil=True)
def _figures(
    n: int, total: float, m2: float, downside: float, wealth: float, worst: float, out: np.ndarray
) -> None:
    """The headline figures of the first ``n`` days from their running sums (out: (8,))."""
    root = math.sqrt(TRADING_DAYS)
    mean = total / n if n > 0 else math.nan
    std = math.sqrt(m2 / (n - 1)) if n > 1 else math.nan
    growth = (wealth - 1.0) + 1.0  # 1 + cumulative return, as metrics computes it
    annual = growth ** (TRADING_DAYS / n) - 1.0 if n > 0 and growth > 0.0 else math.nan
    out[SHARPE] = _ratio(mean * root, std)
    out[ANNUAL] = annual
    out[VOLATILITY] = std * root
    out[MAX_DRAWDOWN] = worst if n > 0 else math.nan
    out[CALMAR] = _ratio(annual, -worst if worst < 0.0 else math.nan)
    out[SORTINO] = _ratio(mean * root, math.sqrt(downside / n) if n > 0 else math.nan)
    out[CUMULATIVE] = wealth - 1.0


@numba.njit(cache=True, nogil=True)
def fused_figures(
    exposure_by_signal: np.ndarray,  # (signals, calendar days), each row contiguous
    column: np.ndarray,  # (v,) int64: the variant's row of exposure_by_signal
    lag: np.ndarray,  # (v,) int64
    cost_rate: np.ndarray,  # (v,) cost per unit of traded exposure
    asset: np.ndarray,  # (period days,)
    rate: np.ndarray,  # (period days,) daily cash rate (zeros when not used)
    first: int,  # calendar row of the period's first day
    cash_yield: bool,
    financing: bool,
    in_stops: np.ndarray,  # (windows,) int64, increasing: each in-sample prefix's end
    objective_row: int,
    edges: np.ndarray,  # (blocks + 1,) int64 row edges of the overfitting blocks
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Metrics (8, v), in-sample objectives (windows, v), block sums and squares
    (blocks, v) of every variant."""
    n_days = asset.shape[0]
    n_variants = column.shape[0]
    n_blocks = edges.shape[0] - 1
    metrics = np.empty((8, n_variants))
    in_sample = np.empty((in_stops.shape[0], n_variants))
    sums = np.zeros((n_blocks, n_variants))
    squares = np.zeros((n_blocks, n_variants))
    scratch = np.empty(8)
    for j in range(n_variants):
        exposure = exposure_by_signal[column[j]]
        start = first - lag[j]
        cost = cost_rate[j]
        previous = 0.0
        total = 0.0
        running_mean = 0.0
        m2 = 0.0
        downside = 0.0
        wealth = 1.0
        peak = 1.0
        worst = 0.0
        traded = 0.0
        window = 0
        block = 0
        for i in range(n_days):
            while window < in_stops.shape[0] and in_stops[window] == i:
                _figures(i, total, m2, downside, wealth, worst, scratch)
                in_sample[window, j] = scratch[objective_row]
                window += 1
            position = exposure[start + i]
            turnover = abs(position - previous)
            previous = position
            r = position * asset[i] - cost * turnover
            if cash_yield:
                r += max(1.0 - position, 0.0) * rate[i]
            if financing:
                r -= max(position - 1.0, 0.0) * rate[i]
            traded += turnover
            total += r
            delta = r - running_mean
            running_mean += delta / (i + 1)
            m2 += delta * (r - running_mean)
            low = min(r, 0.0)
            downside += low * low
            wealth *= 1.0 + r
            peak = max(peak, wealth)
            drawdown = wealth / peak - 1.0
            worst = min(worst, drawdown)
            while block < n_blocks and i >= edges[block + 1]:
                block += 1
            sums[block, j] += r
            squares[block, j] += r * r
        while window < in_stops.shape[0]:
            _figures(n_days, total, m2, downside, wealth, worst, scratch)
            in_sample[window, j] = scratch[objective_row]
            window += 1
        _figures(n_days, total, m2, downside, wealth, worst, scratch)
        metrics[:7, j] = scratch[:7]
        metrics[TURNOVER, j] = traded * TRADING_DAYS / n_days if n_days > 0 else math.nan
    return metrics, in_sample, sums, squares


@numba.njit(cache=True, nogil=True)
def held_codes(codes: np.ndarray, confirm: int, dwell: int, out: np.ndarray) -> None:
    """core.rules.apply_hysteresis on one series of codes (0, 1, 2 or NaN) into ``out``.

    Confirmation: a new regime takes effect after ``confirm`` days of it, the first
    run of known codes at once (nothing to confirm against); a NaN day breaks a run.
    Dwell: once in effect, a regime is held at least ``dwell`` days. NaN stays NaN."""
    held = math.nan
    run_length = 0
    seen_known = False
    in_first_run = False
    for i in range(codes.shape[0]):
        code = codes[i]
        if math.isnan(code):
            out[i] = math.nan
            in_first_run = False
            run_length = 0
            continue
        if run_length > 0 and code == codes[i - 1]:
            run_length += 1
        else:
            run_length = 1
            in_first_run = not seen_known
            seen_known = True
        if confirm <= 1 or run_length >= confirm or in_first_run:
            held = code
        out[i] = held
    if dwell <= 1:
        return
    current = math.nan
    held_since = -(10**9)
    for i in range(codes.shape[0]):
        code = out[i]
        if math.isnan(code):
            continue
        if math.isnan(current) or code == current:
            if math.isnan(current):
                held_since = i
            current = code
        elif i - held_since >= dwell:
            current, held_since = code, i
        out[i] = current


@numba.njit(cache=True, nogil=True)
def signal_exposures(
    readings: np.ndarray,  # (distinct readings, calendar days), each row contiguous
    reading_row: np.ndarray,  # (signals, filters) int64: row of readings, -1 when disabled
    threshold: np.ndarray,  # (signals, filters)
    fires_below: np.ndarray,  # (filters,) bool: a filter fires below its threshold
    missing_votes: np.ndarray,  # (signals,) bool: a filter without input counts as firing
    caution_votes: np.ndarray,  # (signals,) int64
    risk_off_votes: np.ndarray,  # (signals,) int64
    confirm: np.ndarray,  # (signals,) int64
    dwell: np.ndarray,  # (signals,) int64
    exposure_of_code: np.ndarray,  # (signals, regimes)
) -> tuple[np.ndarray, np.ndarray]:
    """Exposure decided at each close (signals, calendar days) and each signal's first
    row with any filter input (the number of days when never), as backtest.signals
    builds them for one rule set: votes, regime code, hysteresis, and days without
    input taking the regime the unavailable policy's votes give."""
    n_signals, n_filters = reading_row.shape
    n_days = readings.shape[1]
    exposure = np.empty((n_signals, n_days))
    first_informed = np.full(n_signals, n_days, dtype=np.int64)
    policy = np.empty(n_days)
    codes = np.empty(n_days)
    held = np.empty(n_days)
    for s in range(n_signals):
        for t in range(n_days):
            votes = 0
            available = 0
            for f in range(n_filters):
                row = reading_row[s, f]
                if row < 0:
                    continue
                value = readings[row, t]
                if math.isnan(value):
                    votes += missing_votes[s]
                else:
                    available += 1
                    if fires_below[f]:
                        votes += value < threshold[s, f]
                    else:
                        votes += value > threshold[s, f]
            code = (
                2.0 if votes >= risk_off_votes[s] else (1.0 if votes >= caution_votes[s] else 0.0)
            )
            policy[t] = code
            codes[t] = code if available > 0 else math.nan
            if available > 0 and first_informed[s] == n_days:
                first_informed[s] = t
        held_codes(codes, confirm[s], dwell[s], held)
        for t in range(n_days):
            code = policy[t] if math.isnan(held[t]) else held[t]
            exposure[s, t] = exposure_of_code[s, int(code)]
    return exposure, first_informed


# --- CSCV (research.overfitting.probability_of_backtest_overfitting) ---------------


@numba.njit(cache=True, nogil=True)
def _sharpe_order_into(total: np.ndarray, squares: np.ndarray, n: float, out: np.ndarray) -> None:
    """A positive multiple of each variant's Sharpe ratio (ddof=1) over one side of a
    split, -inf where the variance is not positive. The variants share the day count n:
    mean / std = sqrt((n - 1) / n) * S / sqrt(n Q - S^2) with S, Q the sums of r and r^2,
    so the order, all CSCV needs, is that of S / sqrt(n Q - S^2)."""
    for v in range(total.shape[0]):
        spread = n * squares[v] - total[v] * total[v]
        out[v] = total[v] / math.sqrt(spread) if spread > 0.0 else -math.inf


@numba.njit(cache=True, parallel=True)
def cscv_ranks(
    sums: np.ndarray, squares: np.ndarray, counts: np.ndarray, halves: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each split (in-sample blocks ``halves[h]``) and its complement: the strict
    out-of-sample rank (1 = worst) of the variant best in-sample."""
    n_blocks, n_variants = sums.shape
    total_sums = np.zeros(n_variants)
    total_squares = np.zeros(n_variants)
    for b in range(n_blocks):
        total_sums += sums[b]
        total_squares += squares[b]
    n_total = counts.sum()
    rank_half = np.empty(halves.shape[0])
    rank_complement = np.empty(halves.shape[0])
    for h in numba.prange(halves.shape[0]):
        inside_sums = np.zeros(n_variants)
        inside_squares = np.zeros(n_variants)
        n_inside = 0.0
        for b in halves[h]:
            inside_sums += sums[b]
            inside_squares += squares[b]
            n_inside += counts[b]
        inside = np.empty(n_variants)
        outside = np.empty(n_variants)
        _sharpe_order_into(inside_sums, inside_squares, n_inside, inside)
        _sharpe_order_into(
            total_sums - inside_sums, total_squares - inside_squares, n_total - n_inside, outside
        )
        best_inside, best_outside = np.argmax(inside), np.argmax(outside)
        rank_half[h] = np.count_nonzero(outside < outside[best_inside]) + 1
        rank_complement[h] = np.count_nonzero(inside < inside[best_outside]) + 1
    return rank_half, rank_complement
