"""The database side of the registry (store.model_registry) on SQLite and PostgreSQL."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from core.errors import ConfigError, NoDataError
from core.features import compute_features
from inference.predictor import RegimePredictor
from inference.registry import read_card, write_version
from store import model_registry
from store.repository import write_features
from tests.conftest import make_closes
from tests.inference.closed_form import (
    WINDOW,
    closed_form_card,
    closed_form_onnx,
    expected_p,
    write_closed_form_model,
)


@pytest.fixture
def predictor(tmp_path: Path) -> RegimePredictor:
    return RegimePredictor.load(tmp_path, write_closed_form_model(tmp_path))


def _register(connection, predictor: RegimePredictor, version: str | None = None) -> str:  # type: ignore[no-untyped-def]
    card = predictor.card
    name = version or card.version
    model_registry.register_version(
        connection, version=name, sha256=card.onnx_sha256, card=card.as_dict()
    )
    return name


def test_latest_activation_row_names_the_active_version(
    engine: Engine, predictor: RegimePredictor
) -> None:
    with engine.begin() as connection:
        assert model_registry.active_version(connection) is None
        first = _register(connection, predictor)
        second = _register(connection, predictor, "2013-06-28-abcdef")
        model_registry.activate_version(connection, version=first)
        model_registry.activate_version(connection, version=second)
        model_registry.activate_version(connection, version=first)
        assert model_registry.active_version(connection) == first
        history = model_registry.activation_history(connection)
    assert [row["version"] for row in history] == [first, second, first]


def test_registered_card_round_trips_as_json(engine: Engine, predictor: RegimePredictor) -> None:
    with engine.begin() as connection:
        version = _register(connection, predictor)
        row = model_registry.registered_version(connection, version=version)
        listed = model_registry.list_registered(connection)
    assert row is not None
    assert row["card"] == predictor.card.as_dict()
    assert [item["version"] for item in listed] == [version]


def test_activating_an_unregistered_version_fails_and_records_nothing(engine: Engine) -> None:
    with engine.begin() as connection:
        with pytest.raises(NoDataError, match="not registered"):
            model_registry.activate_version(connection, version="2020-01-01-abcdef")
        assert model_registry.active_version(connection) is None


@pytest.mark.parametrize("name", ["../../etc/passwd", "2024-12-31-a1b2c3'; drop table x; --"])
def test_path_like_versions_are_refused_before_any_query(engine: Engine, name: str) -> None:
    with engine.begin() as connection:
        with pytest.raises(ConfigError):
            model_registry.register_version(connection, version=name, sha256="0", card={})
        with pytest.raises(ConfigError):
            model_registry.registered_version(connection, version=name)
        with pytest.raises(ConfigError):
            model_registry.load_outputs(connection, version=name)


def test_activation_stores_daily_outputs_of_the_whole_history(
    engine: Engine, predictor: RegimePredictor, tmp_path: Path
) -> None:
    features = compute_features(make_closes(120))
    with engine.begin() as connection:
        write_features(connection, table=features)
        outputs = model_registry.activate_predictor(connection, predictor=predictor)
        stored = model_registry.load_outputs(connection, version=predictor.version)
        active = model_registry.active_version(connection)
    assert active == predictor.version
    assert read_card(tmp_path, predictor.version).version == active
    # Every day with WINDOW complete rows has an output; VIX is complete from day 1 and
    # ret_1d from day 2, rv_20d from day 21: the first output is on row 20 + WINDOW - 1.
    first_complete = 20 + WINDOW - 1
    assert len(stored) == len(features) - first_complete
    expected = [expected_p(v) for v in features["vix"].iloc[first_complete:]]
    np.testing.assert_allclose(stored["p_distressed"], expected, atol=1e-6)
    np.testing.assert_array_equal(stored["regime"], (np.array(expected) >= 0.5).astype(float))
    pd.testing.assert_index_equal(stored.index, outputs.index)


def test_replacing_outputs_drops_days_no_longer_scored(
    engine: Engine, predictor: RegimePredictor
) -> None:
    days = pd.DatetimeIndex(pd.bdate_range("2020-01-01", periods=4), name="date")
    old = pd.DataFrame({"regime": [0, 1, 0, 1], "p_distressed": [0.1, 0.9, 0.2, 0.8]}, index=days)
    with engine.begin() as connection:
        version = _register(connection, predictor)
        model_registry.replace_outputs(connection, version=version, table=old)
        model_registry.replace_outputs(connection, version=version, table=old.iloc[2:])
        stored = model_registry.load_outputs(connection, version=version)
    assert list(stored.index) == list(days[2:])
    assert stored["p_distressed"].tolist() == [0.2, 0.8]


def test_storing_outputs_without_features_is_a_clear_error(
    engine: Engine, predictor: RegimePredictor
) -> None:
    with engine.begin() as connection:
        with pytest.raises(NoDataError, match="deepregime features"):
            model_registry.store_outputs(connection, predictor=predictor)


def test_cards_with_undefined_metrics_store_them_as_null(engine: Engine, tmp_path: Path) -> None:
    payload = closed_form_onnx()
    card = closed_form_card(payload, metrics={"test": {"roc_auc": float("nan"), "n": 3.0}})
    write_version(tmp_path, card, payload)
    predictor = RegimePredictor.load(tmp_path, card.version)
    with engine.begin() as connection:
        _register(connection, predictor)
        row = model_registry.registered_version(connection, version=card.version)
    assert row is not None
    assert row["card"]["metrics"] == {"test": {"roc_auc": None, "n": 3.0}}
