"""model outputs say whether their day was inside the model's training data

Revision ID: 0007
Revises: 0006

``in_sample`` is true when the output's day is on or before the model card's
in-sample cut-off (the last day whose data shaped the model), false after it,
NULL for outputs stored before the column existed (unknown).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_outputs") as batch:
        batch.add_column(sa.Column("in_sample", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_outputs") as batch:
        batch.drop_column("in_sample")
