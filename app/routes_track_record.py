"""``GET /track-record``: what the service published, scored against what then happened
(operations.track_record; recomputable from GET /publications and the stored prices)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from app.deps import EngineDep, SettingsDep
from app.schemas import Problem
from operations.track_record import ROLLING_DAYS, resolve_stream, track_record

router = APIRouter(tags=["ledger"])


class ReliabilityBin(BaseModel):
    lower: float
    upper: float
    mean_p: float = Field(description="Mean published probability in the bin.")
    observed: float = Field(description="Share of those days whose outcome was distressed.")
    days: int


class DatedBrier(BaseModel):
    day: str
    brier: float


class ScoredDay(BaseModel):
    day: str
    p_distressed: float
    outcome: int = Field(description="1 when the target the card names happened, else 0.")


class ModelRecord(BaseModel):
    model_version: str
    target: str | None
    horizon: int | None
    published: int = Field(description="Days whose first publication carried a probability.")
    resolved: int = Field(description="Of those, days whose horizon has passed.")
    pending: int
    reason: str | None = Field(default=None, description="Why outcomes are unknown, if so.")
    brier: float | None = None
    ece: float | None = None
    roc_auc: float | None = Field(default=None, description="Null without both outcomes.")
    reliability: list[ReliabilityBin] = []
    rolling_brier: list[DatedBrier] = Field(
        default=[], description=f"Brier score over the last {ROLLING_DAYS} resolved days."
    )
    days: list[ScoredDay] = []


class YearRecord(BaseModel):
    year: int
    return_: float = Field(alias="return")
    buy_and_hold: float


class HeldDay(BaseModel):
    day: str = Field(description="The published day.")
    exposure: float
    session: str = Field(description="The next session, over which the exposure was held.")
    asset_return: float
    return_: float = Field(alias="return")


class ExposureRecord(BaseModel):
    sessions: int
    pending: int = Field(description="Published days whose next session has not closed.")
    cumulative_return: float
    buy_and_hold_cumulative_return: float
    years: list[YearRecord]
    days: list[HeldDay]


class Correction(BaseModel):
    day: str
    publication_id: int
    published_at: str
    exposure: float | None
    model_version: str | None
    p_distressed: float | None
    target: str | None
    horizon: int | None
    corrects: int = Field(description="The day's first publication, the one scored.")


class TrackRecord(BaseModel):
    market: str
    symbol: str = Field(description="The traded symbol the exposures are held in.")
    ledger_policy: str = Field(description="GET /publications?policy= gives the rows scored.")
    published_days: int
    prices_until: str | None
    probabilities: list[ModelRecord]
    exposures: ExposureRecord
    corrections: list[Correction]


@router.get(
    "/track-record",
    response_model=TrackRecord,
    response_model_by_alias=True,
    responses={422: {"model": Problem, "description": "A bad parameter, named."}},
)
async def get_track_record(
    engine: EngineDep,
    settings: SettingsDep,
    market: Annotated[str | None, Query(max_length=32, description="GET /markets.")] = None,
    policy: Annotated[
        str | None, Query(max_length=32, description="rules | ensemble | model:filter | ...")
    ] = None,
    rule_set: Annotated[str | None, Query(max_length=64, description="A rule set by name.")] = None,
) -> TrackRecord:
    """Every published probability scored once its horizon passed, per model version, and
    every published exposure held over the next session against buy & hold; only each
    day's first publication counts (later ones are listed as corrections)."""

    def compute() -> TrackRecord:
        with engine.connect() as connection:
            stream = resolve_stream(
                connection, settings, market=market, policy=policy, rule_set=rule_set
            )
            record = track_record(connection, stream, models_dir=settings.model_dir)
        return TrackRecord.model_validate(record)

    return await run_in_threadpool(compute)
