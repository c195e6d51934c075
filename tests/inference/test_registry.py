import hashlib
import json
from pathlib import Path

import pytest

from core.errors import ConfigError, DataValidationError, NoDataError
from inference.registry import (
    CARD_FILE,
    ONNX_FILE,
    list_versions,
    read_card,
    sha256_file,
    verified_artifact,
    write_version,
)
from tests.inference.closed_form import closed_form_card, closed_form_onnx, write_closed_form_model


def test_written_version_reads_back_with_matching_digest(tmp_path: Path) -> None:
    version = write_closed_form_model(tmp_path)
    card, onnx_path = verified_artifact(tmp_path, version)
    assert card.version == version
    assert onnx_path == tmp_path / version / ONNX_FILE
    assert sha256_file(onnx_path) == hashlib.sha256(closed_form_onnx()).hexdigest()
    assert list_versions(tmp_path) == [version]
    # No staging folder is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [version]


def test_tampered_onnx_file_is_refused_naming_the_digest(tmp_path: Path) -> None:
    version = write_closed_form_model(tmp_path)
    path = tmp_path / version / ONNX_FILE
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataValidationError) as raised:
        verified_artifact(tmp_path, version)
    assert raised.value.field == "onnx_sha256"
    assert "changed or corrupted" in str(raised.value)


def test_card_with_other_features_is_refused_naming_the_field(tmp_path: Path) -> None:
    payload = closed_form_onnx()
    reordered = ["vix", "ret_1d", "ret_5d", "ret_20d", "rv_5d", "rv_20d"]
    card = closed_form_card(payload, features=reordered)
    write_version(tmp_path, card, payload)
    with pytest.raises(DataValidationError) as raised:
        verified_artifact(tmp_path, card.version)
    assert raised.value.field == "features"
    assert "same order" in str(raised.value)


def test_card_naming_another_version_than_its_folder_is_refused(tmp_path: Path) -> None:
    version = write_closed_form_model(tmp_path)
    other = "2011-01-01-abcdef"
    (tmp_path / other).mkdir()
    card = json.loads((tmp_path / version / CARD_FILE).read_text())
    (tmp_path / other / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(DataValidationError) as raised:
        read_card(tmp_path, other)
    assert raised.value.field == "version"


def test_malformed_card_names_the_file_and_field(tmp_path: Path) -> None:
    version = write_closed_form_model(tmp_path)
    path = tmp_path / version / CARD_FILE
    card = json.loads(path.read_text())
    card["window"] = "sixty"
    path.write_text(json.dumps(card))
    with pytest.raises(DataValidationError) as raised:
        read_card(tmp_path, version)
    assert raised.value.field == "window"
    assert str(path) in str(raised.value)


def test_missing_version_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="2020-01-01-abcdef"):
        read_card(tmp_path, "2020-01-01-abcdef")


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "2024-12-31-a1b2c3/.."])
def test_path_like_versions_never_reach_the_file_system(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        read_card(tmp_path, name)
    with pytest.raises(ConfigError):
        verified_artifact(tmp_path, name)


def test_card_with_a_digest_not_of_its_onnx_bytes_is_not_written(tmp_path: Path) -> None:
    payload = closed_form_onnx()
    card = closed_form_card(payload)
    with pytest.raises(ConfigError, match="sha256"):
        write_version(tmp_path, card, payload + b"extra")
    assert list(tmp_path.iterdir()) == []


def test_rewriting_the_same_version_replaces_its_card(tmp_path: Path) -> None:
    payload = closed_form_onnx()
    write_version(tmp_path, closed_form_card(payload), payload)
    updated = closed_form_card(payload, metrics={"test": {"accuracy": 0.5}})
    write_version(tmp_path, updated, payload)
    assert read_card(tmp_path, updated.version).metrics == {"test": {"accuracy": 0.5}}


def test_list_versions_ignores_other_entries(tmp_path: Path) -> None:
    version = write_closed_form_model(tmp_path)
    (tmp_path / "README.md").write_text("artifacts")
    (tmp_path / "not-a-version").mkdir()
    (tmp_path / "2020-01-01-abcdef").mkdir()  # well named but without a card
    assert list_versions(tmp_path) == [version]
    assert list_versions(tmp_path / "absent") == []
