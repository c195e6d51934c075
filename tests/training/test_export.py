import numpy as np
import onnx
import pytest
import torch

from core.errors import DataValidationError
from training.config import ModelConfig
from training.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    PARITY_TOLERANCE,
    check_parity,
    export_onnx,
    onnx_probabilities,
    torch_probabilities,
)
from training.model import RegimeTransformer


@pytest.fixture(scope="module")
def model() -> RegimeTransformer:
    torch.manual_seed(0)
    model = RegimeTransformer(ModelConfig())
    # Realistic raw scales, so the in-graph normalisation is exercised.
    model.normaliser.set_statistics(
        torch.tensor([0.0004, 0.002, 0.008, 0.009, 0.010, 19.0]),
        torch.tensor([0.012, 0.025, 0.045, 0.007, 0.006, 8.0]),
    )
    return model.eval()


@pytest.fixture(scope="module")
def onnx_bytes(model: RegimeTransformer) -> bytes:
    return export_onnx(model)


def _raw_windows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = np.array([0.012, 0.025, 0.045, 0.007, 0.006, 8.0])
    centre = np.array([0.0, 0.0, 0.0, 0.01, 0.01, 20.0])
    return (centre + scale * rng.standard_normal((n, 60, 6))).astype(np.float32)


@pytest.mark.parametrize("batch", [1, 37, 300])
def test_onnxruntime_matches_torch_for_any_batch_size(
    model: RegimeTransformer, onnx_bytes: bytes, batch: int
) -> None:
    windows = _raw_windows(batch, batch)
    ours = onnx_probabilities(onnx_bytes, windows)
    reference = torch_probabilities(model, windows)
    assert ours.shape == (batch, 2)
    assert np.max(np.abs(ours - reference)) < PARITY_TOLERANCE
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-6)


def test_graph_has_named_io_and_a_dynamic_batch_axis(onnx_bytes: bytes) -> None:
    graph = onnx.load_from_string(onnx_bytes)
    onnx.checker.check_model(graph, full_check=True)
    (graph_input,) = graph.graph.input
    (graph_output,) = graph.graph.output
    assert (graph_input.name, graph_output.name) == (INPUT_NAME, OUTPUT_NAME)
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [60, 6]


def test_export_is_deterministic(model: RegimeTransformer, onnx_bytes: bytes) -> None:
    assert export_onnx(model) == onnx_bytes


def test_parity_check_fails_loudly_on_a_different_graph(
    model: RegimeTransformer, onnx_bytes: bytes
) -> None:
    windows = _raw_windows(8, 1)
    assert check_parity(model, onnx_bytes, windows) < PARITY_TOLERANCE
    torch.manual_seed(99)
    other = RegimeTransformer(ModelConfig()).eval()
    with pytest.raises(DataValidationError, match="ONNX and torch disagree"):
        check_parity(other, onnx_bytes, windows)
