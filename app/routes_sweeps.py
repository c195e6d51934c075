"""Sweeps as jobs: a grid of rule-set variants run on Dask, kept in the database.

    POST /sweeps                  202 with the sweep's id (Location: /sweeps/{id})
    GET  /sweeps                  the sweeps, newest first
    GET  /sweeps/{id}             status, progress, and the summary once done
    GET  /sweeps/{id}/results     its variants, best first, a page at a time
    POST /sweeps/{id}/cancel      stop it (a queued one at once, a running one at its next chunk)
    POST /sweeps/{id}/rerun       queue a failed or cancelled sweep again

Reading is open; queuing needs a research (or admin) key, within the key's quotas
(429 beyond them), and only the sweep's owner or an admin cancels or reruns it.

The service's sweep runner (operations.sweeps.SweepRunner, started with the app)
claims queued sweeps; a sweep whose process stopped is queued again.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from pydantic import BaseModel, Field

from app.deps import EngineDep, ResearcherDep, SettingsDep
from app.problems import problem
from app.schemas import Problem
from app.settings import Settings
from core.errors import DataValidationError
from operations.keys import Caller
from operations.sweeps import (
    ClusterSettings,
    QuotaExceeded,
    Sweep,
    SweepConflict,
    SweepQuota,
    SweepRunner,
    create_sweep,
    list_sweeps,
    load_sweep,
    request_cancel,
    rerun,
    sweep_results,
)
from research.grid import SweepRequest

# Larger offsets and pages overflow the databases' 64-bit OFFSET; no list is that long.
MAX_OFFSET = 10_000_000

router = APIRouter(tags=["sweeps"])
SweepId = Annotated[str, Path(max_length=36, description="Id returned by POST /sweeps.")]


class SweepStatus(BaseModel):
    id: str
    name: str | None
    status: str = Field(description="queued | running | done | failed | cancelled")
    variants: int
    done_variants: int
    progress: float = Field(description="share of variants evaluated")
    attempts: int
    cancel_requested: bool
    message: str | None = Field(description="why it failed, or why it was queued again")
    scheduler: str | None = Field(description="where it ran: a Dask address or a local cluster")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    summary: dict[str, Any] | None = Field(
        description="once done: period, chosen variant with its deflated Sharpe, "
        "walk-forward windows and stitched out-of-sample figures, PBO"
    )
    request: dict[str, Any] | None = None

    @classmethod
    def of(cls, sweep: Sweep, *, full: bool = True) -> SweepStatus:
        return cls(
            id=sweep.id,
            name=sweep.name,
            status=sweep.status,
            variants=sweep.variants,
            done_variants=sweep.done_variants,
            progress=sweep.progress,
            attempts=sweep.attempts,
            cancel_requested=sweep.cancel_requested,
            message=sweep.message,
            scheduler=sweep.scheduler,
            created_at=sweep.created_at,
            started_at=sweep.started_at,
            finished_at=sweep.finished_at,
            summary=sweep.summary if full else None,
            request=sweep.request if full else None,
        )


class SweepList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SweepStatus]


class VariantRow(BaseModel):
    variant: int
    rank: int = Field(description="1: the best by the sweep's objective")
    objective: float | None
    parameters: dict[str, Any]
    metrics: dict[str, float | None]


class SweepResultsPage(BaseModel):
    id: str
    page: int
    page_size: int
    pages: int
    total: int
    variants: list[VariantRow]


def start_runner(app: FastAPI, engine: Any) -> None:
    """Start the service's sweep runner (from the app's lifespan)."""
    settings = app.state.settings
    runner = SweepRunner(
        engine,
        ClusterSettings(
            scheduler=settings.dask_scheduler,
            workers=settings.dask_workers,
            processes=settings.dask_processes,
            chunk_variants=settings.sweep_chunk_variants,
            nice=settings.research_nice,
        ),
        poll_s=settings.sweep_poll_s,
        stale_s=settings.sweep_stale_s,
        max_attempts=settings.sweep_max_attempts,
    )
    app.state.sweep_runner = runner
    runner.start()


def stop_runner(app: FastAPI) -> None:
    runner = getattr(app.state, "sweep_runner", None)
    if runner is not None:
        runner.stop()


def _conflict(error: SweepConflict) -> Response:
    return problem(409, str(error))


def _quota(caller: Caller, settings: Settings) -> SweepQuota | None:
    """The caller's sweep quota (its own, else the service's defaults); admins have none."""
    if caller.may("admin"):
        return None
    own = caller.quotas
    return SweepQuota(
        max_concurrent=own.max_concurrent_sweeps
        if own.max_concurrent_sweeps is not None
        else settings.key_max_concurrent_sweeps,
        max_variants_per_day=own.max_variants_per_day
        if own.max_variants_per_day is not None
        else settings.key_max_variants_per_day,
    )


def _owned(engine: Any, sweep_id: str, caller: Caller) -> Response | None:
    """403 unless the caller owns the sweep or is an admin (404 for no such sweep)."""
    with engine.connect() as connection:
        sweep = load_sweep(connection, sweep_id=sweep_id)
    if caller.may("admin") or sweep.owner == caller.key_id:
        return None
    return problem(403, f"sweep {sweep_id} belongs to another key: only its owner or an admin")


KEY_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No X-API-Key header."},
    403: {"model": Problem, "description": "Not a valid key, or its role may not do this."},
}


@router.post(
    "/sweeps",
    status_code=202,
    response_model=SweepStatus,
    responses={
        **KEY_ERRORS,
        422: {"model": Problem, "description": "A bad field, or a grid too large."},
        429: {"model": Problem, "description": "Over the key's sweep quota."},
    },
)
def post_sweep(
    body: SweepRequest,
    request: Request,
    response: Response,
    engine: EngineDep,
    settings: SettingsDep,
    caller: ResearcherDep,
) -> SweepStatus | Response:
    """Queue a sweep over the grid; poll ``GET /sweeps/{id}`` for its progress."""
    try:
        sweep = create_sweep(
            engine,
            request=body,
            max_variants=settings.sweep_max_variants,
            owner=caller.key_id,
            quota=_quota(caller, settings),
        )
    except QuotaExceeded as error:
        return problem(429, str(error))
    runner = getattr(request.app.state, "sweep_runner", None)
    if runner is not None:
        runner.wake()
    response.headers["Location"] = f"/sweeps/{sweep.id}"
    return SweepStatus.of(sweep)


@router.get("/sweeps", response_model=SweepList)
def get_sweeps(
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    status: Annotated[str | None, Query(pattern="^(queued|running|done|failed|cancelled)$")] = None,
) -> SweepList:
    """The sweeps, newest first (without their summaries)."""
    with engine.connect() as connection:
        items, total = list_sweeps(connection, limit=limit, offset=offset, status=status)
    return SweepList(
        total=total,
        limit=limit,
        offset=offset,
        items=[SweepStatus.of(sweep, full=False) for sweep in items],
    )


@router.get(
    "/sweeps/{sweep_id}",
    response_model=SweepStatus,
    responses={404: {"model": Problem, "description": "No sweep with that id."}},
)
def get_sweep(sweep_id: SweepId, engine: EngineDep) -> SweepStatus:
    with engine.connect() as connection:
        return SweepStatus.of(load_sweep(connection, sweep_id=sweep_id))


@router.get(
    "/sweeps/{sweep_id}/results",
    response_model=SweepResultsPage,
    responses={
        404: {"model": Problem, "description": "No sweep with that id."},
        409: {"model": Problem, "description": "The sweep is not done."},
    },
)
def get_sweep_results(
    sweep_id: SweepId,
    engine: EngineDep,
    settings: SettingsDep,
    page: Annotated[int, Query(ge=1, le=MAX_OFFSET)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_OFFSET)] = 100,
) -> SweepResultsPage | Response:
    """The sweep's variants, best first by its objective, ``page_size`` a page."""
    if page_size > settings.max_sweep_page_size:
        raise DataValidationError(
            f"at most {settings.max_sweep_page_size} (DEEPREGIME_MAX_SWEEP_PAGE_SIZE), "
            f"got {page_size}",
            field="query.page_size",
        )
    try:
        with engine.connect() as connection:
            sweep, rows = sweep_results(
                connection, sweep_id=sweep_id, page=page, page_size=page_size
            )
    except SweepConflict as error:
        return _conflict(error)
    return SweepResultsPage(
        id=sweep.id,
        page=page,
        page_size=page_size,
        pages=max(1, math.ceil(sweep.variants / page_size)),
        total=sweep.variants,
        variants=[VariantRow(**row) for row in rows],
    )


@router.post(
    "/sweeps/{sweep_id}/cancel",
    response_model=SweepStatus,
    responses={**KEY_ERRORS, 404: {"model": Problem, "description": "No sweep with that id."}},
)
def cancel_sweep(
    sweep_id: SweepId, engine: EngineDep, caller: ResearcherDep
) -> SweepStatus | Response:
    """Cancel the sweep: a queued one at once, a running one after its current chunk."""
    refused = _owned(engine, sweep_id, caller)
    if refused is not None:
        return refused
    return SweepStatus.of(request_cancel(engine, sweep_id=sweep_id))


@router.post(
    "/sweeps/{sweep_id}/rerun",
    status_code=202,
    response_model=SweepStatus,
    responses={
        **KEY_ERRORS,
        404: {"model": Problem, "description": "No sweep with that id."},
        409: {"model": Problem, "description": "Only a failed or cancelled sweep is rerun."},
        429: {"model": Problem, "description": "Over the key's sweeps at once."},
    },
)
def rerun_sweep(
    sweep_id: SweepId,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: ResearcherDep,
) -> SweepStatus | Response:
    """Queue a failed or cancelled sweep again, from the start."""
    refused = _owned(engine, sweep_id, caller)
    if refused is not None:
        return refused
    try:
        sweep = rerun(engine, sweep_id=sweep_id, quota=_quota(caller, settings))
    except SweepConflict as error:
        return _conflict(error)
    except QuotaExceeded as error:
        return problem(429, str(error))
    runner = getattr(request.app.state, "sweep_runner", None)
    if runner is not None:
        runner.wake()
    return SweepStatus.of(sweep)
