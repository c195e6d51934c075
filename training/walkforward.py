"""Walk-forward evaluation: expanding window, refit every year, predict the next year.

For each test year Y (default 2012..2024):

1. Fit the labeler (scaler + KMeans) on days before 1 January of Y only, and
   label every day with it; test-year truth therefore comes from that refit.
2. Windows ending before Y form [train][gap][validation][gap]; the Transformer
   trains on the first, stops early on the second, and its probability is
   calibrated on the second (training.calibration). Windows ending in Y are
   the test set; the gaps (window + horizon windows) keep any input or target
   day from being shared across splits.
3. The baselines are fitted on the same days (before Y) and score the test days
   causally.

Every method is scored on the same test days (the Transformer's complete
windows), and the calls drive the out-of-sample backtest.

Each refit also scores every day of its test year with a complete input window,
target known or not (``WalkForwardResult.outputs``): the out-of-sample history a
model version ships beside itself (training.walk_forward_file).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from core.errors import ConfigError, NoDataError
from core.features import MODEL_FEATURES
from core.policies import DISTRESSED_PROBABILITY
from inference.calibration import apply_calibration
from inference.card import Calibration
from inference.windows import complete_window_ends, feature_matrix, sliding_windows
from training import export
from training.baselines import BASELINE_NAMES, BaselineConfig, all_baselines
from training.calibration import fit_calibration, probability_scores
from training.config import TrainingSetup
from training.labels import fit_labeler
from training.metrics import METRIC_NAMES, classification_metrics
from training.model import RegimeTransformer
from training.pipeline import fit_transformer
from training.splits import chronological_split
from training.windows import build_windows, window_positions

log = logging.getLogger(__name__)

TRANSFORMER = "transformer"
METHODS: tuple[str, ...] = (TRANSFORMER, *BASELINE_NAMES)


@dataclass(frozen=True)
class WalkForwardConfig:
    first_test_year: int = 2012
    last_test_year: int = 2024
    setup: TrainingSetup = field(default_factory=TrainingSetup)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    jobs: int = 1  # test years refitted at once, one process each (results are identical)

    def validate(self) -> WalkForwardConfig:
        if not 1 <= self.jobs <= 16:
            raise ConfigError(f"jobs must be between 1 and 16, got {self.jobs!r}")
        if not 1900 <= self.first_test_year <= self.last_test_year <= 2200:
            raise ConfigError(
                "test years must satisfy 1900 <= first <= last <= 2200, got "
                f"{self.first_test_year!r}..{self.last_test_year!r}"
            )
        self.setup.validate()
        self.baselines.validate()
        return self


@dataclass(frozen=True)
class RefitSummary:
    year: int
    fit_until: str  # last day any fit (labels, scaler, model, baselines) could read
    labeler_fit_end: str
    train_windows: int
    val_windows: int
    test_days: int
    best_epoch: int
    epochs_run: int
    seconds: float


@dataclass(frozen=True)
class WalkForwardResult:
    """``predictions``: one row per test day with ``year``, ``truth`` (0/1) and, per
    method m, ``m_score`` and ``m_call``; ``refits`` in year order. ``outputs``: the
    Transformer's calibrated ``p_distressed`` and ``regime`` for every test-year day with
    a complete input window (also the last days whose target is not known yet), with
    ``fold_cutoff``, the last day its refit could read."""

    predictions: pd.DataFrame
    refits: tuple[RefitSummary, ...]
    outputs: pd.DataFrame = field(default_factory=pd.DataFrame)

    def metrics_by_year(self) -> pd.DataFrame:
        """Rows (year, method), columns METRIC_NAMES."""
        rows = {
            (int(year), method): self._metrics(group, method)
            for year, group in self.predictions.groupby("year")
            for method in METHODS
        }
        frame = pd.DataFrame.from_dict(rows, orient="index").loc[:, list(METRIC_NAMES)]
        frame.index = pd.MultiIndex.from_tuples(frame.index, names=["year", "method"])
        return frame

    def overall_metrics(self) -> pd.DataFrame:
        """Rows = methods, columns METRIC_NAMES, over every test day pooled."""
        rows = {method: self._metrics(self.predictions, method) for method in METHODS}
        return pd.DataFrame.from_dict(rows, orient="index").loc[:, list(METRIC_NAMES)]

    @staticmethod
    def _metrics(frame: pd.DataFrame, method: str) -> dict[str, float]:
        return classification_metrics(
            frame["truth"].to_numpy(),
            frame[f"{method}_score"].to_numpy(),
            frame[f"{method}_call"].to_numpy(),
        )


def refit_year(
    features: pd.DataFrame, year: int, config: WalkForwardConfig, positions: np.ndarray
) -> tuple[pd.DataFrame, RefitSummary, pd.DataFrame] | None:
    """Fit everything on days before ``year`` and predict the windows ending in it.

    Returns (predictions, summary, outputs) or None when no window ends in ``year``.
    """
    setup = config.setup
    test_start, test_end = pd.Timestamp(year, 1, 1), pd.Timestamp(year, 12, 31)
    before = features.index < test_start
    if not before.any():
        raise NoDataError(f"no data before {year} to fit on")
    fit_until = features.index[before][-1]
    started = time.perf_counter()

    labeler = fit_labeler(features, setup.labels, fit_until=fit_until)
    labels = labeler.labels(features)
    end_dates = features.index[positions]
    windows = build_windows(features, labels, setup.windows, positions[end_dates <= test_end])
    n_test = int((windows.end_dates >= test_start).sum())
    if n_test == 0:
        return None
    gap = setup.split.gap_for(setup.windows)
    n_fit = len(windows) - n_test - 2 * gap
    split = chronological_split(
        len(windows),
        n_val=max(1, round(n_fit * setup.split.val_fraction)),
        n_test=n_test,
        gap=gap,
    )
    model, fit_result = fit_transformer(windows, split, setup.model, setup.trainer)
    val, test = windows.take(split.val), windows.take(split.test)
    calibration = fit_calibration(
        export.torch_probabilities(model, val.inputs)[:, 1],
        val.targets.astype(float),
        setup.calibration,
    )
    raw = export.torch_probabilities(model, test.inputs)[:, 1]
    p = apply_calibration(raw, calibration)

    frame = pd.DataFrame(
        {
            "year": year,
            "truth": test.targets.astype(float),
            # Climatology: the training windows' share of positive targets.
            "base_rate": float(windows.targets[split.train].mean()),
            f"{TRANSFORMER}_raw": raw,
            f"{TRANSFORMER}_score": p,
            f"{TRANSFORMER}_call": (p >= DISTRESSED_PROBABILITY).astype(float),
        },
        index=test.end_dates,
    )
    baselines = all_baselines(
        features,
        labels,
        fit_until=fit_until,
        horizon=setup.windows.horizon,
        target_kind=setup.windows.target,
        config=config.baselines,
    )
    for name, forecast in baselines.items():
        frame[f"{name}_score"] = forecast["score"].reindex(test.end_dates).to_numpy()
        frame[f"{name}_call"] = forecast["call"].reindex(test.end_dates).to_numpy()

    summary = RefitSummary(
        year=year,
        fit_until=str(fit_until.date()),
        labeler_fit_end=str(labeler.fit_end.date()),
        train_windows=len(split.train),
        val_windows=len(split.val),
        test_days=n_test,
        best_epoch=fit_result.best_epoch,
        epochs_run=len(fit_result.history),
        seconds=round(time.perf_counter() - started, 1),
    )
    log.info("walk-forward %d: %s", year, summary)
    return frame, summary, _year_outputs(features, year, model, calibration, fit_until, setup)


def _year_outputs(
    features: pd.DataFrame,
    year: int,
    model: RegimeTransformer,
    calibration: Calibration,
    fit_until: pd.Timestamp,
    setup: TrainingSetup,
) -> pd.DataFrame:
    """Calibrated p(distressed) and regime for every day of ``year`` whose input window
    is complete (target known or not), as the refit fitted before it sees them."""
    values = feature_matrix(features, MODEL_FEATURES)
    window = setup.windows.window
    ends = complete_window_ends(values, window)
    days = features.index[ends]
    ends = ends[(days.year == year)]
    if not len(ends):
        return pd.DataFrame(columns=["p_distressed", "regime", "fold_cutoff"])
    inputs = sliding_windows(values, window)[ends - (window - 1)].astype(np.float32)
    p = apply_calibration(export.torch_probabilities(model, inputs)[:, 1], calibration)
    return pd.DataFrame(
        {
            "p_distressed": p,
            "regime": (p >= DISTRESSED_PROBABILITY).astype(int),
            "fold_cutoff": fit_until.date(),
        },
        index=pd.DatetimeIndex(features.index[ends], name="date"),
    )


def walk_forward(
    features: pd.DataFrame,
    config: WalkForwardConfig,
    on_refit: Callable[[RefitSummary | None], None] | None = None,
) -> WalkForwardResult:
    """Refit per test year (``config.jobs`` years at a time, each in its own process) and
    collect the out-of-sample predictions of every method. ``on_refit`` is called as each
    year finishes (None for a year without test windows), e.g. to advance a progress bar."""
    config.validate()
    positions = window_positions(features, config.setup.windows)
    # The latest year first: its refit trains on the most windows, so the longest jobs
    # start first and the last one to finish is short (the parallel run ends sooner).
    years = range(config.last_test_year, config.first_test_year - 1, -1)
    done = []
    # Jump-model fits shared by neighbouring folds are cached on disk for this run only.
    with tempfile.TemporaryDirectory(prefix="deepregime-walk-forward-") as cache:
        run = replace(config, baselines=replace(config.baselines, cache_dir=cache))
        if config.jobs == 1:
            outcomes = (refit_year(features, year, run, positions) for year in years)
        else:
            outcomes = Parallel(n_jobs=config.jobs, return_as="generator_unordered")(
                delayed(refit_year)(features, year, run, positions) for year in years
            )
        for outcome in outcomes:
            if on_refit is not None:
                on_refit(None if outcome is None else outcome[1])
            if outcome is not None:
                done.append(outcome)
    if not done:
        raise NoDataError(f"no test windows in {config.first_test_year}..{config.last_test_year}")
    done.sort(key=lambda outcome: outcome[1].year)
    predictions = pd.concat([frame for frame, _, _ in done])
    predictions.index.name = "date"
    refits = tuple(summary for _, summary, _ in done)
    return WalkForwardResult(predictions, refits, pd.concat([out for _, _, out in done]))


def shipped_history(
    result: WalkForwardResult, cutoff: pd.Timestamp
) -> tuple[pd.DataFrame, dict[str, object]]:
    """The walk-forward outputs a version ships (days up to its in-sample ``cutoff``) and
    their out-of-sample scores on the days whose target is known: Brier, Brier skill
    against climatology (each refit's base rate) and persistence, ECE and ROC AUC."""
    outputs = result.outputs.loc[result.outputs.index <= cutoff]
    scored = result.predictions.loc[result.predictions.index <= cutoff]
    if scored.empty:
        raise NoDataError(f"no walk-forward test day on or before {cutoff.date()}")
    truth = scored["truth"].to_numpy()
    p = scored[f"{TRANSFORMER}_score"].to_numpy()
    scores = probability_scores(
        truth,
        p,
        base_rate=scored["base_rate"].to_numpy(),
        persistence=scored["persistence_score"].to_numpy(),
    )
    metrics = classification_metrics(truth, p, scored[f"{TRANSFORMER}_call"].to_numpy())
    summary: dict[str, object] = {
        "scored_days": len(scored),
        "positive_share": round(float(truth.mean()), 6),
        **{name: round(float(value), 6) for name, value in scores.items()},
        "roc_auc": round(float(metrics["roc_auc"]), 6),
        "balanced_accuracy": round(float(metrics["balanced_accuracy"]), 6),
        "folds": [
            {"year": refit.year, "fold_cutoff": refit.fit_until, "epochs_run": refit.epochs_run}
            for refit in result.refits
            if pd.Timestamp(refit.fit_until) < cutoff
        ],
    }
    return outputs, summary
