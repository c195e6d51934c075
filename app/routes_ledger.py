"""The record of what was published and of revised inputs: ``/publications``, ``/revisions``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.deps import EngineDep
from app.routes_regimes import MarketQuery, market_policies
from app.schemas import Problem
from operations.markets import current_universe
from operations.revisions import list_revisions
from store.ledger import Publication, list_publications

router = APIRouter(tags=["ledger"])
MAX_ITEMS = 1000


class PublicationOut(BaseModel):
    id: int
    day: dt.date
    policy: str
    rule_set_version: str
    model_version: str | None
    data_fingerprint: str = Field(description="sha256 of the input series the answer used.")
    run_id: int | None = Field(description="The update run that published it.")
    published_at: dt.datetime
    body_sha256: str = Field(description="sha256 of `body` serialised as published.")
    body: dict[str, Any] = Field(description="The answer exactly as published.")

    @classmethod
    def of(cls, publication: Publication) -> PublicationOut:
        return cls(
            **{k: v for k, v in publication.__dict__.items() if k != "body"},
            body=json.loads(publication.body),
        )


class PublicationPage(BaseModel):
    count: int
    next_after_id: int | None = Field(description="Pass as ?after_id= for the next page.")
    items: list[PublicationOut]


class RevisionOut(BaseModel):
    id: int
    run_id: int | None
    symbol: str
    first_date: dt.date
    last_date: dt.date
    days: int
    old_adj_close: float | None
    new_adj_close: float | None
    factor: float | None
    max_change: float
    kind: str = Field(description="rescale | correction")
    status: str = Field(description="applied | accepted | held")
    recorded_at: dt.datetime


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


@router.get(
    "/publications",
    response_model=PublicationPage,
    responses={422: {"model": Problem, "description": "A bad parameter, named."}},
)
def publications(
    engine: EngineDep,
    since: Annotated[
        dt.datetime | None, Query(description="Published at or after (ISO 8601; UTC if no zone).")
    ] = None,
    after_id: Annotated[
        int | None, Query(ge=0, le=2**31 - 1, description="Only ids above this.")
    ] = None,
    policy: Annotated[
        str | None, Query(max_length=32, description="rules | ensemble | model:filter | ...")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ITEMS)] = 100,
    market: MarketQuery = None,
) -> PublicationPage:
    """The publication ledger, oldest first: every answer as it was published (with
    ``market``, that market's answers only: its rule sets', and for the default market
    the preset's under every policy)."""
    with engine.connect() as connection:
        policies = None
        if market is not None:
            policies = market_policies(connection, current_universe().market(market))
        items = list_publications(
            connection,
            since=_aware(since),
            after_id=after_id,
            policy=policy,
            limit=limit + 1,
            policies=policies,
        )
    more = len(items) > limit
    items = items[:limit]
    return PublicationPage(
        count=len(items),
        next_after_id=items[-1].id if more else None,
        items=[PublicationOut.of(item) for item in items],
    )


@router.get(
    "/revisions",
    response_model=list[RevisionOut],
    responses={422: {"model": Problem, "description": "A bad parameter, named."}},
)
def revisions(
    engine: EngineDep,
    symbol: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[str | None, Query(pattern="^(applied|accepted|held)$")] = None,
    day: Annotated[dt.date | None, Query(description="Revisions whose span covers it.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ITEMS)] = 100,
) -> list[RevisionOut]:
    """Changes to stored prices of days already stored, newest first, with their fate."""
    with engine.connect() as connection:
        rows = list_revisions(connection, symbol=symbol, status=status, day=day, limit=limit)
    return [RevisionOut(**row) for row in rows]
