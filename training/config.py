"""Typed, frozen settings of the training pipeline, each validated before use.

Defaults follow the published design (published_results.md, part B): six
features, 60-day windows, a 64-wide encoder with 2 layers, 4 heads and a
128-wide feed-forward block. Everything not published (batch size, learning
rate, patience, split fractions) is a plain default here, fixed by meaning and
never tuned on test results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from core.errors import ConfigError
from core.features import MODEL_FEATURES
from inference.card import CalibrationMethod


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value!r}")


class DistressedRule(StrEnum):
    HIGHEST = "highest"  # only the cluster with the highest volatility centroid
    ALL_BUT_CALMEST = "all-but-calmest"  # every cluster except the calmest (authors' code)


class LabelMethod(StrEnum):
    KMEANS = "kmeans"  # nearest centroid of each day's own features
    JUMP = "jump"  # statistical jump model (jumpmodels): states persist unless a jump pays


class Pooling(StrEnum):
    LAST = "last"  # the last day's token: the window ends on the day being classified
    MEAN = "mean"  # the average over the window's tokens


@dataclass(frozen=True)
class LabelConfig:
    """KMeans or jump-model regime labels. Clusters (states) are ordered by their
    ``volatility_feature`` centroid (calmest first), so a refit never swaps labels."""

    preset: str = "standardised-2"
    method: LabelMethod = LabelMethod.KMEANS
    # Cost of a state change in the jump model's objective (standardised features); unused
    # by KMeans. 50 is the jumpmodels examples' value for standardised daily features.
    jump_penalty: float = 50.0
    n_clusters: int = 2
    features: tuple[str, ...] = MODEL_FEATURES
    standardise: bool = True
    # True fits on the whole history given, test period included: it LEAKS the future.
    fit_on_full_history: bool = False
    distressed: DistressedRule = DistressedRule.HIGHEST
    volatility_feature: str = "rv_20d"
    seed: int = 0
    n_init: int = 10

    @property
    def leaks_future(self) -> bool:
        return self.fit_on_full_history

    def validate(self) -> LabelConfig:
        _check_range("label n_clusters", self.n_clusters, 2, 10)
        _check_range("label n_init", self.n_init, 1, 100)
        _check_range("label jump_penalty", self.jump_penalty, 0.0, 1e6)
        if self.method is LabelMethod.JUMP and not self.standardise:
            raise ConfigError("jump-model labels need standardised features (standardise=True)")
        unknown = [name for name in self.features if name not in MODEL_FEATURES]
        if unknown or not self.features:
            raise ConfigError(
                f"label features must be a non-empty subset of {list(MODEL_FEATURES)}, "
                f"got {list(self.features)!r}"
            )
        if self.volatility_feature not in self.features:
            raise ConfigError(
                f"label volatility_feature {self.volatility_feature!r} must be one of the "
                f"label features {list(self.features)}"
            )
        return self


# The design's default (the authors' README): two standardised clusters on the
# six model features, fitted on the training period only.
STANDARDISED_LABELS = LabelConfig()
# The authors' code: three unstandardised clusters on four features, fitted on
# the whole history; every cluster but the calmest is distressed. Leaks the future.
AS_PUBLISHED_LABELS = LabelConfig(
    preset="as-published",
    n_clusters=3,
    features=("ret_1d", "ret_20d", "rv_20d", "vix"),
    standardise=False,
    fit_on_full_history=True,
    distressed=DistressedRule.ALL_BUT_CALMEST,
)
# A two-state statistical jump model on the six standardised features, fitted on the
# training period only; later days get its online (causal) state.
JUMP_LABELS = LabelConfig(preset="jump", method=LabelMethod.JUMP)
LABEL_PRESETS: Mapping[str, LabelConfig] = MappingProxyType(
    {preset.preset: preset for preset in (STANDARDISED_LABELS, AS_PUBLISHED_LABELS, JUMP_LABELS)}
)


def label_preset(name: str) -> LabelConfig:
    try:
        return LABEL_PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown label preset {name!r}; choose one of {sorted(LABEL_PRESETS)}"
        ) from None


class Target(StrEnum):
    """What the window ending on day t is asked (training.targets computes each)."""

    LABEL = "label"  # the label of day t + horizon (horizon 0: a now-cast)
    DISTRESS_WITHIN = "distress-within"  # any distressed day among t+1 .. t+horizon
    CHANGE_WITHIN = "change-within"  # any day among t+1 .. t+horizon labelled unlike day t


@dataclass(frozen=True)
class WindowConfig:
    window: int = 60  # trading days read by the classifier
    horizon: int = 0  # 0: label of the window's last day (now-cast); h: h trading days later
    target: Target = Target.LABEL

    def validate(self) -> WindowConfig:
        _check_range("window", self.window, 2, 512)
        _check_range("horizon", self.horizon, 0, 250)
        if self.target is not Target.LABEL and self.horizon < 1:
            raise ConfigError(
                f"target {self.target.value!r} needs a horizon of at least 1, got {self.horizon!r}"
            )
        return self


@dataclass(frozen=True)
class SplitConfig:
    """Chronological fractions of the windows; gaps of ``gap`` windows between splits.

    ``gap=None`` means window + horizon, the smallest gap at which no two windows
    from different splits share an input day or a target day.
    """

    val_fraction: float = 0.15
    test_fraction: float = 0.15
    gap: int | None = None

    def gap_for(self, windows: WindowConfig) -> int:
        return windows.window + windows.horizon if self.gap is None else self.gap

    def validate(self, windows: WindowConfig) -> SplitConfig:
        _check_range("val_fraction", self.val_fraction, 0.01, 0.5)
        _check_range("test_fraction", self.test_fraction, 0.0, 0.5)
        if self.gap is not None and self.gap < windows.window:
            raise ConfigError(
                f"split gap must be at least the window length {windows.window}, got {self.gap!r}"
            )
        return self


@dataclass(frozen=True)
class ModelConfig:
    """The published encoder: raw features -> normalise -> project to d_model -> +position
    -> n_layers x (self-attention, feed-forward) -> pool -> two-class head."""

    n_features: int = len(MODEL_FEATURES)
    window: int = 60
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    dropout: float = 0.1
    n_classes: int = 2
    pooling: Pooling = Pooling.LAST

    def validate(self) -> ModelConfig:
        _check_range("n_features", self.n_features, 1, 256)
        _check_range("model window", self.window, 2, 512)
        _check_range("d_model", self.d_model, 4, 1024)
        _check_range("n_layers", self.n_layers, 1, 12)
        _check_range("n_heads", self.n_heads, 1, 16)
        _check_range("d_ff", self.d_ff, 4, 4096)
        _check_range("dropout", self.dropout, 0.0, 0.9)
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be divisible by n_heads, got {self.n_heads!r}"
            )
        return self


def default_threads() -> int:
    """One torch thread. On the two-core training box, shared with the database and the
    service, a second intra-op thread bought little on these small matrices when the
    box was quiet and cost 3-5x when it was busy (7 s vs 20-40 s per epoch measured)."""
    return 1


@dataclass(frozen=True)
class TrainerConfig:
    max_epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    # Epochs without a lower validation loss before stopping. The validation loss swings
    # from epoch to epoch (a few volatile months weigh a lot), so a short patience stops
    # on noise: with 5 the full-history model once stopped at its first epoch.
    patience: int = 10
    max_seconds: float | None = None  # wall-clock budget; the best epoch so far is kept
    seed: int = 0
    threads: int = field(default_factory=default_threads)
    class_weighted: bool = True  # inverse-frequency weights in the loss (1.0 when balanced)

    def validate(self) -> TrainerConfig:
        _check_range("max_epochs", self.max_epochs, 1, 10_000)
        _check_range("batch_size", self.batch_size, 1, 65_536)
        _check_range("learning_rate", self.learning_rate, 1e-7, 1.0)
        _check_range("patience", self.patience, 1, 1_000)
        _check_range("threads", self.threads, 1, 256)
        if self.max_seconds is not None:
            _check_range("max_seconds", self.max_seconds, 0.1, 86_400)
        return self


RELIABILITY_BINS = 10  # equal-width probability bins of the reliability table and ECE


@dataclass(frozen=True)
class CalibrationConfig:
    """How validation-split probabilities are calibrated (training.calibration)."""

    method: CalibrationMethod = CalibrationMethod.TEMPERATURE
    bins: int = RELIABILITY_BINS

    def validate(self) -> CalibrationConfig:
        _check_range("calibration bins", self.bins, 2, 100)
        return self


@dataclass(frozen=True)
class TrainingSetup:
    """Everything that decides a trained model (the resolved config of a run)."""

    labels: LabelConfig = STANDARDISED_LABELS
    windows: WindowConfig = field(default_factory=WindowConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)

    def validate(self) -> TrainingSetup:
        self.calibration.validate()
        self.labels.validate()
        self.windows.validate()
        self.split.validate(self.windows)
        self.model.validate()
        self.trainer.validate()
        if self.model.window != self.windows.window:
            raise ConfigError(
                f"model window {self.model.window} must equal the data window {self.windows.window}"
            )
        return self


def resolved(*configs: Any) -> dict[str, Any]:
    """JSON-native view of dataclass configs keyed by class name (for the model card):
    tuples become lists and enums their values, exactly as the card file stores them."""
    return json.loads(json.dumps({type(config).__name__: asdict(config) for config in configs}))
