"""cosignatures: witnesses' cosignature/v1 lines on the log's checkpoints

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cosignature",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("witness", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("cosigned_at", sa.BigInteger(), nullable=False),
        sa.Column("line", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("added_at", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("size", "witness", "key_hash"),
    )
    with op.batch_alter_table("cosignature", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cosignature_size"), ["size"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cosignature", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cosignature_size"))
    op.drop_table("cosignature")
