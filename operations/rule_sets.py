"""Rule sets by name: built-in and registered ones, published daily, served and
backtested by the same code.

Built-in rule sets are the presets (``published``, ``platform``) and the rule sets of
the universe (operations.markets: each market's default); registered ones are stored
in the database. Both are found, listed, refreshed, published, served and backtested
by the functions here; only the service's own preset (DEEPREGIME_RULE_SET, the
default market's) is answered by operations.answers, with the model's policies.

A rule set (core.rulesets.RuleSetDefinition) is registered once under its name
with the sha256 of its canonical JSON; the row is immutable (database triggers),
so a changed definition is registered under a new name (e.g. ``trend-ema-v2``).
Registering the same definition again is a no-op.

- The update cycle recomputes every registered rule set's regimes from the stored
  features and closes (store.pipeline.refresh_regimes, whole history: windows of
  any length stay exact) and publishes its latest answer under the ledger policy
  ``rule_set:NAME`` when it changed.
- ``GET /regime/today?rule_set=NAME`` serves that publication; ``/regime/{day}`` and
  ``/regimes`` read the stored rows; every answer carries the definition and its
  fingerprint.
- A backtest strategy ``{"kind": "rule_set", "rule_set": NAME}`` is resolved here
  into the stored definition and evaluated by backtest.signals.rule_set_signal,
  which calls the same core.rulesets.evaluate.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field
from sqlalchemy import Connection, func, select

from app.settings import get_settings
from backtest.schemas import BacktestRequest
from backtest.strategies import AllocationConfig, RuleSetConfig, StrategyConfig, VolTargetConfig
from core.errors import (
    ConfigError,
    ConflictError,
    DataValidationError,
    NoDataError,
    NotFoundError,
)
from core.rules import RULE_SET_PRESETS
from core.rulesets import REGISTERED_NAME, RuleSetDefinition, canonical_json
from operations.answers import history_rows
from operations.answers import json_number as _number
from operations.answers import json_text as _text
from operations.markets import current_universe, load_universe
from operations.notifications import ledger_policy
from operations.publish import publish_if_changed
from store.ledger import Publication, as_utc, latest_publication
from store.pipeline import RefreshResult, refresh_regimes
from store.repository import load_regimes, utcnow
from store.tables import regimes, rule_sets

POLICY_PREFIX = "rule_set:"


def policy_key(name: str) -> str:
    """The ledger's policy for a registered rule set's publications."""
    return f"{POLICY_PREFIX}{name}"


@dataclass(frozen=True)
class RegisteredRuleSet:
    name: str
    fingerprint: str
    definition: RuleSetDefinition
    registered_at: dt.datetime | None  # None: built in
    origin: str = "registered"  # preset | universe | registered
    stored_as: str | None = None  # key of its stored regimes when not definition.version

    @cached_property
    def version(self) -> str:
        """The key its regimes are stored under, and the name its answers carry."""
        return self.stored_as or self.definition.version

    @cached_property  # the universe does not change while the process runs
    def market(self) -> str:
        """The market its exposure is for: the market it is the default rule set of,
        else the default market."""
        universe = current_universe()
        found = universe.market_of_rule_set(self.name)
        return universe.default if found is None else found.id


def service_preset() -> str:
    """The preset the default market is answered with (operations.answers)."""
    return get_settings().rule_set


def built_in() -> list[RegisteredRuleSet]:
    """The presets and the universe's rule sets, as rule sets by name."""
    settings = get_settings()
    return list(_built_in(settings.rule_set, settings.universe_file))


@cache  # per process: settings do not change while it runs (keyed cheaply, not by value)
def _built_in(own: str, universe_file: Path | None) -> tuple[RegisteredRuleSet, ...]:
    universe = load_universe(universe_file)
    items = []
    for name, preset in RULE_SET_PRESETS.items():
        definition = preset.definition()
        items.append(
            RegisteredRuleSet(
                name=name,
                fingerprint=definition.fingerprint,
                definition=definition,
                registered_at=None,
                origin="preset",
                # The service's preset is stored under the preset's own version.
                stored_as=preset.version if name == own else None,
            )
        )
    items += [
        RegisteredRuleSet(
            name=definition.name,
            fingerprint=definition.fingerprint,
            definition=definition,
            registered_at=None,
            origin="universe",
        )
        for definition in universe.rule_sets
    ]
    return tuple(items)


def is_service_preset(item: RegisteredRuleSet) -> bool:
    return item.origin == "preset" and item.name == service_preset()


def parse_definition(document: Any) -> RuleSetDefinition:
    """A checked definition from a JSON document (ConfigError naming the field)."""
    definition = RuleSetDefinition.from_dict(document)
    if not REGISTERED_NAME.match(definition.name):
        raise ConfigError(
            f"rule set name {definition.name!r}: use 1-23 lower-case letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    if any(item.name == definition.name for item in built_in()):
        raise ConfigError(
            f"rule set name {definition.name!r} is a built-in rule set's: choose another"
        )
    return definition


def _row(row: Any) -> RegisteredRuleSet:
    registered_at = as_utc(row.registered_at)
    return RegisteredRuleSet(
        name=row.name,
        fingerprint=row.fingerprint,
        definition=RuleSetDefinition.from_dict(json.loads(row.definition)),
        registered_at=registered_at,
    )


def register(
    connection: Connection, definition: RuleSetDefinition
) -> tuple[RegisteredRuleSet, bool]:
    """Store ``definition`` under its name; returns it and whether it is new. The same
    definition again is the stored one; another under a taken name is refused."""
    definition = parse_definition(definition.to_dict())
    existing = find(connection, definition.name)
    if existing is not None:
        if existing.fingerprint == definition.fingerprint:
            return existing, False
        raise ConflictError(
            f"rule set {definition.name!r} is registered with another definition "
            f"(fingerprint {existing.fingerprint[:12]}): registered rule sets are immutable, "
            "register the change under a new name (e.g. with a version suffix)"
        )
    registered = RegisteredRuleSet(
        name=definition.name,
        fingerprint=definition.fingerprint,
        definition=definition,
        registered_at=utcnow(),
    )
    connection.execute(
        rule_sets.insert().values(
            name=registered.name,
            fingerprint=registered.fingerprint,
            definition=canonical_json(definition.to_dict()),
            registered_at=registered.registered_at,
        )
    )
    return registered, True


def find_built_in(name: str) -> RegisteredRuleSet | None:
    """A built-in rule set by name or version (no database needed: the hot path's)."""
    return next((item for item in built_in() if name in (item.name, item.version)), None)


def find(connection: Connection, name: str) -> RegisteredRuleSet | None:
    """A built-in or registered rule set by its name, or by the version its answers
    carry (``published-0c1efb7f``)."""
    found = find_built_in(name)
    if found is not None:
        return found
    row = connection.execute(select(rule_sets).where(rule_sets.c.name == name)).first()
    if row is None and "-" in name:
        stem, _, prefix = name.rpartition("-")
        row = connection.execute(
            select(rule_sets).where(
                rule_sets.c.name == stem, rule_sets.c.fingerprint.startswith(prefix)
            )
        ).first()
    return None if row is None else _row(row)


def get(connection: Connection, name: str) -> RegisteredRuleSet:
    found = find(connection, name)
    if found is None:
        raise NotFoundError(
            f"no rule set named {name!r} (GET /rule-sets lists them; "
            "`deepregime rule-sets register FILE` adds one)"
        )
    return found


def list_registered(connection: Connection) -> list[RegisteredRuleSet]:
    """The rule sets registered in the database (not the built-in ones)."""
    return [_row(row) for row in connection.execute(select(rule_sets).order_by(rule_sets.c.name))]


def list_rule_sets(connection: Connection) -> list[RegisteredRuleSet]:
    """Every rule set by name: built-in first, then registered."""
    return built_in() + list_registered(connection)


def published_by_name(connection: Connection) -> list[RegisteredRuleSet]:
    """The rule sets the daily cycle computes and publishes here: all but the service's
    preset (operations.update computes and publishes that one with the model)."""
    return [item for item in list_rule_sets(connection) if not is_service_preset(item)]


# --- the daily cycle ------------------------------------------------------------------


# Rows of look-back that store.pipeline.WARM_UP (4 calendar years) always holds.
WARM_UP_ROWS = 900


def refresh_registered(
    connection: Connection, *, since: pd.Timestamp | None = None
) -> list[RefreshResult]:
    """Recompute the regimes of every rule set published by name (changed days only):
    from ``since`` on when its look-back fits the warm-up and it has stored regimes,
    else the whole history (a new rule set, or one reading an unbounded past: an EMA,
    hysteresis)."""
    results = []
    for item in published_by_name(connection):
        lookback = item.definition.lookback_rows()
        exact = lookback is not None and lookback <= WARM_UP_ROWS
        stored = stored_span(connection, item.definition) is not None
        start = since if exact and stored else None
        results.append(refresh_regimes(connection, item.definition, since=start))
    return results


def publish_registered(
    connection: Connection,
    *,
    fingerprint: str,
    run_id: int | None,
    published_at: dt.datetime | None = None,
    default_policy: str = "rules",
    model_mapping: str = "filter",
) -> tuple[list[Publication], int]:
    """Append the latest answer of each rule set published by name whose answer changed,
    and queue its regime-change event for the subscriptions to it (in the same
    transaction, as operations.publish does). Returns the publications and the events
    queued."""
    appended, queued = [], 0
    for item in published_by_name(connection):
        if stored_span(connection, item.definition) is None:
            continue
        report = rule_set_report(connection, item, day=None)
        publication, events = publish_if_changed(
            connection,
            policy=policy_key(item.name),
            day=report.as_of,
            body=report.model_dump(mode="json", exclude=set(READ_TIME_FIELDS)),
            rule_set_version=item.definition.version,
            model_version=None,
            fingerprint=fingerprint,
            run_id=run_id,
            published_at=published_at,
            default_policy=ledger_policy(default_policy, model_mapping),
        )
        if publication is not None:
            appended.append(publication)
            queued += events
    return appended, queued


# --- answers --------------------------------------------------------------------------

# ``market`` is stated by the rule set's name (policy_key), so it is added when read.
READ_TIME_FIELDS = frozenset(
    {"stale", "expected_as_of", "publication_id", "published_at", "market"}
)


class RuleSetInfo(BaseModel):
    name: str
    fingerprint: str = Field(description="sha256 of the definition's canonical JSON.")
    version: str = Field(description="Key of its stored regimes: name and fingerprint prefix.")
    definition: dict[str, Any]

    @classmethod
    def of(cls, definition: RuleSetDefinition) -> RuleSetInfo:
        return cls(
            name=definition.name,
            fingerprint=definition.fingerprint,
            version=definition.version,
            definition=definition.to_dict(),
        )


class RegisteredInfo(RuleSetInfo):
    registered_at: dt.datetime | None = Field(description="Null for a built-in rule set.")
    origin: str = Field(
        description="preset | universe (a market's default) | registered (POST /rule-sets)"
    )
    market: str = Field(description="The market its exposure is for (GET /markets).")

    @classmethod
    def of_item(cls, item: RegisteredRuleSet) -> RegisteredInfo:
        return cls(
            name=item.name,
            fingerprint=item.fingerprint,
            version=item.version,
            definition=item.definition.to_dict(),
            registered_at=item.registered_at,
            origin=item.origin,
            market=item.market,
        )


class RuleSetReading(BaseModel):
    state: str = Field(description="clear | firing | unavailable")
    value: float | None
    kind: str
    inputs: list[str]
    threshold: float
    fires: str = Field(description="below | above: the side of the threshold that fires")
    weight: float
    detail: str


class RuleSetReport(BaseModel):
    """A rule set's answer for one day."""

    market: str | None = Field(default=None, description="The market the exposure is for.")
    as_of: dt.date
    stale: bool | None = None
    expected_as_of: dt.date | None = None
    regime: str | None
    exposure: float | None = Field(description="After hysteresis and the vol-target overlay.")
    votes: float | None = Field(description="Weighted votes, or the continuous score.")
    available: int
    enabled: int
    filters: dict[str, RuleSetReading]
    rule_set: RuleSetInfo
    publication_id: int | None = None
    published_at: dt.datetime | None = None


class RuleSetRow(BaseModel):
    date: dt.date
    regime: str | None
    exposure: float | None
    votes: float | None
    available: int
    filters: dict[str, list[Any]] = Field(description="{filter: [value, state]}")


class RuleSetPage(BaseModel):
    market: str | None = None
    rule_set: RuleSetInfo
    count: int
    next_cursor: dt.date | None
    items: list[RuleSetRow]


def stored_span(
    connection: Connection, definition: RuleSetDefinition
) -> tuple[dt.date, dt.date] | None:
    first, last = connection.execute(
        select(func.min(regimes.c.date), func.max(regimes.c.date)).where(
            regimes.c.rule_set_version == definition.version
        )
    ).one()
    return None if first is None else (first, last)


def _no_regimes(item: RegisteredRuleSet) -> NoDataError:
    return NoDataError(
        f"no regimes computed yet for rule set {item.name!r}: run `deepregime update` "
        "(or POST /admin/refresh)"
    )


def _report(row: pd.Series, day: pd.Timestamp, definition: RuleSetDefinition) -> RuleSetReport:
    filters = {
        spec.name: RuleSetReading(
            state=row[f"{spec.name}_state"],
            value=_number(row[f"{spec.name}_value"]),
            kind=spec.kind,
            inputs=list(spec.inputs),
            threshold=spec.threshold,
            fires=spec.fires,
            weight=spec.weight,
            detail=spec.detail(),
        )
        for spec in definition.filters
    }
    return RuleSetReport(
        as_of=day.date(),
        regime=_text(row["regime"]),
        exposure=_number(row["exposure"]),
        votes=_number(row["votes"]),
        available=int(row["available"]),
        enabled=len(filters),
        filters=filters,
        rule_set=RuleSetInfo.of(definition),
    )


def rule_set_report(
    connection: Connection, item: RegisteredRuleSet, *, day: dt.date | None
) -> RuleSetReport:
    """The stored answer of ``item`` for ``day`` (None: the latest stored day)."""
    rows = load_regimes(
        connection,
        rule_set_version=item.definition.version,
        start=day,
        end=day,
        limit=1,
        latest_first=True,
    )
    if rows.empty:
        span = stored_span(connection, item.definition)
        if span is None:
            raise _no_regimes(item)
        raise NotFoundError(
            f"no regime for {day}: not a trading day of the stored history ({span[0]} .. {span[1]})"
        )
    report = _report(rows.iloc[0], rows.index[0], item.definition)
    return report.model_copy(update={"market": item.market})


def rule_set_history(
    connection: Connection,
    item: RegisteredRuleSet,
    *,
    start: dt.date | None,
    end: dt.date | None,
    cursor: dt.date | None,
    limit: int,
    descending: bool = False,
    latest: int | None = None,
) -> RuleSetPage:
    """Days in [max(start, cursor), end], oldest first, at most ``limit``; ``descending``
    and ``latest`` as for the default market's history (operations.answers)."""
    rows, next_cursor = history_rows(
        connection,
        version=item.version,
        start=start,
        end=end,
        cursor=cursor,
        limit=limit,
        descending=descending,
        latest=latest,
    )
    if rows.empty and stored_span(connection, item.definition) is None:
        raise _no_regimes(item)
    names = [spec.name for spec in item.definition.filters]
    values = {name: rows[f"{name}_value"].tolist() for name in names}
    states = {name: rows[f"{name}_state"].tolist() for name in names}
    items = [
        RuleSetRow(
            date=day,
            regime=_text(regime),
            exposure=_number(exposure),
            votes=_number(votes),
            available=int(available),
            filters={name: [_number(values[name][i]), states[name][i]] for name in names},
        )
        for i, (day, regime, exposure, votes, available) in enumerate(
            zip(
                rows.index.date,
                rows["regime"].tolist(),
                rows["exposure"].tolist(),
                rows["votes"].tolist(),
                rows["available"].tolist(),
                strict=True,
            )
        )
    ]
    if descending:
        items.reverse()
    return RuleSetPage(
        market=item.market,
        rule_set=RuleSetInfo.of(item.definition),
        count=len(items),
        next_cursor=next_cursor,
        items=items,
    )


def published_today(connection: Connection, item: RegisteredRuleSet) -> Publication:
    """The latest publication of ``item`` (NoDataError before the first one)."""
    publication = latest_publication(connection, policy=policy_key(item.name))
    if publication is None:
        if stored_span(connection, item.definition) is None:
            raise _no_regimes(item)
        raise NoDataError(
            f"nothing published yet for rule set {item.name!r}: run `deepregime update` "
            "(or POST /admin/refresh)"
        )
    return publication


# --- backtests ------------------------------------------------------------------------


def resolve_request(connection: Connection, request: BacktestRequest) -> BacktestRequest:
    """``request`` with registered rule sets resolved (unchanged when it names none)."""
    strategies = resolve_strategies(connection, list(request.strategies))
    if strategies == list(request.strategies):
        return request
    return request.model_copy(update={"strategies": strategies})


def resolve_strategies(
    connection: Connection, strategies: list[StrategyConfig]
) -> list[StrategyConfig]:
    """Strategies with each registered rule set's name replaced by its stored
    definition (so the backtest evaluates exactly what is served). An unknown name is
    a bad field of the request (DataValidationError naming it), not a missing route."""
    return [
        _resolve(connection, config, f"body.strategies[{i}]") for i, config in enumerate(strategies)
    ]


def _resolve(connection: Connection, config: StrategyConfig, where: str) -> StrategyConfig:
    if isinstance(config, RuleSetConfig) and config.definition is None:
        try:
            item = get(connection, config.rule_set or "")
        except NotFoundError as error:
            raise DataValidationError(str(error), field=f"{where}.rule_set") from None
        return RuleSetConfig(
            name=config.name, rule_set=item.name, definition=item.definition.to_dict()
        )
    if isinstance(config, VolTargetConfig | AllocationConfig):
        document = config.model_dump(exclude={"base"}, exclude_none=True)
        return type(config)(**document, base=_resolve(connection, config.base, f"{where}.base"))
    return config
