"""A tiny classifier written as an ONNX graph by hand, so API tests need no training.

p(distressed) = sigmoid(SLOPE * (mean VIX over the window - CENTRE)): with the
VIX level as the last of the six model features, the expected output of any
window is known in closed form (see ``expected_p_distressed``).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from core.features import MODEL_FEATURES
from inference.card import Normalisation
from inference.registry import write_version
from tests.inference.closed_form import hand_built_card

WINDOW = 5
CENTRE = 15.0
SLOPE = 1.0
INPUT, OUTPUT = "features", "probabilities"


def expected_p_distressed(vix_window: list[float]) -> float:
    mean = sum(vix_window) / len(vix_window)
    return 1.0 / (1.0 + math.exp(-SLOPE * (mean - CENTRE)))


def onnx_bytes() -> bytes:
    """[batch, WINDOW, 6] raw features -> [batch, 2] softmax of (0, SLOPE * (mean VIX - CENTRE))."""
    n_features = len(MODEL_FEATURES)
    vix = MODEL_FEATURES.index("vix")
    constants = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [vix]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [vix + 1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [2]),
        helper.make_tensor("centre", TensorProto.FLOAT, [], [CENTRE]),
        helper.make_tensor("slope", TensorProto.FLOAT, [], [SLOPE]),
    ]
    nodes = [
        helper.make_node("Slice", [INPUT, "starts", "ends", "axes"], ["vix"]),  # [b, w, 1]
        helper.make_node("ReduceMean", ["vix"], ["mean"], axes=[1], keepdims=0),  # [b, 1]
        helper.make_node("Sub", ["mean", "centre"], ["shifted"]),
        helper.make_node("Mul", ["shifted", "slope"], ["logit"]),
        helper.make_node("Sub", ["logit", "logit"], ["zero"]),
        helper.make_node("Concat", ["zero", "logit"], ["logits"], axis=1),  # [b, 2]
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-vix-classifier",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", WINDOW, n_features])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 2])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_tiny_model(models_dir: Path, trained_until: dt.date = dt.date(2011, 12, 30)) -> str:
    """Write the tiny model as a registry version under ``models_dir``; returns its name."""
    payload = onnx_bytes()
    card = hand_built_card(
        payload,
        window=WINDOW,
        trained_until=trained_until,
        opset=13,
        centroids=[[12.0], [20.0]],
        normalisation=Normalisation(
            inside_graph=True,
            mean=dict.fromkeys(MODEL_FEATURES, 0.0),
            std=dict.fromkeys(MODEL_FEATURES, 1.0),
        ),
        metrics={"test": {"accuracy": None}},
        config={"kind": "closed-form test model"},
        training={"epochs": 0},
    )
    write_version(models_dir, card, payload)
    return card.version
