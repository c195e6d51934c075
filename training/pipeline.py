"""Training runs end to end: seeds, labels, windows, splits, fit, export, model card.

``fit_transformer`` trains on a prepared WindowSet (used by training and the
walk-forward); ``train_version`` owns the files: it exports ONNX, checks parity,
writes ``<models_dir>/<version>/`` with the card (which holds the resolved
configuration) and returns it. Database registration is the caller's (CLI) job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import sklearn
import torch
from torch import nn

from core.features import FEATURE_SET_VERSION, MODEL_FEATURES
from core.policies import DISTRESSED_PROBABILITY
from inference.card import (
    Calibration,
    LabelSummary,
    ModelCard,
    Normalisation,
    OnnxSignature,
    Period,
)
from inference.registry import write_version
from inference.versions import make_version
from training import export
from training.baselines import persistence_forecast
from training.calibration import calibration_report, fit_calibration
from training.config import LabelMethod, ModelConfig, TrainerConfig, TrainingSetup, resolved
from training.data import feature_fingerprint
from training.labels import FittedLabeler, fit_labeler
from training.metrics import classification_metrics
from training.model import RegimeTransformer
from training.splits import WindowSplit, fraction_split
from training.trainer import EpochRecord, FitResult, class_weights, fit
from training.windows import WindowSet, build_windows, window_positions

log = logging.getLogger(__name__)

PARITY_SAMPLE = 512  # windows compared between torch and onnxruntime before writing


@dataclass(frozen=True)
class TrainedModel:
    model: RegimeTransformer
    labeler: FittedLabeler
    windows: WindowSet
    split: WindowSplit
    fit: FitResult
    metrics: dict[str, dict[str, float]]
    calibration: Calibration


def seed_everything(seed: int) -> None:
    """Seed every RNG a run touches, and make torch kernels deterministic."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def fit_transformer(
    windows: WindowSet,
    split: WindowSplit,
    model_config: ModelConfig,
    trainer: TrainerConfig,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> tuple[RegimeTransformer, FitResult]:
    """A fresh seeded model trained on ``split.train`` with early stopping on ``split.val``.

    The normaliser's mean/std come from the training windows' last days (each
    training day counted once), so nothing after the training split leaks in.
    """
    torch.set_num_threads(trainer.threads)
    seed_everything(trainer.seed)
    train, val = windows.take(split.train), windows.take(split.val)
    last_days = train.inputs[:, -1, :].astype(np.float64)
    std = last_days.std(axis=0)
    std[std == 0.0] = 1.0
    model = RegimeTransformer(model_config)
    model.normaliser.set_statistics(
        torch.as_tensor(last_days.mean(axis=0), dtype=torch.float32),
        torch.as_tensor(std, dtype=torch.float32),
    )
    weights = (
        class_weights(train.targets, model_config.n_classes)
        if trainer.class_weighted
        else np.ones(model_config.n_classes)
    )
    loss_fn = nn.CrossEntropyLoss(weight=torch.as_tensor(weights, dtype=torch.float32))
    result = fit(
        model,
        (torch.as_tensor(train.inputs), torch.as_tensor(train.targets)),
        (torch.as_tensor(val.inputs), torch.as_tensor(val.targets)),
        loss_fn,
        trainer,
        on_epoch,
    )
    log.info(
        "trained on %d windows, validated on %d: best epoch %d of %d (%s, %.1fs)",
        len(train),
        len(val),
        result.best_epoch,
        len(result.history),
        result.stop_reason,
        result.seconds,
    )
    return model, result


def split_metrics(
    model: RegimeTransformer, windows: WindowSet, split: WindowSplit
) -> dict[str, dict[str, float]]:
    """Classification metrics of the torch model on each non-empty split."""
    out: dict[str, dict[str, float]] = {}
    for name, rows in (("train", split.train), ("validation", split.val), ("test", split.test)):
        if len(rows) == 0:
            continue
        subset = windows.take(rows)
        p = export.torch_probabilities(model, subset.inputs)[:, 1]
        called = (p >= DISTRESSED_PROBABILITY).astype(float)
        out[name] = classification_metrics(subset.targets, p, called)
    return out


def train_classifier(
    features: pd.DataFrame,
    setup: TrainingSetup,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainedModel:
    """Labels -> windows -> chronological split -> trained model, all in memory.

    ``features`` is the feature table for the training period (indexed by
    date). The labeler is fitted on days before the test split's first window
    end (all days when there is no test split).
    """
    setup.validate()
    positions = window_positions(features, setup.windows)
    split = fraction_split(len(positions), setup.split, setup.windows)
    fit_until = (
        features.index[positions[split.test[0]] - 1] if len(split.test) else features.index[-1]
    )
    labeler = fit_labeler(features, setup.labels, fit_until=fit_until)
    labels = labeler.labels(features)
    windows = build_windows(features, labels, setup.windows, positions)
    model, result = fit_transformer(windows, split, setup.model, setup.trainer, on_epoch)
    metrics = split_metrics(model, windows, split)
    calibration = calibrate(model, windows, split, labels, setup)
    return TrainedModel(model, labeler, windows, split, result, metrics, calibration)


def calibrate(
    model: RegimeTransformer,
    windows: WindowSet,
    split: WindowSplit,
    labels: pd.Series,
    setup: TrainingSetup,
) -> Calibration:
    """Calibration fitted on the validation windows, with its scores on validation and
    test (climatology = the training windows' base rate; persistence = the latest target
    known on each day)."""
    persistence = persistence_forecast(
        labels, horizon=setup.windows.horizon, target_kind=setup.windows.target
    )["score"]
    splits = {}
    for name, rows in (("validation", split.val), ("test", split.test)):
        if len(rows) == 0:
            continue
        subset = windows.take(rows)
        p = export.torch_probabilities(model, subset.inputs)[:, 1]
        known = persistence.reindex(subset.end_dates).to_numpy(dtype=float)
        splits[name] = (subset.targets.astype(float), p, known)
    y_val, p_val, _ = splits["validation"]
    fitted = fit_calibration(
        p_val, y_val, setup.calibration, fitted_on=_period(windows.end_dates[split.val])
    )
    base_rate = float(windows.targets[split.train].mean())
    report = calibration_report(fitted, splits, base_rate=base_rate)
    return fitted.model_copy(update={"metrics": report})


def _period(dates: pd.DatetimeIndex) -> Period | None:
    return Period(start=dates[0].date(), end=dates[-1].date()) if len(dates) else None


def _out_of_sample_summary(
    trained: TrainedModel, test_days: pd.DatetimeIndex
) -> dict[str, object] | None:
    """The held-out test split (after the in-sample cut-off): period, classification
    metrics and calibrated probability scores; None without a test split."""
    if not len(test_days):
        return None
    return {
        "split": "test",
        "start": test_days[0].date().isoformat(),
        "end": test_days[-1].date().isoformat(),
        "classification": trained.metrics.get("test"),
        "probability": trained.calibration.metrics.get("test_calibrated"),
    }


def build_card(
    trained: TrainedModel,
    features: pd.DataFrame,
    setup: TrainingSetup,
    onnx_sha256: str,
    created_at: dt.datetime,
    parity: float,
) -> ModelCard:
    """The model card of a trained model whose ONNX file has digest ``onnx_sha256``."""
    windows, split, labeler = trained.windows, trained.split, trained.labeler
    normaliser = trained.model.normaliser
    # Last day whose data shaped the model: the labeler's fit or the validation split.
    last_used = max(labeler.fit_end, windows.end_dates[split.val[-1]])
    # Later still when the validation targets read labels past their windows' last days.
    in_sample_until = max(last_used, windows.target_dates[split.val[-1]]).date()
    trained_until = last_used.date()
    training_rows = features.loc[features.index <= last_used]
    return ModelCard(
        version=make_version(trained_until, onnx_sha256),
        created_at=created_at,
        feature_set_version=FEATURE_SET_VERSION,
        features=list(MODEL_FEATURES),
        window=setup.windows.window,
        horizon=setup.windows.horizon,
        normalisation=Normalisation(
            mean=dict(zip(MODEL_FEATURES, normaliser.mean.tolist(), strict=True)),
            std=dict(zip(MODEL_FEATURES, normaliser.std.tolist(), strict=True)),
        ),
        labels=LabelSummary(
            preset=setup.labels.preset,
            n_clusters=setup.labels.n_clusters,
            features=list(setup.labels.features),
            standardise=setup.labels.standardise,
            fit_period=Period(start=labeler.fit_start.date(), end=labeler.fit_end.date()),
            leaks_future=setup.labels.leaks_future,
            distressed_clusters=list(labeler.distressed_clusters),
            centroids=labeler.centroids.tolist(),
            method=setup.labels.method.value,
            jump_penalty=setup.labels.jump_penalty
            if setup.labels.method is LabelMethod.JUMP
            else None,
        ),
        training_period=Period(start=features.index[0].date(), end=trained_until),
        splits={
            "train": _period(windows.end_dates[split.train]),
            "validation": _period(windows.end_dates[split.val]),
            "test": _period(windows.end_dates[split.test]),
        },
        data_fingerprint=feature_fingerprint(training_rows),
        metrics=trained.metrics,
        onnx_sha256=onnx_sha256,
        onnx=OnnxSignature(
            input_name=export.INPUT_NAME, output_name=export.OUTPUT_NAME, opset=export.OPSET
        ),
        config=resolved(
            setup.labels,
            setup.windows,
            setup.split,
            setup.model,
            setup.trainer,
            setup.calibration,
        ),
        target=setup.windows.target.value,
        in_sample_until=in_sample_until,
        calibration=trained.calibration,
        out_of_sample=_out_of_sample_summary(trained, windows.end_dates[split.test]),
        training={
            "epochs_run": len(trained.fit.history),
            "best_epoch": trained.fit.best_epoch,
            "best_val_loss": trained.fit.best_val_loss,
            "stop_reason": trained.fit.stop_reason,
            "seconds": round(trained.fit.seconds, 2),
            "windows": {
                "train": len(split.train),
                "validation": len(split.val),
                "test": len(split.test),
            },
            "parity_max_abs_diff": parity,
            "libraries": {
                "torch": torch.__version__,
                "onnxruntime": onnxruntime.__version__,
                "scikit-learn": sklearn.__version__,
            },
        },
    )


def train_version(
    features: pd.DataFrame,
    setup: TrainingSetup,
    models_dir: Path,
    created_at: dt.datetime | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> tuple[ModelCard, Path]:
    """Train, export, check parity and write a version folder. Returns (card, folder)."""
    trained = train_classifier(features, setup, on_epoch)
    onnx_bytes = export.export_onnx(trained.model)
    sample = trained.windows.inputs[-PARITY_SAMPLE:]
    parity = export.check_parity(trained.model, onnx_bytes, sample)
    card = build_card(
        trained,
        features,
        setup,
        hashlib.sha256(onnx_bytes).hexdigest(),
        created_at or dt.datetime.now(dt.UTC),
        parity,
    )
    folder = write_version(models_dir, card, onnx_bytes)
    log.info("wrote model %s to %s (parity %.2g)", card.version, folder, parity)
    return card, folder
