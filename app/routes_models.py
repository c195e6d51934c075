"""Model cards from the registry folder (``models/<version>/model.json``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app import services
from app.deps import PredictorDep, SettingsDep
from app.schemas import ModelDetail, ModelList, Problem

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelList)
def models(settings: SettingsDep, model: PredictorDep) -> ModelList:
    """Every model version on disk, newest first; says which one serves, or why none does."""
    return services.list_models(models_dir=settings.model_dir, model=model)


@router.get(
    "/models/{version}",
    response_model=ModelDetail,
    responses={
        404: {"model": Problem, "description": "No such version."},
        422: {"model": Problem, "description": "Malformed version name."},
    },
)
def model_card(
    version: Annotated[str, Path(description="YYYY-MM-DD-<6 hex>, e.g. 2024-12-31-a1b2c3")],
    settings: SettingsDep,
    model: PredictorDep,
) -> ModelDetail:
    """The full model card of one version."""
    return services.model_detail(models_dir=settings.model_dir, version=version, model=model)
