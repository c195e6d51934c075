"""The three-filter rule engine and the regime table, defined once as data.

Filters (published defaults, see PUBLISHED_FRAMEWORK):

| filter     | value read                               | fires when        |
|------------|------------------------------------------|-------------------|
| trend      | SPY close / SMA(window=200)              | value < 1.0       |
| volatility | VIX / VIX3M                              | value > 1.0       |
| credit     | z-score of HYG/IEF over window=252 days  | value < -1.0      |

Each filter is ``clear``, ``firing`` or ``unavailable`` (its input is NaN on
that day). Firing filters vote; the vote count maps to a regime through
``RegimeTable`` (0 -> risk-on 100%, 1 -> caution 50%, 2-3 -> risk-off 0%).
How unavailable filters count is ``RuleSet.unavailable`` (default: abstain).
Days where no enabled filter is available have no regime (NaN exposure).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType

import numpy as np
import pandas as pd

from core.enums import FilterName, FilterState, UnavailablePolicy
from core.errors import ConfigError
from core.filters import FILTER_KINDS, FilterSpec, Readings, filter_inputs
from core.regimes import (  # noqa: F401 - the regime vocabulary, re-exported
    REGIME_ORDER,
    Hysteresis,
    RegimeTable,
    apply_hysteresis,
    regime_names,
)
from core.rulesets import RuleSetDefinition, evaluate


@dataclass(frozen=True)
class FilterDefinition:
    """What a filter reads and which side of its threshold means stress."""

    detail: str
    fires_below: bool  # True: fires when value < threshold; False: when value > threshold
    value: Callable[[pd.DataFrame, int | None], pd.Series]


# The published filters as kinds of core.filters (one definition of each reading).
LEGACY_FILTERS: Mapping[FilterName, tuple[str, tuple[str, ...], str | None, int | None]] = (
    MappingProxyType(
        {
            FilterName.TREND: ("sma_ratio", ("SPY",), "window", 200),
            FilterName.VOLATILITY: ("level", ("^VIX", "^VIX3M"), None, None),
            FilterName.CREDIT: ("zscore", ("HYG", "IEF"), "window", 252),
        }
    )
)


def _legacy_value(name: FilterName) -> Callable[[pd.DataFrame, int | None], pd.Series]:
    kind, inputs, parameter, default = LEGACY_FILTERS[name]

    def value(features: pd.DataFrame, window: int | None) -> pd.Series:
        params = {} if parameter is None else {parameter: window or default}
        return FILTER_KINDS[kind].reading(filter_inputs(features), inputs, params)

    return value


_trend_value = _legacy_value(FilterName.TREND)
_volatility_value = _legacy_value(FilterName.VOLATILITY)
_credit_value = _legacy_value(FilterName.CREDIT)


FILTER_DEFINITIONS: Mapping[FilterName, FilterDefinition] = MappingProxyType(
    {
        FilterName.TREND: FilterDefinition("close / SMA{window}", True, _trend_value),
        FilterName.VOLATILITY: FilterDefinition("VIX / VIX3M", False, _volatility_value),
        FilterName.CREDIT: FilterDefinition("HYG/IEF z-score, {window}d", True, _credit_value),
    }
)


@dataclass(frozen=True)
class FilterRule:
    threshold: float
    window: int | None = None  # SMA window (trend) or z-score window (credit)
    enabled: bool = True

    def validate(self, name: FilterName) -> None:
        if not np.isfinite(self.threshold):
            raise ConfigError(f"{name} threshold must be a finite number, got {self.threshold!r}")
        if self.window is not None and not 2 <= self.window <= 2520:
            raise ConfigError(f"{name} window must be between 2 and 2520 days, got {self.window!r}")


@dataclass(frozen=True)
class RuleSet:
    name: str
    trend: FilterRule = FilterRule(threshold=1.0, window=200)
    volatility: FilterRule = FilterRule(threshold=1.0)
    credit: FilterRule = FilterRule(threshold=-1.0, window=252)
    table: RegimeTable = field(default_factory=RegimeTable)
    unavailable: UnavailablePolicy = UnavailablePolicy.ABSTAIN
    hysteresis: Hysteresis = field(default_factory=Hysteresis)

    def rules(self) -> dict[FilterName, FilterRule]:
        return {
            FilterName.TREND: self.trend,
            FilterName.VOLATILITY: self.volatility,
            FilterName.CREDIT: self.credit,
        }

    def enabled(self) -> dict[FilterName, FilterRule]:
        return {name: rule for name, rule in self.rules().items() if rule.enabled}

    def validate(self) -> RuleSet:
        if not self.enabled():
            raise ConfigError(f"rule set {self.name!r} enables no filter")
        for name, rule in self.rules().items():
            rule.validate(name)
        self.table.validate()
        self.hysteresis.validate()
        return self

    @property
    def version(self) -> str:
        """Name plus a fingerprint of every parameter: stored with each regime row."""
        params = json.dumps(asdict(self), sort_keys=True, default=str)
        return f"{self.name}-{hashlib.sha256(params.encode()).hexdigest()[:8]}"

    def describe(self, name: FilterName) -> str:
        return FILTER_DEFINITIONS[name].detail.format(window=self.rules()[name].window)

    def definition(self) -> RuleSetDefinition:
        """The same rule set as data (core.rulesets): what compute_regimes evaluates."""
        filters = []
        for name, rule in self.enabled().items():
            kind, inputs, parameter, default = LEGACY_FILTERS[name]
            filters.append(
                FilterSpec.of(
                    name.value,
                    kind,
                    inputs,
                    threshold=rule.threshold,
                    fires="below" if FILTER_DEFINITIONS[name].fires_below else "above",
                    params={} if parameter is None else {parameter: rule.window or default},
                )
            )
        return RuleSetDefinition(
            name=self.name,
            filters=tuple(filters),
            table=self.table,
            unavailable=self.unavailable,
            hysteresis=self.hysteresis,
        )

    def only(self, name: FilterName) -> RuleSet:
        """This filter alone: 100% when clear, 0% when firing (published single-filter strategy)."""
        off = {n: replace(r, enabled=(n == name)) for n, r in self.rules().items()}
        return replace(
            self,
            name=f"{self.name}:{name}-only",
            trend=off[FilterName.TREND],
            volatility=off[FilterName.VOLATILITY],
            credit=off[FilterName.CREDIT],
            table=RegimeTable(caution_votes=1, risk_off_votes=1),
        )


PUBLISHED_FRAMEWORK = RuleSet(name="published")
# Variant in the article's trading-platform code: credit z-score over 100 days, threshold -2.
PLATFORM_VARIANT = RuleSet(name="platform", credit=FilterRule(threshold=-2.0, window=100))
RULE_SET_PRESETS: Mapping[str, RuleSet] = MappingProxyType(
    {PUBLISHED_FRAMEWORK.name: PUBLISHED_FRAMEWORK, PLATFORM_VARIANT.name: PLATFORM_VARIANT}
)


def rule_set_preset(name: str) -> RuleSet:
    try:
        return RULE_SET_PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown rule set {name!r}; choose one of {sorted(RULE_SET_PRESETS)}"
        ) from None


def filter_states(value: pd.Series, rule: FilterRule, fires_below: bool) -> pd.Series:
    """State of one filter per day from the value it reads (NaN -> unavailable)."""
    fires = value < rule.threshold if fires_below else value > rule.threshold
    states = np.where(
        value.isna(),
        FilterState.UNAVAILABLE.value,
        np.where(fires, FilterState.FIRING.value, FilterState.CLEAR.value),
    )
    return pd.Series(states, index=value.index, dtype=object)


def compute_regimes(
    features: pd.DataFrame,
    rule_set: RuleSet | RuleSetDefinition,
    closes: Mapping[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """Daily filter values and states, votes, regime and exposure.

    ``features`` is the feature table (the published filters read ``spy_close``,
    ``vix_vix3m``, ``hyg_ief``), indexed by date; ``closes``: other symbols a
    rule set reads (core.filters.filter_inputs). Returns, per day:
    ``<filter>_value`` and ``<filter>_state`` for each enabled filter,
    ``available`` (filters with input), ``votes``, ``regime`` (Regime value or
    None), ``regime_code`` (0/1/2 or NaN) and ``exposure`` (NaN where no filter
    is available). Row t reads only rows <= t.
    """
    definition = rule_set.validate().definition() if isinstance(rule_set, RuleSet) else rule_set
    return evaluate(definition, Readings(filter_inputs(features, closes))).frame()


def switches_per_year(regimes: pd.Series) -> pd.Series:
    """Number of regime changes in each calendar year (whipsaw measure)."""
    valid = regimes.dropna()
    changed = valid != valid.shift()
    changed.iloc[:1] = False
    return changed.groupby(valid.index.year).sum().astype(int)
