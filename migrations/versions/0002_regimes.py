"""regimes computed by the rule engine

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "regimes",
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("rule_set_version", sa.String(length=64), nullable=False),
        sa.Column("trend_value", sa.Float(), nullable=True),
        sa.Column("trend_state", sa.String(length=16), nullable=True),
        sa.Column("volatility_value", sa.Float(), nullable=True),
        sa.Column("volatility_state", sa.String(length=16), nullable=True),
        sa.Column("credit_value", sa.Float(), nullable=True),
        sa.Column("credit_state", sa.String(length=16), nullable=True),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.Column("regime", sa.String(length=16), nullable=True),
        sa.Column("exposure", sa.Float(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", "rule_set_version", name=op.f("pk_regimes")),
    )


def downgrade() -> None:
    op.drop_table("regimes")
