"""Admin routes, behind the X-API-Key header: refresh the data, activate a model version."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool

from app.deps import AdminDep, ClockDep, StateDep
from app.schemas import ADMIN_ERRORS, Problem
from operations.activation import Activation, activate_model
from operations.update import UpdateReport, run_update

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminDep])

ERRORS = {
    **ADMIN_ERRORS,
    409: {"model": Problem, "description": "A refresh or activation is already running."},
}


@router.post("/refresh", response_model=UpdateReport, responses=ERRORS)
async def refresh(state: StateDep, clock: ClockDep) -> UpdateReport:
    """Run the daily cycle (the same code as `deepregime update`): ingest from the
    configured source, recompute, score, publish what changed and notify.

    One at a time across every process sharing the database (409 while one runs).
    A held revision or a rejected file is reported in the body (``held``,
    ``rejected``), not as an error: the rest was published.
    """
    report = await run_in_threadpool(
        run_update,
        state.engine,
        settings=state.settings,
        model=state.model,
        trigger="api",
        clock=clock,
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
    """Verify, record as active and serve this version; computes its daily outputs and
    publishes the answers it changes."""
    settings = state.settings
    slot, activation = activate_model(
        state.engine,
        models_dir=settings.model_dir,
        version=version,
        rule_set_name=settings.rule_set,
        default_policy=settings.default_policy,
        model_mapping=settings.model_mapping,
    )
    state.swap_model(slot)
    return activation
