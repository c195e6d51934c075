"""Daily exposures of each strategy configuration, decided at each close.

``build_signal(config, inputs)`` turns a config (backtest.strategies) into a
``StrategySignal`` on the feature table's calendar: the exposure decided at the
close of each day (the engine applies the execution lag), the regime label
behind it and, for rule-based strategies, core's filter table.

Days without any input: core.rules gives no regime on days where none of the
enabled filters has input (e.g. "volatility only" before VIX3M exists on
2009-09-18). A backtest still needs a position there, so the rule set's
unavailable policy decides it the way it decides every other missing filter:
``abstain`` -> no votes -> the table's 0-vote regime (risk-on, 100%);
``firing`` -> every enabled filter votes. Such days are flagged in
``no_input`` and counted in the report. Model strategies have no such policy:
a day without a model output has no exposure (NaN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from backtest.strategies import (
    AllocationConfig,
    BuyAndHoldConfig,
    EnsembleConfig,
    ModelConfig,
    ModelSignalSource,
    RulesConfig,
    RuleSetConfig,
    SingleFilterConfig,
    StrategyConfig,
    VolTargetConfig,
)
from core.errors import NoDataError
from core.features import align_to_calendar
from core.filters import Readings, filter_inputs
from core.policies import distressed_from_probability, ensemble_regimes, model_exposure
from core.rules import REGIME_ORDER, RegimeTable, RuleSet, compute_regimes
from core.rulesets import RuleSetDefinition, evaluate
from core.rulesets import vol_target_exposure as _vol_target

MODEL_REGIME_LABELS: tuple[str, ...] = ("calm", "distressed")  # model regime 0 and 1
RULE_REGIME_LABELS: tuple[str, ...] = tuple(regime.value for regime in REGIME_ORDER)


@dataclass(frozen=True)
class StrategySignal:
    """One strategy's daily decision (index: the feature calendar)."""

    exposure: pd.Series  # float, decided at the close; NaN: no position possible
    no_input: pd.Series  # bool: positioned by the unavailable policy, no input existed
    regime_code: pd.Series | None = None  # position in regime_labels (float, NaN unknown)
    regime_labels: tuple[str, ...] = ()
    rule_set: RuleSet | None = None
    filters: pd.DataFrame | None = None  # core.rules.compute_regimes output
    definition: RuleSetDefinition | None = None  # a ``rule_set`` strategy's definition
    # Daily simple returns of what the uninvested part (1 - exposure, when below 1)
    # holds, on the calendar; None: the cash rate. NaN on a day: the cash rate too.
    uninvested_returns: pd.Series | None = None

    def regime_names(self) -> pd.Series | None:
        """Regime label per day (object, None when unknown)."""
        if self.regime_code is None:
            return None
        return label_codes(self.regime_code, self.regime_labels)


@dataclass
class SignalInputs:
    """What strategies read: the feature table, the traded asset's daily returns
    (same calendar) and the classifier's daily outputs (``regime``, ``p_distressed``)."""

    features: pd.DataFrame
    asset_returns: pd.Series
    model_outputs: pd.DataFrame | None = None
    closes: Mapping[str, pd.Series] | None = None  # other symbols' adjusted closes
    _regimes: dict[RuleSet, pd.DataFrame] = field(default_factory=dict, repr=False)
    _readings: list[Readings] = field(default_factory=list, repr=False)

    def regimes(self, rule_set: RuleSet) -> pd.DataFrame:
        """core.rules.compute_regimes, computed once per distinct rule set."""
        if rule_set not in self._regimes:
            self._regimes[rule_set] = compute_regimes(self.features, rule_set)
        return self._regimes[rule_set]

    def readings(self) -> Readings:
        """Filter readings on the calendar (core.filters), shared by every rule set."""
        if not self._readings:
            self._readings.append(Readings(filter_inputs(self.features, self.closes)))
        return self._readings[0]

    def returns_of(self, symbol: str, strategy: str) -> pd.Series:
        """Daily simple returns of ``symbol``'s close known at each close of the calendar."""
        series = (self.closes or {}).get(symbol)
        if series is None or series.dropna().empty:
            raise NoDataError(
                f"strategy {strategy!r} needs closes of {symbol!r} and none were supplied: "
                "ingest it"
            )
        close = align_to_calendar(series.dropna().sort_index(), self.features.index)
        return close / close.shift(1) - 1.0

    def model_regime(self, source: ModelSignalSource, strategy: str) -> pd.Series:
        """Model regime per day (1 distressed, 0 calm, NaN unknown) on the calendar."""
        if self.model_outputs is None:
            raise NoDataError(
                f"strategy {strategy!r} needs the classifier's daily outputs "
                "(regime, p_distressed) and none were supplied: run the model over the "
                "history first or pass a model version"
            )
        column = "regime" if source == "regime" else "p_distressed"
        if column not in self.model_outputs:
            raise NoDataError(f"strategy {strategy!r} needs model outputs with column {column!r}")
        values = self.model_outputs[column].astype(float).reindex(self.features.index)
        return values if source == "regime" else distressed_from_probability(values)


def build_signal(config: StrategyConfig, inputs: SignalInputs) -> StrategySignal:
    """Exposure decided at each close for one strategy config."""
    calendar = inputs.features.index
    match config:
        case BuyAndHoldConfig():
            return StrategySignal(
                exposure=pd.Series(1.0, index=calendar), no_input=pd.Series(False, index=calendar)
            )
        case RulesConfig() | SingleFilterConfig():
            return _rules_signal(config.rule_set(), inputs)
        case ModelConfig():
            model = inputs.model_regime(config.signal, config.label)
            return StrategySignal(
                exposure=model_exposure(model, config.model_mapping()),
                no_input=pd.Series(False, index=calendar),
                regime_code=model.where(model.isna(), (model >= 1).astype(float)),
                regime_labels=MODEL_REGIME_LABELS,
            )
        case EnsembleConfig():
            return _ensemble_signal(config, inputs)
        case VolTargetConfig():
            base = build_signal(config.base, inputs)
            exposure = vol_target_exposure(
                base.exposure,
                inputs.asset_returns,
                target_volatility=config.target_volatility,
                lookback_days=config.lookback_days,
                max_leverage=config.max_leverage,
            )
            return replace(base, exposure=exposure)
        case RuleSetConfig():
            return rule_set_signal(config.rule_set_definition(), inputs)
        case AllocationConfig():
            return _allocation_signal(config, inputs)
    raise TypeError(f"unknown strategy config {type(config).__name__}")


def _rules_signal(rule_set: RuleSet, inputs: SignalInputs) -> StrategySignal:
    table = inputs.regimes(rule_set)
    codes, no_input = _policy_filled_codes(table["regime_code"], table["votes"], rule_set.table)
    return _rule_based(rule_set, codes, no_input, table)


def rule_set_signal(definition: RuleSetDefinition, inputs: SignalInputs) -> StrategySignal:
    """A rule set as data, evaluated by core.rulesets.evaluate (what the service
    stores and serves); days without any input take the unavailable policy's regime."""
    evaluation = evaluate(definition, inputs.readings(), fill_no_input=True)
    index = inputs.features.index
    return StrategySignal(
        exposure=pd.Series(evaluation.exposure, index=index),
        no_input=pd.Series(evaluation.no_input, index=index),
        regime_code=pd.Series(evaluation.regime_code, index=index),
        regime_labels=RULE_REGIME_LABELS,
        definition=definition,
    )


def _allocation_signal(config: AllocationConfig, inputs: SignalInputs) -> StrategySignal:
    """Share of the traded asset by regime (1, caution_share, 0); the rest holds the
    defensive asset."""
    base = build_signal(config.base, inputs)
    shares = np.array([1.0, config.caution_share, 0.0])
    codes = base.regime_code.to_numpy(dtype=float)  # type: ignore[union-attr]
    exposure = np.full(codes.shape, np.nan)
    known = ~np.isnan(codes)
    exposure[known] = shares[codes[known].astype(int)]
    return replace(
        base,
        exposure=pd.Series(exposure, index=base.exposure.index),
        uninvested_returns=inputs.returns_of(config.defensive, config.label),
    )


def _ensemble_signal(config: EnsembleConfig, inputs: SignalInputs) -> StrategySignal:
    rule_set = config.rule_set()
    rules = inputs.regimes(rule_set)
    model = inputs.model_regime(config.signal, config.label)
    table = ensemble_regimes(rules["votes"], rules["available"], model, rule_set.table)
    codes, no_input = _policy_filled_codes(table["regime_code"], table["votes"], rule_set.table)
    return _rule_based(rule_set, codes, no_input, rules)


def _rule_based(
    rule_set: RuleSet, codes: pd.Series, no_input: pd.Series, filters: pd.DataFrame
) -> StrategySignal:
    return StrategySignal(
        exposure=pd.Series(rule_set.table.exposure_of_codes(codes.to_numpy()), index=codes.index),
        no_input=no_input,
        regime_code=codes,
        regime_labels=RULE_REGIME_LABELS,
        rule_set=rule_set,
        filters=filters,
    )


def _policy_filled_codes(
    codes: pd.Series, votes: pd.Series, table: RegimeTable
) -> tuple[pd.Series, pd.Series]:
    """Regime codes with days lacking every input set from the policy's votes.

    core.rules already counts an unavailable filter in ``votes`` under the
    ``firing`` policy and leaves it out under ``abstain``, so the table applied
    to those votes is the policy's answer.
    """
    values = codes.to_numpy(dtype=float)
    no_input = np.isnan(values)
    filled = np.where(no_input, table.regime_codes(votes.to_numpy(dtype=int)), values)
    return pd.Series(filled, index=codes.index), pd.Series(no_input, index=codes.index)


def label_codes(codes: pd.Series, labels: tuple[str, ...]) -> pd.Series:
    """Label per day for integer codes (float, NaN -> None)."""
    values = codes.to_numpy(dtype=float)
    out = np.full(values.shape, None, dtype=object)
    known = ~np.isnan(values)
    out[known] = np.asarray(labels, dtype=object)[values[known].astype(int)]
    return pd.Series(out, index=codes.index, dtype=object)


def vol_target_exposure(
    base_exposure: pd.Series,
    asset_returns: pd.Series,
    *,
    target_volatility: float,
    lookback_days: int,
    max_leverage: float,
) -> pd.Series:
    """Base exposure scaled by target / realised volatility, capped at ``max_leverage``.

    Realised volatility on day t is the sample std of the asset's daily returns
    over the ``lookback_days`` days ending at close t, times sqrt(252): it uses
    only returns known at the close where the exposure is decided (held from
    t+1 on). NaN until the lookback is full or where the base exposure is NaN.
    A zero realised volatility scales to the cap.
    """
    exposure = _vol_target(
        base_exposure.to_numpy(dtype=float),
        asset_returns.reindex(base_exposure.index),
        target_volatility=target_volatility,
        lookback_days=lookback_days,
        max_leverage=max_leverage,
    )
    return pd.Series(exposure, index=base_exposure.index)
