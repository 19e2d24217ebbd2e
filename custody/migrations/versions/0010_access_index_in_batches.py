"""access index in batches: the access log's head records how many records the object index
(``access_object``) covers; the records after it are indexed together, a batch at a time

Revision ID: 0010
Revises: 0009

Every record stored before this revision was indexed as it was written, so ``indexed`` starts
at the log's size.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from custody.access_records import parse_access_leaf

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("indexed", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE access_head SET indexed = size")


def downgrade() -> None:
    # 0009 indexes every record as it is written: index the ones this revision left waiting.
    conn = op.get_bind()
    head = conn.execute(sa.text("SELECT indexed FROM access_head WHERE id = 1")).first()
    if head is not None:
        rows = conn.execute(
            sa.text("SELECT idx, leaf FROM access_record WHERE idx >= :i ORDER BY idx"),
            {"i": int(head[0])},
        ).all()
        named = [
            {"o": o, "i": r.idx}
            for r in rows
            for o in parse_access_leaf(r.idx, bytes(r.leaf)).objects
        ]
        if named:
            conn.execute(sa.text("INSERT INTO access_object (object, idx) VALUES (:o, :i)"), named)
    with op.batch_alter_table("access_head", schema=None) as batch_op:
        batch_op.drop_column("indexed")
