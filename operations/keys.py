"""API keys: who may spend compute or change state, and how much.

A key has a role; each role may do what the roles before it may:

- ``read``: read answers (needed only where DEEPREGIME_READ_KEY_REQUIRED is set);
- ``research``: also queue sweeps (and cancel or rerun its own), within its quotas;
- ``admin``: everything, other keys' sweeps included (rule sets, webhooks, admin routes).

Only the sha256 of a key is stored. A key is 32 random bytes (256 bits) drawn by the
service, not a password a person chose, so no dictionary or brute force reaches it and
a slow password hash (bcrypt, argon2) would add nothing but a delay on every request;
a stolen table gives no usable key. The digest of the presented key is looked up, then
compared with ``hmac.compare_digest``. The single DEEPREGIME_API_KEY keeps working as
an admin key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from core.errors import DataValidationError
from store.ledger import as_utc
from store.tables import api_keys

ROLES = ("read", "research", "admin")
KEY_PREFIX = "drk_"
SETTINGS_KEY_ID = "admin"  # the owner recorded for what DEEPREGIME_API_KEY does


@dataclass(frozen=True)
class Quotas:
    """What a key may spend; None: the service's default."""

    max_concurrent_sweeps: int | None = None
    max_variants_per_day: int | None = None
    backtests_per_minute: float | None = None


@dataclass(frozen=True)
class Caller:
    """A verified key: its id (the owner of what it queues), role and quotas."""

    key_id: str
    role: str
    quotas: Quotas = Quotas()

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class KeyInfo:
    id: str
    role: str
    label: str | None
    quotas: Quotas
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise DataValidationError(f"unknown role {role!r}: one of {', '.join(ROLES)}", field="role")
    return role


def create_key(
    connection: Connection,
    *,
    role: str,
    label: str | None = None,
    quotas: Quotas = Quotas(),
    now: dt.datetime | None = None,
) -> tuple[str, KeyInfo]:
    """A new key and its stored facts; the key itself is shown only here."""
    check_role(role)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = str(uuid.uuid4())
    connection.execute(
        insert(api_keys).values(
            id=key_id,
            key_sha256=digest(key),
            role=role,
            label=label,
            max_concurrent_sweeps=quotas.max_concurrent_sweeps,
            max_variants_per_day=quotas.max_variants_per_day,
            backtests_per_minute=quotas.backtests_per_minute,
            created_at=now or dt.datetime.now(dt.UTC),
        )
    )
    info = _info(connection, key_id)
    assert info is not None  # inserted just above, in this transaction
    return key, info


def list_keys(connection: Connection) -> list[KeyInfo]:
    rows = connection.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id))
    return [_of(row) for row in rows]


def revoke_key(
    connection: Connection, *, key_id: str, now: dt.datetime | None = None
) -> KeyInfo | None:
    """Revoke the key (None when there is no such key); revoking twice keeps the first time."""
    connection.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now or dt.datetime.now(dt.UTC))
    )
    return _info(connection, key_id)


def verify(connection: Connection, key: str) -> Caller | None:
    """The caller holding ``key``; None for an unknown or revoked key."""
    presented = digest(key)
    row = connection.execute(select(api_keys).where(api_keys.c.key_sha256 == presented)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_sha256, presented):
        return None
    info = _of(row)
    return Caller(key_id=info.id, role=info.role, quotas=info.quotas)


def _info(connection: Connection, key_id: str) -> KeyInfo | None:
    row = connection.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    return None if row is None else _of(row)


def _of(row: object) -> KeyInfo:
    return KeyInfo(
        id=row.id,  # type: ignore[attr-defined]
        role=row.role,  # type: ignore[attr-defined]
        label=row.label,  # type: ignore[attr-defined]
        quotas=Quotas(
            max_concurrent_sweeps=row.max_concurrent_sweeps,  # type: ignore[attr-defined]
            max_variants_per_day=row.max_variants_per_day,  # type: ignore[attr-defined]
            backtests_per_minute=row.backtests_per_minute,  # type: ignore[attr-defined]
        ),
        created_at=as_utc(row.created_at),  # type: ignore[attr-defined,arg-type]
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,  # type: ignore[attr-defined]
    )
