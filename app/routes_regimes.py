"""Regime routes: today's answer, one day, and the history (JSON or CSV, paged).

``/regime/today`` is the hot path: its rendered body is cached per policy,
mapping and expected trading day (app.state.ResponseCache), so a cached answer
costs no database round trip; a miss runs one indexed query in the thread pool.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated, TypeVar

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from app import services
from app.deps import ClockDep, EngineDep, PredictorDep, SettingsDep, StateDep
from app.schemas import Format, ModelMappingName, Problem, RegimePage, RegimeReport
from app.state import ServiceState
from core.enums import Policy
from core.errors import DataValidationError

router = APIRouter(tags=["regimes"])

PolicyQuery = Annotated[
    Policy | None,
    Query(description="rules | model | ensemble (default: DEEPREGIME_DEFAULT_POLICY)."),
]
MappingQuery = Annotated[
    ModelMappingName | None,
    Query(description="Mapping under policy 'model' (default: DEEPREGIME_MODEL_MAPPING)."),
]
ERRORS = {
    404: {"model": Problem, "description": "No regime on that day."},
    422: {"model": Problem, "description": "A bad parameter, named."},
    503: {"model": Problem, "description": "No data yet, model needed, or database down."},
}
DEFAULT_PAGE = 1000
E = TypeVar("E", bound=Enum)


def _render_today(
    state: ServiceState, policy: Policy, mapping: ModelMappingName, expected: dt.date
) -> bytes:
    with state.engine.connect() as connection:
        report = services.regime_report(
            connection,
            day=None,
            policy=policy,
            mapping=mapping,
            rule_set=state.rule_set,
            model=state.model,
        )
    return services.with_staleness(report, expected).model_dump_json().encode()


def _enum_query(request: Request, name: str, kind: type[E]) -> E | None:
    """Query parameter ``name`` as a member of ``kind`` (None when absent); an unknown
    value is the same 422 FastAPI gives for a declared parameter."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in kind)
        raise RequestValidationError(
            [{"type": "enum", "loc": ("query", name), "msg": f"Input should be {choices}"}]
        ) from None


TODAY_PARAMETERS = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", "enum": [member.value for member in kind]},
    }
    for name, kind, description in (
        ("policy", Policy, "rules | model | ensemble (default: DEEPREGIME_DEFAULT_POLICY)."),
        ("mapping", ModelMappingName, "Under policy 'model' (default: DEEPREGIME_MODEL_MAPPING)."),
    )
]


@router.get(
    "/regime/today",
    response_model=RegimeReport,
    responses=ERRORS,
    openapi_extra={"parameters": TODAY_PARAMETERS},
)
async def regime_today(request: Request, clock: ClockDep) -> Response:
    """The latest regime, and whether it is stale against the last NYSE session closed by now.

    The hot path: ``policy`` and ``mapping`` are read from the query by hand and the
    state straight from the app, because each parameter or dependency FastAPI
    resolves costs tens of microseconds a request; the answer comes from the cache.
    """
    state: ServiceState = request.app.state.service
    policy = _enum_query(request, "policy", Policy) or state.settings.default_policy
    mapping = _enum_query(request, "mapping", ModelMappingName) or ModelMappingName(
        state.settings.model_mapping
    )
    expected = state.calendar.expected_last_session(clock())
    key = ("today", policy, mapping, expected)
    body = state.cache.get(key)
    if body is None:
        body = await run_in_threadpool(_render_today, state, policy, mapping, expected)
        state.cache.put(key, body)
    return Response(body, media_type="application/json")


@router.get("/regime/{day}", response_model=RegimeReport, responses=ERRORS)
def regime_on(
    day: Annotated[dt.date, Path(description="Trading day, YYYY-MM-DD.")],
    engine: EngineDep,
    state: StateDep,
    model: PredictorDep,
    policy: PolicyQuery = None,
    mapping: MappingQuery = None,
) -> RegimeReport:
    """The regime of one stored trading day (404 when the day is not in the history)."""
    with engine.connect() as connection:  # see app.deps: checked out on this thread
        return services.regime_report(
            connection,
            day=day,
            policy=policy or state.settings.default_policy,
            mapping=mapping or ModelMappingName(state.settings.model_mapping),
            rule_set=state.rule_set,
            model=model,
        )


@router.get(
    "/regimes",
    response_model=RegimePage,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}}},
)
def regimes(
    engine: EngineDep,
    state: StateDep,
    settings: SettingsDep,
    model: PredictorDep,
    start: Annotated[dt.date | None, Query(description="First day (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(description="Last day (inclusive).")] = None,
    cursor: Annotated[
        dt.date | None, Query(description="next_cursor of the previous page.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, description="Days per page (at most DEEPREGIME_MAX_PAGE_SIZE).")
    ] = DEFAULT_PAGE,
    policy: PolicyQuery = None,
    mapping: MappingQuery = None,
    format: Annotated[
        Format | None, Query(description="json or csv (default: from the Accept header).")
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> RegimePage | Response:
    """History, oldest first, in pages; CSV with ``?format=csv`` or ``Accept: text/csv``."""
    if limit > settings.max_page_size:
        raise DataValidationError(
            f"at most {settings.max_page_size} days per page, got {limit}", field="query.limit"
        )
    with engine.connect() as connection:  # see app.deps: checked out on this thread
        page = services.regime_history(
            connection,
            start=start,
            end=end,
            cursor=cursor,
            limit=limit,
            policy=policy or settings.default_policy,
            mapping=mapping or ModelMappingName(settings.model_mapping),
            rule_set=state.rule_set,
            model=model,
        )
    wants_csv = format is Format.CSV or (format is None and "text/csv" in (accept or ""))
    if not wants_csv:
        return page
    headers = {"X-Next-Cursor": page.next_cursor.isoformat()} if page.next_cursor else {}
    return Response(services.page_as_csv(page), media_type="text/csv", headers=headers)
