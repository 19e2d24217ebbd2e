"""The access log's storage (an edge): records appended under the head's lock, leaves,
reads of one object or person, and signed checkpoints.

Rules:
- One style with the other repositories: SQLAlchemy Core; ``custody/access_log.py`` holds no
  SQL, and keeps the rules (a record's form, its link to the one before, what is signed).
  The one exception is ``append``, on every read's path: four fixed statements through the
  driver's cursor, inside SQLAlchemy's transaction (its ``BEGIN IMMEDIATE``, pool and flush).
- ``append`` takes the head's lock in its first statement, which gives a batch its
  consecutive indexes and the leaf hash of the record before it; the caller turns those into
  the rows (``AccessRow``), which commit with the head in one transaction.
- The object index (``access_object``) is derived from the leaves and written in batches: once
  ``INDEX_EVERY`` records wait, the append that reaches it indexes them all in its own
  transaction (under the head's lock, so each record is indexed once) and moves
  ``access_head.indexed``. A read of personal data so writes its record and the head (a few
  pages) instead of one index entry per object named, each on its own page of the index (a
  list of 50 incidents: 50 pages to write and flush, 0.5 ms of a 0.7 ms record).
  ``who_read`` reads the index for the records it covers and the waiting records' own
  leaves for the rest, in an order that misses none (a record indexed in between is kept
  once).
- ``lazy``: the append commits without waiting for the disk (SQLite ``synchronous=NORMAL``,
  PostgreSQL ``synchronous_commit`` off, for that transaction only).
- ``checkpoint`` locks the head too, so no record lands between the size it reads and the
  leaves it hands to the signer; one checkpoint is kept per size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, Table, insert, select, update
from sqlmodel import SQLModel

from crypto.encoding import format_time
from custody.access_records import GENESIS, AccessEntry, parse_access_leaf
from custody.store import access_tables as _access_tables  # noqa: F401  (registers them)
from custody.store.db import read_options

HEAD: Table = SQLModel.metadata.tables["access_head"]
RECORDS: Table = SQLModel.metadata.tables["access_record"]
OBJECTS: Table = SQLModel.metadata.tables["access_object"]
CHECKPOINTS: Table = SQLModel.metadata.tables["access_checkpoint"]


@dataclass(frozen=True)
class AccessRow:
    """One record to store: its index, who read, when, its leaf bytes and the objects named."""

    idx: int
    subject: str
    at: datetime
    leaf: bytes
    objects: Sequence[str]


def ensure_head(engine: Engine) -> None:
    """Make the head row (size 0, the genesis link) if it is not there yet."""
    with engine.begin() as conn:
        if conn.execute(select(HEAD.c.id).where(HEAD.c.id == 1)).first() is None:
            conn.execute(insert(HEAD).values(id=1, size=0, last=GENESIS))


# ``append``'s statements, for the driver's own cursor inside SQLAlchemy's transaction:
# SQLite's qmark placeholders and psycopg's format ones. Every read of personal data pays
# them, and building and compiling them through SQLAlchemy Core cost 0.5 ms a record where
# SQLite's own work is 0.075 ms (docs/benchmarks.md, "Access").
_SQL_QMARK = {
    "head": "UPDATE access_head SET size = size + ? WHERE id = 1 RETURNING size, last, indexed",
    "record": "INSERT INTO access_record (idx, subject, at, leaf) VALUES (?, ?, ?, ?)",
    "waiting": "SELECT idx, leaf FROM access_record WHERE idx >= ? AND idx < ? ORDER BY idx",
    "object": "INSERT INTO access_object (object, idx) VALUES (?, ?)",
    "last": "UPDATE access_head SET last = ? WHERE id = 1",
    "last_indexed": "UPDATE access_head SET last = ?, indexed = ? WHERE id = 1",
}
_SQL_FORMAT = {name: text.replace("?", "%s") for name, text in _SQL_QMARK.items()}


INDEX_EVERY = 64  # records that wait for the object index at most (the module docstring)


def append(
    engine: Engine,
    count: int,
    rows_for: Callable[[int, str], tuple[Sequence[AccessRow], str]],
    *,
    lazy: bool = False,
) -> int:
    """Append ``count`` records in one transaction and return the first one's index.

    ``rows_for(first, prev)`` gets the first index and the previous record's leaf hash (hex)
    and returns the rows and the last one's leaf hash, which the head keeps."""
    with engine.connect() as conn, _relaxed(conn, lazy), conn.begin():
        if lazy and conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        sql = _SQL_QMARK if conn.dialect.paramstyle == "qmark" else _SQL_FORMAT
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            # One statement takes the head's lock, the indexes and the previous link.
            cur.execute(sql["head"], (count,))
            head = cur.fetchone()
            assert head is not None  # the head row is made when the log opens
            first = int(head[0]) - count
            rows, last = rows_for(first, str(head[1]))
            cur.executemany(
                sql["record"], [(r.idx, r.subject, format_time(r.at), r.leaf) for r in rows]
            )
            indexed, end = int(head[2]), first + count
            if end - indexed < INDEX_EVERY:
                cur.execute(sql["last"], (last,))
                return first
            # The batch is due: index every record waiting, this append's included.
            cur.execute(sql["waiting"], (indexed, first))
            named = [
                (o, idx) for idx, leaf in cur.fetchall()
                for o in parse_access_leaf(idx, bytes(leaf)).objects
            ]  # fmt: skip
            named += [(o, r.idx) for r in rows for o in r.objects]
            named.sort()  # in the index's order: neighbouring entries share pages
            if named:
                cur.executemany(sql["object"], named)
            cur.execute(sql["last_indexed"], (last, end))
        finally:
            cur.close()
    return first


@contextlib.contextmanager
def _relaxed(conn: Connection, lazy: bool) -> Iterator[None]:
    """SQLite, ``lazy``: this connection commits without waiting for the disk
    (``synchronous=NORMAL`` in WAL mode: durable against a process crash; a power loss may
    take the last records back, never a checkpointed one, as signing a checkpoint commits
    with a full flush, which flushes every earlier commit of the WAL too)."""
    if not lazy or conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        raw.execute("PRAGMA synchronous=FULL")


def _reader(engine: Engine) -> Connection:
    return engine.connect().execution_options(**read_options(engine))


def size(engine: Engine) -> int:
    with _reader(engine) as conn:
        return int(conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).scalar_one())


def leaves(engine: Engine, start: int = 0, end: int | None = None) -> list[bytes]:
    """The stored leaf bytes from index ``start`` up to ``end`` (excluded), in order."""
    query = select(RECORDS.c.leaf).where(RECORDS.c.idx >= start).order_by(RECORDS.c.idx)
    if end is not None:
        query = query.where(RECORDS.c.idx < end)
    with _reader(engine) as conn:
        return [bytes(r.leaf) for r in conn.execute(query)]


def who_read(
    engine: Engine, *, obj: str | None = None, who: str | None = None, limit: int = 1000
) -> list[AccessEntry]:
    """The records that named ``obj`` or were made by ``who``, oldest first: for ``obj``, the
    index's records and those still waiting to be indexed."""
    query = select(RECORDS.c.idx, RECORDS.c.leaf).order_by(RECORDS.c.idx)
    if who is not None:
        query = query.where(RECORDS.c.subject == who)
    with _reader(engine) as conn:
        if obj is None:
            rows = conn.execute(query.limit(limit))
            return [parse_access_leaf(r.idx, bytes(r.leaf)) for r in rows]
        # In this order, also where each statement is its own snapshot (PostgreSQL): a record
        # below ``indexed`` is in the index; one indexed meanwhile may be found twice (kept once).
        indexed = int(conn.execute(select(HEAD.c.indexed).where(HEAD.c.id == 1)).scalar_one())
        listed = select(OBJECTS.c.idx).where(OBJECTS.c.object == obj)
        found = {
            r.idx: parse_access_leaf(r.idx, bytes(r.leaf))
            for r in conn.execute(query.where(RECORDS.c.idx.in_(listed)).limit(limit))
        }
        for r in conn.execute(query.where(RECORDS.c.idx >= indexed)):
            if r.idx not in found:
                entry = parse_access_leaf(r.idx, bytes(r.leaf))
                if obj in entry.objects:
                    found[r.idx] = entry
        return [found[i] for i in sorted(found)][:limit]


def checkpoint(
    engine: Engine, now: datetime, sign: Callable[[int, Iterator[bytes]], tuple[bytes, str]]
) -> str:
    """The checkpoint note kept for the access log's size now; if none is kept yet,
    ``sign(size, leaves)`` makes one (its root and note) and it is kept."""
    with engine.begin() as conn:
        # Lock the head so no record lands between reading the size and the leaves.
        conn.execute(update(HEAD).where(HEAD.c.id == 1).values(size=HEAD.c.size))
        size = int(conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).scalar_one())
        held = conn.execute(
            select(CHECKPOINTS.c.note).where(CHECKPOINTS.c.size == size)
        ).scalar_one_or_none()
        if held is not None:
            return str(held)
        rows = conn.execute(select(RECORDS.c.leaf).order_by(RECORDS.c.idx))
        root, note = sign(size, (bytes(r.leaf) for r in rows))
        conn.execute(
            insert(CHECKPOINTS).values(size=size, root=root, note=note, signed_at=format_time(now))
        )
        return note


def latest_checkpoint(engine: Engine) -> str | None:
    """The note of the largest checkpoint kept (``None``: none yet)."""
    with _reader(engine) as conn:
        note = conn.execute(
            select(CHECKPOINTS.c.note).order_by(CHECKPOINTS.c.size.desc()).limit(1)
        ).scalar_one_or_none()
    return None if note is None else str(note)
