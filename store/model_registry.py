"""Model versions in the database: registration, activation and daily outputs.

``model_versions`` holds one row per registered version (its card and ONNX
sha256); ``model_activations`` is append-only and its latest row names the
active version, so activating needs no code change and history is kept for
audit. Daily outputs go through store.repository's model-output functions;
``activate_predictor`` is the one definition of "activate": register, record
the activation, score the stored history and store the outputs.
Every function takes the caller's Connection (one transaction per command).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Connection, delete, insert, select

from core.errors import NoDataError
from inference.versions import validate_version
from store.repository import (
    load_features,
    load_model_outputs,
    upsert,
    utcnow,
    write_model_outputs,
    write_walk_forward_outputs,
)
from store.tables import model_activations, model_outputs, model_versions

if TYPE_CHECKING:  # the predictor is passed in, never loaded here
    from inference.predictor import RegimePredictor


def register_version(
    connection: Connection, *, version: str, sha256: str, card: Mapping[str, Any]
) -> None:
    """Insert or refresh a version's row (same name = same ONNX file, the name holds its digest)."""
    row = {
        "version": validate_version(version),
        "sha256": sha256,
        "card": dict(card),
        "registered_at": utcnow(),
    }
    upsert(connection, model_versions, [row])


def registered_version(connection: Connection, *, version: str) -> dict[str, Any] | None:
    """``version``, ``sha256``, ``card`` and ``registered_at`` of one version, or None."""
    statement = select(model_versions).where(model_versions.c.version == validate_version(version))
    row = connection.execute(statement).mappings().first()
    return dict(row) if row else None


def list_registered(connection: Connection) -> list[dict[str, Any]]:
    """Every registered version (without its card), oldest registration first."""
    statement = select(
        model_versions.c.version, model_versions.c.sha256, model_versions.c.registered_at
    ).order_by(model_versions.c.registered_at, model_versions.c.version)
    return [dict(row) for row in connection.execute(statement).mappings()]


def activate_version(connection: Connection, *, version: str) -> dt.datetime:
    """Record ``version`` as active (it must be registered). Returns the activation time."""
    if registered_version(connection, version=version) is None:
        raise NoDataError(f"model version {version} is not registered; train or register it first")
    now = utcnow()
    connection.execute(insert(model_activations).values(version=version, activated_at=now))
    return now


def active_version(connection: Connection) -> str | None:
    """Version named by the latest activation, or None when none was ever activated."""
    statement = (
        select(model_activations.c.version)
        .order_by(model_activations.c.id.desc())  # the latest row, whatever the clocks said
        .limit(1)
    )
    return connection.execute(statement).scalar()


def activation_history(connection: Connection) -> list[dict[str, Any]]:
    """Every activation, latest first."""
    statement = select(model_activations.c.version, model_activations.c.activated_at).order_by(
        model_activations.c.id.desc()
    )
    return [dict(row) for row in connection.execute(statement).mappings()]


def replace_outputs(connection: Connection, *, version: str, table: pd.DataFrame) -> int:
    """Store a version's daily outputs (index = date; ``regime``, ``p_distressed``),
    replacing whatever that version had stored, so rows dropped since go too."""
    validate_version(version)
    connection.execute(delete(model_outputs).where(model_outputs.c.model_version == version))
    return write_model_outputs(connection, table=table, model_version=version)


def store_outputs(connection: Connection, *, predictor: RegimePredictor) -> pd.DataFrame:
    """Score the whole stored feature history with ``predictor`` and replace its stored
    outputs. Returns the rows written (days with an output only)."""
    features = load_features(connection)
    if features.empty:
        raise NoDataError("no stored features: run `deepregime features` first")
    outputs = predictor.predict_daily(features).dropna()
    replace_outputs(connection, version=predictor.version, table=predictor.with_in_sample(outputs))
    return outputs


def activate_predictor(
    connection: Connection,
    *,
    predictor: RegimePredictor,
    walk_forward: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Register the loaded version, make it active and store its daily outputs and its
    walk-forward history (inference.walk_forward; replaced, or removed when None), in the
    caller's transaction (all or nothing). Returns the outputs written."""
    card = predictor.card
    register_version(connection, version=card.version, sha256=card.onnx_sha256, card=card.as_dict())
    activate_version(connection, version=card.version)
    write_walk_forward_outputs(
        connection,
        table=walk_forward if walk_forward is not None else _NO_WALK_FORWARD,
        model_version=card.version,
    )
    return store_outputs(connection, predictor=predictor)


_NO_WALK_FORWARD = pd.DataFrame(
    {"regime": [], "p_distressed": [], "fold_cutoff": []}, index=pd.DatetimeIndex([])
)


def load_outputs(
    connection: Connection,
    *,
    version: str,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> pd.DataFrame:
    """Stored daily ``regime`` and ``p_distressed`` of a version, indexed by date."""
    return load_model_outputs(
        connection, model_version=validate_version(version), start=start, end=end
    )
