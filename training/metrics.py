"""Classification metrics of a regime forecast against the KMeans labels.

Inputs are 1-D arrays of equal length: ``truth`` 0/1 labels, ``score`` the
predicted p(distressed) (or any score where higher means more distressed) and
``predicted`` the 0/1 call. Undefined metrics (e.g. ROC AUC when the truth has
only one class, or no rows at all) are NaN, never a made-up number.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    roc_auc_score,
)

METRIC_NAMES: tuple[str, ...] = (
    "n",
    "distressed_share",
    "accuracy",
    "balanced_accuracy",
    "f1_distressed",
    "roc_auc",
)


def classification_metrics(
    truth: np.ndarray, score: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    """Counts and scores in METRIC_NAMES order; rows where any input is NaN are skipped."""
    truth, score, predicted = (np.asarray(a, dtype=np.float64) for a in (truth, score, predicted))
    keep = ~(np.isnan(truth) | np.isnan(score) | np.isnan(predicted))
    truth, score, predicted = truth[keep].astype(int), score[keep], predicted[keep].astype(int)
    n = len(truth)
    if n == 0:
        return {"n": 0.0} | {name: float("nan") for name in METRIC_NAMES[1:]}
    both_classes = len(np.unique(truth)) == 2
    return {
        "n": float(n),
        "distressed_share": float(truth.mean()),
        "accuracy": float(accuracy_score(truth, predicted)),
        # Mean recall of the classes present; with one class it is plain recall.
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted))
        if both_classes
        else float("nan"),
        "f1_distressed": float(f1_score(truth, predicted, pos_label=1, zero_division=np.nan)),
        "roc_auc": float(roc_auc_score(truth, score)) if both_classes else float("nan"),
    }
