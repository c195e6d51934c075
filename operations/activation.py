"""Model activation: the one path from a version on disk to the answers it serves.

Verify and load the version, then under the ``refresh`` lock (one writer at a
time, as for updates) register it, record it as active, score the stored
history, and publish the answers that change, in one transaction.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import Engine

from core.enums import Policy
from core.errors import ConfigError, NotFoundError
from core.features import FEATURE_INPUT_SYMBOLS
from core.rules import rule_set_preset
from inference import walk_forward
from inference.registry import list_versions
from inference.versions import validate_version
from operations.answers import stored_span
from operations.models import ModelSlot, load_slot
from operations.publish import data_fingerprint, publish_latest
from store.locks import PUBLISH_LOCK, REFRESH_LOCK, held_lock, hold_for_transaction
from store.model_registry import activate_predictor
from store.repository import load_closes


class Activation(BaseModel):
    version: str
    active: bool = True
    outputs_written: int = Field(description="Daily model outputs computed on activation.")
    walk_forward_days: int = Field(
        default=0, description="Walk-forward out-of-sample outputs loaded from the version."
    )
    publications: int = Field(default=0, description="Answers published by the activation.")


def activate_model(
    engine: Engine,
    *,
    models_dir: Path,
    version: str,
    rule_set_name: str,
    default_policy: Policy,
    model_mapping: str,
    lock_wait_s: float = 0.0,
) -> tuple[ModelSlot, Activation]:
    """Verify, load and activate ``version``; returns the slot to serve and what was done.

    ConfigError (bad name) -> 422, NotFoundError -> 404, a failed sha256 or
    feature check -> 422; nothing is recorded unless the model loads.
    """
    validate_version(version)
    if version not in list_versions(models_dir):
        raise NotFoundError(f"model version {version} not found under {models_dir}")
    slot = load_slot(models_dir, version)
    if slot.predictor is None:
        raise ConfigError(str(slot.reason))
    # Checked against the card's sha256 before anything is recorded.
    history = walk_forward.read(models_dir, slot.predictor.card)
    rule_set = rule_set_preset(rule_set_name).validate()
    with held_lock(engine, REFRESH_LOCK, wait_s=lock_wait_s):
        with engine.begin() as connection:
            hold_for_transaction(connection, PUBLISH_LOCK)
            outputs = activate_predictor(connection, predictor=slot.predictor, walk_forward=history)
            published = 0
            if stored_span(connection, rule_set) is not None:
                closes = load_closes(connection, symbols=FEATURE_INPUT_SYMBOLS)
                appended, _ = publish_latest(
                    connection,
                    rule_set=rule_set,
                    model=slot,
                    fingerprint=data_fingerprint(closes),
                    run_id=None,
                    default_policy=default_policy,
                    model_mapping=model_mapping,
                )
                published = len(appended)
    return slot, Activation(
        version=version,
        outputs_written=len(outputs),
        walk_forward_days=0 if history is None else len(history),
        publications=published,
    )
