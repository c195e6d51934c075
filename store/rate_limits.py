"""Token buckets in the database: one per client, shared by every worker and replica.

A bucket holds up to ``burst`` tokens and refills at ``per_second``; taking a
token is one atomic upsert (refill, then take one if at least one is there), so
concurrent requests in any number of processes never take more than the bucket
holds. Times are wall-clock seconds (every process and replica reads the same).
"""

from __future__ import annotations

import math

from sqlalchemy import Connection, case, delete, literal
from sqlalchemy.dialects import postgresql, sqlite

from store.tables import rate_limit_buckets as buckets


def take_token(
    connection: Connection, *, client: str, now: float, per_second: float, burst: int
) -> int | None:
    """Take one token from ``client``'s bucket: None when taken, else the whole seconds
    until the next token (the bucket is left as it is)."""
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[connection.dialect.name]
    elapsed = case((buckets.c.updated_at < now, literal(now) - buckets.c.updated_at), else_=0.0)
    refilled = buckets.c.tokens + elapsed * per_second
    level = case((refilled > burst, float(burst)), else_=refilled)
    statement = (
        insert(buckets)
        .values(client=client, tokens=float(burst) - 1.0, updated_at=now, granted=True)
        .on_conflict_do_update(
            index_elements=[buckets.c.client],
            set_={
                "tokens": case((level >= 1.0, level - 1.0), else_=level),
                "granted": level >= 1.0,
                "updated_at": now,
            },
        )
        .returning(buckets.c.tokens, buckets.c.granted)
    )
    tokens, granted = connection.execute(statement).one()
    if granted:
        return None
    return max(1, math.ceil((1.0 - tokens) / per_second))


def forget_full_buckets(
    connection: Connection, *, now: float, per_second: float, burst: int
) -> int:
    """Delete buckets that have refilled completely (a missing bucket is a full one)."""
    full_after = burst / per_second
    return connection.execute(
        delete(buckets).where(buckets.c.updated_at < now - full_after)
    ).rowcount
