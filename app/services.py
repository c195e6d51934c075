"""What the model-card handlers call, and the CSV form of a history page.

A day's answer (one day or a history page) is operations.answers'.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from app.schemas import ModelDetail, ModelList, ModelSummary, RegimePage, RegimeRow
from core.errors import NotFoundError
from inference.card import ModelCard
from inference.registry import list_versions, read_card
from inference.versions import validate_version
from operations.models import ModelSlot


def page_as_csv(page: RegimePage) -> str:
    """The page's rows as CSV (header: RegimeRow's fields; empty cells for null)."""
    columns = list(RegimeRow.model_fields)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for item in page.items:
        values = item.model_dump(mode="json")
        writer.writerow({k: "" if values[k] is None else values[k] for k in columns})
    return buffer.getvalue()


# --- model cards -------------------------------------------------------------------


def _summary(card: ModelCard, model: ModelSlot) -> ModelSummary:
    return ModelSummary(
        version=card.version,
        active=card.version == model.version,
        loaded=model.loaded and card.version == model.version,
        created_at=card.created_at,
        training_period=card.training_period.model_dump(mode="json"),
        metrics=card.metrics,
    )


def list_models(*, models_dir: Path, model: ModelSlot) -> ModelList:
    """Every version in the registry folder, newest first, with the serving one marked."""
    cards = [read_card(models_dir, version) for version in reversed(list_versions(models_dir))]
    return ModelList(
        active=model.version,
        loaded=model.loaded,
        reason=model.reason,
        models=[_summary(card, model) for card in cards],
    )


def model_detail(*, models_dir: Path, version: str, model: ModelSlot) -> ModelDetail:
    """The full card of one version; 422 for a malformed name, 404 when absent."""
    validate_version(version)
    if version not in list_versions(models_dir):
        raise NotFoundError(f"model version {version} not found under {models_dir}")
    card = read_card(models_dir, version)
    return ModelDetail(
        version=version,
        active=version == model.version,
        loaded=model.loaded and version == model.version,
        card=card.as_dict(),
    )
