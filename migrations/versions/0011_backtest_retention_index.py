"""backtest bounds shared by every process: a covering index for retention, rate-limit
buckets in the database

Revision ID: 0011
Revises: 0010

Retention summed ``size_bytes`` over every stored run on each POST /backtest;
SQLite then read each run's large JSON row (the column lies after them). The
index (created_at, id, size_bytes) answers those queries alone and replaces the
index on created_at. ``rate_limit_buckets`` holds each client's token bucket, so
the per-client limit holds across workers and replicas (store.rate_limits).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_backtest_runs_created_at", table_name="backtest_runs")
    op.create_index(
        "ix_backtest_runs_retention", "backtest_runs", ["created_at", "id", "size_bytes"]
    )
    op.create_table(
        "rate_limit_buckets",
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_buckets")
    op.drop_index("ix_backtest_runs_retention", table_name="backtest_runs")
    op.create_index("ix_backtest_runs_created_at", "backtest_runs", ["created_at"])
