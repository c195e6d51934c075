"""Regime routes: today's answer, one day, and the history (JSON or CSV, paged).

``/regime/today`` serves the latest publication of the ledger (store.ledger)
for the requested policy, exactly as published, plus the read-time fields
(``stale``, ``expected_as_of``). Its body is rendered once per publication and
trading day (app.state.ResponseCache: one render in flight, others wait for it
or get the current body), so an answer costs no database round trip. Clients may
keep it (``Cache-Control: max-age``) until the next expected publication, and
revalidate with ``If-None-Match`` (304) after it.

History pages run in the research processes (app.research); every other answer
comes from operations.answers (stored rows only).
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Annotated, TypeVar

from fastapi import APIRouter, FastAPI, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Connection

from app.deps import Clock, EngineDep, PredictorDep, SettingsDep, StateDep, get_clock
from app.problems import problem
from app.research import Database, HistoryJob, ModelFacts, ResearchBusy
from app.schemas import Format, ModelMappingName, Problem, RegimePage, RegimeReport
from app.state import ServiceState
from core.errors import DataValidationError, NoDataError, NotFoundError
from inference.in_sample import ModelHistory
from operations import answers, rule_sets
from operations.asks import Ask, resolve_ask
from operations.markets import Market, current_universe
from operations.notifications import LEDGER_POLICIES
from operations.publish import PolicyName, variant_for
from operations.regime_stats import regime_stats
from operations.revisions import is_revised
from operations.rule_sets import RuleSetPage, RuleSetReport
from operations.schedule import next_run_at
from store.ledger import latest_publication, latest_publication_id, publication_as_known_at

router = APIRouter(tags=["regimes"])

POLICY_DESCRIPTION = (
    "rules | ensemble | model | model:filter | model:leveraged, as the ledger names them "
    "(default: DEEPREGIME_DEFAULT_POLICY; `model` alone: DEEPREGIME_MODEL_MAPPING)."
)
MAPPING_DESCRIPTION = "Another way to name the mapping under policy 'model' (model:<mapping>)."
PolicyQuery = Annotated[PolicyName | None, Query(description=POLICY_DESCRIPTION)]
MappingQuery = Annotated[ModelMappingName | None, Query(description=MAPPING_DESCRIPTION)]
ERRORS = {
    404: {"model": Problem, "description": "No regime on that day."},
    422: {"model": Problem, "description": "A bad parameter, named."},
    503: {"model": Problem, "description": "No data yet, model needed, or database down."},
}
DEFAULT_PAGE = 1000
E = TypeVar("E", bound=Enum)


def newest_publication(state: ServiceState) -> int:
    with state.engine.connect() as connection:
        return latest_publication_id(connection)


@dataclass(frozen=True)
class RenderedToday:
    body: bytes
    etag: str
    fresh_until: float  # POSIX s: the next expected publication; 0 when one is overdue


def _render_today(
    state: ServiceState, ask: Ask, expected: dt.date, now: dt.datetime
) -> RenderedToday:
    """The latest publication of what ``ask`` names, with read-time fields, its ETag,
    and how long clients may keep it."""
    with state.engine.connect() as connection:
        if ask.item is not None:
            publication = rule_sets.published_today(connection, ask.item)
        else:
            answers.require_model(ask.policy, state.model)
            variant = variant_for(ask.policy, ask.mapping)
            publication = latest_publication(connection, policy=variant.key)
            if publication is None:
                if answers.stored_span(connection, state.rule_set) is None:
                    raise answers.no_regimes(state.rule_set)
                raise NoDataError(
                    f"nothing published yet under policy {variant.key!r}: run `deepregime "
                    "update` (or POST /admin/refresh)"
                )
    document = publication.document()
    as_of = dt.date.fromisoformat(document["as_of"])
    stale = as_of < expected
    document.update(
        market=ask.market.id,
        publication_id=publication.id,
        published_at=publication.published_at.isoformat(),
        stale=stale,
        expected_as_of=expected.isoformat(),
    )
    body = json.dumps(document, separators=(",", ":")).encode()
    # A stale answer is overdue for replacement: clients revalidate every time. A fresh
    # one holds until the next session's close plus the update's delay.
    delay = dt.timedelta(minutes=state.settings.schedule_delay_minutes)
    fresh_until = 0.0 if stale else next_run_at(state.calendar, now, delay).timestamp()
    etag = f'"{publication.id}-{publication.body_sha256[:24]}-{int(stale)}"'
    return RenderedToday(body, etag, fresh_until)


def publication_in(etag: str | None) -> int:
    """The publication id an ETag of ours names (-1 for anything else)."""
    head = (etag or "").strip('"').split("-", 1)[0]
    return int(head) if head.isdigit() else -1


def today_headers(rendered: RenderedToday, now: dt.datetime) -> dict[str, str]:
    max_age = int(rendered.fresh_until - now.timestamp())
    cache_control = f"public, max-age={max_age}" if max_age > 0 else "no-cache"
    return {"ETag": rendered.etag, "Cache-Control": cache_control}


async def today_clock(app: FastAPI) -> Clock:
    """What ``ClockDep`` would give, without FastAPI's dependency resolution."""
    provider = app.dependency_overrides.get(get_clock, get_clock)
    clock = provider()
    return await clock if inspect.isawaitable(clock) else clock


def market_policies(connection: Connection, market: Market) -> list[str]:
    """Every ledger policy a market's answers are published under."""
    keys = [
        rule_sets.policy_key(item.name)
        for item in rule_sets.published_by_name(connection)
        if item.market == market.id
    ]
    if market.id == current_universe().default:
        keys += list(LEDGER_POLICIES)
    return keys


def database_finder(
    connection: Connection,
) -> Callable[[str], rule_sets.RegisteredRuleSet | None]:
    return lambda name: rule_sets.find(connection, name)


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


MARKET_DESCRIPTION = "A market of the universe (GET /markets; default: the universe's default)."
RULE_SET_DESCRIPTION = (
    "A rule set by name, or by the version its answers carry (GET /rule-sets; default: "
    "the market's own)."
)
TODAY_PARAMETERS = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", "enum": [member.value for member in kind]},
    }
    for name, kind, description in (
        ("policy", PolicyName, POLICY_DESCRIPTION),
        ("mapping", ModelMappingName, MAPPING_DESCRIPTION),
    )
] + [
    {
        "name": "market",
        "in": "query",
        "required": False,
        "description": MARKET_DESCRIPTION,
        "schema": {"type": "string", "maxLength": 16},
    },
    {
        "name": "rule_set",
        "in": "query",
        "required": False,
        "description": RULE_SET_DESCRIPTION,
        "schema": {"type": "string", "maxLength": 64},
    },
]
RuleSetQuery = Annotated[str | None, Query(max_length=64, description=RULE_SET_DESCRIPTION)]
MarketQuery = Annotated[str | None, Query(max_length=16, description=MARKET_DESCRIPTION)]


@router.get(
    "/regime/today",
    response_model=RegimeReport,
    responses=ERRORS,
    openapi_extra={"parameters": TODAY_PARAMETERS},
)
async def regime_today(request: Request) -> Response:
    """The latest regime, and whether it is stale against the last NYSE session closed by now.

    The hot path: ``policy`` and ``mapping`` are read from the query by hand, and the
    state and the clock (app.deps.get_clock, overridable as a dependency) straight
    from the app, because each parameter or dependency FastAPI resolves costs tens
    of microseconds a request; the answer comes from the cache.
    """
    state: ServiceState = request.app.state.service
    query = request.query_params
    for name, limit in (("market", 16), ("rule_set", 64)):
        if name in query and not 0 < len(query[name]) <= limit:
            raise RequestValidationError(
                [{"type": "string", "loc": ("query", name), "msg": f"1-{limit} characters"}]
            )
    policy = _enum_query(request, "policy", PolicyName)
    mapping = _enum_query(request, "mapping", ModelMappingName)
    name = query.get("rule_set")
    found = None if name is None else rule_sets.find_built_in(name)
    if name is not None and found is None:
        found = await run_in_threadpool(_find_registered, state, name)
    ask = resolve_ask(
        state.settings,
        market=query.get("market"),
        rule_set=name,
        policy=policy,
        mapping=mapping,
        find=lambda asked: rule_sets.find_built_in(asked) or (found if asked == name else None),
    )
    now = (await today_clock(request.app))()
    expected = state.calendar.expected_last_session(now)
    if state.settings.publication_check_s <= 0:  # no ledger watcher: ask on every request
        state.note_ledger_id(await run_in_threadpool(newest_publication, state))

    def render() -> Awaitable[RenderedToday]:
        return run_in_threadpool(_render_today, state, ask, expected, now)

    key = ask.cache_key(expected)
    rendered = await state.cache.get_or_render(key, render)
    seen = request.headers.get("if-none-match")
    if seen == rendered.etag:
        return Response(status_code=304, headers=today_headers(rendered, now))
    if publication_in(seen) > state.ledger_id:
        # The client was served a newer publication (by another worker or replica) than
        # this process knows of: ask the ledger now rather than answer an older one.
        state.note_ledger_id(await run_in_threadpool(newest_publication, state))
        rendered = await state.cache.get_or_render(key, render)
    headers = today_headers(rendered, now)
    return Response(rendered.body, media_type="application/json", headers=headers)


def _find_registered(state: ServiceState, name: str) -> rule_sets.RegisteredRuleSet | None:
    with state.engine.connect() as connection:
        return rule_sets.find(connection, name)


@router.get("/regime/{day}", response_model=RegimeReport | RuleSetReport, responses=ERRORS)
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
    rule_set: RuleSetQuery = None,
    market: MarketQuery = None,
) -> RegimeReport | RuleSetReport | Response:
    """The regime of one stored trading day (404 when the day is not in the history).

    With ``as_known_at``, the last publication for that day at or before that time,
    exactly as published (404 when nothing had been published for it by then). With
    ``rule_set``, a registered rule set's answer (its definition and fingerprint in it).
    """
    with engine.connect() as connection:  # see app.deps: checked out on this thread
        ask = resolve_ask(
            state.settings,
            market=market,
            rule_set=rule_set,
            policy=policy,
            mapping=mapping,
            find=database_finder(connection),
        )
        if as_known_at is not None:
            return _as_known_at(connection, day, ask.ledger_key, as_known_at, ask.market.id)
        if ask.item is not None:
            return rule_sets.rule_set_report(connection, ask.item, day=day)
        report = answers.regime_report(
            connection,
            day=day,
            policy=ask.policy,
            mapping=ask.mapping,
            rule_set=state.rule_set,
            model=model,
        )
        revised = is_revised(connection, day=day)
        return report.model_copy(update={"revised": revised, "market": ask.market.id})


def _as_known_at(
    connection: Connection, day: dt.date, key: str, known_at: dt.datetime, market: str
) -> Response:
    moment = known_at if known_at.tzinfo is not None else known_at.replace(tzinfo=dt.UTC)
    publication = publication_as_known_at(connection, day=day, policy=key, known_at=moment)
    if publication is None:
        raise NotFoundError(
            f"nothing had been published for {day} under policy {key!r} by {moment.isoformat()}"
        )
    document = publication.document()
    document.update(
        market=market,
        publication_id=publication.id,
        published_at=publication.published_at.isoformat(),
    )
    return Response(json.dumps(document, separators=(",", ":")), media_type="application/json")


class HistoryOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


@router.get(
    "/regimes/stats",
    responses=ERRORS,
)
def regimes_stats(
    engine: EngineDep,
    state: StateDep,
    model: PredictorDep,
    market: MarketQuery = None,
    rule_set: RuleSetQuery = None,
    policy: PolicyQuery = None,
    mapping: MappingQuery = None,
    start: Annotated[dt.date | None, Query(description="First day (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(description="Last day (inclusive).")] = None,
) -> dict:
    """What the regimes of a market mean over [start, end]: the day-to-day transition
    matrix, each regime's spells (count, mean, median and longest in trading days),
    the current spell's age, and the market's annualised return, volatility and max
    drawdown while each regime was held (at the next close, as a backtest with lag 1
    holds it). A continuous-score rule set adds its latest score and percentile."""
    ask = resolve_with_database(state, market, rule_set, policy, mapping)
    with engine.connect() as connection:
        return regime_stats(
            connection,
            market=ask.market,
            item=ask.item,
            policy=ask.policy,
            mapping=ask.mapping,
            rule_set=state.rule_set,
            model=model,
            start=start,
            end=end,
        )


@router.get(
    "/regimes",
    response_model=RegimePage,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}}},
)
async def regimes(
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
    order: Annotated[
        HistoryOrder,
        Query(description="asc: oldest first (default); desc: newest first, pages going back."),
    ] = HistoryOrder.ASC,
    latest: Annotated[
        int | None,
        Query(ge=1, description="Only the N most recent days (within start..end), one page."),
    ] = None,
    policy: PolicyQuery = None,
    mapping: MappingQuery = None,
    model_history: Annotated[
        ModelHistory,
        Query(
            description="out_of_sample (default): model outputs from walk-forward refits "
            "trained before each day up to the version's in-sample cut-off, its own after "
            "it; in_sample: the version's own outputs on every day (fitted on most of them)."
        ),
    ] = ModelHistory.OUT_OF_SAMPLE,
    format: Annotated[
        Format | None, Query(description="json or csv (default: from the Accept header).")
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    rule_set: RuleSetQuery = None,
    market: MarketQuery = None,
) -> Response:
    """History in pages, oldest first or (``order=desc``) newest first; ``latest=N`` for
    the N most recent days; CSV with ``?format=csv`` or ``Accept: text/csv``. Pages are
    built in a research process (app.research), off the serving event loop."""
    for name, value in (("limit", limit), ("latest", latest)):
        if value is not None and value > settings.max_page_size:
            raise DataValidationError(
                f"at most {settings.max_page_size} days per page, got {value}",
                field=f"query.{name}",
            )
    ask = await run_in_threadpool(resolve_with_database, state, market, rule_set, policy, mapping)
    if ask.item is not None:
        if format is Format.CSV:
            raise DataValidationError(
                "a rule set's history is served as JSON only", field="query.format"
            )
        page = await run_in_threadpool(
            _rule_set_page,
            state,
            ask.item,
            start,
            end,
            cursor,
            limit,
            order is HistoryOrder.DESC,
            latest,
        )
        return Response(page.model_dump_json(), media_type="application/json")
    job = HistoryJob(
        database=Database(settings.database_url, settings.db_timeout_s),
        rule_set=settings.rule_set,
        model=ModelFacts.of(model),
        query={
            "start": start,
            "end": end,
            "cursor": cursor,
            "limit": limit,
            "policy": ask.policy,
            "mapping": ask.mapping,
            "descending": order is HistoryOrder.DESC,
            "latest": latest,
            "model_history": model_history,
        },
        csv=format is Format.CSV or (format is None and "text/csv" in (accept or "")),
    )
    try:
        outcome = await state.research.run(job)
    except ResearchBusy as busy:
        return problem(503, str(busy), headers={"Retry-After": str(busy.retry_after_s)})
    return outcome.response()


def resolve_with_database(
    state: ServiceState,
    market: str | None,
    rule_set: str | None,
    policy: str | None,
    mapping: str | None,
) -> Ask:
    with state.engine.connect() as connection:
        return resolve_ask(
            state.settings,
            market=market,
            rule_set=rule_set,
            policy=policy,
            mapping=mapping,
            find=database_finder(connection),
        )


def _rule_set_page(
    state: ServiceState,
    item: rule_sets.RegisteredRuleSet,
    start: dt.date | None,
    end: dt.date | None,
    cursor: dt.date | None,
    limit: int,
    descending: bool,
    latest: int | None,
) -> RuleSetPage:
    with state.engine.connect() as connection:
        return rule_sets.rule_set_history(
            connection,
            item,
            start=start,
            end=end,
            cursor=cursor,
            limit=limit,
            descending=descending,
            latest=latest,
        )
