"""Publishing: the latest answer of every served policy goes into the ledger, once per change.

A publication is appended only when the answer differs from the last one
published under the same policy (so a rerun publishes nothing), and its
regime-change event is queued in the same transaction (a durable outbox), so a
crash can never leave a publication without its notification or the reverse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd
from sqlalchemy import Connection, select

from core.enums import Policy
from core.errors import DataValidationError
from core.rules import RuleSet
from operations.answers import ModelMappingName, RegimeReport, regime_report
from operations.models import ModelSlot
from operations.notifications import enqueue_regime_change
from store.ledger import Publication, append_publication, canonical_json, latest_publication
from store.pipeline import WARM_UP
from store.tables import publications

# Fields that depend on when the answer is read, not on what was published.
READ_TIME_FIELDS = frozenset(
    {"stale", "expected_as_of", "publication_id", "published_at", "revised", "market"}
)


@dataclass(frozen=True)
class Variant:
    """One served answer: a policy, and under ``model`` its exposure mapping."""

    policy: Policy
    mapping: ModelMappingName | None = None

    @property
    def key(self) -> str:
        """The ledger's name for it: ``rules``, ``ensemble``, ``model:filter``, ..."""
        return self.policy.value if self.mapping is None else f"{self.policy.value}:{self.mapping}"


def variant_for(policy: Policy, mapping: ModelMappingName) -> Variant:
    return Variant(policy, mapping if policy is Policy.MODEL else None)


# The policy names clients may ask for: the ledger's names, plus ``model`` alone (the
# service's default mapping). The same words in queries, the ledger, docs and dashboard.
PolicyName = StrEnum(  # type: ignore[misc]
    "PolicyName",
    {
        name.replace(":", "_").upper(): name
        for name in [policy.value for policy in Policy]
        + [f"{Policy.MODEL.value}:{mapping.value}" for mapping in ModelMappingName]
    },
)


def parse_variant(
    policy: str | None,
    mapping: str | None,
    *,
    default_policy: Policy,
    default_mapping: ModelMappingName,
) -> Variant:
    """The answer ``?policy=`` (and the older ``?mapping=``) ask for.

    ``policy`` is a ledger name (``rules``, ``ensemble``, ``model:filter``, ...) or
    ``model`` (the default mapping); ``mapping`` may name the mapping separately, but
    not contradict the policy. DataValidationError names the bad parameter (422).
    """
    name, _, named_mapping = (policy or default_policy.value).partition(":")
    try:
        chosen = Policy(name)
    except ValueError:
        raise DataValidationError(
            f"unknown policy {policy!r}: one of {', '.join(PolicyName)}", field="query.policy"
        ) from None
    try:
        mappings = {ModelMappingName(text) for text in (named_mapping, mapping) if text}
    except ValueError:
        known = ", ".join(member.value for member in ModelMappingName)
        field = "query.policy" if named_mapping else "query.mapping"
        raise DataValidationError(f"unknown model mapping: one of {known}", field=field) from None
    if named_mapping and chosen is not Policy.MODEL:
        raise DataValidationError(
            f"only policy 'model' has a mapping, got {policy!r}", field="query.policy"
        )
    if len(mappings) > 1:
        raise DataValidationError(
            f"policy {policy!r} and mapping {mapping!r} disagree", field="query.mapping"
        )
    return variant_for(chosen, mappings.pop() if mappings else default_mapping)


def served_variants(model: ModelSlot) -> list[Variant]:
    """Every answer the service can give now: the model's only while a model serves."""
    variants = [Variant(Policy.RULES), Variant(Policy.ENSEMBLE)]
    if model.loaded:
        variants += [Variant(Policy.MODEL, mapping) for mapping in ModelMappingName]
    return variants


def published_body(report: RegimeReport) -> dict[str, Any]:
    """The answer as the ledger keeps it: without the fields that depend on read time."""
    return report.model_dump(mode="json", exclude=set(READ_TIME_FIELDS))


def data_fingerprint(closes: Mapping[str, pd.Series]) -> str:
    """sha256 of the input series (symbols, days and values) the latest answer depends on:
    the WARM_UP span before the last day (every rolling window fits in it)."""
    last = max(series.index.max() for series in closes.values() if len(series))
    digest = hashlib.sha256()
    for symbol in sorted(closes):
        series = closes[symbol].loc[last - WARM_UP : last]
        digest.update(symbol.encode())
        digest.update(pd.util.hash_pandas_object(series, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def publish_latest(
    connection: Connection,
    *,
    rule_set: RuleSet,
    model: ModelSlot,
    fingerprint: str,
    run_id: int | None,
    default_policy: Policy,
    model_mapping: str,
    published_at: dt.datetime | None = None,
) -> tuple[list[Publication], int]:
    """Append a publication for each served variant whose latest answer changed; returns
    them and the number of notification events queued.

    Runs in the caller's transaction, with the regime-change events it causes;
    subscribers without a policy of their own follow ``default_policy`` (under
    ``model``, with ``model_mapping``).
    """
    default_variant = variant_for(default_policy, ModelMappingName(model_mapping)).key
    appended = []
    queued = 0
    for variant in served_variants(model):
        report = regime_report(
            connection,
            day=None,
            policy=variant.policy,
            mapping=variant.mapping or ModelMappingName.FILTER,
            rule_set=rule_set,
            model=model,
        )
        publication, events = publish_if_changed(
            connection,
            policy=variant.key,
            day=report.as_of,
            body=published_body(report),
            rule_set_version=rule_set.version,
            model_version=model.version if model.loaded else None,
            fingerprint=fingerprint,
            run_id=run_id,
            published_at=published_at,
            default_policy=default_variant,
        )
        if publication is not None:
            appended.append(publication)
            queued += events
    return appended, queued


def publish_if_changed(
    connection: Connection,
    *,
    policy: str,
    day: dt.date,
    body: dict[str, Any],
    rule_set_version: str,
    model_version: str | None,
    fingerprint: str,
    run_id: int | None,
    published_at: dt.datetime | None,
    default_policy: str,
) -> tuple[Publication | None, int]:
    """The one publish step: append ``body`` under ``policy`` unless it equals the last
    one published there, and queue its regime-change event in the same transaction.
    Returns the publication (None: unchanged) and the events queued."""
    previous = latest_publication(connection, policy=policy)
    if previous is not None and previous.body == canonical_json(body):
        return None, 0
    publication = append_publication(
        connection,
        day=day,
        policy=policy,
        rule_set_version=rule_set_version,
        model_version=model_version,
        data_fingerprint=fingerprint,
        run_id=run_id,
        body=body,
        published_at=published_at,
    )
    queued = enqueue_regime_change(
        connection, publication=publication, previous=previous, default_policy=default_policy
    )
    return publication, queued


def published_days(connection: Connection, *, since: dt.date) -> dict[tuple[dt.date, str], dict]:
    """The latest published body per (day, policy) for days on or after ``since``."""
    rows = connection.execute(
        select(publications.c.day, publications.c.policy, publications.c.body)
        .where(publications.c.day >= since)
        .order_by(publications.c.id)
    )
    return {(day, policy): json.loads(body) for day, policy, body in rows}
