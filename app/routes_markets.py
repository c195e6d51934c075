"""``GET /markets``: the universe the service answers for, each market with its rule
sets (operations.markets; the shipped universe or DEEPREGIME_UNIVERSE_FILE)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.deps import EngineDep
from operations import rule_sets
from operations.markets import current_universe

router = APIRouter(tags=["markets"])


class MarketRuleSet(BaseModel):
    name: str
    version: str = Field(description="The name its answers carry (?rule_set= takes either).")
    origin: str = Field(description="preset | universe | registered")


class MarketInfo(BaseModel):
    id: str = Field(description="Pass as ?market= on the regime routes.")
    symbol: str = Field(description="The symbol traded: what an exposure is an exposure to.")
    name: str
    calendar: str = Field(description="The exchange calendar its days follow.")
    default: bool = Field(description="The market answered when none is named.")
    rule_set: str = Field(description="Its default rule set.")
    reason: str = Field(description="Why its default rule set reads what it reads.")
    rule_sets: list[MarketRuleSet] = Field(description="Every rule set for this market.")


@router.get("/markets", response_model=list[MarketInfo])
def list_markets(engine: EngineDep) -> list[MarketInfo]:
    """The markets of the universe, the default first as listed, with their rule sets."""
    universe = current_universe()
    with engine.connect() as connection:
        items = rule_sets.list_rule_sets(connection)
    return [
        MarketInfo(
            **market.to_dict(),
            default=market.id == universe.default,
            rule_sets=[
                MarketRuleSet(name=item.name, version=item.version, origin=item.origin)
                for item in items
                if item.market == market.id
            ],
        )
        for market in universe.markets
    ]
