"""Turning the graph's p(distressed) into the served, calibrated probability.

Both maps are monotone, so the ranking of days (ROC AUC) never changes; only
the probability's level does. Arrays in, arrays out; NaN stays NaN.
"""

from __future__ import annotations

import numpy as np

from inference.card import Calibration, CalibrationMethod

# Probabilities are clipped this far from 0 and 1 before taking a logit.
EPSILON = 1e-7


def logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(p, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    return np.log(clipped) - np.log1p(-clipped)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def temperature_scale(p: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / temperature): T > 1 pulls probabilities towards 0.5."""
    return sigmoid(logit(p) / temperature)


def apply_calibration(p: np.ndarray, calibration: Calibration | None) -> np.ndarray:
    """[n] raw probabilities -> [n] calibrated ones (unchanged without a calibration)."""
    p = np.asarray(p, dtype=np.float64)
    if calibration is None or calibration.method is CalibrationMethod.NONE:
        return p
    if calibration.method is CalibrationMethod.TEMPERATURE:
        assert calibration.temperature is not None
        out = temperature_scale(p, calibration.temperature)
    else:
        assert calibration.knots_x is not None and calibration.knots_y is not None
        out = np.interp(p, calibration.knots_x, calibration.knots_y)
    out[np.isnan(p)] = np.nan
    return out
