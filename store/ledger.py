"""The publication ledger: append and read, nothing else.

A publication is one answer as it was published: the day it is for, the policy
it answers under, the rule-set and model versions and the data fingerprint it
was computed from, when it was published, and the exact JSON body with its
sha256. This module offers no update and no delete, and the database refuses
both (triggers from migration 0005), so what was published stays provable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select

from store.repository import utcnow
from store.tables import publications


def canonical_json(body: dict[str, Any]) -> str:
    """The one serialisation of a body: sorted keys, no spaces (stable hashes)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)


def body_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def as_utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC; naive means UTC. Every time is bound in UTC: SQLite keeps the
    wall-clock fields and drops the zone, so 09:00+02:00 would compare as 09:00 UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


@dataclass(frozen=True)
class Publication:
    id: int
    day: dt.date
    policy: str
    rule_set_version: str
    model_version: str | None
    data_fingerprint: str
    run_id: int | None
    published_at: dt.datetime
    body: str  # canonical JSON, exactly as published
    body_sha256: str

    def document(self) -> dict[str, Any]:
        return json.loads(self.body)

    @classmethod
    def from_row(cls, row: Any) -> Publication:
        values = dict(row._mapping)
        values["published_at"] = as_utc(values["published_at"])
        return cls(**values)


def append_publication(
    connection: Connection,
    *,
    day: dt.date,
    policy: str,
    rule_set_version: str,
    model_version: str | None,
    data_fingerprint: str,
    run_id: int | None,
    body: dict[str, Any],
    published_at: dt.datetime | None = None,
) -> Publication:
    """Append one publication in the caller's transaction and return it."""
    text = canonical_json(body)
    values = {
        "day": day,
        "policy": policy,
        "rule_set_version": rule_set_version,
        "model_version": model_version,
        "data_fingerprint": data_fingerprint,
        "run_id": run_id,
        "published_at": as_utc(published_at or utcnow()),
        "body": text,
        "body_sha256": body_digest(text),
    }
    new_id = connection.execute(
        insert(publications).values(**values).returning(publications.c.id)
    ).scalar_one()
    return Publication(id=new_id, **values)  # type: ignore[arg-type]


def latest_publication(connection: Connection, *, policy: str) -> Publication | None:
    """The newest publication under ``policy`` (by id: the ledger's own order)."""
    row = connection.execute(
        select(publications)
        .where(publications.c.policy == policy)
        .order_by(publications.c.id.desc())
        .limit(1)
    ).first()
    return Publication.from_row(row) if row else None


def publication_as_known_at(
    connection: Connection, *, day: dt.date, policy: str, known_at: dt.datetime
) -> Publication | None:
    """The last publication for ``day`` under ``policy`` published at or before ``known_at``."""
    row = connection.execute(
        select(publications)
        .where(
            publications.c.day == day,
            publications.c.policy == policy,
            publications.c.published_at <= as_utc(known_at),
        )
        .order_by(publications.c.id.desc())
        .limit(1)
    ).first()
    return Publication.from_row(row) if row else None


def list_publications(
    connection: Connection,
    *,
    since: dt.datetime | None = None,
    after_id: int | None = None,
    policy: str | None = None,
    limit: int = 100,
    policies: Sequence[str] | None = None,
) -> list[Publication]:
    """Publications in ledger order (oldest first), filtered by time, id, policy and
    (``policies``) a set of policies."""
    statement = select(publications).order_by(publications.c.id).limit(limit)
    if since is not None:
        statement = statement.where(publications.c.published_at >= as_utc(since))
    if after_id is not None:
        statement = statement.where(publications.c.id > after_id)
    if policy is not None:
        statement = statement.where(publications.c.policy == policy)
    if policies is not None:
        statement = statement.where(publications.c.policy.in_(list(policies)))
    return [Publication.from_row(row) for row in connection.execute(statement)]


def latest_publication_id(connection: Connection) -> int:
    """The ledger's newest id (0 when empty): a cheap version check for caches and streams."""
    return connection.execute(select(func.coalesce(func.max(publications.c.id), 0))).scalar_one()
