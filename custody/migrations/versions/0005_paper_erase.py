"""paper_erase: destroyed sealed keys whose physical erase is still to be proven

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "paper_erase",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("paper_ref", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("slot", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("sealed_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("locator", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("paper_erase", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_paper_erase_paper_ref"), ["paper_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("paper_erase", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_paper_erase_paper_ref"))
    op.drop_table("paper_erase")
