"""Backtests: run a request on the stored history and keep it; read a stored run back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from app.deps import EngineDep, PredictorDep, StateDep
from app.problems import NotFoundError
from app.schemas import Problem, StoredBacktest
from backtest.schemas import BacktestRequest, BacktestResult
from operations.backtests import run_and_store_backtest
from store.backtest_runs import load_run

router = APIRouter(tags=["backtest"])


@router.post(
    "/backtest",
    status_code=201,
    response_model=BacktestResult,
    responses={
        422: {"model": Problem, "description": "A bad field, or beyond the service's bounds."},
        503: {"model": Problem, "description": "No data yet, model needed, or database down."},
    },
)
def post_backtest(request: BacktestRequest, state: StateDep, model: PredictorDep) -> JSONResponse:
    """Run the strategies on the stored history (in the thread pool) and store the run.

    The run's id is in the ``Location`` and ``X-Backtest-Id`` headers.
    """
    run = run_and_store_backtest(
        state.engine,
        request=request,
        max_strategies=state.settings.max_backtest_strategies,
        model=model,
        cache=state.cache,
    )
    headers = {"Location": f"/backtest/{run.id}", "X-Backtest-Id": run.id}
    return JSONResponse(run.result, status_code=201, headers=headers)


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
