"""Admin routes, behind the X-API-Key header: refresh the data, activate a model version."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app import operations
from app.deps import AdminDep, ClockDep, StateDep
from app.schemas import Activation, Problem, RefreshReport

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminDep])

ERRORS = {
    401: {"model": Problem, "description": "No X-API-Key header."},
    403: {"model": Problem, "description": "Wrong key, or no key configured."},
    409: {"model": Problem, "description": "A refresh or activation is already running."},
}


@router.post("/refresh", response_model=RefreshReport, responses=ERRORS)
def refresh(state: StateDep, clock: ClockDep) -> RefreshReport:
    """Ingest new data from the configured source; recompute features, regimes, model outputs.

    One at a time across every process sharing the database (409 while one runs).
    """
    report = operations.refresh_all(
        state.engine,
        settings=state.settings,
        rule_set=state.rule_set,
        model=state.model,
        today=clock().date(),
    )
    state.cache.clear()
    return report


@router.post(
    "/models/{version}/activate",
    response_model=Activation,
    responses={
        **ERRORS,
        404: {"model": Problem, "description": "No such version on disk."},
        422: {"model": Problem, "description": "Malformed name, or failed sha256/feature check."},
    },
)
def activate(
    version: Annotated[str, Path(description="YYYY-MM-DD-<6 hex>")], state: StateDep
) -> Activation:
    """Verify, record as active and serve this version; computes its daily outputs."""
    slot, activation = operations.activate_model(
        state.engine, settings=state.settings, version=version
    )
    state.swap_model(slot)
    return activation
