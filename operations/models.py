"""Which classifier serves, and loading it without ever stopping the service.

The active version is the one recorded in the database registry; with none
recorded, the newest version on disk (e.g. the default model baked into the
image). A missing model, a failed sha256 check or an unreadable file leaves the
service on the rule engine, with the reason kept in the ModelSlot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from inference.predictor import RegimePredictor
from inference.registry import list_versions
from store.model_registry import active_version

log = logging.getLogger("deepregime.models")


@dataclass(frozen=True)
class ModelSlot:
    """The loaded classifier (``predictor``) or why none serves (``reason``)."""

    predictor: RegimePredictor | None = None
    version: str | None = None  # the version meant to serve, even when it failed to load
    reason: str | None = None

    @property
    def loaded(self) -> bool:
        return self.predictor is not None

    @classmethod
    def unavailable(cls, reason: str, version: str | None = None) -> ModelSlot:
        return cls(predictor=None, version=version, reason=reason)


def choose_version(engine: Engine, models_dir: Path) -> tuple[str | None, str]:
    """(version, where it came from) or (None, why there is none)."""
    try:
        with engine.connect() as connection:
            recorded = active_version(connection)
    except SQLAlchemyError as error:
        log.warning("model registry not readable (%s); using the models folder", error)
        recorded = None
    if recorded is not None:
        return recorded, "activated in the registry"
    on_disk = list_versions(models_dir)
    if on_disk:
        return on_disk[-1], f"newest under {models_dir} (no activation recorded)"
    return None, f"no model version found under {models_dir} and none activated"


def load_slot(models_dir: Path, version: str) -> ModelSlot:
    """The predictor for ``version``, or an unavailable slot saying why it did not load."""
    try:
        predictor = RegimePredictor.load(models_dir, version)
    except Exception as error:  # noqa: BLE001 - any failure must leave the rules serving
        reason = f"model {version} not loaded: {error}"
        log.warning(reason)
        return ModelSlot.unavailable(reason, version)
    return ModelSlot(predictor=predictor, version=version)


def load_active_model(engine: Engine, models_dir: Path) -> ModelSlot:
    version, origin = choose_version(engine, models_dir)
    if version is None:
        log.warning("serving the rule engine only: %s", origin)
        return ModelSlot.unavailable(origin)
    slot = load_slot(models_dir, version)
    if slot.loaded:
        log.info("model %s loaded (%s)", version, origin)
    return slot
