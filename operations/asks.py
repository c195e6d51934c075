"""What a request asks for: one resolution of ``market``, ``rule_set``, ``policy`` and
``mapping`` for every route, the live stream, the dashboard and the track record.

A market (default: the universe's default) and a rule set (default: the market's
own) name the answer. The default market's preset is answered under a policy (the
classifier's among them); any other rule set by its rules alone. Bad parameters and
bad combinations are DataValidationErrors naming the parameter (422).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from app.settings import Settings
from core.enums import Policy
from core.errors import DataValidationError
from operations import rule_sets
from operations.answers import ModelMappingName
from operations.markets import Market, current_universe
from operations.publish import parse_variant, variant_for


def asked_variant(
    settings: Settings, policy: str | None, mapping: str | None
) -> tuple[Policy, ModelMappingName]:
    """The policy and model mapping a request asks for, the service's defaults filled in."""
    variant = parse_variant(
        policy,
        mapping,
        default_policy=settings.default_policy,
        default_mapping=ModelMappingName(settings.model_mapping),
    )
    return variant.policy, variant.mapping or ModelMappingName(settings.model_mapping)


@dataclass(frozen=True)
class Ask:
    """What a request asks for: a market, and either a rule set answered by name
    (``item``) or the default market's preset under a policy."""

    market: Market
    item: rule_sets.RegisteredRuleSet | None
    policy: Policy
    mapping: ModelMappingName

    def cache_key(self, expected: dt.date) -> tuple:
        name = None if self.item is None else self.item.name
        return ("today", self.market.id, name, self.policy, self.mapping, expected)

    @property
    def ledger_key(self) -> str:
        """The ledger's policy name of the answer asked for."""
        if self.item is not None:
            return rule_sets.policy_key(self.item.name)
        return variant_for(self.policy, self.mapping).key


def resolve_ask(
    settings: Settings,
    *,
    market: str | None,
    rule_set: str | None,
    policy: str | None,
    mapping: str | None,
    find: Callable[[str], rule_sets.RegisteredRuleSet | None],
) -> Ask:
    """One resolution for every route: ``market`` (default: the universe's default)
    and ``rule_set`` (default: the market's own) name the answer; a rule set answered
    by name takes policy ``rules`` only, the classifier's policies being the default
    market's. Bad combinations are 422s naming the parameter."""
    universe = current_universe()
    chosen = universe.market(market)
    name = rule_set
    if name is None and chosen.id != universe.default:
        name = chosen.rule_set
    item = None
    if name is not None:
        item = find(name)
        if item is None:
            raise DataValidationError(
                f"no rule set named {name!r} (GET /rule-sets lists them)", field="query.rule_set"
            )
        if market is not None and item.market != chosen.id:
            raise DataValidationError(
                f"rule set {item.name!r} is for market {item.market}, not {chosen.id}",
                field="query.rule_set",
            )
        chosen = universe.market(item.market)
        if rule_sets.is_service_preset(item):
            item = None
    if item is None:
        asked_policy, asked_mapping = asked_variant(settings, policy, mapping)
        return Ask(chosen, None, asked_policy, asked_mapping)
    if (policy is not None and policy != Policy.RULES.value) or mapping is not None:
        raise DataValidationError(
            f"rule set {item.name!r} is answered by its rules alone (policy 'rules'); the "
            f"classifier's policies apply to market {universe.default}'s preset",
            field="query.policy",
        )
    return Ask(chosen, item, Policy.RULES, ModelMappingName(settings.model_mapping))
