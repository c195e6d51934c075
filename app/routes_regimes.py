"""Regime routes: today's answer, one day, and the history (JSON or CSV, paged).

``/regime/today`` serves the latest publication of the ledger (store.ledger)
for the requested policy, exactly as published, plus the read-time fields
(``stale``, ``expected_as_of``). Its rendered body is cached per policy,
mapping and expected trading day (app.state.ResponseCache), so a cached answer
costs no database round trip; a miss runs one indexed query in the thread pool.
Every other answer comes from operations.answers (stored rows only).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from enum import Enum
from typing import Annotated, TypeVar

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Connection

from app import services
from app.deps import ClockDep, EngineDep, PredictorDep, SettingsDep, StateDep
from app.schemas import Format, ModelMappingName, Problem, RegimePage, RegimeReport
from app.state import ServiceState
from core.enums import Policy
from core.errors import DataValidationError, NoDataError, NotFoundError
from operations import answers
from operations.publish import variant_for
from operations.revisions import is_revised
from store.ledger import latest_publication, latest_publication_id, publication_as_known_at

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


def _newest_publication(state: ServiceState) -> int:
    with state.engine.connect() as connection:
        return latest_publication_id(connection)


def _render_today(
    state: ServiceState, policy: Policy, mapping: ModelMappingName, expected: dt.date
) -> tuple[bytes, str]:
    """The latest publication under the policy, with read-time fields; and its ETag."""
    answers.require_model(policy, state.model)
    variant = variant_for(policy, mapping)
    with state.engine.connect() as connection:
        publication = latest_publication(connection, policy=variant.key)
        if publication is None:
            if answers.stored_span(connection, state.rule_set) is None:
                raise answers.no_regimes(state.rule_set)
            raise NoDataError(
                f"nothing published yet under policy {variant.key!r}: run `deepregime update` "
                "(or POST /admin/refresh)"
            )
    document = publication.document()
    as_of = dt.date.fromisoformat(document["as_of"])
    document.update(
        publication_id=publication.id,
        published_at=publication.published_at.isoformat(),
        stale=as_of < expected,
        expected_as_of=expected.isoformat(),
    )
    body = json.dumps(document, separators=(",", ":")).encode()
    return body, f'"{publication.body_sha256[:32]}-{int(as_of < expected)}"'


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
    now = time.monotonic()
    if now - state.ledger_checked_at >= state.settings.publication_check_s:
        state.note_ledger_id(await run_in_threadpool(_newest_publication, state), now)
    key = ("today", policy, mapping, expected)
    rendered = state.cache.get(key)
    if rendered is None:
        rendered = await run_in_threadpool(_render_today, state, policy, mapping, expected)
        state.cache.put(key, rendered)
    body, etag = rendered  # type: ignore[misc]
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/regime/{day}", response_model=RegimeReport, responses=ERRORS)
def regime_on(
    day: Annotated[dt.date, Path(description="Trading day, YYYY-MM-DD.")],
    engine: EngineDep,
    state: StateDep,
    model: PredictorDep,
    policy: PolicyQuery = None,
    mapping: MappingQuery = None,
    as_known_at: Annotated[
        dt.datetime | None,
        Query(
            description="Answer what had been published for that day by this time "
            "(ISO 8601; without a zone, UTC) instead of the current answer."
        ),
    ] = None,
) -> RegimeReport | Response:
    """The regime of one stored trading day (404 when the day is not in the history).

    With ``as_known_at``, the last publication for that day at or before that time,
    exactly as published (404 when nothing had been published for it by then).
    """
    policy = policy or state.settings.default_policy
    mapping = mapping or ModelMappingName(state.settings.model_mapping)
    with engine.connect() as connection:  # see app.deps: checked out on this thread
        if as_known_at is not None:
            return _as_known_at(connection, day, variant_for(policy, mapping).key, as_known_at)
        report = answers.regime_report(
            connection,
            day=day,
            policy=policy,
            mapping=mapping,
            rule_set=state.rule_set,
            model=model,
        )
        return report.model_copy(update={"revised": is_revised(connection, day=day)})


def _as_known_at(connection: Connection, day: dt.date, key: str, known_at: dt.datetime) -> Response:
    moment = known_at if known_at.tzinfo is not None else known_at.replace(tzinfo=dt.UTC)
    publication = publication_as_known_at(connection, day=day, policy=key, known_at=moment)
    if publication is None:
        raise NotFoundError(
            f"nothing had been published for {day} under policy {key!r} by {moment.isoformat()}"
        )
    document = publication.document()
    document.update(
        publication_id=publication.id, published_at=publication.published_at.isoformat()
    )
    return Response(json.dumps(document, separators=(",", ":")), media_type="application/json")


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
        page = answers.regime_history(
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
