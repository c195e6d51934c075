"""Response and request bodies of the API (pydantic), apart from the database tables.

The backtest request and result models belong to the backtest package and are
used as they are; everything else the API returns is defined here.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.enums import FilterName, FilterState, Policy, Regime


class ModelMappingName(StrEnum):
    """Exposure mapping of the classifier under policy ``model`` (core.policies presets)."""

    FILTER = "filter"  # calm 100%, distressed 0%
    LEVERAGED = "leveraged"  # calm 150%, distressed 30%


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


class FilterReading(BaseModel):
    state: FilterState
    value: float | None = Field(description="What the filter reads (null when unavailable).")
    threshold: float
    detail: str = Field(description="How the value is computed.")


class RulesPart(BaseModel):
    rule_set: str = Field(description="Rule set version (name and parameter fingerprint).")
    votes: int = Field(
        description="Filters firing (plus unavailable ones if they count as firing)."
    )
    available: int = Field(description="Filters whose input exists on that day.")
    enabled: int = Field(description="Filters in the rule set.")
    regime: Regime | None
    exposure: float | None
    filters: dict[FilterName, FilterReading]


class ModelPart(BaseModel):
    available: bool
    version: str | None = None
    regime: int | None = Field(default=None, description="0 calm, 1 distressed.")
    p_distressed: float | None = None
    reason: str | None = Field(default=None, description="Why the model part is unavailable.")


class RegimeReport(BaseModel):
    """The answer for one day, as a trading system reads it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2024-12-31",
                    "stale": False,
                    "expected_as_of": "2024-12-31",
                    "regime": "caution",
                    "exposure": 0.5,
                    "policy": "rules",
                    "mapping": None,
                    "rules": {
                        "rule_set": "published-0c1efb7f",
                        "votes": 1,
                        "available": 3,
                        "enabled": 3,
                        "regime": "caution",
                        "exposure": 0.5,
                        "filters": {
                            "trend": {
                                "state": "clear",
                                "value": 1.07,
                                "threshold": 1.0,
                                "detail": "close / SMA200",
                            },
                            "volatility": {
                                "state": "firing",
                                "value": 1.04,
                                "threshold": 1.0,
                                "detail": "VIX / VIX3M",
                            },
                            "credit": {
                                "state": "clear",
                                "value": -0.3,
                                "threshold": -1.0,
                                "detail": "HYG/IEF z-score, 252d",
                            },
                        },
                    },
                    "model": {
                        "available": True,
                        "version": "2024-12-31-a1b2c3",
                        "regime": 0,
                        "p_distressed": 0.18,
                        "reason": None,
                    },
                }
            ]
        }
    )

    as_of: dt.date = Field(description="Trading day of the data the answer is computed from.")
    stale: bool | None = Field(
        default=None,
        description="True when as_of is older than the last NYSE session closed by now "
        "(only on /regime/today).",
    )
    expected_as_of: dt.date | None = Field(
        default=None, description="The last NYSE session closed by now (only on /regime/today)."
    )
    regime: str | None = Field(
        description="risk-on | caution | risk-off (rules, ensemble) or calm | distressed "
        "(model); null when the policy has no input on that day."
    )
    exposure: float | None
    policy: Policy
    mapping: ModelMappingName | None = Field(
        default=None, description="Exposure mapping used under policy 'model'."
    )
    rules: RulesPart
    model: ModelPart


class RegimeRow(BaseModel):
    """One day of history, flat (the CSV columns are these fields)."""

    date: dt.date
    regime: str | None = Field(description="Under the requested policy (see RegimeReport).")
    exposure: float | None
    votes: int
    available: int
    trend_state: FilterState | None = None
    trend_value: float | None = None
    volatility_state: FilterState | None = None
    volatility_value: float | None = None
    credit_state: FilterState | None = None
    credit_value: float | None = None
    model_regime: int | None = None
    p_distressed: float | None = None


class RegimePage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "policy": "rules",
                    "rule_set": "published-0c1efb7f",
                    "model_version": None,
                    "count": 1,
                    "next_cursor": "2024-01-03",
                    "items": [
                        {
                            "date": "2024-01-02",
                            "regime": "risk-on",
                            "exposure": 1.0,
                            "votes": 0,
                            "available": 3,
                            "trend_state": "clear",
                            "trend_value": 1.08,
                            "volatility_state": "clear",
                            "volatility_value": 0.87,
                            "credit_state": "clear",
                            "credit_value": 0.4,
                            "model_regime": None,
                            "p_distressed": None,
                        }
                    ],
                }
            ]
        }
    )

    policy: Policy
    mapping: ModelMappingName | None = None
    rule_set: str
    model_version: str | None
    count: int
    next_cursor: dt.date | None = Field(
        description="Pass as ?cursor= to get the next page; null on the last page."
    )
    items: list[RegimeRow]


class CheckResult(BaseModel):
    ok: bool
    required: bool = Field(description="Whether a failure makes the service not ready.")
    detail: str


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "degraded",
                    "checks": {
                        "database": {"ok": True, "required": True, "detail": "reachable"},
                        "migrations": {"ok": True, "required": True, "detail": "at head 0004"},
                        "data": {"ok": True, "required": True, "detail": "as of 2024-12-31"},
                        "model": {
                            "ok": False,
                            "required": False,
                            "detail": "no model version found under models",
                        },
                    },
                }
            ]
        }
    )

    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, CheckResult]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ModelSummary(BaseModel):
    version: str
    active: bool
    loaded: bool = Field(description="Loaded by this process and serving.")
    created_at: dt.datetime | None = None
    training_period: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None


class ModelList(BaseModel):
    active: str | None = Field(description="The version this service serves (or tried to).")
    loaded: bool
    reason: str | None = Field(description="Why no model serves, when none does.")
    models: list[ModelSummary]


class ModelDetail(BaseModel):
    version: str
    active: bool
    loaded: bool
    card: dict[str, Any] = Field(description="The model card (model.json).")


class RefreshReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source": "csv",
                    "ingested": ["SPY read 1, inserted 1, updated 0, quarantined 0"],
                    "rejected": [],
                    "steps": ["features: 8038 days (1993-01-29 .. 2024-12-31), 1 written"],
                    "model": "model_outputs[2024-12-31-a1b2c3]: 1 written",
                    "duration_ms": 812.5,
                }
            ]
        }
    )

    source: str
    ingested: list[str]
    rejected: list[str]
    steps: list[str]
    model: str
    duration_ms: float


class Activation(BaseModel):
    version: str
    active: bool = True
    outputs_written: int = Field(description="Daily model outputs computed on activation.")


class StoredBacktest(BaseModel):
    id: str
    created_at: dt.datetime
    duration_ms: float
    request: dict[str, Any]
    result: dict[str, Any]


class Problem(BaseModel):
    """RFC 9457 problem details: every error body."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
