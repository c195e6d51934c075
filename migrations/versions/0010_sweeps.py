"""sweeps as jobs kept in the database

Revision ID: 0010
Revises: 0009

``sweeps``: one row per sweep (request, status, progress, heartbeat, summary);
``sweep_variants``: every variant's parameters and figures once a sweep is done,
paged by rank.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("variants", sa.Integer(), nullable=False),
        sa.Column("done_variants", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("scheduler", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )
    op.create_index(op.f("ix_sweeps_created_at"), "sweeps", ["created_at"], unique=False)
    op.create_table(
        "sweep_variants",
        sa.Column("sweep_id", sa.String(length=36), nullable=False),
        sa.Column("variant", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("objective", sa.Float(), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["sweeps.id"],
            name=op.f("fk_sweep_variants_sweep_id_sweeps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sweep_id", "variant", name=op.f("pk_sweep_variants")),
    )
    op.create_index(
        "ix_sweep_variants_sweep_id_rank", "sweep_variants", ["sweep_id", "rank"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_sweep_variants_sweep_id_rank", table_name="sweep_variants")
    op.drop_table("sweep_variants")
    op.drop_index(op.f("ix_sweeps_created_at"), table_name="sweeps")
    op.drop_table("sweeps")
