"""Run a BacktestRequest on in-memory inputs and build its BacktestResult. Pure: no I/O.

    inputs (features, asset closes, cash rate, model outputs)
      -> one StrategySignal per config (backtest.signals)
      -> engine.simulate on the common period (backtest.engine)
      -> metrics per strategy (backtest.metrics) -> BacktestResult (backtest.schemas)

The period starts on ``request.start`` or, by default, on the first day on
which every strategy holds a position resting on real input, and ends on
``request.end`` or the last day of data; see backtest.engine for alignment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtest import metrics
from backtest.engine import CostModel, Simulation, simulate
from backtest.rates import DFF
from backtest.schemas import (
    BacktestRequest,
    BacktestResult,
    Conventions,
    EquityCurves,
    EquitySampling,
    FilterAvailability,
    Period,
    StrategyMetrics,
    StrategyResult,
    TimeInvested,
)
from backtest.signals import SignalInputs, StrategySignal, build_signal
from backtest.strategies import StrategyConfig
from core.enums import FilterName, FilterState, UnavailablePolicy
from core.errors import DataValidationError, NoDataError
from core.features import SPY, simple_returns


@dataclass(frozen=True)
class BacktestInputs:
    """Everything a backtest reads, already loaded.

    ``features``: the feature table (core.features.FEATURE_COLUMNS) indexed by
    trading day; its index is the calendar. ``asset_close``: adjusted closes of
    the traded asset. ``cash_rate``: daily rate earned over each day
    (backtest.rates), optional. ``model_outputs``: daily ``regime`` and
    ``p_distressed`` of the classifier, optional.
    """

    features: pd.DataFrame
    asset_close: pd.Series
    cash_rate: pd.Series | None = None
    cash_rate_source: str | None = None
    model_outputs: pd.DataFrame | None = None
    asset: str = SPY
    # Signals built from these inputs, per strategy configuration: a signal depends on
    # nothing else (not on the period, lag or costs), so inputs kept between requests
    # build each strategy's signal once.
    signals: dict[str, StrategySignal] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class BacktestRun:
    """The result model plus the daily frames behind it (for plots and tests)."""

    result: BacktestResult
    simulation: Simulation
    signals: dict[str, StrategySignal]
    held_regimes: dict[str, pd.Series]  # regime code held over each period day (signal labels)
    asset_close: pd.Series  # over the period


def run_backtest(request: BacktestRequest, inputs: BacktestInputs) -> BacktestRun:
    """Backtest every strategy of ``request`` on the same period."""
    calendar = _calendar(inputs.features)
    asset_close = inputs.asset_close.astype(float).reindex(calendar)
    asset_returns = simple_returns(asset_close, 1)
    signal_inputs = SignalInputs(inputs.features, asset_returns, inputs.model_outputs)
    signals = {
        config.label: _signal(config, signal_inputs, inputs.signals)
        for config in request.strategies
    }
    exposures = pd.DataFrame({name: signal.exposure for name, signal in signals.items()})
    start = _timestamp(request.start) or _default_start(signals, request.lag)
    simulation = simulate(
        exposures,
        asset_returns,
        lag=request.lag,
        costs=CostModel(request.cost_bps, request.cash_yield, request.financing),
        cash_rate=inputs.cash_rate.reindex(calendar) if inputs.cash_rate is not None else None,
        start=start,
        end=_timestamp(request.end),
    )
    span = simulation.returns.index
    held_regimes = {
        name: _held(signal.regime_code, request.lag, span)
        for name, signal in signals.items()
        if signal.regime_code is not None
    }
    strategies = [
        _strategy_result(config, signals[config.label], simulation, held_regimes, request.lag)
        for config in request.strategies
    ]
    result = BacktestResult(
        period=Period(
            start=span[0].date(),
            end=span[-1].date(),
            days=len(span),
            requested_start=request.start,
            requested_end=request.end,
        ),
        conventions=_conventions(request, inputs),
        strategies=strategies,
        equity=_equity_curves(simulation.equity, request.equity_sampling),
        notes=_notes(strategies, signals),
    )
    return BacktestRun(result, simulation, signals, held_regimes, asset_close.reindex(span))


def _signal(
    config: StrategyConfig, inputs: SignalInputs, built: dict[str, StrategySignal]
) -> StrategySignal:
    key = config.model_dump_json()
    signal = built.get(key)
    if signal is None:
        if len(built) >= 64:  # configurations are few in practice; bound anyway
            built.clear()
        signal = built[key] = build_signal(config, inputs)
    return signal


def _calendar(features: pd.DataFrame) -> pd.DatetimeIndex:
    index = features.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataValidationError(
            "must be indexed by trading day (DatetimeIndex)", field="features"
        )
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise DataValidationError("dates must be increasing and unique", field="features")
    if len(index) < 2:
        raise NoDataError("the feature table holds fewer than two days: nothing to backtest")
    return index


def _timestamp(day: object) -> pd.Timestamp | None:
    return None if day is None else pd.Timestamp(day)


def _default_start(signals: dict[str, StrategySignal], lag: int) -> pd.Timestamp | None:
    """First day on which every strategy holds a position decided on real input."""
    informed = pd.DataFrame(
        {name: s.exposure.where(~s.no_input) for name, s in signals.items()}
    ).shift(lag)
    complete = informed.notna().all(axis=1)
    return complete.idxmax() if complete.any() else None


def _held(daily: pd.Series, lag: int, span: pd.DatetimeIndex) -> pd.Series:
    """Value decided ``lag`` days earlier, over the period (held over like positions).

    ``span`` is a contiguous run of ``daily``'s calendar."""
    first = daily.index.get_loc(span[0]) - lag
    values = daily.to_numpy(dtype=float)
    if first >= 0:
        values = values[first : first + len(span)]
    else:  # the period starts before ``lag`` days of history: nothing held yet
        values = np.r_[np.full(-first, np.nan), values[: len(span) + first]]
    held = pd.Series(values, index=span)
    return held.ffill() if np.isnan(values).any() else held


def _switches_per_year(regime: pd.Series) -> dict[int, int]:
    """Regime changes per calendar year over the days with a regime, as
    core.rules.switches_per_year counts them, on arrays."""
    values = regime.to_numpy(dtype=float)
    known = ~np.isnan(values)
    values, years = values[known], regime.index.year.to_numpy()[known]
    if values.size == 0:
        return {}
    changed = np.r_[False, values[1:] != values[:-1]].astype(np.int64)
    first_of_year = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    counts = np.add.reduceat(changed, first_of_year)
    return {int(year): int(n) for year, n in zip(years[first_of_year], counts, strict=True)}


def _strategy_result(
    config: StrategyConfig,
    signal: StrategySignal,
    simulation: Simulation,
    held_regimes: dict[str, pd.Series],
    lag: int,
) -> StrategyResult:
    name = config.label
    span = simulation.returns.index
    regime = held_regimes.get(name)
    return StrategyResult(
        name=name,
        kind=config.kind,
        config=config,
        metrics=strategy_metrics(
            simulation.returns[name],
            simulation.positions[name],
            simulation.turnover[name],
            simulation.cash_rate,
        ),
        regime_distribution=None
        if regime is None
        else metrics.regime_distribution(regime.to_numpy(dtype=float), signal.regime_labels),
        yearly_returns={
            int(year): float(value)
            for year, value in metrics.yearly_returns(simulation.returns[name]).items()
        },
        switches_per_year=None if regime is None else _switches_per_year(regime),
        filters=_filter_availability(signal, lag, span),
        days_without_input=int(_held(signal.no_input, lag, span).sum()),
        held_over_days=int(simulation.held_over_days[name]),
    )


def strategy_metrics(
    returns: pd.Series,
    positions: pd.Series,
    turnover: pd.Series,
    cash_rate: pd.Series | None = None,
) -> StrategyMetrics:
    """Every metric of one strategy over its period (all Series on the same days)."""
    r = returns.to_numpy(dtype=float)
    held = positions.to_numpy(dtype=float)
    traded = turnover.to_numpy(dtype=float)
    full, partial, none = metrics.time_invested(held)
    excess = None
    if cash_rate is not None and cash_rate.notna().all():
        excess = metrics.sharpe_ratio(r, cash_rate.to_numpy(dtype=float))
    return StrategyMetrics(
        cumulative_return=_finite(metrics.cumulative_return(r)),
        annualised_return=_finite(metrics.annualised_return(r)),
        annualised_volatility=_finite(metrics.annualised_volatility(r)),
        daily_mean=_finite(float(np.mean(r)) if len(r) else math.nan),
        daily_std=_finite(metrics.daily_std(r)),
        sharpe=_finite(metrics.sharpe_ratio(r)),
        sharpe_excess=_finite(excess),
        sortino=_finite(metrics.sortino_ratio(r)),
        max_drawdown=_finite(metrics.max_drawdown(r)),
        max_drawdown_days=metrics.max_drawdown_duration(r),
        longest_drawdown_days=metrics.longest_drawdown_duration(r),
        calmar=_finite(metrics.calmar_ratio(r)),
        time_invested=TimeInvested(
            full=_finite(full),
            partial=_finite(partial),
            none=_finite(none),
            average_exposure=_finite(float(np.mean(held)) if len(held) else math.nan),
        ),
        turnover_per_year=_finite(metrics.annualised_turnover(traded)),
        trades=metrics.trade_count(traded),
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _filter_availability(
    signal: StrategySignal, lag: int, span: pd.DatetimeIndex
) -> list[FilterAvailability] | None:
    if signal.rule_set is None or signal.filters is None:
        return None
    rows = []
    for name in signal.rule_set.enabled():
        states = signal.filters[f"{name}_state"].to_numpy()
        has_input = pd.Series(states != FilterState.UNAVAILABLE.value, signal.filters.index)
        held = _held(has_input, lag, span)
        rows.append(
            FilterAvailability(
                filter=FilterName(name),
                first_available=has_input.idxmax().date() if has_input.any() else None,
                share_of_period=float(held.mean()),
            )
        )
    return rows


def _equity_curves(equity: pd.DataFrame, sampling: EquitySampling) -> EquityCurves | None:
    if sampling is EquitySampling.NONE:
        return None
    sampled = equity
    if sampling is not EquitySampling.DAILY:
        days = equity.index
        if sampling is EquitySampling.WEEKLY:
            # Days since 1970-01-05 (a Monday) // 7 numbers the Monday-to-Sunday weeks.
            group = (days - pd.Timestamp("1970-01-05")).days.to_numpy() // 7
        else:
            group = days.year.to_numpy() * 12 + days.month.to_numpy()
        last_of_group = np.r_[group[1:] != group[:-1], True]
        sampled = equity[last_of_group]
    return EquityCurves(
        sampling=sampling,
        dates=sampled.index.date.tolist(),
        values={str(name): sampled[name].round(8).tolist() for name in sampled.columns},
    )


def _conventions(request: BacktestRequest, inputs: BacktestInputs) -> Conventions:
    if inputs.cash_rate is None:
        cash = "none supplied: cash earns 0, leverage costs 0, no excess Sharpe"
    else:
        cash = f"{inputs.cash_rate_source or 'supplied series'}: " + (
            "annual percent known at close t-1 / 100 / 252, earned on day t"
            if inputs.cash_rate_source == DFF
            else "daily rate earned over day t"
        )
    return Conventions(
        asset=inputs.asset,
        execution_lag_days=request.lag,
        timing=f"exposure decided at the close of day t is held over day t+{request.lag} "
        f"(close {_day_offset(request.lag - 1)} to close t+{request.lag})",
        returns=f"simple daily returns of {inputs.asset}'s adjusted close (total return)",
        cost_bps=request.cost_bps,
        costs="cost_bps / 10000 * |position change|, charged on the day the new position is "
        "first held; a backtest starts in cash, so the first entry is costed",
        cash_yield=request.cash_yield,
        financing=request.financing,
        cash_rate=cash,
        alignment="all strategies share one period: the first to the last day on which every "
        "strategy holds a position; a missing exposure inside it keeps the previous position",
        missing_inputs="a filter without input (VIX3M before 2009-09-18, HYG before 252 days "
        "of history) is unavailable and follows the rule set's policy (default abstain: it "
        "does not vote); on days with no filter input at all the policy's votes set the regime",
        metrics=metrics.CONVENTIONS,
    )


def _day_offset(days: int) -> str:
    return "t" if days == 0 else f"t+{days}"


def _notes(strategies: list[StrategyResult], signals: dict[str, StrategySignal]) -> list[str]:
    """What a reader must know to trust the figures: inputs missing during the period."""
    notes = []
    for result in strategies:
        signal = signals[result.name]
        policy = signal.rule_set.unavailable.value if signal.rule_set else None
        for row in result.filters or []:
            if row.share_of_period < 1.0:
                since = row.first_available or "never"
                notes.append(
                    f"{result.name}: {row.filter.value} filter unavailable on "
                    f"{1.0 - row.share_of_period:.1%} of the period (input from {since}); "
                    f"policy {policy}"
                )
        if result.days_without_input:
            abstains = signal.rule_set is not None and (
                signal.rule_set.unavailable is UnavailablePolicy.ABSTAIN
            )
            votes = "no votes" if abstains else "every enabled filter voting"
            notes.append(
                f"{result.name}: {result.days_without_input} day(s) without any filter input "
                f"held the regime the {policy} policy gives ({votes})"
            )
        if result.held_over_days:
            notes.append(
                f"{result.name}: {result.held_over_days} day(s) without an exposure kept the "
                "previous position"
            )
    return notes
