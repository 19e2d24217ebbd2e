"""compact log rows: each entry's envelope stored in its parts (binary), the statement id as 32
bytes, no event_time column; tree nodes and package links WITHOUT ROWID on SQLite; package
states HOT-updatable on PostgreSQL (fillfactor)

Revision ID: 0009
Revises: 0008

Every entry is converted only if its parts rebuild, with its stored receive time, to exactly the
leaf bytes it held (the bytes whose hash is in the tree); any other row keeps the leaf as it was
(``custody/store/leaves.py`` reads both). The space the old rows held is reused by later
appends; ``VACUUM`` (SQLite) or ``VACUUM FULL log_entry`` (PostgreSQL) gives it back at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

from crypto.encoding import format_time
from custody.errors import CustodyError
from custody.events import parse_leaf
from custody.store.leaves import envelope_parts, leaf_of

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CHUNK = 2000
_SELECT = sa.text(
    "SELECT idx, statement_id, received_at, envelope FROM log_entry "
    "WHERE idx > :last ORDER BY idx LIMIT :n"
)
FILLFACTOR = 40  # store/log_tables.py's STATE_FILLFACTOR when this revision was written


def _parts_or_leaf(leaf: bytes, received_at: str) -> bytes:
    """The row's new envelope: its parts when they rebuild to exactly ``leaf``, else ``leaf``."""
    try:
        entry = parse_leaf(leaf)
    except CustodyError:
        return leaf
    if format_time(entry.received) != received_at:
        return leaf
    parts = envelope_parts(entry.envelope)
    if parts is None or leaf_of(parts, received_at) != leaf:
        return leaf
    return parts


def _id_bytes(stored: str | bytes) -> bytes:
    """The statement id as 32 bytes: on SQLite the column still holds the hex text (as text,
    or as its bytes after the copy's cast); on PostgreSQL it was decoded already."""
    text = stored if isinstance(stored, str) else bytes(stored).decode("ascii", "replace")
    if len(text) == 64 and set(text) <= set("0123456789abcdef"):
        return bytes.fromhex(text)
    return stored.encode() if isinstance(stored, str) else bytes(stored)


def upgrade() -> None:
    conn = op.get_bind()
    pg = conn.dialect.name == "postgresql"
    if pg:
        op.execute(
            "ALTER TABLE log_entry ALTER COLUMN statement_id TYPE bytea USING CASE "
            "WHEN statement_id ~ '^[0-9a-f]{64}$' THEN decode(statement_id, 'hex') "
            "ELSE convert_to(statement_id, 'UTF8') END"
        )
        op.drop_column("log_entry", "event_time")
        op.execute(f"ALTER TABLE package_state SET (fillfactor = {FILLFACTOR})")
    else:
        with op.batch_alter_table("log_entry", recreate="always") as batch_op:
            batch_op.drop_column("event_time")
            batch_op.alter_column(
                "statement_id",
                existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
                type_=sa.LargeBinary(),
                existing_nullable=False,
            )
        for table in ("tree_node", "package_event"):
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_with_rowid": False}
            ):
                pass
    update = sa.text("UPDATE log_entry SET statement_id = :sid, envelope = :env WHERE idx = :idx")
    for rows in _rows(conn):
        changed = []
        for r in rows:
            leaf = bytes(r.envelope)
            env = _parts_or_leaf(leaf, r.received_at)
            changed.append({"idx": r.idx, "sid": _id_bytes(r.statement_id), "env": env})
        conn.execute(update, changed)


def _rows(conn: sa.Connection) -> Iterator[list[sa.Row[Any]]]:
    """The entries in index order, CHUNK rows at a time (keyset: one index scan each)."""
    last = -1
    while True:
        rows = conn.execute(_SELECT, {"last": last, "n": CHUNK}).all()
        if not rows:
            return
        last = rows[-1].idx
        yield list(rows)


def downgrade() -> None:
    conn = op.get_bind()
    pg = conn.dialect.name == "postgresql"
    old_rows = []
    for rows in _rows(conn):
        for r in rows:
            leaf = leaf_of(r.envelope, r.received_at)
            try:
                event_time = str(json.loads(parse_leaf(leaf).envelope.payload)["time"])
            except (CustodyError, ValueError, KeyError, TypeError):
                event_time = r.received_at
            old_rows.append(
                {"idx": r.idx, "sid": bytes(r.statement_id).hex(), "env": leaf, "t": event_time}
            )
    op.add_column(
        "log_entry",
        sa.Column(
            "event_time",
            sqlmodel.sql.sqltypes.AutoString(length=20),
            nullable=False,
            server_default="",
        ),
    )
    if pg:
        op.execute("ALTER TABLE package_state RESET (fillfactor)")
        op.execute(
            "ALTER TABLE log_entry ALTER COLUMN statement_id TYPE varchar(64) "
            "USING encode(statement_id, 'hex')"
        )
    else:
        for table in ("tree_node", "package_event"):
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_with_rowid": True}
            ):
                pass
    update = sa.text(
        "UPDATE log_entry SET statement_id = :sid, envelope = :env, event_time = :t "
        "WHERE idx = :idx"
    )
    for start in range(0, len(old_rows), CHUNK):
        conn.execute(update, old_rows[start : start + CHUNK])
    with op.batch_alter_table("log_entry", recreate="auto" if pg else "always") as batch_op:
        if not pg:
            batch_op.alter_column(
                "statement_id",
                existing_type=sa.LargeBinary(),
                type_=sqlmodel.sql.sqltypes.AutoString(length=64),
                existing_nullable=False,
            )
        batch_op.alter_column("event_time", server_default=None)
