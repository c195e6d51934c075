"""Calibration of p(distressed) on the validation split, and how good probabilities are.

Fitting (validation windows only): temperature scaling, one parameter T chosen
to minimise the log loss of sigmoid(logit(p) / T), or isotonic regression (a
non-decreasing step map). Applying is ``inference.calibration.apply_calibration``,
shared with the service.

Scores (arrays in, arrays out; rows where the probability or the truth is NaN
are dropped first):

- Brier score: mean (p - y)^2, 0 is perfect.
- Brier skill against a reference forecast: 1 - Brier / Brier_reference; above 0
  beats it. References: climatology (the training base rate, a constant) and
  persistence (the latest target known on the day, 0/1).
- Expected calibration error (ECE): over equal-width probability bins, the
  day-weighted mean of |mean p - observed frequency|.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression

from inference.calibration import apply_calibration, logit, sigmoid
from inference.card import Calibration, CalibrationMethod, Period
from training.config import RELIABILITY_BINS, CalibrationConfig

TEMPERATURE_BOUNDS = (0.05, 100.0)  # log-space search range of T


def _paired(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    keep = ~(np.isnan(y) | np.isnan(p))
    return y[keep], p[keep]


def fit_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """T minimising the mean log loss of sigmoid(logit(p) / T) against 0/1 ``y``."""
    y, p = _paired(y, p)
    z = logit(p)

    def log_loss(log_t: float) -> float:
        q = np.clip(sigmoid(z / np.exp(log_t)), 1e-12, 1 - 1e-12)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))

    low, high = np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])
    result = minimize_scalar(log_loss, bounds=(low, high), method="bounded")
    return float(np.exp(result.x))


def fit_isotonic(p: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Knots (x, y) of the non-decreasing map from p to the observed frequency."""
    y, p = _paired(y, p)
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return model.X_thresholds_.tolist(), model.y_thresholds_.tolist()


def fit_calibration(
    p: np.ndarray,
    y: np.ndarray,
    config: CalibrationConfig = CalibrationConfig(),
    fitted_on: Period | None = None,
) -> Calibration:
    """A calibration fitted on validation probabilities ``p`` and 0/1 truths ``y``."""
    config.validate()
    if config.method is CalibrationMethod.TEMPERATURE:
        return Calibration(
            method=config.method, temperature=fit_temperature(p, y), fitted_on=fitted_on
        )
    if config.method is CalibrationMethod.ISOTONIC:
        knots_x, knots_y = fit_isotonic(p, y)
        return Calibration(
            method=config.method, knots_x=knots_x, knots_y=knots_y, fitted_on=fitted_on
        )
    return Calibration(method=CalibrationMethod.NONE, fitted_on=fitted_on)


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    y, p = _paired(y, p)
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def brier_skill(y: np.ndarray, p: np.ndarray, reference: np.ndarray) -> float:
    """1 - Brier(p) / Brier(reference) on the days where all three are known; NaN when the
    reference is perfect."""
    y, p, reference = (np.asarray(a, dtype=np.float64) for a in (y, p, reference))
    keep = ~(np.isnan(y) | np.isnan(p) | np.isnan(reference))
    base = brier_score(y[keep], reference[keep])
    if not np.isfinite(base) or base == 0.0:
        return float("nan")
    return 1.0 - brier_score(y[keep], p[keep]) / base


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = RELIABILITY_BINS) -> pd.DataFrame:
    """One row per non-empty equal-width bin of p: ``mean_p``, ``observed``, ``days``."""
    y, p = _paired(y, p)
    which = np.minimum((p * bins).astype(int), bins - 1)
    rows = [
        {
            "bin": b,
            "mean_p": float(p[which == b].mean()),
            "observed": float(y[which == b].mean()),
            "days": int((which == b).sum()),
        }
        for b in range(bins)
        if (which == b).any()
    ]
    return pd.DataFrame(rows, columns=["bin", "mean_p", "observed", "days"]).set_index("bin")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = RELIABILITY_BINS) -> float:
    table = reliability_table(y, p, bins)
    if table.empty:
        return float("nan")
    weights = table["days"] / table["days"].sum()
    return float((weights * (table["mean_p"] - table["observed"]).abs()).sum())


def probability_scores(
    y: np.ndarray,
    p: np.ndarray,
    *,
    base_rate: float | np.ndarray,
    persistence: np.ndarray | None = None,
    bins: int = RELIABILITY_BINS,
) -> dict[str, float]:
    """Brier, Brier skill vs climatology (``base_rate``: one rate, or one per day) and
    persistence, and ECE."""
    y = np.asarray(y, dtype=np.float64)
    climatology = np.broadcast_to(np.asarray(base_rate, dtype=np.float64), y.shape)
    scores = {
        "brier": brier_score(y, p),
        "brier_skill_climatology": brier_skill(y, p, climatology),
        "ece": expected_calibration_error(y, p, bins),
    }
    if persistence is not None:
        scores["brier_skill_persistence"] = brier_skill(y, p, persistence)
    return scores


def calibration_report(
    calibration: Calibration,
    splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    *,
    base_rate: float,
) -> dict[str, dict[str, float | None]]:
    """Scores before ("<split>_raw") and after ("<split>_calibrated") calibration for
    each split's (truth, raw p, persistence); NaN written as None."""
    out: dict[str, dict[str, float | None]] = {}
    for name, (y, p, persistence) in splits.items():
        for stage, probability in (("raw", p), ("calibrated", apply_calibration(p, calibration))):
            scores = probability_scores(
                y, probability, base_rate=base_rate, persistence=persistence
            )
            out[f"{name}_{stage}"] = {
                k: (None if not np.isfinite(v) else round(v, 6)) for k, v in scores.items()
            }
    return out
