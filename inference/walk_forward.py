"""The walk-forward out-of-sample history a version ships beside itself.

``<models_dir>/<version>/walk_forward.csv`` holds, for every day up to the
version's in-sample cut-off, the calibrated p(distressed) and regime from a
refit trained only on days before that day's year (expanding window, refit
yearly), and ``fold_cutoff``, the last day that refit could read. The card's
``walk_forward`` entry records the file's sha256 and its out-of-sample scores;
activation loads the file into the store so history and backtests read
out-of-sample outputs for the days the version itself was fitted on.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ConfigError
from inference.card import ModelCard
from inference.registry import CARD_FILE, read_card, sha256_file, version_dir

WALK_FORWARD_FILE = "walk_forward.csv"
COLUMNS = ("p_distressed", "regime", "fold_cutoff")


def _atomic_write(path: Path, data: bytes) -> None:
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        staging.write_bytes(data)
        os.replace(staging, path)
    finally:
        if staging.exists():
            staging.unlink()


def to_csv(outputs: pd.DataFrame) -> bytes:
    """The file's bytes: date, p_distressed (8 decimals), regime, fold_cutoff."""
    frame = outputs.loc[:, list(COLUMNS)].copy()
    frame.index = pd.DatetimeIndex(frame.index).strftime("%Y-%m-%d")
    frame.index.name = "date"
    frame["regime"] = frame["regime"].astype(int)
    frame["fold_cutoff"] = pd.to_datetime(frame["fold_cutoff"]).dt.strftime("%Y-%m-%d")
    return frame.to_csv(float_format="%.8f", lineterminator="\n").encode()


def attach(
    models_dir: Path, version: str, outputs: pd.DataFrame, summary: dict[str, Any]
) -> ModelCard:
    """Write ``walk_forward.csv`` for ``version`` and record it in the card.

    ``outputs`` (indexed by date) must end on or before the card's in-sample cut-off
    and each row's fold must end before its day. Each file is replaced atomically."""
    card = read_card(models_dir, version)
    days = pd.DatetimeIndex(outputs.index)
    if not len(days):
        raise ConfigError(f"no walk-forward outputs to attach to {version}")
    if days[-1] > pd.Timestamp(card.sample_cutoff):
        raise ConfigError(
            f"walk-forward outputs run to {days[-1].date()}, past the in-sample cut-off "
            f"{card.sample_cutoff} of {version}"
        )
    if (pd.to_datetime(outputs["fold_cutoff"]).to_numpy() >= days.to_numpy()).any():
        raise ConfigError("a walk-forward output was fitted on data up to its own day")
    data = to_csv(outputs)
    folder = version_dir(models_dir, version)
    _atomic_write(folder / WALK_FORWARD_FILE, data)
    entry = {
        "file": WALK_FORWARD_FILE,
        "sha256": sha256_file(folder / WALK_FORWARD_FILE),
        "first": days[0].date().isoformat(),
        "last": days[-1].date().isoformat(),
        "days": len(days),
        **summary,
    }
    updated = card.model_copy(update={"walk_forward": entry})
    _atomic_write(folder / CARD_FILE, (updated.to_json() + "\n").encode())
    return updated


def read(models_dir: Path, card: ModelCard) -> pd.DataFrame | None:
    """The version's walk-forward outputs (index date; p_distressed, regime, fold_cutoff),
    None when the card records none. The file must match the card's sha256."""
    if card.walk_forward is None:
        return None
    path = version_dir(models_dir, card.version) / WALK_FORWARD_FILE
    if not path.exists():
        raise ConfigError(f"{path} is missing, but the card of {card.version} records it")
    data = path.read_bytes()
    if sha256_file(path) != card.walk_forward.get("sha256"):
        raise ConfigError(f"{path} does not match the sha256 in the card of {card.version}")
    frame = pd.read_csv(io.BytesIO(data), parse_dates=["date"], index_col="date")
    cutoff = pd.to_datetime(frame["fold_cutoff"])
    if (cutoff >= frame.index).any() or frame.index[-1] > pd.Timestamp(card.sample_cutoff):
        raise ConfigError(f"{path} holds outputs that are not out of sample")
    return pd.DataFrame(
        {
            "p_distressed": frame["p_distressed"].astype(np.float64),
            "regime": frame["regime"].astype(int),
            "fold_cutoff": [day.date() for day in cutoff],
        },
        index=pd.DatetimeIndex(frame.index, name="date"),
    )
