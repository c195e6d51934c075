"""filters as data: each filter's reading without a column per filter, registered rule sets

Revision ID: 0009
Revises: 0008

``regimes``: the per-filter columns (trend_value, trend_state, volatility_*,
credit_*) move into one JSON column ``readings`` ({filter: [value, state]}), so
a new filter kind needs no migration; ``votes`` becomes a float (weighted votes,
or a continuous rule set's score). Existing rows are carried over.

``rule_sets``: rule sets registered by name (core.rulesets.RuleSetDefinition as
canonical JSON and its sha256); immutable, enforced by triggers as for the
publication ledger.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

LEGACY_FILTERS = ("trend", "volatility", "credit")
IMMUTABLE_MESSAGE = "registered rule sets are immutable: register a new name"
_BATCH = 2000


def _regimes(*columns: sa.Column) -> sa.Table:
    return sa.table(
        "regimes",
        sa.column("date", sa.Date()),
        sa.column("rule_set_version", sa.String()),
        *columns,
    )


def _immutable_rule_sets() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER rule_sets_no_{action.lower()} BEFORE {action} ON rule_sets "
                f"BEGIN SELECT RAISE(ABORT, '{IMMUTABLE_MESSAGE}'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION rule_sets_immutable() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{IMMUTABLE_MESSAGE}'; END $$"
    )
    op.execute(
        "CREATE TRIGGER rule_sets_no_change BEFORE UPDATE OR DELETE ON rule_sets "
        "FOR EACH ROW EXECUTE FUNCTION rule_sets_immutable()"
    )


def upgrade() -> None:
    with op.batch_alter_table("regimes") as batch:
        batch.add_column(sa.Column("readings", sa.JSON(), nullable=True))
    bind = op.get_bind()
    old = _regimes(
        *(sa.column(f"{name}_{part}") for name in LEGACY_FILTERS for part in ("value", "state"))
    )
    new = _regimes(sa.column("readings", sa.JSON()))
    rows = bind.execute(sa.select(old)).mappings().all()
    updates = []
    for row in rows:
        readings = {
            name: [row[f"{name}_value"], row[f"{name}_state"]]
            for name in LEGACY_FILTERS
            if row[f"{name}_state"] is not None
        }
        updates.append({"d": row["date"], "v": row["rule_set_version"], "r": readings})
    statement = (
        new.update()
        .where(new.c.date == sa.bindparam("d"), new.c.rule_set_version == sa.bindparam("v"))
        .values(readings=sa.bindparam("r", type_=sa.JSON()))
    )
    for start in range(0, len(updates), _BATCH):
        bind.execute(statement, updates[start : start + _BATCH])
    with op.batch_alter_table("regimes") as batch:
        batch.alter_column("readings", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("votes", existing_type=sa.Integer(), type_=sa.Float())
        for name in LEGACY_FILTERS:
            batch.drop_column(f"{name}_value")
            batch.drop_column(f"{name}_state")
    op.create_table(
        "rule_sets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rule_sets")),
    )
    _immutable_rule_sets()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS rule_sets_no_change ON rule_sets")
        op.execute("DROP FUNCTION IF EXISTS rule_sets_immutable()")
    op.drop_table("rule_sets")
    with op.batch_alter_table("regimes") as batch:
        for name in LEGACY_FILTERS:
            batch.add_column(sa.Column(f"{name}_value", sa.Float(), nullable=True))
            batch.add_column(sa.Column(f"{name}_state", sa.String(length=16), nullable=True))
    bind = op.get_bind()
    source = _regimes(sa.column("readings", sa.JSON()))
    rows = bind.execute(sa.select(source)).mappings().all()
    target = _regimes(
        *(sa.column(f"{name}_{part}") for name in LEGACY_FILTERS for part in ("value", "state"))
    )
    updates = []
    for row in rows:
        readings = row["readings"]
        if isinstance(readings, str):
            readings = json.loads(readings)
        values = {}
        for name in LEGACY_FILTERS:
            value, state = (readings or {}).get(name, [None, None])
            values[f"p_{name}_value"], values[f"p_{name}_state"] = value, state
        updates.append({"d": row["date"], "v": row["rule_set_version"], **values})
    if updates:
        statement = (
            target.update()
            .where(
                target.c.date == sa.bindparam("d"),
                target.c.rule_set_version == sa.bindparam("v"),
            )
            .values(
                {
                    f"{name}_{part}": sa.bindparam(f"p_{name}_{part}")
                    for name in LEGACY_FILTERS
                    for part in ("value", "state")
                }
            )
        )
        for start in range(0, len(updates), _BATCH):
            bind.execute(statement, updates[start : start + _BATCH])
    with op.batch_alter_table("regimes") as batch:
        batch.drop_column("readings")
        # Weighted votes and scores have no integer form: rounded.
        batch.alter_column("votes", existing_type=sa.Float(), type_=sa.Integer())
