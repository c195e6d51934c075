"""API keys with roles and quotas, and each sweep's owner

Revision ID: 0012
Revises: 0011

``api_keys`` holds the sha256 of each key (never the key), its role (read,
research, admin) and its quotas; ``sweeps.owner`` names the key that queued a
sweep, so only its owner or an admin cancels or reruns it (operations.keys).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("max_concurrent_sweeps", sa.Integer(), nullable=True),
        sa.Column("max_variants_per_day", sa.Integer(), nullable=True),
        sa.Column("backtests_per_minute", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("key_sha256", name="uq_api_keys_key_sha256"),
    )
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("owner", sa.String(36), nullable=True))
        batch.create_index("ix_sweeps_owner", ["owner"])


def downgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_index("ix_sweeps_owner")
        batch.drop_column("owner")
    op.drop_table("api_keys")
