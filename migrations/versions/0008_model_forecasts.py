"""the model's forecasts and walk-forward out-of-sample outputs

Revision ID: 0008
Revises: 0007

``model_walk_forward`` holds a version's walk-forward history (shipped as
models/<version>/walk_forward.csv, loaded on activation): for each day up to the
version's in-sample cut-off, the output of a refit trained only on data up to
``fold_cutoff``. Model history and backtests read it by default for those days.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_walk_forward",
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("regime", sa.Integer(), nullable=False),
        sa.Column("p_distressed", sa.Float(), nullable=False),
        sa.Column("fold_cutoff", sa.Date(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", "model_version", name=op.f("pk_model_walk_forward")),
    )


def downgrade() -> None:
    op.drop_table("model_walk_forward")
