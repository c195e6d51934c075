"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import datetime as dt
import math

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app import readiness
from app.deps import ClockDep, PredictorDep, StateDep
from app.schemas import Health, Readiness
from app.state import ServiceState
from operations import answers

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is alive (touches nothing else, so it stays up when the database is down)."""
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A required part is not ready."}},
)
async def ready(state: StateDep, clock: ClockDep, model: PredictorDep) -> JSONResponse:
    """Database reachable, schema at head, data stored, model loaded: each part says why not.

    503 only when the service cannot serve; stale data answers 200 with status
    ``degraded`` (the data part says how many sessions behind)."""
    report = await run_in_threadpool(
        readiness.readiness,
        state.engine,
        settings=state.settings,
        rule_set=state.rule_set,
        calendar=state.calendar,
        now=clock(),
        model=model,
        schema_head=state.schema_head,
    )
    status = 503 if report.status == "not_ready" else 200
    return JSONResponse(report.model_dump(mode="json"), status_code=status)


def _update_data_gauges(state: ServiceState, now: dt.datetime) -> None:
    """Data age, sessions behind and stale gauges from the latest stored regime day
    (NaN when unknown)."""
    try:
        with state.engine.connect() as connection:
            span = answers.stored_span(connection, state.rule_set)
    except (DBAPIError, PoolTimeoutError):
        span = None
    if span is None:
        state.metrics.data_age_days.set(math.nan)
        state.metrics.data_lag_sessions.set(math.nan)
        state.metrics.data_stale.set(math.nan)
        return
    latest = span[1]
    expected = state.calendar.expected_last_session(now)
    lag = state.calendar.sessions_between(latest, expected)
    state.metrics.data_age_days.set((now.date() - latest).days)
    state.metrics.data_lag_sessions.set(lag)
    state.metrics.data_stale.set(1.0 if lag > state.settings.max_data_lag_days else 0.0)


@router.get("/metrics", response_class=Response)
async def metrics(state: StateDep, clock: ClockDep) -> Response:
    """Prometheus text format: requests and latencies per route, data age, active model."""
    await run_in_threadpool(_update_data_gauges, state, clock())
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
