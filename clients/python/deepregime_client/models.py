"""The service's answers as typed models.

Each model mirrors a schema of the service's OpenAPI document (named in its
docstring); tests/client/test_models_match_openapi.py checks every field
against the service's own document, so a change of the service shows there
first. Fields the service adds later are kept (``extra="allow"``), never
refused, so a newer service does not break an older client.

Closed vocabularies (regimes, filter states, policies) are plain strings here:
a value the service adds later must not make an answer unreadable.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr


class Answer(BaseModel):
    """Base of every model: read-only, and tolerant of fields it does not know."""

    model_config = ConfigDict(extra="allow", frozen=True)


# --- one day's answer (GET /regime/today, /regime/{day}, /regime/stream) -----------------


class FilterReading(Answer):
    """OpenAPI ``FilterReading``: one stress filter on one day."""

    state: str  # clear | firing | unavailable
    value: float | None
    threshold: float
    detail: str


class RulesPart(Answer):
    """OpenAPI ``RulesPart``: the rule engine's vote."""

    rule_set: str
    votes: int
    available: int
    enabled: int
    regime: str | None
    exposure: float | None
    filters: dict[str, FilterReading]


class ModelPart(Answer):
    """OpenAPI ``ModelPart``: the classifier's output, when a model serves."""

    available: bool
    version: str | None = None
    regime: int | None = None  # 0 calm, 1 distressed
    p_distressed: float | None = None
    target: str | None = None
    horizon: int | None = None
    in_sample: bool | None = None
    out_of_sample: dict[str, Any] | None = None
    reason: str | None = None


class RegimeReport(Answer):
    """OpenAPI ``RegimeReport``: the answer a trading system sizes its book by."""

    as_of: dt.date
    regime: str | None  # risk-on | caution | risk-off, or calm | distressed (model)
    exposure: float | None  # share of the equity book to hold
    policy: str
    mapping: str | None = None
    rules: RulesPart
    model: ModelPart
    stale: bool | None = None  # only on /regime/today
    expected_as_of: dt.date | None = None  # only on /regime/today
    publication_id: int | None = None
    published_at: dt.datetime | None = None
    revised: bool | None = None


class RuleSetInfo(Answer):
    """Service model ``operations.rule_sets.RuleSetInfo``: a registered rule set."""

    name: str
    fingerprint: str
    version: str
    definition: dict[str, Any]


class RuleSetReading(Answer):
    """Service model ``operations.rule_sets.RuleSetReading``: one filter of a rule set."""

    state: str
    value: float | None
    kind: str
    inputs: list[str]
    threshold: float
    fires: str
    weight: float
    detail: str


class RuleSetReport(Answer):
    """Service model ``operations.rule_sets.RuleSetReport``: a registered rule set's
    answer (``?rule_set=NAME``), with its definition and fingerprint."""

    as_of: dt.date
    regime: str | None
    exposure: float | None
    votes: float | None
    available: int
    enabled: int
    filters: dict[str, RuleSetReading]
    rule_set: RuleSetInfo
    stale: bool | None = None
    expected_as_of: dt.date | None = None
    publication_id: int | None = None
    published_at: dt.datetime | None = None


# --- history (GET /regimes) --------------------------------------------------------------


class RegimeRow(Answer):
    """OpenAPI ``RegimeRow``: one day of history, flat."""

    date: dt.date
    regime: str | None
    exposure: float | None
    votes: int
    available: int
    trend_state: str | None = None
    trend_value: float | None = None
    volatility_state: str | None = None
    volatility_value: float | None = None
    credit_state: str | None = None
    credit_value: float | None = None
    model_regime: int | None = None
    p_distressed: float | None = None


class RegimePage(Answer):
    """OpenAPI ``RegimePage``: one page of history."""

    policy: str
    mapping: str | None = None
    rule_set: str
    model_version: str | None
    count: int
    next_cursor: dt.date | None
    items: list[RegimeRow]


class RuleSetRow(Answer):
    """Service model ``operations.rule_sets.RuleSetRow``: one day of a rule set's history."""

    date: dt.date
    regime: str | None
    exposure: float | None
    votes: float | None
    available: int
    filters: dict[str, list[Any]]  # {filter: [value, state]}


class RuleSetPage(Answer):
    """Service model ``operations.rule_sets.RuleSetPage``: one page of a rule set's history."""

    rule_set: RuleSetInfo
    count: int
    next_cursor: dt.date | None
    items: list[RuleSetRow]


# --- the ledger (GET /publications) ------------------------------------------------------


class Publication(Answer):
    """OpenAPI ``PublicationOut``: one ledger entry, the answer exactly as published."""

    id: int
    day: dt.date
    policy: str
    rule_set_version: str
    model_version: str | None
    data_fingerprint: str
    run_id: int | None
    published_at: dt.datetime
    body_sha256: str
    body: dict[str, Any]


class PublicationPage(Answer):
    """OpenAPI ``PublicationPage``."""

    count: int
    next_after_id: int | None
    items: list[Publication]


# --- backtests (POST /backtest) ----------------------------------------------------------


class Period(Answer):
    """OpenAPI ``Period``."""

    start: dt.date
    end: dt.date
    days: int
    requested_start: dt.date | None
    requested_end: dt.date | None


class TimeInvested(Answer):
    """OpenAPI ``TimeInvested``."""

    full: float | None
    partial: float | None
    none: float | None
    average_exposure: float | None


class StrategyMetrics(Answer):
    """OpenAPI ``StrategyMetrics``."""

    cumulative_return: float | None
    annualised_return: float | None
    annualised_volatility: float | None
    daily_mean: float | None
    daily_std: float | None
    sharpe: float | None
    sharpe_excess: float | None
    sortino: float | None
    max_drawdown: float | None
    max_drawdown_days: int
    longest_drawdown_days: int
    calmar: float | None
    time_invested: TimeInvested
    turnover_per_year: float | None
    trades: int


class StrategyResult(Answer):
    """OpenAPI ``StrategyResult``."""

    name: str
    kind: str
    config: dict[str, Any]
    metrics: StrategyMetrics
    regime_distribution: dict[str, float] | None
    yearly_returns: dict[str, float]
    switches_per_year: dict[str, int] | None
    filters: list[dict[str, Any]] | None
    days_without_input: int
    held_over_days: int


class EquityCurves(Answer):
    """OpenAPI ``EquityCurves``: wealth per strategy, 1.0 at the start."""

    sampling: str
    dates: list[dt.date]
    values: dict[str, list[float]]


class BacktestResult(Answer):
    """OpenAPI ``BacktestResult``. ``run_id`` is the stored run's id (None when the
    request said ``store: false``)."""

    period: Period
    conventions: dict[str, Any]
    strategies: list[StrategyResult]
    equity: EquityCurves | None
    notes: list[str]

    _run_id: str | None = PrivateAttr(default=None)

    @property
    def run_id(self) -> str | None:
        return self._run_id

    def strategy(self, name: str) -> StrategyResult:
        """The result of the strategy called ``name`` (KeyError naming the others)."""
        for result in self.strategies:
            if result.name == name:
                return result
        raise KeyError(f"no strategy {name!r}; have {[s.name for s in self.strategies]}")


# --- sweeps (/sweeps) --------------------------------------------------------------------


class SweepStatus(Answer):
    """OpenAPI ``SweepStatus``."""

    id: str
    name: str | None
    status: str  # queued | running | done | failed | cancelled
    variants: int
    done_variants: int
    progress: float
    attempts: int
    cancel_requested: bool
    message: str | None
    scheduler: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    summary: dict[str, Any] | None
    request: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")


class VariantRow(Answer):
    """OpenAPI ``VariantRow``: one variant of a sweep, ranked."""

    variant: int
    rank: int
    objective: float | None
    parameters: dict[str, Any]
    metrics: dict[str, float | None]


class SweepResultsPage(Answer):
    """OpenAPI ``SweepResultsPage``."""

    id: str
    page: int
    page_size: int
    pages: int
    total: int
    variants: list[VariantRow]


# --- errors and webhooks -----------------------------------------------------------------


class Problem(Answer):
    """OpenAPI ``Problem``: RFC 9457 problem details, every error body."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
    cause: str | None = None  # on a 503 from the database: which fault


class RegimeChange(Answer):
    """The ``data`` of a ``regime.changed`` webhook event (operations.notifications)."""

    publication_id: int
    day: dt.date
    policy: str
    regime: str | None
    exposure: float | None
    previous_publication_id: int | None
    previous_day: dt.date | None
    previous_regime: str | None
    previous_exposure: float | None
    published_at: dt.datetime
    rule_set_version: str
    model_version: str | None


class WebhookEvent(Answer):
    """A verified webhook delivery. ``id`` is the ``webhook-id`` header: the same on every
    retry of one event (delivery is at least once), so receivers deduplicate on it."""

    id: str
    type: str  # regime.changed | webhook.test
    timestamp: dt.datetime
    data: dict[str, Any]

    @property
    def regime_change(self) -> RegimeChange | None:
        """The change this event reports; None for other event types."""
        if self.type != "regime.changed":
            return None
        return RegimeChange.model_validate(self.data)
