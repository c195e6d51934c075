"""Reproduction report: the published classifier table beside what survives without look-ahead.

Strategies (regime filter 1.0/0.0, leveraged regime 1.5/0.3, buy & hold) driven by:

(a) the as-published labels (3 unstandardised KMeans clusters fitted on the WHOLE
    2005-2024 history, every cluster but the calmest distressed), taken as known at
    the close of day t: the label itself leaks the future through the fit;
(b) a Transformer trained as published on those labels (chronological 80/20
    train/validation split, no test split) whose calls over the whole period are
    mostly in-sample;
(c) the honest walk-forward Transformer (labels and model refitted each year on
    past data only), over its test years.

Each exposure decided at close t earns SPY's return from close t to close t+1.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from backtest.published import PUBLISHED_CLASSIFIER_ROWS
from core.features import MODEL_FEATURES
from core.policies import distressed_from_probability
from inference.windows import complete_window_ends, feature_matrix, sliding_windows
from training import export
from training.config import AS_PUBLISHED_LABELS, SplitConfig, TrainingSetup
from training.data import select_period
from training.labels import fit_labeler
from training.pipeline import train_classifier
from training.strategy import performance_table, regime_exposures
from training.walkforward import TRANSFORMER, WalkForwardResult

PUBLISHED_START = dt.date(2005, 1, 1)
PUBLISHED_END = dt.date(2024, 12, 31)
LABELS_PREFIX = "(a) as-published labels: "
AS_PUBLISHED_PREFIX = "(b) Transformer as published: "
WALK_FORWARD_PREFIX = "(c) walk-forward Transformer: "


@dataclass(frozen=True)
class ReproductionResult:
    published: pd.DataFrame  # the published rows (decimals)
    published_period: pd.DataFrame  # buy & hold, (a) and (b) over 2005-2024
    walk_forward_period: pd.DataFrame | None  # buy & hold, (a), (b) and (c) over the test years
    as_published_training: dict[str, object]
    exposures: pd.DataFrame  # daily exposures of every strategy, for plots


def published_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            row.strategy: {
                "cumulative_return": row.cumulative_return,
                "sharpe": row.sharpe,
                "daily_mean": row.daily_mean,
                "daily_std": row.daily_std,
            }
            for row in PUBLISHED_CLASSIFIER_ROWS
        }
    ).T.rename_axis("strategy")


def as_published_transformer(
    features: pd.DataFrame, setup: TrainingSetup
) -> tuple[pd.Series, dict[str, object]]:
    """Daily p(distressed) of a Transformer trained the published way, over ``features``."""
    published_setup = replace(
        setup, labels=AS_PUBLISHED_LABELS, split=SplitConfig(val_fraction=0.2, test_fraction=0.0)
    )
    trained = train_classifier(features, published_setup)
    window = setup.windows.window
    values = feature_matrix(features, MODEL_FEATURES)
    ends = complete_window_ends(values, window)
    p = np.full(len(features), np.nan)
    p[ends] = export.torch_probabilities(
        trained.model, sliding_windows(values, window)[ends - (window - 1)]
    )[:, 1]
    summary = {
        "train_windows": len(trained.split.train),
        "validation_windows": len(trained.split.val),
        "best_epoch": trained.fit.best_epoch,
        "epochs_run": len(trained.fit.history),
        "seconds": round(trained.fit.seconds, 1),
        "metrics": trained.metrics,
    }
    return pd.Series(p, index=features.index, name="p_distressed"), summary


def reproduce(
    features: pd.DataFrame,
    setup: TrainingSetup,
    walk_forward: WalkForwardResult | None = None,
) -> ReproductionResult:
    """Run (a) and (b) on 2005-2024 and tabulate them with (c) when given."""
    period = select_period(features, PUBLISHED_START, PUBLISHED_END)
    labels = fit_labeler(period, AS_PUBLISHED_LABELS).labels(period)
    p_published, training_summary = as_published_transformer(period, setup)
    exposures = pd.concat(
        [
            regime_exposures(labels, LABELS_PREFIX),
            regime_exposures(distressed_from_probability(p_published), AS_PUBLISHED_PREFIX),
        ],
        axis=1,
    )
    spy_returns = period["ret_1d"]
    published_period = performance_table(exposures, spy_returns)
    walk_forward_period = None
    if walk_forward is not None:
        calls = walk_forward.predictions[f"{TRANSFORMER}_call"].reindex(period.index)
        exposures = exposures.join(regime_exposures(calls, WALK_FORWARD_PREFIX))
        walk_forward_period = performance_table(exposures, spy_returns)
    return ReproductionResult(
        published=published_table(),
        published_period=published_period,
        walk_forward_period=walk_forward_period,
        as_published_training=training_summary,
        exposures=exposures,
    )
