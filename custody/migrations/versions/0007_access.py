"""access: login challenges and the access log (every read of personal data)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_challenge",
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("nonce"),
    )
    with op.batch_alter_table("login_challenge", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_login_challenge_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "access_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("last", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "access_record",
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
    )
    with op.batch_alter_table("access_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_record_subject"), ["subject"], unique=False)
    op.create_table(
        "access_object",
        sa.Column("object", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("object", "idx"),
    )
    op.create_table(
        "access_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("signed_at", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("size"),
    )


def downgrade() -> None:
    op.drop_table("access_checkpoint")
    op.drop_table("access_object")
    with op.batch_alter_table("access_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_record_subject"))
    op.drop_table("access_record")
    op.drop_table("access_head")
    with op.batch_alter_table("login_challenge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_challenge_expires_at"))
    op.drop_table("login_challenge")
