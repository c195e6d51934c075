"""Markets as data: the universe the service answers for.

A universe (operations/universe.yaml, or the file DEEPREGIME_UNIVERSE_FILE names)
lists each market: its id, the symbol traded, its calendar and its default rule set,
plus the rule sets of the universe as core.rulesets definitions. The default
market's default rule set is the service's preset (``published``); every other
market's is a built-in definition served, published, revised and backtested through
the rule-set path (operations.rule_sets), like a registered one. Adding a market is a
change of the file only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError, DataValidationError
from core.rules import RULE_SET_PRESETS
from core.rulesets import REGISTERED_NAME, RuleSetDefinition

SHIPPED_UNIVERSE = Path(__file__).with_name("universe.yaml")
CALENDARS = frozenset({"XNYS"})


@dataclass(frozen=True)
class Market:
    id: str
    symbol: str  # the traded symbol: what an exposure is an exposure to
    name: str
    calendar: str  # exchange_calendars name of the days it trades
    rule_set: str  # its default rule set: a preset or one of the universe's
    reason: str  # why its rule set reads what it reads

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "symbol": self.symbol,
            "name": self.name,
            "calendar": self.calendar,
            "rule_set": self.rule_set,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Universe:
    default: str
    markets: tuple[Market, ...]
    rule_sets: tuple[RuleSetDefinition, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(market.id for market in self.markets)

    def market(self, market_id: str | None, *, field: str = "query.market") -> Market:
        """The market named (None: the default); a 422 naming ``field`` else."""
        wanted = self.default if market_id is None else market_id
        for market in self.markets:
            if market.id == wanted:
                return market
        raise DataValidationError(
            f"unknown market {market_id!r}: one of {', '.join(self.ids)} (GET /markets)",
            field=field,
        )

    def definition(self, name: str) -> RuleSetDefinition | None:
        return next((d for d in self.rule_sets if d.name == name), None)

    def market_of_rule_set(self, name: str) -> Market | None:
        """The market whose default rule set is ``name`` (None: no market's)."""
        return next((m for m in self.markets if m.rule_set == name), None)

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol the universe trades or reads."""
        found = {market.symbol for market in self.markets}
        for definition in self.rule_sets:
            found |= set(definition.symbols)
        return tuple(sorted(found))


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: field {key!r} must be a non-empty string")
    return value.strip()


def parse_universe(document: Any, *, source: str = "universe") -> Universe:
    """A checked universe from its YAML document; ConfigError names file and field."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the universe must be a mapping")
    definitions = []
    for i, entry in enumerate(document.get("rule_sets") or []):
        try:
            definition = RuleSetDefinition.from_dict(entry)
        except ConfigError as error:
            raise ConfigError(f"{source}: rule_sets[{i}]: {error}") from None
        if not REGISTERED_NAME.match(definition.name) or definition.name in RULE_SET_PRESETS:
            raise ConfigError(
                f"{source}: rule_sets[{i}]: name {definition.name!r} must be 1-23 lower-case "
                "letters, digits, '.', '_' or '-', and not a preset's"
            )
        definitions.append(definition)
    known = set(RULE_SET_PRESETS) | {d.name for d in definitions}
    markets = []
    entries = document.get("markets")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: 'markets' must be a non-empty list")
    for i, entry in enumerate(entries):
        where = f"{source}: markets[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a mapping")
        market = Market(
            id=_text(entry, "id", where),
            symbol=_text(entry, "symbol", where),
            name=_text(entry, "name", where),
            calendar=_text(entry, "calendar", where),
            rule_set=_text(entry, "rule_set", where),
            reason=_text(entry, "reason", where),
        )
        if market.calendar not in CALENDARS:
            raise ConfigError(f"{where}: calendar {market.calendar!r}: one of {sorted(CALENDARS)}")
        if market.rule_set not in known:
            raise ConfigError(
                f"{where}: rule_set {market.rule_set!r} is neither a preset nor "
                "one of the universe's rule_sets"
            )
        if any(m.id == market.id for m in markets):
            raise ConfigError(f"{where}: market {market.id!r} is listed twice")
        markets.append(market)
    default = document.get("default", markets[0].id)
    universe = Universe(default=default, markets=tuple(markets), rule_sets=tuple(definitions))
    if default not in universe.ids:
        raise ConfigError(f"{source}: default market {default!r} is not listed")
    if universe.market(default).rule_set not in RULE_SET_PRESETS:
        raise ConfigError(f"{source}: the default market's rule set must be a preset")
    return universe


@cache
def load_universe(path: Path | None = None) -> Universe:
    """The universe in ``path`` (None: the shipped one), read once per process."""
    path = path or SHIPPED_UNIVERSE
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"universe file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"universe file {path}: not YAML ({error})") from None
    return parse_universe(document, source=str(path))


def current_universe() -> Universe:
    """The universe of this process's settings (DEEPREGIME_UNIVERSE_FILE, else shipped)."""
    from app.settings import get_settings

    return load_universe(get_settings().universe_file)
