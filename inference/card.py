"""The model card (``model.json``): everything needed to reproduce and audit a version.

Written by training, read by the predictor, the CLI and the API. The ONNX graph
takes RAW features (normalisation is its first layer); ``normalisation`` records
the per-feature mean and std baked into the graph, for audit only.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from inference.versions import validate_version

CALM, DISTRESSED = 0, 1
LABEL_MAPPING: dict[str, str] = {str(CALM): "calm", str(DISTRESSED): "distressed"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Period(_Frozen):
    start: dt.date
    end: dt.date


class Normalisation(_Frozen):
    """(x - mean) / std per feature, applied inside the ONNX graph."""

    inside_graph: bool = True
    mean: dict[str, float]
    std: dict[str, float]


class LabelSummary(_Frozen):
    """How the training labels were made (see training.labels)."""

    preset: str
    n_clusters: int
    features: list[str]
    standardise: bool
    fit_period: Period
    leaks_future: bool  # True: fitted on the whole history, including the test period
    distressed_clusters: list[int]  # clusters (ordered by volatility centroid) called distressed
    centroids: list[list[float]]  # in the fitted feature space, calmest first
    method: str = "kmeans"  # or "jump": a statistical jump model (jumpmodels)
    jump_penalty: float | None = None  # the jump model's state-change cost


class CalibrationMethod(StrEnum):
    NONE = "none"  # the graph's probability as it comes out
    TEMPERATURE = "temperature"  # sigmoid(logit(p) / temperature)
    ISOTONIC = "isotonic"  # piecewise-linear through (x, y) knots, non-decreasing


class Calibration(_Frozen):
    """How the graph's p(distressed) becomes the served probability (inference.calibration).

    Fitted on the validation split only; ``metrics`` holds Brier score, Brier skill
    and expected calibration error before ("raw") and after ("calibrated") on the
    validation and test splits."""

    method: CalibrationMethod
    temperature: float | None = None
    knots_x: list[float] | None = None
    knots_y: list[float] | None = None
    fitted_on: Period | None = None
    metrics: dict[str, dict[str, float | None]] = {}


class OnnxSignature(_Frozen):
    input_name: str  # float32 [batch, window, n_features], raw features
    output_name: str  # float32 [batch, 2], class probabilities (calm, distressed)
    opset: int


class ModelCard(_Frozen):
    version: str
    created_at: dt.datetime
    feature_set_version: int
    features: list[str]
    window: int
    horizon: int  # 0: label of the window's last day; h: label h trading days later
    normalisation: Normalisation
    label_mapping: dict[str, str] = LABEL_MAPPING
    labels: LabelSummary
    training_period: Period
    splits: dict[str, Period | None]  # train / validation / test window end dates
    data_fingerprint: str  # sha256 of the training feature rows (training.data)
    metrics: dict[str, dict[str, float | None]]  # split -> metric -> value
    onnx_sha256: str
    onnx: OnnxSignature
    config: dict[str, Any]  # resolved model and trainer configuration
    training: dict[str, Any]  # epochs run, best epoch, seconds, stop reason, library versions
    # What the probability is of (training.targets.Target): "label" is the label of the
    # day ``horizon`` sessions after the window's last day (0: that day, a now-cast).
    target: str = "label"
    # Last day whose data (labeler fit, training or validation inputs and targets) shaped
    # the model; later days are out of sample. None on older cards: training_period.end.
    in_sample_until: dt.date | None = None
    calibration: Calibration | None = None
    # Scores on days after the in-sample cut-off (the held-out test split), if any.
    out_of_sample: dict[str, Any] | None = None
    # The walk-forward out-of-sample history shipped beside the model (walk_forward.csv):
    # file sha256, days, folds, and its Brier, skills and ECE (inference.walk_forward).
    walk_forward: dict[str, Any] | None = None

    @property
    def sample_cutoff(self) -> dt.date:
        """The last in-sample day: outputs for later days are out of sample."""
        return self.in_sample_until or self.training_period.end

    def in_sample(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """[n] bool: each day is on or before the in-sample cut-off."""
        return np.asarray(dates <= pd.Timestamp(self.sample_cutoff), dtype=bool)

    @field_validator("version")
    @classmethod
    def _valid_version(cls, value: str) -> str:
        return validate_version(value)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def as_dict(self) -> dict[str, Any]:
        """What ``model.json`` holds, as a dict (dates as ISO strings, NaN as None),
        e.g. for the database's JSON column (PostgreSQL refuses NaN in JSON)."""
        return json.loads(self.to_json())
