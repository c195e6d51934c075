"""onnxruntime predictor: the classifier as the service and the backtest run it.

Loads a verified version from the registry on disk and turns the stored feature
table into daily outputs. The output for day t reads only the ``window`` rows
ending on t, so appending later rows never changes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

from core.errors import DataValidationError
from core.policies import distressed_from_probability
from inference.calibration import apply_calibration
from inference.card import DISTRESSED, ModelCard
from inference.registry import verified_artifact
from inference.windows import complete_window_ends, feature_matrix, sliding_windows

# Windows per onnxruntime call: small batches keep the attention scores in cache
# (full history on one thread: 0.83 s in batches of 64, 1.2 s in batches of 4096).
DEFAULT_BATCH = 64


class RegimePredictor:
    """One loaded model version. Create it once (e.g. in the app's lifespan) and reuse it."""

    def __init__(self, card: ModelCard, session: ort.InferenceSession) -> None:
        self.card = card
        self._session = session

    @classmethod
    def load(cls, models_dir: Path, version: str, *, threads: int = 1) -> RegimePredictor:
        """Load ``<models_dir>/<version>`` after checking its sha256 and feature list."""
        card, onnx_path = verified_artifact(models_dir, version)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return cls(card, session)

    @property
    def version(self) -> str:
        return self.card.version

    def predict_windows(self, windows: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """The graph's (uncalibrated) p(distressed) for raw-feature windows
        [n, window, n_features] -> [n] float64; ``predict_daily`` calibrates it.

        Windows must be complete (no NaN); callers drop incomplete ones first.
        """
        expected = (self.card.window, len(self.card.features))
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise DataValidationError(
                f"windows must have shape [n, {expected[0]}, {expected[1]}], got {windows.shape}",
                field="windows",
            )
        inputs = np.ascontiguousarray(windows, dtype=np.float32)
        out = np.empty(len(inputs), dtype=np.float64)
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start : start + batch_size]
            (probabilities,) = self._session.run(
                [self.card.onnx.output_name], {self.card.onnx.input_name: batch}
            )
            out[start : start + len(batch)] = probabilities[:, DISTRESSED]
        return out

    def predict_daily(self, features: pd.DataFrame) -> pd.DataFrame:
        """Daily ``p_distressed`` (calibrated when the card has a calibration) and ``regime``
        (1 distressed, 0 calm) for a feature table.

        ``features`` is the stored feature table indexed by date (increasing).
        Days without ``window`` complete rows of the card's features (history
        too short, or a NaN inside the window) get NaN in both columns.
        """
        values = feature_matrix(features, self.card.features)
        ends = complete_window_ends(values, self.card.window)
        p_distressed = np.full(len(values), np.nan)
        if len(ends):
            windows = sliding_windows(values, self.card.window)[ends - (self.card.window - 1)]
            p_distressed[ends] = apply_calibration(
                self.predict_windows(windows), self.card.calibration
            )
        probability = pd.Series(p_distressed, index=features.index, name="p_distressed")
        return pd.DataFrame(
            {"regime": distressed_from_probability(probability), "p_distressed": probability}
        )

    def with_in_sample(self, outputs: pd.DataFrame) -> pd.DataFrame:
        """``outputs`` (indexed by date) plus ``in_sample``: the day is inside the training
        data of this version (on or before the card's in-sample cut-off)."""
        return outputs.assign(in_sample=self.card.in_sample(pd.DatetimeIndex(outputs.index)))
