"""ONNX export with a parity check against torch.

The exported graph takes RAW feature windows ``features`` float32
[batch, window, n_features] (dynamic batch axis) and returns ``probabilities``
float32 [batch, 2] (calm, distressed); normalisation and softmax are inside.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

from core.errors import DataValidationError
from training.model import ProbabilityOutput, RegimeTransformer

OPSET = 17
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
PARITY_TOLERANCE = 1e-5


def export_onnx(model: RegimeTransformer) -> bytes:
    """Serialised ONNX model of ``model`` in eval mode, checked by ``onnx.checker``."""
    wrapper = ProbabilityOutput(model).eval()
    config = model.config
    example = torch.zeros(2, config.window, config.n_features)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of one that needs
        # onnxscript, which this project does not depend on; it still works.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper,
            (example,),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    onnx_bytes = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(onnx_bytes), full_check=True)
    return onnx_bytes


def torch_probabilities(
    model: RegimeTransformer, windows: np.ndarray, batch_size: int = 512
) -> np.ndarray:
    """Eager torch probabilities [n, 2] for raw windows [n, window, n_features].

    Batched so the attention scores ([batch, heads, window, window]) stay small.
    """
    model.eval()
    inputs = torch.as_tensor(np.ascontiguousarray(windows, dtype=np.float32))
    with torch.no_grad():
        parts = [
            torch.softmax(model(inputs[start : start + batch_size]), dim=-1)
            for start in range(0, len(inputs), batch_size)
        ]
    return torch.cat(parts).numpy() if parts else np.empty((0, 2), dtype=np.float32)


def onnx_probabilities(onnx_bytes: bytes, windows: np.ndarray) -> np.ndarray:
    """onnxruntime probabilities [n, 2] for raw windows [n, window, n_features]."""
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(
        [OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(windows, dtype=np.float32)}
    )
    return probabilities


def check_parity(
    model: RegimeTransformer,
    onnx_bytes: bytes,
    windows: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Largest |onnxruntime - torch| over the windows; raises when above ``tolerance``."""
    onnx_p = onnx_probabilities(onnx_bytes, windows)
    difference = float(np.max(np.abs(onnx_p - torch_probabilities(model, windows))))
    if not difference <= tolerance:
        raise DataValidationError(
            f"ONNX and torch disagree by {difference:.3g} (tolerance {tolerance:g})",
            field="onnx",
        )
    return difference
