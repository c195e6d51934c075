"""Strategy configurations: one pydantic model per ``kind``, joined in ``StrategyConfig``.

The same schema is read from a JSON/YAML file by ``deepregime backtest --config``
and from the body of ``POST /backtest``. Configs hold parameters only; they are
converted to core's dataclasses (core.rules.RuleSet, core.policies.ModelMapping)
so every filter, table and mapping keeps its one definition in core/.

Kinds:

- ``buy_and_hold``: 100% invested every day.
- ``rules``: the three-filter regime table; a ``preset`` from
  core.rules.RULE_SET_PRESETS ("published" or "platform") with optional
  overrides of any threshold, window, table exposure, the unavailable-filter
  policy and hysteresis.
- ``single_filter``: one filter alone (core.rules.RuleSet.only): 100% when
  clear, 0% when firing.
- ``model``: the classifier's daily regime (or p_distressed >= 0.5) mapped by
  core.policies.ModelMapping: "filter" (1.0/0.0) or "leveraged" (1.5/0.3).
- ``ensemble``: the classifier's distressed call as one more vote in the rule
  set's table (core.policies.ensemble_regimes).
- ``vol_target``: wraps any strategy and scales its exposure by
  target / realised volatility (see backtest.signals.vol_target_exposure).
- ``rule_set``: a rule set as data (core.rulesets.RuleSetDefinition), inline
  (``definition``) or registered by name (``rule_set``; operations.rule_sets
  resolves the name into its stored definition before the run). Evaluated by
  the same code that computes its served regimes.
- ``allocation``: the classic risk-off allocation: the traded asset in risk-on,
  ``caution_share`` of it in caution, none in risk-off; the rest holds the
  ``defensive`` asset (e.g. TLT or BIL), whose daily returns the signal carries
  (StrategySignal.uninvested_returns).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.enums import FilterName, UnavailablePolicy
from core.errors import ConfigError
from core.policies import MAX_LEVERAGE, MODEL_FILTER, MODEL_LEVERAGED, ModelMapping
from core.rules import RULE_SET_PRESETS, FilterRule, RuleSet, rule_set_preset
from core.rulesets import RuleSetDefinition

MODEL_MAPPINGS: dict[str, ModelMapping] = {"filter": MODEL_FILTER, "leveraged": MODEL_LEVERAGED}
MAX_WINDOW_DAYS = 2520  # ten years of trading days, as core.rules.FilterRule accepts

Exposure = Annotated[float, Field(ge=0.0, le=MAX_LEVERAGE)]
ModelSignalSource = Literal["regime", "probability"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def _changes(self) -> dict[str, Any]:
        """Fields set to a value (None means: keep the preset's)."""
        return self.model_dump(exclude_none=True)


class FilterOverride(_Config):
    """Changes to one filter of the preset."""

    threshold: float | None = Field(default=None, allow_inf_nan=False)
    window: int | None = Field(default=None, ge=2, le=MAX_WINDOW_DAYS)
    enabled: bool | None = None

    def apply(self, rule: FilterRule) -> FilterRule:
        return replace(rule, **self._changes())


class RegimeTableOverride(_Config):
    """Changes to the votes -> regime -> exposure table."""

    caution_votes: int | None = Field(default=None, ge=1, le=4)
    risk_off_votes: int | None = Field(default=None, ge=1, le=4)
    risk_on_exposure: Exposure | None = None
    caution_exposure: Exposure | None = None
    risk_off_exposure: Exposure | None = None


class HysteresisOverride(_Config):
    """Confirmation and minimum dwell, in trading days (1 = off)."""

    confirm_days: int | None = Field(default=None, ge=1, le=250)
    min_dwell_days: int | None = Field(default=None, ge=1, le=250)


class RuleParameters(_Config):
    """A rule set: a named preset of core.rules plus overrides."""

    preset: str = Field(default="published", json_schema_extra={"enum": sorted(RULE_SET_PRESETS)})
    trend: FilterOverride | None = None
    volatility: FilterOverride | None = None
    credit: FilterOverride | None = None
    table: RegimeTableOverride | None = None
    unavailable: UnavailablePolicy | None = Field(
        default=None, description="how a filter without input votes (preset default: abstain)"
    )
    hysteresis: HysteresisOverride | None = None

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in RULE_SET_PRESETS:
            raise ValueError(f"unknown preset {value!r}; choose one of {sorted(RULE_SET_PRESETS)}")
        return value

    @model_validator(mode="after")
    def _valid_rule_set(self) -> RuleParameters:
        # Core's checks (e.g. caution_votes <= risk_off_votes) run here so a bad
        # request fails when parsed, naming the parameter.
        try:
            self.rule_set()
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return self

    def rule_set(self) -> RuleSet:
        base = rule_set_preset(self.preset)
        changes: dict[str, Any] = {}
        for name in FilterName:
            override: FilterOverride | None = getattr(self, name.value)
            if override is not None:
                changes[name.value] = override.apply(getattr(base, name.value))
        if self.table is not None:
            changes["table"] = replace(base.table, **self.table._changes())
        if self.unavailable is not None:
            changes["unavailable"] = self.unavailable
        if self.hysteresis is not None:
            changes["hysteresis"] = replace(base.hysteresis, **self.hysteresis._changes())
        if changes:
            changes["name"] = f"{base.name}-custom"
        return replace(base, **changes).validate()

    @property
    def customised(self) -> bool:
        return bool(self._changes().keys() - {"preset", "kind", "name", "filter", "signal"})


class _Strategy(_Config):
    name: str | None = Field(
        default=None, min_length=1, max_length=64, description="label in reports"
    )

    @property
    def label(self) -> str:
        return self.name or self.default_label()

    def default_label(self) -> str:
        raise NotImplementedError


class BuyAndHoldConfig(_Strategy):
    kind: Literal["buy_and_hold"] = "buy_and_hold"

    def default_label(self) -> str:
        return "Buy & hold"


class RulesConfig(_Strategy, RuleParameters):
    kind: Literal["rules"] = "rules"

    def default_label(self) -> str:
        return f"Rules ({self.preset}{', custom' if self.customised else ''})"


class SingleFilterConfig(_Strategy, RuleParameters):
    kind: Literal["single_filter"] = "single_filter"
    filter: FilterName

    def rule_set(self) -> RuleSet:
        return super().rule_set().only(self.filter)

    def default_label(self) -> str:
        suffix = "" if self.preset == "published" and not self.customised else f" ({self.preset})"
        return f"{self.filter.value.capitalize()} only{suffix}"


class ModelConfig(_Strategy):
    kind: Literal["model"] = "model"
    mapping: Literal["filter", "leveraged"] = Field(
        default="filter", description="filter: calm 1.0 / distressed 0.0; leveraged: 1.5 / 0.3"
    )
    calm_exposure: Exposure | None = None
    distressed_exposure: Exposure | None = None
    signal: ModelSignalSource = Field(
        default="regime", description="read the model's regime, or p_distressed >= 0.5"
    )

    def model_mapping(self) -> ModelMapping:
        base = MODEL_MAPPINGS[self.mapping]
        changes = self.model_dump(
            include={"calm_exposure", "distressed_exposure"}, exclude_none=True
        )
        return replace(base, **changes).validate()

    def default_label(self) -> str:
        mapping = self.model_mapping()
        if mapping == MODEL_MAPPINGS[self.mapping]:
            return f"Model {self.mapping}"
        return f"Model {mapping.calm_exposure:g}/{mapping.distressed_exposure:g}"


class EnsembleConfig(_Strategy, RuleParameters):
    kind: Literal["ensemble"] = "ensemble"
    signal: ModelSignalSource = "regime"

    def default_label(self) -> str:
        return f"Ensemble ({self.preset} + model)"


class VolTargetConfig(_Strategy):
    kind: Literal["vol_target"] = "vol_target"
    base: StrategyConfig
    target_volatility: float = Field(
        default=0.10, gt=0.0, le=1.0, description="annualised, e.g. 0.10 for 10%"
    )
    lookback_days: int = Field(default=20, ge=2, le=252)
    max_leverage: float = Field(
        default=1.0, gt=0.0, le=MAX_LEVERAGE, description="cap on the resulting exposure"
    )

    def default_label(self) -> str:
        return f"{self.base.label} @ {self.target_volatility:.0%} vol"


class RuleSetConfig(_Strategy):
    kind: Literal["rule_set"] = "rule_set"
    rule_set: str | None = Field(
        default=None, min_length=1, max_length=48, description="a registered rule set's name"
    )
    definition: dict[str, Any] | None = Field(
        default=None, description="an inline rule set definition (GET /rule-sets/{name} shows one)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> RuleSetConfig:
        if self.rule_set is None and self.definition is None:
            raise ValueError("give 'rule_set' (a registered name) or an inline 'definition'")
        if self.definition is not None:
            try:
                definition = RuleSetDefinition.from_dict(self.definition)
            except ConfigError as error:
                raise ValueError(str(error)) from None
            # Both: a registered name resolved into its stored definition (kept for audit).
            if self.rule_set is not None and definition.name != self.rule_set:
                raise ValueError(f"definition is named {definition.name!r}, not {self.rule_set!r}")
        return self

    def rule_set_definition(self) -> RuleSetDefinition:
        if self.definition is None:
            raise ConfigError(
                f"rule set {self.rule_set!r} was not resolved: registered rule sets are read "
                "from the database (operations.rule_sets.resolve_strategies)"
            )
        return RuleSetDefinition.from_dict(self.definition)

    def default_label(self) -> str:
        return f"Rule set {self.rule_set or (self.definition or {}).get('name', '?')}"


class AllocationConfig(_Strategy):
    kind: Literal["allocation"] = "allocation"
    base: Annotated[RulesConfig | RuleSetConfig, Field(discriminator="kind")] = Field(
        default_factory=RulesConfig, description="what decides the regime"
    )
    defensive: str = Field(
        default="TLT", min_length=1, max_length=32, description="held in risk-off (TLT, BIL...)"
    )
    caution_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="share of the traded asset in caution"
    )

    def default_label(self) -> str:
        return f"Risk-off allocation ({self.base.label} / {self.defensive})"


StrategyConfig = Annotated[
    BuyAndHoldConfig
    | RulesConfig
    | SingleFilterConfig
    | ModelConfig
    | EnsembleConfig
    | VolTargetConfig
    | RuleSetConfig
    | AllocationConfig,
    Field(discriminator="kind"),
]
VolTargetConfig.model_rebuild()


def uses_model(config: StrategyConfig) -> bool:
    """Whether the strategy reads the classifier's daily outputs."""
    if isinstance(config, VolTargetConfig):
        return uses_model(config.base)
    return isinstance(config, ModelConfig | EnsembleConfig)


def symbols_needed(configs: list[StrategyConfig]) -> set[str]:
    """Symbols whose closes the strategies read besides the feature table (rule sets'
    inputs, defensive assets); registered rule sets must be resolved first."""
    found: set[str] = set()
    for config in configs:
        if isinstance(config, VolTargetConfig):
            found |= symbols_needed([config.base])
        elif isinstance(config, AllocationConfig):
            found |= symbols_needed([config.base]) | {config.defensive}
        elif isinstance(config, RuleSetConfig) and config.definition is not None:
            found |= set(config.rule_set_definition().symbols)
    return found
