"""Backtests: run a request on the stored history and keep it; read a stored run back.

``POST /backtest`` runs in a research process (app.research), never on the serving
event loop, behind a per-client rate limit (app.rate_limit). ``Idempotency-Key``
makes a retry safe: a key seen before answers the run stored under it without
running again; a key already in flight here waits for that run.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from app.deps import CallerDep, EngineDep, PredictorDep, StateDep
from app.problems import NotFoundError, problem
from app.rate_limit import RateLimited, client_key
from app.research import BacktestJob, Database, ModelFacts, Outcome, ResearchBusy
from app.schemas import Problem, StoredBacktest
from app.state import ServiceState
from backtest.schemas import BacktestRequest, BacktestResult
from store.backtest_runs import load_run

router = APIRouter(tags=["backtest"])


@router.post(
    "/backtest",
    status_code=201,
    response_model=BacktestResult,
    responses={
        200: {"model": BacktestResult, "description": "Answered, not stored (`store: false`)."},
        422: {"model": Problem, "description": "A bad field, or beyond the service's bounds."},
        403: {"model": Problem, "description": "An X-API-Key that is not valid."},
        429: {"model": Problem, "description": "Over the client's rate; see Retry-After."},
        503: {
            "model": Problem,
            "description": "No data yet, model needed, database down, or research busy "
            "(Retry-After).",
        },
    },
)
async def post_backtest(
    body: BacktestRequest,
    request: Request,
    state: StateDep,
    model: PredictorDep,
    caller: CallerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Any unique string: a retry with the same key and body answers the "
            "first run again instead of running or storing twice.",
        ),
    ] = None,
) -> Response:
    """Run the strategies on the stored history and store the run (unless ``store`` is
    false). The run's id is in the ``Location`` and ``X-Backtest-Id`` headers."""
    try:
        own_rate = caller.quotas.backtests_per_minute if caller else None
        await run_in_threadpool(state.backtest_limiter.take, client_key(request), own_rate)
    except RateLimited as limited:
        headers = {"Retry-After": str(limited.retry_after_s)}
        return problem(429, str(limited), headers=headers)
    settings = state.settings
    job = BacktestJob(
        database=Database(settings.database_url, settings.db_timeout_s),
        request=body,
        model=ModelFacts.of(model),
        max_strategies=settings.max_backtest_strategies,
        idempotency_key=idempotency_key,
        keep_runs=settings.backtest_keep_runs,
        keep_bytes=int(settings.backtest_keep_mb * 1024 * 1024),
        keep_days=settings.backtest_keep_days,
    )
    try:
        outcome = await _run_once(state, job)
    except ResearchBusy as busy:
        return problem(503, str(busy), headers={"Retry-After": str(busy.retry_after_s)})
    return outcome.response()


async def _run_once(state: ServiceState, job: BacktestJob) -> Outcome:
    """Run the job; with an idempotency key already in flight here, await that run."""
    if job.idempotency_key is None:
        return await state.research.run(job)
    in_flight = state.backtests_in_flight
    running = in_flight.get(job.idempotency_key)
    if running is None:
        running = in_flight[job.idempotency_key] = asyncio.ensure_future(state.research.run(job))
        running.add_done_callback(lambda _: in_flight.pop(job.idempotency_key, None))
        return await asyncio.shield(running)
    await asyncio.wait([running])
    # The first run stored the result under the key: this answers it (or refuses a
    # different body under the same key) without running.
    return await state.research.run(job)


@router.get(
    "/backtest/{run_id}",
    response_model=StoredBacktest,
    responses={404: {"model": Problem, "description": "No run with that id."}},
)
def get_backtest(
    run_id: Annotated[str, Path(max_length=36, description="Id returned by POST /backtest.")],
    engine: EngineDep,
) -> StoredBacktest:
    """A stored run: its request, result and duration, as computed then."""
    with engine.connect() as connection:  # see app.deps: checked out on this thread
        run = load_run(connection, run_id=run_id)
    if run is None:
        raise NotFoundError(f"no backtest run with id {run_id!r}")
    return StoredBacktest(
        id=run.id,
        created_at=run.created_at,
        duration_ms=run.duration_ms,
        request=run.request,
        result=run.result,
    )
