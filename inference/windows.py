"""Sliding windows over the feature table: the one definition of the model's input.

Training builds its dataset with these functions and the predictor builds its
inputs with them, so both see windows cut the same way. Normalisation is not
applied here: the ONNX graph normalises raw features itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from core.errors import DataValidationError


def feature_matrix(features: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Columns of the feature table as a float64 array [n_days, n_columns], in that order.

    Raises DataValidationError naming the first missing column. NaN is kept.
    """
    missing = [name for name in columns if name not in features.columns]
    if missing:
        raise DataValidationError(
            "column missing from the feature table", field=missing[0], source="features"
        )
    return features.loc[:, list(columns)].to_numpy(dtype=np.float64)


def sliding_windows(values: np.ndarray, window: int) -> np.ndarray:
    """Every run of ``window`` consecutive rows: [n_days - window + 1, window, n_columns].

    Row i of the result holds days i .. i + window - 1, so it ENDS on day
    i + window - 1 and reads nothing after it. A read-only view (no copy).
    Empty first axis when there are fewer than ``window`` days.
    """
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D [days, features], got shape {values.shape}")
    if len(values) < window:
        return np.empty((0, window, values.shape[1]), dtype=values.dtype)
    # sliding_window_view puts the window axis last: [n, n_columns, window] -> swap.
    return sliding_window_view(values, window, axis=0).transpose(0, 2, 1)


def complete_window_ends(values: np.ndarray, window: int) -> np.ndarray:
    """Positions (row numbers) of days whose trailing window is full and has no NaN.

    A day qualifies when it has ``window - 1`` earlier rows and none of the
    ``window`` rows ending on it holds a NaN. Returns int64 positions, increasing.
    """
    if len(values) < window:
        return np.empty(0, dtype=np.int64)
    row_has_nan = np.isnan(values).any(axis=1).astype(np.int64)
    # Count of NaN rows in each trailing window via a cumulative sum.
    cumulative = np.concatenate([[0], np.cumsum(row_has_nan)])
    nan_rows_in_window = cumulative[window:] - cumulative[:-window]
    return np.flatnonzero(nan_rows_in_window == 0).astype(np.int64) + (window - 1)
