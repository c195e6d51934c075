"""Run a BacktestRequest on in-memory inputs and build its BacktestResult. Pure: no I/O.

    inputs (features, asset closes, cash rate, model outputs)
      -> one StrategySignal per config (backtest.signals), kept as arrays
      -> engine.simulate_arrays on the common period (backtest.engine)
      -> metrics of all strategies at once (backtest.metrics) -> BacktestResult

Pandas is the edge: the inputs are turned into arrays once (CalendarArrays,
PreparedSignal, both cached on the BacktestInputs), every step of a run works on
(days, strategies) arrays, and pandas views of a run (``BacktestRun.simulation``)
are built only when read.

The period starts on ``request.start`` or, by default, on the first day on
which every strategy holds a position resting on real input, and ends on
``request.end`` or the last day of data; see backtest.engine for alignment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from backtest import metrics
from backtest.engine import (
    ArraySimulation,
    CostModel,
    Simulation,
    as_simulation,
    calendar_rows,
    simulate_arrays,
)
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
    # Adjusted closes of the other symbols the strategies read (rule sets' inputs,
    # a risk-off allocation's defensive asset), by symbol.
    closes: Mapping[str, pd.Series] | None = None
    # Signals built from these inputs, per strategy configuration: a signal depends on
    # nothing else (not on the period, lag or costs), so inputs kept between requests
    # build each strategy's signal (and its arrays) once.
    signals: dict[str, PreparedSignal] = field(default_factory=dict, compare=False, repr=False)
    _arrays: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def calendar_arrays(self) -> CalendarArrays:
        """The calendar and the input series as arrays, computed once per inputs."""
        arrays = self._arrays.get("calendar")
        if arrays is None:
            arrays = self._arrays["calendar"] = CalendarArrays.of(self)
        return arrays


@dataclass(frozen=True)
class CalendarArrays:
    """The pandas edge crossed once: everything a run reads, on the feature calendar."""

    calendar: pd.DatetimeIndex
    dates: np.ndarray  # datetime.date objects, for the result's dates
    years: np.ndarray
    weeks: np.ndarray  # Monday-to-Sunday week number
    months: np.ndarray  # year * 12 + month
    asset_close: np.ndarray
    asset_returns: np.ndarray
    cash_rate: np.ndarray | None

    @classmethod
    def of(cls, inputs: BacktestInputs) -> CalendarArrays:
        calendar = _calendar(inputs.features)
        close = inputs.asset_close.astype(float).reindex(calendar)
        return cls(
            calendar=calendar,
            dates=np.asarray(calendar.date, dtype=object),
            years=calendar.year.to_numpy(),
            # Days since 1970-01-05 (a Monday) // 7 numbers the Monday-to-Sunday weeks.
            weeks=(calendar - pd.Timestamp("1970-01-05")).days.to_numpy() // 7,
            months=calendar.year.to_numpy() * 12 + calendar.month.to_numpy(),
            asset_close=close.to_numpy(),
            asset_returns=simple_returns(close, 1).to_numpy(),
            cash_rate=None
            if inputs.cash_rate is None
            else inputs.cash_rate.reindex(calendar).to_numpy(dtype=float),
        )


@dataclass(frozen=True)
class PreparedSignal:
    """A strategy's signal and its arrays on the calendar (built once per configuration)."""

    signal: StrategySignal
    exposure: np.ndarray  # decided at each close; NaN: no position possible
    informed: np.ndarray  # exposure on days resting on real input, NaN elsewhere
    no_input: np.ndarray  # 1.0 on days positioned by the unavailable policy alone
    regime_code: np.ndarray | None
    filter_inputs: list[tuple[FilterName, np.ndarray]]  # per enabled filter: has input
    uninvested_returns: np.ndarray | None  # what the uninvested part earns, if not cash

    @classmethod
    def of(cls, signal: StrategySignal) -> PreparedSignal:
        exposure = signal.exposure.to_numpy(dtype=float)
        no_input = signal.no_input.to_numpy(dtype=bool)
        return cls(
            signal=signal,
            exposure=exposure,
            informed=np.where(no_input, np.nan, exposure),
            no_input=no_input.astype(float),
            regime_code=None
            if signal.regime_code is None
            else signal.regime_code.to_numpy(dtype=float),
            filter_inputs=_filter_inputs(signal),
            uninvested_returns=None
            if getattr(signal, "uninvested_returns", None) is None
            else signal.uninvested_returns.to_numpy(dtype=float),
        )


@dataclass(frozen=True)
class BacktestRun:
    """The result model, plus pandas views of the daily arrays behind it (for plots and
    tests; built only when read)."""

    result: BacktestResult
    arrays: ArraySimulation
    signals: dict[str, StrategySignal]
    _calendar: pd.DatetimeIndex = field(repr=False)
    _regime_codes: dict[str, np.ndarray] = field(repr=False)  # held over the period
    _asset_close: np.ndarray = field(repr=False)  # over the period

    @cached_property
    def simulation(self) -> Simulation:
        return as_simulation(self.arrays, self._calendar, list(self.signals))

    @cached_property
    def span(self) -> pd.DatetimeIndex:
        return self._calendar[self.arrays.period]

    @cached_property
    def held_regimes(self) -> dict[str, pd.Series]:
        """Regime code held over each period day (signal labels), per strategy."""
        span = self.span
        return {name: pd.Series(codes, index=span) for name, codes in self._regime_codes.items()}

    @cached_property
    def asset_close(self) -> pd.Series:
        return pd.Series(self._asset_close, index=self.span)


def run_backtest(request: BacktestRequest, inputs: BacktestInputs) -> BacktestRun:
    """Backtest every strategy of ``request`` on the same period."""
    days = inputs.calendar_arrays()
    signal_inputs = SignalInputs(
        inputs.features,
        pd.Series(days.asset_returns, index=days.calendar),
        inputs.model_outputs,
        inputs.closes,
    )
    prepared = [_signal(config, signal_inputs, inputs.signals) for config in request.strategies]
    names = [config.label for config in request.strategies]
    first, last = calendar_rows(days.calendar, request.start, request.end)
    asked_first = first  # the first trading day of the period asked
    if request.start is None:
        first = _default_start(prepared, request.lag)
    if last is not None and last < first:
        raise _too_short(request, 0)
    try:
        arrays = simulate_arrays(
            np.column_stack([p.exposure for p in prepared]),
            days.asset_returns,
            days.calendar,
            names,
            lag=request.lag,
            costs=CostModel(request.cost_bps, request.cash_yield, request.financing),
            cash_rate=days.cash_rate,
            uninvested_returns=_uninvested_returns(prepared, days, request.cash_yield),
            start=first,
            end=last,
        )
    except NoDataError as missing:
        if request.start is None and request.end is None:
            raise  # the stored data has no common period: nothing the request chose
        raise DataValidationError(str(missing), field=_period_field(request)) from None
    period = arrays.period
    if period.stop - period.start < MIN_PERIOD_DAYS:
        raise _too_short(request, period.stop - period.start)
    regime_codes = {
        name: _held(p.regime_code, request.lag, period)
        for name, p in zip(names, prepared, strict=True)
        if p.regime_code is not None
    }
    wealth = np.cumprod(1.0 + arrays.returns, axis=0)
    block = metrics.summary(
        arrays.returns, arrays.positions, arrays.turnover, arrays.cash_rate, wealth=wealth
    )
    years, yearly = metrics.yearly_growth(arrays.returns, days.years[period])
    strategies = [
        _strategy_result(
            config,
            p,
            column,
            block,
            yearly_returns=dict(zip(years.tolist(), yearly[:, column].tolist(), strict=True)),
            regime_codes=regime_codes.get(config.label),
            years=days.years[period],
            held_over_days=int(arrays.held_over_days[column]),
            lag=request.lag,
            period=period,
            dates=days.dates,
        )
        for column, (config, p) in enumerate(zip(request.strategies, prepared, strict=True))
    ]
    result = BacktestResult(
        period=Period(
            start=days.dates[period.start],
            end=days.dates[period.stop - 1],
            days=arrays.returns.shape[0],
            requested_start=request.start,
            requested_end=request.end,
        ),
        conventions=_conventions(request, inputs),
        strategies=strategies,
        equity=_equity_curves(wealth, arrays.period, days, names, request.equity_sampling),
        notes=_period_notes(request, prepared, names, days.dates, asked_first, period.start)
        + _notes(strategies, {name: p.signal for name, p in zip(names, prepared, strict=True)}),
    )
    return BacktestRun(
        result=result,
        arrays=arrays,
        signals={name: p.signal for name, p in zip(names, prepared, strict=True)},
        _calendar=days.calendar,
        _regime_codes=regime_codes,
        _asset_close=days.asset_close[period],
    )


def _signal(
    config: StrategyConfig, inputs: SignalInputs, built: dict[str, PreparedSignal]
) -> PreparedSignal:
    key = config.model_dump_json()
    prepared = built.get(key)
    if prepared is None:
        if len(built) >= 64:  # configurations are few in practice; bound anyway
            built.clear()
        prepared = built[key] = PreparedSignal.of(build_signal(config, inputs))
    return prepared


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


# Returns, volatility and every ratio need two days at least.
MIN_PERIOD_DAYS = 2


def _period_field(request: BacktestRequest) -> str:
    return "body.start" if request.start is not None else "body.end"


def _too_short(request: BacktestRequest, days: int) -> DataValidationError | NoDataError:
    """A period with fewer trading days (every strategy positioned) than a backtest needs:
    a bad field when the request chose it, else too little stored data."""
    start = request.start or "the first day every strategy has input"
    end = request.end or "the end of data"
    reason = (
        f"the period {start} .. {end} holds {days} trading day(s) on which every strategy "
        f"holds a position; a backtest needs at least {MIN_PERIOD_DAYS}"
    )
    if request.start is None and request.end is None:
        return NoDataError(reason)
    return DataValidationError(reason, field=_period_field(request))


def _default_start(prepared: list[PreparedSignal], lag: int) -> int:
    """First calendar row on which every strategy holds a position decided on real input
    (row 0 when there is none: the engine then reports the missing common period)."""
    informed = np.column_stack([p.informed for p in prepared])
    complete = ~np.isnan(informed[: informed.shape[0] - lag]).any(axis=1)
    return int(complete.argmax()) + lag if complete.any() else 0


def _uninvested_returns(
    prepared: list[PreparedSignal], days: CalendarArrays, cash_yield: bool
) -> np.ndarray | None:
    """(days, strategies) return of each strategy's uninvested part: a defensive asset
    where its signal names one, else the cash rate (with cash yield) or nothing."""
    if all(p.uninvested_returns is None for p in prepared):
        return None  # the engine applies the cash yield itself
    cash = days.cash_rate if cash_yield else None
    if cash_yield and cash is None:
        raise NoDataError("cash yield and financing need a daily cash-rate series")
    default = np.zeros(len(days.calendar)) if cash is None else cash
    return np.column_stack(
        [default if p.uninvested_returns is None else p.uninvested_returns for p in prepared]
    )


def _held(daily: np.ndarray, lag: int, period: slice) -> np.ndarray:
    """Value decided ``lag`` days earlier, over the period rows (held over like positions)."""
    first = period.start - lag
    length = period.stop - period.start
    if first >= 0:
        values = daily[first : first + length].astype(float)
    else:  # the period starts before ``lag`` days of history: nothing held yet
        values = np.r_[np.full(-first, np.nan), daily[: length + first]]
    missing = np.isnan(values)
    if missing.any():  # keep the last known value (forward fill)
        values = values[np.maximum.accumulate(np.where(missing, 0, np.arange(length)))]
    return values


def _switches_per_year(codes: np.ndarray, years: np.ndarray) -> dict[int, int]:
    """Regime changes per calendar year over the days with a regime, as
    core.rules.switches_per_year counts them, on arrays (``years``: each day's year)."""
    known = ~np.isnan(codes)
    values, years = codes[known], years[known]
    if values.size == 0:
        return {}
    changed = np.r_[False, values[1:] != values[:-1]].astype(np.int64)
    first_of_year = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
    counts = np.add.reduceat(changed, first_of_year)
    return {int(year): int(n) for year, n in zip(years[first_of_year], counts, strict=True)}


def strategy_metrics(block: dict[str, np.ndarray | None], column: int) -> StrategyMetrics:
    """One strategy's metrics out of a block computed for all (backtest.metrics.summary)."""

    def value(name: str) -> float | None:
        values = block[name]
        return None if values is None else _finite(values[column])

    return StrategyMetrics(
        cumulative_return=value("cumulative_return"),
        annualised_return=value("annualised_return"),
        annualised_volatility=value("annualised_volatility"),
        daily_mean=value("daily_mean"),
        daily_std=value("daily_std"),
        sharpe=value("sharpe"),
        sharpe_excess=value("sharpe_excess"),
        sortino=value("sortino"),
        max_drawdown=value("max_drawdown"),
        max_drawdown_days=int(block["max_drawdown_days"][column]),
        longest_drawdown_days=int(block["longest_drawdown_days"][column]),
        calmar=value("calmar"),
        time_invested=TimeInvested(
            leveraged=value("leveraged"),
            full=value("full"),
            partial=value("partial"),
            none=value("none"),
            average_exposure=value("average_exposure"),
        ),
        turnover_per_year=value("turnover_per_year"),
        trades=int(block["trades"][column]),
    )


def _strategy_result(
    config: StrategyConfig,
    prepared: PreparedSignal,
    column: int,
    block: dict[str, np.ndarray | None],
    *,
    yearly_returns: dict[int, float],
    regime_codes: np.ndarray | None,
    years: np.ndarray,
    held_over_days: int,
    lag: int,
    period: slice,
    dates: np.ndarray,
) -> StrategyResult:
    signal = prepared.signal
    return StrategyResult(
        name=config.label,
        kind=config.kind,
        config=config,
        metrics=strategy_metrics(block, column),
        regime_distribution=None
        if regime_codes is None
        else metrics.regime_distribution(regime_codes, signal.regime_labels),
        yearly_returns=yearly_returns,
        switches_per_year=None if regime_codes is None else _switches_per_year(regime_codes, years),
        filters=_filter_availability(prepared, lag, period, dates),
        days_without_input=int(np.nansum(_held(prepared.no_input, lag, period))),
        held_over_days=held_over_days,
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _filter_inputs(signal: StrategySignal) -> list[tuple[FilterName, np.ndarray]]:
    """Per enabled filter of a rule-based signal: whether it had input on each day."""
    if signal.rule_set is None or signal.filters is None:
        return []
    return [
        (
            FilterName(name),
            signal.filters[f"{name}_state"].to_numpy() != FilterState.UNAVAILABLE.value,
        )
        for name in signal.rule_set.enabled()
    ]


def _filter_availability(
    prepared: PreparedSignal, lag: int, period: slice, dates: np.ndarray
) -> list[FilterAvailability] | None:
    if prepared.signal.rule_set is None or prepared.signal.filters is None:
        return None
    return [
        FilterAvailability(
            filter=name,
            first_available=dates[int(has_input.argmax())] if has_input.any() else None,
            share_of_period=float(np.mean(_held(has_input.astype(float), lag, period))),
        )
        for name, has_input in prepared.filter_inputs
    ]


def _equity_curves(
    equity: np.ndarray,
    period: slice,
    days: CalendarArrays,
    names: list[str],
    sampling: EquitySampling,
) -> EquityCurves | None:
    """Sampled wealth curves; ``equity``: (days, strategies) wealth over ``period``."""
    if sampling is EquitySampling.NONE:
        return None
    rows = np.arange(period.start, period.stop)
    if sampling is not EquitySampling.DAILY:
        group = (days.weeks if sampling is EquitySampling.WEEKLY else days.months)[period]
        last_of_group = np.r_[group[1:] != group[:-1], True]
        equity, rows = equity[last_of_group], rows[last_of_group]
    values = np.round(equity, 8).T.tolist()
    return EquityCurves(
        sampling=sampling,
        dates=days.dates[rows].tolist(),
        values=dict(zip(names, values, strict=True)),
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


def _period_notes(
    request: BacktestRequest,
    prepared: list[PreparedSignal],
    names: list[str],
    dates: np.ndarray,
    asked: int,
    first: int,
) -> list[str]:
    """Why the period starts later than asked, naming the strategies without a position
    before it: a backtest never covers less than it was asked without saying so."""
    if request.start is None or first <= asked:
        return []
    late = []
    for name, signal in zip(names, prepared, strict=True):
        decided = np.flatnonzero(~np.isnan(signal.exposure))
        held_from = int(decided[0]) + request.lag if len(decided) else None
        if held_from is None or held_from >= first:
            since = "never" if held_from is None else f"from {dates[min(held_from, first)]}"
            late.append(f"{name} (a position {since})")
    who = ", ".join(late) or "not every strategy holds a position before it"
    return [
        f"the period starts on {dates[first]}, not on the requested {request.start}: "
        f"{who}; the days before it are left out"
    ]


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
