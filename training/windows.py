"""The windowed dataset: 60 days x 6 raw features -> the label of a target day.

The target of the window ending on day t reads labels up to day t + horizon
(training.targets: the label of that day, or distress / a change within it).
Windows with a NaN input, or whose target day is missing or beyond the data,
are dropped. Windows are cut by
``inference.windows`` so training and serving read identical inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.features import MODEL_FEATURES
from inference.windows import complete_window_ends, feature_matrix, sliding_windows
from training.config import WindowConfig
from training.targets import target_series


@dataclass(frozen=True)
class WindowSet:
    """Windows in date order; every array shares the first axis [n_windows]."""

    inputs: np.ndarray  # [n, window, n_features] float32, raw (unnormalised) features
    targets: np.ndarray  # [n] int64 label of the target day (0 calm, 1 distressed)
    end_positions: np.ndarray  # [n] row of the window's last day in the feature table
    end_dates: pd.DatetimeIndex  # [n] the window's last day (the day the output is for)
    target_dates: pd.DatetimeIndex  # [n] the last day whose label the target reads

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, rows: np.ndarray) -> WindowSet:
        return WindowSet(
            inputs=self.inputs[rows],
            targets=self.targets[rows],
            end_positions=self.end_positions[rows],
            end_dates=self.end_dates[rows],
            target_dates=self.target_dates[rows],
        )


def window_positions(features: pd.DataFrame, config: WindowConfig) -> np.ndarray:
    """Rows whose window is complete and whose target day exists with every model feature.

    Labels are functions of a subset of the model features, so a target day
    with all of them present always has a label. Returns int64 end positions.
    """
    config.validate()
    values = feature_matrix(features, MODEL_FEATURES)
    ends = complete_window_ends(values, config.window)
    targets = ends + config.horizon
    inside = targets < len(values)
    ends, targets = ends[inside], targets[inside]
    return ends[~np.isnan(values[targets]).any(axis=1)]


def build_windows(
    features: pd.DataFrame,
    labels: pd.Series,
    config: WindowConfig,
    end_positions: np.ndarray | None = None,
) -> WindowSet:
    """Inputs and targets for the windows ending at ``end_positions`` (default: all valid).

    ``labels`` is aligned to ``features`` (same index), 0/1 with NaN allowed; the
    target of each window is ``config.target`` (training.targets); windows whose
    target is NaN are dropped.
    """
    if end_positions is None:
        end_positions = window_positions(features, config)
    aligned = labels.reindex(features.index)
    target_values = target_series(aligned, config.target, config.horizon).to_numpy()
    target_positions = end_positions + config.horizon
    labelled = ~np.isnan(target_values[end_positions])
    end_positions, target_positions = end_positions[labelled], target_positions[labelled]
    values = feature_matrix(features, MODEL_FEATURES)
    all_windows = sliding_windows(values, config.window)
    return WindowSet(
        inputs=all_windows[end_positions - (config.window - 1)].astype(np.float32),
        targets=target_values[end_positions].astype(np.int64),
        end_positions=end_positions,
        end_dates=pd.DatetimeIndex(features.index[end_positions]),
        target_dates=pd.DatetimeIndex(features.index[target_positions]),
    )
