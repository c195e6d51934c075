"""bounded backtest runs: idempotency key, request fingerprint and stored size

Revision ID: 0006
Revises: 0005

``idempotency_key`` is unique, so a retried POST /backtest finds the run it
already stored; ``size_bytes`` lets retention keep the stored runs within a size
bound without reading the documents; ``created_at`` is indexed for the age bound.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backtest_runs") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("request_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("size_bytes", sa.Integer(), nullable=False, server_default="0"))
        batch.create_unique_constraint(
            op.f("uq_backtest_runs_idempotency_key"), ["idempotency_key"]
        )
    op.create_index(
        op.f("ix_backtest_runs_created_at"), "backtest_runs", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_backtest_runs_created_at"), table_name="backtest_runs")
    with op.batch_alter_table("backtest_runs") as batch:
        batch.drop_constraint(op.f("uq_backtest_runs_idempotency_key"), type_="unique")
        batch.drop_column("size_bytes")
        batch.drop_column("request_sha256")
        batch.drop_column("idempotency_key")
