"""Request and result of a backtest: what ``POST /backtest`` accepts and returns, what
``deepregime backtest --config FILE`` reads and ``--json`` prints.

Fractions and returns are decimals (0.096 = 9.6%); dates are ISO days.
Undefined metrics (e.g. a Sharpe ratio with zero volatility) are ``null``.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backtest.engine import MAX_COST_BPS, MAX_LAG_DAYS
from backtest.rates import BIL, DFF
from backtest.strategies import StrategyConfig
from core.enums import FilterName
from inference.in_sample import ModelHistory

MAX_STRATEGIES = 50
MAX_TITLE_LENGTH = 200


class EquitySampling(StrEnum):
    """Which days of the equity curves the result carries (the last day always)."""

    DAILY = "daily"
    WEEKLY = "weekly"  # last trading day of each week
    MONTHLY = "monthly"  # last trading day of each month
    NONE = "none"  # no curves, metrics only


class RateSource(StrEnum):
    """Stored series giving the daily cash rate (see backtest.rates)."""

    DFF = DFF
    BIL = BIL


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BacktestRequest(_Model):
    market: str | None = Field(
        default=None,
        max_length=16,
        description="The market every strategy holds (GET /markets; conventions.asset names "
        "its symbol); default: the universe's default market.",
    )
    strategies: list[StrategyConfig] = Field(min_length=1, max_length=MAX_STRATEGIES)
    start: dt.date | None = Field(
        default=None,
        description="first day of returns; default: the first day every strategy has input",
    )
    end: dt.date | None = Field(default=None, description="last day; default: end of data")
    cost_bps: float = Field(
        default=0.0, ge=0.0, le=MAX_COST_BPS, description="cost per unit of traded exposure"
    )
    cash_yield: bool = Field(default=False, description="uninvested part earns the cash rate")
    financing: bool = Field(
        default=True,
        description="exposure above 1x is borrowed and pays the cash rate (on by default; "
        "false studies unfinanced leverage, and the report marks each leveraged strategy so)",
    )
    rate_source: RateSource = RateSource.DFF
    lag: int = Field(
        default=1,
        ge=1,
        le=MAX_LAG_DAYS,
        description="trading days between the signal's close and the first day it is held; "
        "0 would be look-ahead and is refused",
    )
    equity_sampling: EquitySampling = EquitySampling.WEEKLY
    model_history: ModelHistory = Field(
        default=ModelHistory.OUT_OF_SAMPLE,
        description="model strategies' outputs: out_of_sample (walk-forward refits trained "
        "before each day up to the version's in-sample cut-off, its own outputs after; days "
        "with neither have no model input) or in_sample (the version's own, flagged)",
    )
    store: bool = Field(
        default=True,
        description="keep the run (readable at GET /backtest/{id}); false: only answer it",
    )
    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TITLE_LENGTH,
        description="the tear sheet's title; default: built from the strategies' names",
    )

    @model_validator(mode="after")
    def _coherent(self) -> BacktestRequest:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        labels = [strategy.label for strategy in self.strategies]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"strategy names must be unique; repeated: {duplicates}")
        return self


class Period(_Model):
    start: dt.date = Field(description="first day whose return counts")
    end: dt.date
    days: int
    requested_start: dt.date | None
    requested_end: dt.date | None


class Conventions(_Model):
    asset: str
    execution_lag_days: int
    timing: str
    returns: str
    cost_bps: float
    costs: str
    cash_yield: bool
    financing: bool
    cash_rate: str
    alignment: str
    missing_inputs: str
    metrics: dict[str, str]


class TimeInvested(_Model):
    """backtest.metrics.time_invested: the four shares sum to 1."""

    leveraged: float | None = Field(
        default=None,
        description="share of days with exposure > 1 (null in runs stored before it was "
        "counted apart, whose full share includes these days)",
    )
    full: float | None = Field(description="share of days with exposure exactly 1")
    partial: float | None = Field(description="share of days with 0 < exposure < 1")
    none: float | None = Field(description="share of days with exposure 0")
    average_exposure: float | None


class StrategyMetrics(_Model):
    cumulative_return: float | None
    annualised_return: float | None
    annualised_volatility: float | None
    daily_mean: float | None
    daily_std: float | None
    sharpe: float | None = Field(description="raw: mean / std * sqrt(252)")
    sharpe_excess: float | None = Field(description="over the cash rate; null without one")
    sortino: float | None
    max_drawdown: float | None
    max_drawdown_days: int
    longest_drawdown_days: int
    calmar: float | None
    time_invested: TimeInvested
    turnover_per_year: float | None
    trades: int


class FilterAvailability(_Model):
    filter: FilterName
    first_available: dt.date | None = Field(description="first day with input, whole history")
    share_of_period: float = Field(description="share of the period's days with input")


class StrategyResult(_Model):
    name: str
    kind: str
    config: StrategyConfig
    metrics: StrategyMetrics
    regime_distribution: dict[str, float] | None = Field(
        description="share of days held in each regime; null for buy & hold"
    )
    yearly_returns: dict[int, float]
    switches_per_year: dict[int, int] | None
    filters: list[FilterAvailability] | None
    days_without_input: int = Field(
        description="days positioned by the unavailable-filter policy alone"
    )
    held_over_days: int = Field(description="days whose missing exposure kept the position")


class EquityCurves(_Model):
    sampling: EquitySampling
    dates: list[dt.date]
    values: dict[str, list[float]] = Field(description="wealth per strategy, 1.0 at the start")


class BacktestResult(_Model):
    period: Period
    conventions: Conventions
    strategies: list[StrategyResult]
    equity: EquityCurves | None
    notes: list[str]
