"""The model registry on disk: ``<models_dir>/<version>/model.onnx`` + ``model.json``.

A version folder is written whole or not at all (built in a temporary folder,
then renamed). Reading checks the name, the ONNX file's sha256 against the card
and the card's feature list against ``core.features.MODEL_FEATURES``.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

from pydantic import ValidationError

from core.errors import ConfigError, DataValidationError, NoDataError
from core.features import MODEL_FEATURES
from inference.card import ModelCard
from inference.versions import VERSION_PATTERN, validate_version

ONNX_FILE = "model.onnx"
CARD_FILE = "model.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_dir(models_dir: Path, version: str) -> Path:
    """Folder of ``version`` under ``models_dir`` (the name is validated first)."""
    return Path(models_dir) / validate_version(version)


def list_versions(models_dir: Path) -> list[str]:
    """Version folders holding a model card, oldest name first; other entries are ignored."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and VERSION_PATTERN.fullmatch(entry.name) and (entry / CARD_FILE).exists()
    )


def check_features(card: ModelCard) -> None:
    """The card's feature list must be the service's, in the same order."""
    if card.features != list(MODEL_FEATURES):
        raise DataValidationError(
            f"model {card.version} expects features {card.features}, but the service computes "
            f"{list(MODEL_FEATURES)} (same names, same order required)",
            field="features",
            source=CARD_FILE,
        )


def read_card(models_dir: Path, version: str) -> ModelCard:
    """Parse ``model.json`` of a version; NoDataError when absent, DataValidationError when bad."""
    path = version_dir(models_dir, version) / CARD_FILE
    if not path.exists():
        raise NoDataError(f"model version {version} not found: no {path}")
    try:
        card = ModelCard.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or None
        raise DataValidationError(first["msg"], source=str(path), field=where) from None
    if card.version != version:
        raise DataValidationError(
            f"card names version {card.version!r} but sits in folder {version!r}",
            source=str(path),
            field="version",
        )
    return card


def verified_artifact(models_dir: Path, version: str) -> tuple[ModelCard, Path]:
    """Card and ONNX path of a version after the sha256 and feature checks."""
    card = read_card(models_dir, version)
    onnx_path = version_dir(models_dir, version) / ONNX_FILE
    if not onnx_path.exists():
        raise NoDataError(f"model version {version} has no {ONNX_FILE} at {onnx_path}")
    actual = sha256_file(onnx_path)
    if actual != card.onnx_sha256:
        raise DataValidationError(
            f"sha256 of {ONNX_FILE} is {actual}, the card records {card.onnx_sha256}: "
            "the file was changed or corrupted",
            source=str(onnx_path),
            field="onnx_sha256",
        )
    check_features(card)
    return card, onnx_path


def write_version(models_dir: Path, card: ModelCard, onnx_bytes: bytes) -> Path:
    """Write a version folder atomically and return it.

    Refuses when the card's sha256 does not match ``onnx_bytes``. An existing
    folder of the same version holds the same ONNX file (the name contains its
    digest), so its card is replaced; anything else there is an error.
    """
    if hashlib.sha256(onnx_bytes).hexdigest() != card.onnx_sha256:
        raise ConfigError(f"card of {card.version} records a sha256 that is not its ONNX file's")
    target = version_dir(models_dir, card.version)
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        (staging / ONNX_FILE).write_bytes(onnx_bytes)
        (staging / CARD_FILE).write_text(card.to_json() + "\n", encoding="utf-8")
        if target.exists():
            if sha256_file(target / ONNX_FILE) != card.onnx_sha256:
                raise ConfigError(f"{target} already holds a different model")
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
