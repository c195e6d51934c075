"""A sweep as data: a base rule set, the values each axis takes, and what is measured.

    grid axes (each a list; the variants are every combination, in this order):
        trend.window, trend.threshold, volatility.threshold, credit.window,
        credit.threshold, tables, hysteresis      -> the signal (a core.rules.RuleSet)
        lag, cost_bps                             -> how the signal is traded

Variant ``i`` is decoded from ``i`` in mixed radix (the last axis varies fastest),
so a chunk of variants travels as an index range, and neighbouring variants share
their signal (lag and costs vary fastest).

The same request body is read by ``POST /sweeps`` and ``deepregime sweep FILE``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backtest.engine import MAX_COST_BPS, MAX_LAG_DAYS
from backtest.schemas import RateSource
from backtest.strategies import (
    MAX_WINDOW_DAYS,
    HysteresisOverride,
    RegimeTableOverride,
    RuleParameters,
    RulesConfig,
)
from core.errors import ConfigError
from core.rules import RuleSet
from research.overfitting import MAX_PBO_BLOCKS

MAX_AXIS_VALUES = 100


class Objective(StrEnum):
    """What the walk-forward maximises in-sample (every one: higher is better)."""

    SHARPE = "sharpe"
    CALMAR = "calmar"
    ANNUALISED_RETURN = "annualised_return"
    SORTINO = "sortino"
    MAX_DRAWDOWN = "max_drawdown"  # <= 0: the shallowest drawdown is the highest


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _distinct(values: list[Any] | None, label: str) -> list[Any] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError(f"{label} lists a value twice: {values}")
    return values


class FilterAxes(_Model):
    """Values one filter's window and threshold take (None: the base rule set's)."""

    windows: list[int] | None = Field(
        default=None, min_length=1, max_length=MAX_AXIS_VALUES, description="SMA / z-score days"
    )
    thresholds: list[float] | None = Field(default=None, min_length=1, max_length=MAX_AXIS_VALUES)

    @model_validator(mode="after")
    def _check(self) -> FilterAxes:
        for window in self.windows or []:
            if not 2 <= window <= MAX_WINDOW_DAYS:
                raise ValueError(f"window must be between 2 and {MAX_WINDOW_DAYS}, got {window}")
        if any(not math.isfinite(t) for t in self.thresholds or []):
            raise ValueError("thresholds must be finite numbers")
        _distinct(self.windows, "windows")
        _distinct(self.thresholds, "thresholds")
        return self


class Grid(_Model):
    """The axes of a sweep. Each list holds the values one axis takes."""

    base: RuleParameters = Field(
        default_factory=RuleParameters, description="the rule set every variant starts from"
    )
    trend: FilterAxes = Field(default_factory=FilterAxes)
    volatility: FilterAxes = Field(default_factory=FilterAxes)
    credit: FilterAxes = Field(default_factory=FilterAxes)
    tables: list[RegimeTableOverride] | None = Field(
        default=None, min_length=1, max_length=MAX_AXIS_VALUES, description="vote tables"
    )
    hysteresis: list[HysteresisOverride] | None = Field(
        default=None, min_length=1, max_length=MAX_AXIS_VALUES
    )
    lag: list[int] = Field(default=[1], min_length=1, max_length=MAX_LAG_DAYS)
    cost_bps: list[float] = Field(default=[0.0], min_length=1, max_length=MAX_AXIS_VALUES)

    @model_validator(mode="after")
    def _check(self) -> Grid:
        if self.volatility.windows is not None:
            raise ValueError("volatility has no window (VIX / VIX3M): give thresholds only")
        for lag in self.lag:
            if not 1 <= lag <= MAX_LAG_DAYS:
                raise ValueError(f"lag must be between 1 and {MAX_LAG_DAYS}, got {lag}")
        for cost in self.cost_bps:
            if not 0.0 <= cost <= MAX_COST_BPS:
                raise ValueError(f"cost_bps must be between 0 and {MAX_COST_BPS:g}, got {cost}")
        _distinct(self.lag, "lag")
        _distinct(self.cost_bps, "cost_bps")
        return self

    @cached_property
    def axes(self) -> list[tuple[str, list[Any]]]:
        """(name, values) per axis, slowest first; an unset axis has one value, None."""
        return [
            ("trend.window", self.trend.windows or [None]),
            ("trend.threshold", self.trend.thresholds or [None]),
            ("volatility.threshold", self.volatility.thresholds or [None]),
            ("credit.window", self.credit.windows or [None]),
            ("credit.threshold", self.credit.thresholds or [None]),
            ("table", self.tables or [None]),
            ("hysteresis", self.hysteresis or [None]),
            ("lag", self.lag),
            ("cost_bps", self.cost_bps),
        ]

    @property
    def size(self) -> int:
        """Number of variants, without expanding them."""
        return math.prod(len(values) for _, values in self.axes)

    @property
    def n_signals(self) -> int:
        """Number of distinct signals (variants differing only in lag and costs share one)."""
        return self.size // (len(self.lag) * len(self.cost_bps))

    def digits(self, index: int) -> list[int]:
        """Position on each axis of variant ``index``."""
        if not 0 <= index < self.size:
            raise IndexError(f"variant {index} outside 0..{self.size - 1}")
        out = []
        for _, values in reversed(self.axes):
            index, digit = divmod(index, len(values))
            out.append(digit)
        return out[::-1]

    def variant(self, index: int) -> Variant:
        digits = self.digits(index)
        picked = {name: values[d] for (name, values), d in zip(self.axes, digits, strict=True)}
        return Variant(
            index=index,
            signal=index // (len(self.lag) * len(self.cost_bps)),
            grid=self,
            picked=picked,
        )

    def check(self) -> Grid:
        """Every vote table and hysteresis of the grid is valid on the base (core's checks),
        so no variant fails half-way; raises ConfigError naming the axis entry."""
        base = self.base.rule_set()
        for i, table in enumerate(self.tables or []):
            try:
                replace(base.table, **table._changes()).validate()
            except ConfigError as error:
                raise ConfigError(f"grid.tables[{i}]: {error}") from None
        for i, hysteresis in enumerate(self.hysteresis or []):
            try:
                replace(base.hysteresis, **hysteresis._changes()).validate()
            except ConfigError as error:
                raise ConfigError(f"grid.hysteresis[{i}]: {error}") from None
        return self


@dataclass(frozen=True)
class Variant:
    """One point of the grid: a rule set, an execution lag and a cost."""

    index: int
    signal: int  # index of its distinct signal (shared by lag and cost variations)
    grid: Grid
    picked: dict[str, Any]  # axis name -> value (None: the base's)

    @property
    def lag(self) -> int:
        return int(self.picked["lag"])

    @property
    def cost_bps(self) -> float:
        return float(self.picked["cost_bps"])

    def config(self) -> RulesConfig:
        """The strategy configuration a single backtest of this variant uses."""
        body = self.grid.base.model_dump(exclude_none=True)
        for name in ("trend", "volatility", "credit"):
            changes = {
                key: self.picked.get(f"{name}.{key}")
                for key in ("window", "threshold")
                if self.picked.get(f"{name}.{key}") is not None
            }
            if changes:
                body[name] = {**body.get(name, {}), **changes}
        for axis, key in (("table", "table"), ("hysteresis", "hysteresis")):
            value = self.picked[axis]
            if value is not None:
                body[key] = {**body.get(key, {}), **value.model_dump(exclude_none=True)}
        return RulesConfig(kind="rules", name=f"variant {self.index}", **body)

    def rule_set(self) -> RuleSet:
        return self.config().rule_set()

    def parameters(self) -> dict[str, Any]:
        """The axis values that vary in this grid, as JSON-ready values."""
        out: dict[str, Any] = {}
        for name, values in self.grid.axes:
            if len(values) < 2:
                continue
            value = self.picked[name]
            out[name] = (
                value.model_dump(exclude_none=True) if isinstance(value, BaseModel) else value
            )
        return out


class WalkForward(_Model):
    """Expanding windows: in-sample from the period's start to the end of a year, judged
    on the next ``step_years`` calendar years."""

    first_in_sample_years: int = Field(default=5, ge=1, le=50)
    step_years: int = Field(default=1, ge=1, le=20)


class SweepRequest(_Model):
    grid: Grid
    objective: Objective = Objective.SHARPE
    walk_forward: WalkForward = Field(default_factory=WalkForward)
    pbo_blocks: int = Field(
        default=16,
        ge=2,
        le=MAX_PBO_BLOCKS,
        description="blocks of the period for the probability of backtest overfitting (even)",
    )
    start: dt.date | None = Field(
        default=None,
        description="first day of returns; default: the first day every variant "
        "holds a position decided on real input",
    )
    end: dt.date | None = Field(default=None, description="last day; default: end of data")
    cash_yield: bool = False
    financing: bool = False
    rate_source: RateSource = RateSource.DFF
    name: str | None = Field(default=None, max_length=120)

    @model_validator(mode="after")
    def _check(self) -> SweepRequest:
        if self.pbo_blocks % 2:
            raise ValueError(f"pbo_blocks must be even, got {self.pbo_blocks}")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        try:
            self.grid.check()
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return self
