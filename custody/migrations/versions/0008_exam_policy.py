"""exam_policy: each exam's policy in force, as the latest exam_policy statement on the log says

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exam_policy",
        sa.Column("exam_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("exam_id"),
    )


def downgrade() -> None:
    op.drop_table("exam_policy")
