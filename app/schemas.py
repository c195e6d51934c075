"""Response and request bodies of the API (pydantic), apart from the database tables.

The backtest request and result models belong to the backtest package and are
used as they are; everything else the API returns is defined here.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from operations.answers import (  # noqa: F401 - the answer schemas, re-exported
    FilterReading,
    ModelMappingName,
    ModelPart,
    RegimePage,
    RegimeReport,
    RegimeRow,
    RulesPart,
)


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


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
    cause: Literal["unreachable", "locked", "disk_full", "read_only", "error"] | None = Field(
        default=None, description="On a 503 from the database: which fault it is."
    )


# The answers of every route behind AdminDep (app.deps) besides its own.
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No X-API-Key header."},
    403: {"model": Problem, "description": "Wrong key, or no key configured."},
}


# --- webhooks (app.routes_webhooks) -------------------------------------------------


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://trading.example.com/hooks/regime",
                    "policy": "rules",
                    "description": "desk A sizing job",
                }
            ]
        },
    )

    url: str = Field(max_length=2000, description="Absolute http:// or https:// URL to POST to.")
    policy: str | None = Field(
        default=None,
        max_length=32,
        description="Events of this policy: rules | ensemble | model | model:filter | "
        "model:leveraged (default: the service's default policy).",
    )
    description: str | None = Field(default=None, max_length=500)
    secret: str | None = Field(
        default=None,
        max_length=128,
        description="Signing secret 'whsec_<base64>' (default: generated, returned once).",
    )


class WebhookSubscription(BaseModel):
    """A subscription as listed: its secret is never shown again after creation."""

    id: str
    url: str
    policy: str | None = Field(description="Null: the service's default policy.")
    description: str | None
    active: bool
    created_at: dt.datetime


class WebhookCreated(WebhookSubscription):
    secret: str = Field(
        description="Standard Webhooks signing secret (whsec_<base64>); shown only in this answer."
    )


class WebhookDelivery(BaseModel):
    """One attempt to deliver one event."""

    id: int
    event_id: str = Field(description="The webhook-id header; the same on every retry.")
    event_type: str
    publication_id: int | None
    attempted_at: dt.datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null when none.")
    error: str | None = Field(description="Why nothing was answered (timeout, refused, ...).")
    duration_ms: float


class WebhookTestResult(BaseModel):
    """Whether the test event was delivered; never what the target answered (the
    delivery log has each attempt)."""

    event_id: str
    delivered: bool
    detail: str
