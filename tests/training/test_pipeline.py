"""The whole path on made-up data: train -> export -> parity -> register -> infer."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from core.features import MODEL_FEATURES
from inference.calibration import apply_calibration
from inference.predictor import RegimePredictor
from inference.registry import CARD_FILE, ONNX_FILE, read_card, sha256_file, write_version
from inference.versions import VERSION_PATTERN
from store import model_registry
from store.repository import write_features
from tests.training.conftest import fast_setup
from training.config import AS_PUBLISHED_LABELS, Target, WindowConfig
from training.data import feature_fingerprint
from training.export import PARITY_TOLERANCE, export_onnx, torch_probabilities
from training.pipeline import build_card, train_classifier, train_version

CREATED = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def trained_version(features: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    models_dir = tmp_path_factory.mktemp("models")
    card, folder = train_version(features, fast_setup(), models_dir, created_at=CREATED)
    return card, folder, models_dir


def test_version_folder_holds_onnx_and_a_complete_card(trained_version) -> None:  # type: ignore[no-untyped-def]
    card, folder, models_dir = trained_version
    assert VERSION_PATTERN.fullmatch(card.version)
    assert card.version.startswith(card.training_period.end.isoformat())
    assert card.onnx_sha256 == sha256_file(folder / ONNX_FILE)
    assert card.version.endswith(card.onnx_sha256[:6])
    assert read_card(models_dir, card.version) == card
    raw = json.loads((folder / CARD_FILE).read_text())
    for field in (
        "features",
        "window",
        "horizon",
        "normalisation",
        "label_mapping",
        "training_period",
        "data_fingerprint",
        "metrics",
        "onnx_sha256",
        "created_at",
        "labels",
        "config",
    ):
        assert field in raw, field
    assert card.features == list(MODEL_FEATURES)
    assert card.label_mapping == {"0": "calm", "1": "distressed"}
    assert card.labels.preset == "standardised-2" and not card.labels.leaks_future
    assert card.config["ModelConfig"]["d_model"] == 64
    assert set(card.metrics) == {"train", "validation", "test"}
    assert (folder / ONNX_FILE).stat().st_size < 1_000_000


def test_splits_are_chronological_with_gaps_and_labels_fit_before_the_test(
    trained_version, features: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    card, _, _ = trained_version
    train, val, test = card.splits["train"], card.splits["validation"], card.splits["test"]
    days = features.index
    window = card.window
    # At least `window` trading days lie strictly between consecutive splits.
    assert days.get_loc(pd.Timestamp(val.start)) - days.get_loc(pd.Timestamp(train.end)) > window
    assert days.get_loc(pd.Timestamp(test.start)) - days.get_loc(pd.Timestamp(val.end)) > window
    assert card.labels.fit_period.end < test.start
    assert card.training_period.end < test.start


def test_normalisation_is_the_mean_and_std_of_the_training_days(
    trained_version, features: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    card, _, _ = trained_version
    train = card.splits["train"]
    rows = features.loc[str(train.start) : str(train.end), list(MODEL_FEATURES)]
    np.testing.assert_allclose(
        [card.normalisation.mean[name] for name in MODEL_FEATURES], rows.mean(), rtol=1e-5
    )
    np.testing.assert_allclose(
        [card.normalisation.std[name] for name in MODEL_FEATURES], rows.std(ddof=0), rtol=1e-5
    )


def test_fingerprint_covers_the_rows_the_model_learnt_from(
    trained_version, features: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    card, _, _ = trained_version
    rows = features.loc[: str(card.training_period.end)]
    assert card.data_fingerprint == feature_fingerprint(rows)
    changed = features.copy()
    changed.iloc[len(rows) - 1, 0] += 1e-9
    assert (
        feature_fingerprint(changed.loc[: str(card.training_period.end)]) != card.data_fingerprint
    )


def test_fingerprint_is_sha256_of_names_days_and_values() -> None:
    frame = pd.DataFrame(
        {"a": [1.0, np.nan]}, index=pd.DatetimeIndex(["1970-01-02", "1970-01-04"], name="date")
    )
    digest = hashlib.sha256()
    digest.update(b"a")
    digest.update(np.array([1, 3], dtype="<i8").tobytes())
    digest.update(np.array([[1.0], [np.nan]], dtype="<f8").tobytes())
    assert feature_fingerprint(frame, ["a"]) == digest.hexdigest()


def test_a_rerun_with_the_same_seed_gives_the_same_model(
    trained_version, features: pd.DataFrame, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    card, _, _ = trained_version
    again, _ = train_version(features, fast_setup(), tmp_path, created_at=CREATED)
    assert again.onnx_sha256 == card.onnx_sha256
    # Identical card apart from the wall-clock seconds the run took.
    assert again.model_dump(exclude={"training"}) == card.model_dump(exclude={"training"})


def test_onnxruntime_predictor_matches_torch_on_the_same_windows(
    features: pd.DataFrame, tmp_path: Path
) -> None:
    setup = fast_setup(epochs=1)
    trained = train_classifier(features, setup)
    onnx_bytes = export_onnx(trained.model)
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    card = build_card(trained, features, setup, digest, CREATED, parity=0.0)
    write_version(tmp_path, card, onnx_bytes)
    daily = RegimePredictor.load(tmp_path, card.version).predict_daily(features)
    raw = torch_probabilities(trained.model, trained.windows.inputs)[:, 1]
    reference = apply_calibration(raw, card.calibration)  # the served probability is calibrated
    ours = daily["p_distressed"].to_numpy()[trained.windows.end_positions]
    assert np.max(np.abs(ours - reference)) < PARITY_TOLERANCE


def test_register_activate_and_serve_outputs_from_the_database(
    trained_version, features: pd.DataFrame, engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    card, _, models_dir = trained_version
    predictor = RegimePredictor.load(models_dir, card.version)
    with engine.begin() as connection:
        write_features(connection, table=features)
        model_registry.activate_predictor(connection, predictor=predictor)
    with engine.connect() as connection:
        assert model_registry.active_version(connection) == card.version
        stored = model_registry.load_outputs(connection, version=card.version)
        registered = model_registry.registered_version(connection, version=card.version)
    assert registered is not None and registered["sha256"] == card.onnx_sha256
    expected = predictor.predict_daily(features).dropna()
    np.testing.assert_allclose(stored["p_distressed"], expected["p_distressed"], atol=1e-12)
    np.testing.assert_array_equal(stored["regime"], expected["regime"])
    # 20 days of warm-up for the features, then a window of 20: every later day scored.
    assert len(stored) == len(features) - 20 - (card.window - 1)


def test_as_published_preset_is_recorded_as_leaking(features: pd.DataFrame, tmp_path: Path) -> None:
    setup = fast_setup(epochs=1, labels=AS_PUBLISHED_LABELS)
    card, _ = train_version(features, setup, tmp_path, created_at=CREATED)
    assert card.labels.preset == "as-published"
    assert card.labels.leaks_future
    assert card.labels.n_clusters == 3 and card.labels.distressed_clusters == [1, 2]
    # Fitted on every row, test period included.
    assert card.labels.fit_period.end == features.index[-1].date()


def test_trained_model_outputs_never_change_when_future_rows_arrive(
    trained_version, features: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    card, _, models_dir = trained_version
    predictor = RegimePredictor.load(models_dir, card.version)
    early = predictor.predict_daily(features.iloc[:400])
    pd.testing.assert_frame_equal(early, predictor.predict_daily(features).iloc[:400])


def test_card_records_calibration_target_and_in_sample_cut_off(trained_version) -> None:  # type: ignore[no-untyped-def]
    card, _, _ = trained_version
    assert card.target == "label"
    validation = card.splits["validation"]
    assert validation is not None and card.calibration is not None
    assert card.calibration.method == "temperature" and card.calibration.temperature > 0
    assert card.calibration.fitted_on == validation  # fitted on the validation split only
    assert {"validation_raw", "validation_calibrated", "test_raw", "test_calibrated"} <= set(
        card.calibration.metrics
    )
    # Nothing after the in-sample cut-off shaped the model; the test split lies after it.
    assert card.sample_cutoff >= validation.end
    test = card.splits["test"]
    assert test is not None and card.sample_cutoff < test.start
    summary = card.out_of_sample
    assert summary is not None and summary["start"] == test.start.isoformat()
    assert summary["classification"] == card.metrics["test"]
    assert summary["probability"] == card.calibration.metrics["test_calibrated"]


def test_a_distress_within_model_records_its_target(features: pd.DataFrame, tmp_path: Path) -> None:
    setup = fast_setup(epochs=1)
    setup = type(setup)(
        labels=setup.labels,
        windows=WindowConfig(window=20, horizon=5, target=Target.DISTRESS_WITHIN),
        split=setup.split,
        model=setup.model,
        trainer=setup.trainer,
    )
    card, _ = train_version(features, setup, tmp_path, created_at=CREATED)
    assert (card.target, card.horizon) == ("distress-within", 5)
    validation = card.splits["validation"]
    assert validation is not None
    # The last validation window's target reads 5 sessions past its end.
    assert card.sample_cutoff > validation.end
