"""Many variants of the rule engine at once, on (days, variants) arrays. Pure: no I/O.

The single backtest (backtest.runner.run_backtest of a ``rules`` strategy) computes,
for one rule set: each filter's reading and state (core.rules.compute_regimes),
votes, the regime code, hysteresis, days without input filled by the unavailable
policy (backtest.signals), the exposure, positions lagged by the execution lag, and
returns net of costs (backtest.engine.strategy_returns_kernel). Here the same steps
run on blocks of variants:

- each distinct filter reading (filter, window) is computed once (``readings``);
- states, votes, codes, hysteresis and exposures once per distinct signal;
- positions, returns and metrics once per variant (signal x lag x cost), on the
  common period, with backtest.metrics' kernels (they take (days, variants)).

A variant's figures equal the single backtest's with the same period
(tests/research/test_batch.py checks against a loop of single backtests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from backtest import metrics
from backtest.engine import strategy_returns_kernel
from core.enums import FilterName, UnavailablePolicy
from core.errors import ConfigError, DataValidationError
from core.rules import FILTER_DEFINITIONS, REGIME_ORDER, RuleSet
from research.fused import OBJECTIVE_ROW, fused_figures, held_codes, signal_exposures
from research.grid import Grid, Objective, SweepRequest
from research.overfitting import BlockMoments, block_edges

ReadingKey = tuple[str, int | None]

# Headline metrics of every variant, each from backtest.metrics.
METRICS = (
    "sharpe",
    "annualised_return",
    "annualised_volatility",
    "max_drawdown",
    "calmar",
    "sortino",
    "cumulative_return",
    "turnover_per_year",
)


def objective_values(objective: Objective, returns: np.ndarray) -> np.ndarray:
    """The objective per column of (days, variants) returns (higher is better)."""
    match objective:
        case Objective.SHARPE:
            return metrics.sharpe_ratio(returns)
        case Objective.CALMAR:
            return metrics.calmar_ratio(returns)
        case Objective.ANNUALISED_RETURN:
            return metrics.annualised_return(returns)
        case Objective.SORTINO:
            return metrics.sortino_ratio(returns)
        case Objective.MAX_DRAWDOWN:
            return metrics.max_drawdown(returns)
    raise ValueError(f"unknown objective {objective!r}")


def headline_metrics(returns: np.ndarray, turnover: np.ndarray) -> dict[str, np.ndarray]:
    """Every headline metric of (days, variants) returns, one (variants,) array each."""
    return {
        "sharpe": np.atleast_1d(metrics.sharpe_ratio(returns)),
        "annualised_return": np.atleast_1d(metrics.annualised_return(returns)),
        "annualised_volatility": np.atleast_1d(metrics.annualised_volatility(returns)),
        "max_drawdown": np.atleast_1d(metrics.max_drawdown(returns)),
        "calmar": np.atleast_1d(metrics.calmar_ratio(returns)),
        "sortino": np.atleast_1d(metrics.sortino_ratio(returns)),
        "cumulative_return": np.atleast_1d(metrics.cumulative_return(returns)),
        "turnover_per_year": np.atleast_1d(metrics.annualised_turnover(turnover)),
    }


@dataclass(frozen=True)
class Window:
    """One walk-forward step, in rows of the period: in-sample [0, in_stop), out of
    sample [in_stop, out_stop)."""

    in_stop: int
    out_stop: int


@dataclass(frozen=True)
class SweepData:
    """What every chunk of variants reads (sent once to each worker).

    ``readings``: each distinct filter reading on the calendar; ``asset_returns``,
    ``cash_rate``: (calendar days,); ``first``..``last``: the period's calendar rows."""

    calendar: pd.DatetimeIndex
    readings: dict[ReadingKey, np.ndarray]
    asset_returns: np.ndarray
    cash_rate: np.ndarray | None
    first: int
    last: int
    windows: tuple[Window, ...]
    pbo_blocks: int
    objective: Objective
    cash_yield: bool
    financing: bool

    @property
    def n_days(self) -> int:
        return self.last - self.first + 1

    @property
    def period(self) -> slice:
        return slice(self.first, self.last + 1)


def reading_key(name: FilterName, window: int | None) -> ReadingKey:
    return (name.value, window)


def base_rule_set(grid: Grid) -> RuleSet:
    return grid.base.rule_set()


def signal_rule_set(grid: Grid, base: RuleSet, signal: int) -> RuleSet:
    """The rule set of distinct signal ``signal`` (the core dataclass, built directly)."""
    picked = grid.variant(signal * len(grid.lag) * len(grid.cost_bps)).picked
    changes: dict[str, object] = {}
    for name in FilterName:
        rule = getattr(base, name.value)
        window, threshold = picked.get(f"{name.value}.window"), picked[f"{name.value}.threshold"]
        if window is not None:
            rule = replace(rule, window=window)
        if threshold is not None:
            rule = replace(rule, threshold=threshold)
        changes[name.value] = rule
    if picked["table"] is not None:
        changes["table"] = replace(base.table, **picked["table"]._changes())
    if picked["hysteresis"] is not None:
        changes["hysteresis"] = replace(base.hysteresis, **picked["hysteresis"]._changes())
    return replace(base, **changes)


def readings_of(features: pd.DataFrame, rule_sets: list[RuleSet]) -> dict[ReadingKey, np.ndarray]:
    """Each distinct filter reading of the rule sets, computed once (core's definition)."""
    out: dict[ReadingKey, np.ndarray] = {}
    for rule_set in rule_sets:
        for name, rule in rule_set.enabled().items():
            key = reading_key(name, rule.window)
            if key not in out:
                value = FILTER_DEFINITIONS[name].value(features, rule.window)
                out[key] = value.to_numpy(dtype=float)
    return out


def grid_readings(features: pd.DataFrame, grid: Grid) -> dict[ReadingKey, np.ndarray]:
    """Every reading any variant of the grid needs (windows are the only reading axes)."""
    base = base_rule_set(grid)
    rule_sets = []
    for trend_window in grid.trend.windows or [base.trend.window]:
        for credit_window in grid.credit.windows or [base.credit.window]:
            rule_sets.append(
                replace(
                    base,
                    trend=replace(base.trend, window=trend_window),
                    credit=replace(base.credit, window=credit_window),
                )
            )
    return readings_of(features, rule_sets)


@dataclass(frozen=True)
class SignalBlock:
    """Exposure decided at each close (signals, calendar days), and per signal the first
    calendar row with any filter input (len(calendar) when never)."""

    exposure: np.ndarray
    first_informed: np.ndarray


def signal_block(rule_sets: list[RuleSet], readings: dict[ReadingKey, np.ndarray]) -> SignalBlock:
    """Exposures of many rule sets at once, as backtest.signals builds them one by one
    (research.fused.signal_exposures: one compiled pass per rule set)."""
    keys = list(readings)
    row_of = {key: i for i, key in enumerate(keys)}
    names = list(FilterName)
    rules = [[rs.rules()[name] for name in names] for rs in rule_sets]
    exposure, first_informed = signal_exposures(
        np.vstack([readings[key] for key in keys]),
        np.array(
            [
                [
                    row_of[reading_key(name, rule.window)] if rule.enabled else -1
                    for name, rule in zip(names, row, strict=True)
                ]
                for row in rules
            ],
            dtype=np.int64,
        ).reshape(len(rule_sets), len(names)),
        np.array([[rule.threshold for rule in row] for row in rules], dtype=float).reshape(
            len(rule_sets), len(names)
        ),
        np.array([FILTER_DEFINITIONS[name].fires_below for name in names]),
        np.array([rs.unavailable is UnavailablePolicy.FIRING for rs in rule_sets]),
        np.array([rs.table.caution_votes for rs in rule_sets], dtype=np.int64),
        np.array([rs.table.risk_off_votes for rs in rule_sets], dtype=np.int64),
        np.array([rs.hysteresis.confirm_days for rs in rule_sets], dtype=np.int64),
        np.array([rs.hysteresis.min_dwell_days for rs in rule_sets], dtype=np.int64),
        np.array(
            [[rs.table.exposure(regime) for regime in REGIME_ORDER] for rs in rule_sets],
            dtype=float,
        ).reshape(len(rule_sets), len(REGIME_ORDER)),
    )
    return SignalBlock(exposure=exposure, first_informed=first_informed)


def hysteresis_block(codes: np.ndarray, confirm: np.ndarray, dwell: np.ndarray) -> np.ndarray:
    """core.rules.apply_hysteresis on each column of (days, k) codes (0, 1, 2 or NaN), with
    per-column ``confirm`` and ``dwell`` (k,); NaN stays NaN."""
    out = np.empty_like(codes, dtype=float)
    for j in range(codes.shape[1]):
        column = np.empty(codes.shape[0])
        held_codes(
            np.ascontiguousarray(codes[:, j], dtype=float), int(confirm[j]), int(dwell[j]), column
        )
        out[:, j] = column
    return out


def walk_forward_windows(
    years: np.ndarray, first_in_sample_years: int, step_years: int
) -> tuple[Window, ...]:
    """Expanding windows over the period's days (``years``: each day's calendar year):
    in-sample from the start to the end of year k, out of sample the next ``step_years``
    years. Raises ConfigError when the period is too short for one window."""
    distinct = np.unique(years)
    if len(distinct) <= first_in_sample_years:
        raise ConfigError(
            f"walk_forward.first_in_sample_years: the period spans {len(distinct)} calendar "
            f"year(s); at least {first_in_sample_years + 1} are needed for one out-of-sample year"
        )
    windows = []
    for i in range(first_in_sample_years, len(distinct), step_years):
        in_stop = int(np.searchsorted(years, distinct[i], "left"))
        last_year = distinct[min(i + step_years, len(distinct)) - 1]
        out_stop = int(np.searchsorted(years, last_year, "right"))
        windows.append(Window(in_stop, out_stop))
    return tuple(windows)


def prepare(
    request: SweepRequest,
    features: pd.DataFrame,
    asset_returns: np.ndarray,
    cash_rate: np.ndarray | None = None,
) -> SweepData:
    """Readings computed once, and the period every variant shares: from ``request.start``
    or the first day every variant holds a position decided on real input (its signal's
    first day with filter input, plus its lag), to ``request.end`` or the last day."""
    grid = request.grid
    calendar = pd.DatetimeIndex(features.index)
    readings = grid_readings(features, grid)
    base = base_rule_set(grid)
    # First informed row of each (trend window, credit window) pair: thresholds, tables
    # and hysteresis do not change which days have input.
    first_informed = 0
    for trend_window in grid.trend.windows or [base.trend.window]:
        for credit_window in grid.credit.windows or [base.credit.window]:
            rule_set = replace(
                base,
                trend=replace(base.trend, window=trend_window),
                credit=replace(base.credit, window=credit_window),
            )
            has_input = np.zeros(len(calendar), dtype=bool)
            for name, rule in rule_set.enabled().items():
                has_input |= ~np.isnan(readings[reading_key(name, rule.window)])
            row = int(has_input.argmax()) if has_input.any() else len(calendar)
            first_informed = max(first_informed, row)
    max_lag = max(grid.lag)
    if request.start is None:
        first = first_informed + max_lag
    else:
        first = max(int(calendar.searchsorted(pd.Timestamp(request.start), "left")), max_lag, 1)
    last = len(calendar) - 1
    if request.end is not None:
        last = int(calendar.searchsorted(pd.Timestamp(request.end), "right")) - 1
    if first > last:
        raise ConfigError(
            "start: no day in the period on which every variant holds a position "
            f"(positions from row {first}, data to {calendar[-1].date()})"
        )
    period = slice(first, last + 1)
    bad = ~np.isfinite(asset_returns[period])
    if bad.any():
        day = calendar[first + int(bad.argmax())].date()
        raise DataValidationError(f"missing on {int(bad.sum())} day(s), first {day}", field="asset")
    if (request.cash_yield or request.financing) and (
        cash_rate is None or not np.isfinite(cash_rate[period]).all()
    ):
        raise DataValidationError(
            "cash yield and financing need a daily cash rate over the whole period",
            field="cash_yield",
        )
    n_days = last - first + 1
    if request.pbo_blocks > n_days:
        raise ConfigError(f"pbo_blocks: {request.pbo_blocks} blocks of a {n_days}-day period")
    windows = walk_forward_windows(
        calendar.year.to_numpy()[period],
        request.walk_forward.first_in_sample_years,
        request.walk_forward.step_years,
    )
    return SweepData(
        calendar=calendar,
        readings=readings,
        asset_returns=np.asarray(asset_returns, dtype=float),
        cash_rate=None if cash_rate is None else np.asarray(cash_rate, dtype=float),
        first=first,
        last=last,
        windows=windows,
        pbo_blocks=request.pbo_blocks,
        objective=request.objective,
        cash_yield=request.cash_yield,
        financing=request.financing,
    )


@dataclass(frozen=True)
class ChunkResult:
    """The figures of a set of variants (``indices``), one column per variant."""

    indices: np.ndarray  # (v,)
    metrics: dict[str, np.ndarray]  # name -> (v,)
    in_sample: np.ndarray  # (windows, v): the objective over each window's in-sample rows
    moments: BlockMoments  # (blocks, v) sums for the overfitting estimate
    returns: np.ndarray | None = None  # (period days, v) when asked for


@dataclass(frozen=True)
class VariantLayout:
    """Where each variant of a chunk reads its positions: its signal's column of the
    chunk's exposure block, its execution lag and its cost rate (per unit traded)."""

    block: SignalBlock
    column: np.ndarray  # (v,) column of block.exposure
    lag: np.ndarray  # (v,)
    cost_rate: np.ndarray  # (v,)


def variant_layout(grid: Grid, readings: dict[ReadingKey, np.ndarray], indices: np.ndarray):  # type: ignore[no-untyped-def]
    """The exposures of the distinct signals of ``indices``, computed once, and each
    variant's (signal column, lag, cost)."""
    per_signal = len(grid.lag) * len(grid.cost_bps)
    signals, inverse = np.unique(indices // per_signal, return_inverse=True)
    base = base_rule_set(grid)
    block = signal_block([signal_rule_set(grid, base, int(s)) for s in signals], readings)
    return VariantLayout(
        block=block,
        column=inverse.astype(np.int64),
        lag=np.array(grid.lag, dtype=np.int64)[(indices // len(grid.cost_bps)) % len(grid.lag)],
        cost_rate=np.array(grid.cost_bps, dtype=float)[indices % len(grid.cost_bps)] / 10_000.0,
    )


def _cash_rate(data: SweepData) -> np.ndarray:
    return np.zeros(data.n_days) if data.cash_rate is None else data.cash_rate[data.period]


@dataclass(frozen=True)
class VariantPositions:
    held: np.ndarray  # (period days, variants)
    cost_rate: np.ndarray  # (variants,) cost per unit of traded exposure


def variant_positions(data: SweepData, grid: Grid, indices: np.ndarray) -> VariantPositions:
    """Exposure held over each day of the period, (period days, variants), of ``indices``,
    and each variant's cost rate."""
    layout = variant_layout(grid, data.readings, indices)
    rows = np.arange(data.first, data.last + 1)[:, None] - layout.lag[None, :]
    return VariantPositions(layout.block.exposure[layout.column[None, :], rows], layout.cost_rate)


def variant_returns(
    data: SweepData, grid: Grid, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Daily returns net of costs and turnover, (period days, variants), of ``indices``."""
    return returns_of(data, variant_positions(data, grid, indices))


def returns_of(data: SweepData, positions: VariantPositions) -> tuple[np.ndarray, np.ndarray]:
    """Daily returns net of costs and turnover of held positions (backtest.engine's kernel)."""
    asset = data.asset_returns[data.period]
    rate = _cash_rate(data)
    returns = np.empty_like(positions.held)
    turnover = np.empty_like(positions.held)
    for cost_rate in np.unique(positions.cost_rate):
        columns = np.flatnonzero(positions.cost_rate == cost_rate)
        returns[:, columns], turnover[:, columns] = strategy_returns_kernel(
            positions.held[:, columns], asset, rate, cost_rate, data.cash_yield, data.financing
        )
    return returns, turnover


def evaluate_variants(
    data: SweepData, grid: Grid, indices: np.ndarray, keep_returns: bool = False
) -> ChunkResult:
    """Every figure the sweep keeps for the variants ``indices`` (one Dask task).

    Without ``keep_returns`` the figures come from research.fused's one compiled pass
    per variant; with it, from the (days, variants) returns, which are kept."""
    indices = np.asarray(indices, dtype=np.int64)
    if keep_returns:
        return _evaluate_from_returns(data, grid, indices)
    layout = variant_layout(grid, data.readings, indices)
    edges = block_edges(data.n_days, data.pbo_blocks)
    figures, in_sample, sums, squares = fused_figures(
        layout.block.exposure,
        layout.column,
        layout.lag,
        layout.cost_rate,
        data.asset_returns[data.period],
        _cash_rate(data),
        data.first,
        data.cash_yield,
        data.financing,
        np.array([window.in_stop for window in data.windows], dtype=np.int64),
        OBJECTIVE_ROW[data.objective],
        edges.astype(np.int64),
    )
    return ChunkResult(
        indices=indices,
        metrics=dict(zip(METRICS, figures, strict=True)),
        in_sample=in_sample,
        moments=BlockMoments(sums=sums, squares=squares, counts=np.diff(edges)),
    )


def _evaluate_from_returns(data: SweepData, grid: Grid, indices: np.ndarray) -> ChunkResult:
    returns, turnover = variant_returns(data, grid, indices)
    in_sample = np.vstack(
        [
            np.atleast_1d(objective_values(data.objective, returns[: window.in_stop]))
            for window in data.windows
        ]
    )
    return ChunkResult(
        indices=indices,
        metrics=headline_metrics(returns, turnover),
        in_sample=in_sample,
        moments=BlockMoments.of(returns, data.pbo_blocks),
        returns=returns,
    )
