"""A classifier written directly as an ONNX graph, with outputs known in closed form.

p(distressed) = sigmoid(VIX on the window's last day - CENTRE). Built without
torch, so the predictor and the registry are tested independently of training.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from core.features import FEATURE_SET_VERSION, MODEL_FEATURES
from inference.card import LabelSummary, ModelCard, Normalisation, OnnxSignature, Period
from inference.registry import write_version
from inference.versions import make_version

WINDOW = 3
CENTRE = 20.0
INPUT, OUTPUT = "features", "probabilities"


def expected_p(last_vix: float) -> float:
    return 1.0 / (1.0 + math.exp(-(last_vix - CENTRE)))


def closed_form_onnx() -> bytes:
    """[batch, WINDOW, 6] -> softmax([0, vix_last - CENTRE]) = [1 - p, p]."""
    vix = MODEL_FEATURES.index("vix")
    constants = [
        helper.make_tensor("day", TensorProto.INT64, [], [WINDOW - 1]),
        helper.make_tensor("column", TensorProto.INT64, [], [vix]),
        helper.make_tensor("centre", TensorProto.FLOAT, [], [CENTRE]),
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
    ]
    nodes = [
        helper.make_node("Gather", [INPUT, "day"], ["last_day"], axis=1),  # [b, 6]
        helper.make_node("Gather", ["last_day", "column"], ["last_vix"], axis=1),  # [b]
        helper.make_node("Sub", ["last_vix", "centre"], ["logit"]),
        helper.make_node("Unsqueeze", ["logit", "axis1"], ["logit_column"]),  # [b, 1]
        helper.make_node("Sub", ["logit_column", "logit_column"], ["zero"]),
        helper.make_node("Concat", ["zero", "logit_column"], ["logits"], axis=1),  # [b, 2]
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "closed-form",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", WINDOW, 6])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 2])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def hand_built_card(
    payload: bytes,
    *,
    window: int,
    trained_until: dt.date = dt.date(2011, 12, 30),
    opset: int = 17,
    centroids: list[list[float]] | None = None,
    **changes: object,
) -> ModelCard:
    """The card of a hand-built ONNX graph (no training): VIX-only labels, one period."""
    digest = hashlib.sha256(payload).hexdigest()
    period = Period(start=dt.date(2010, 1, 4), end=trained_until)
    fields: dict[str, object] = {
        "version": make_version(period.end, digest),
        "created_at": dt.datetime(2012, 1, 2, tzinfo=dt.UTC),
        "feature_set_version": FEATURE_SET_VERSION,
        "features": list(MODEL_FEATURES),
        "window": window,
        "horizon": 0,
        "normalisation": Normalisation(
            mean=dict.fromkeys(MODEL_FEATURES, 0.0), std=dict.fromkeys(MODEL_FEATURES, 1.0)
        ),
        "labels": LabelSummary(
            preset="closed-form",
            n_clusters=2,
            features=["vix"],
            standardise=False,
            fit_period=period,
            leaks_future=False,
            distressed_clusters=[1],
            centroids=centroids or [[15.0], [25.0]],
        ),
        "training_period": period,
        "splits": {"train": period, "validation": None, "test": None},
        "data_fingerprint": "0" * 64,
        "metrics": {},
        "onnx_sha256": digest,
        "onnx": OnnxSignature(input_name=INPUT, output_name=OUTPUT, opset=opset),
        "config": {},
        "training": {},
    }
    fields.update(changes)
    return ModelCard(**fields)  # type: ignore[arg-type]


def closed_form_card(payload: bytes, **changes: object) -> ModelCard:
    return hand_built_card(payload, window=WINDOW, **changes)


def write_closed_form_model(models_dir: Path) -> str:
    payload = closed_form_onnx()
    card = closed_form_card(payload)
    write_version(models_dir, card, payload)
    return card.version
