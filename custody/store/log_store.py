"""The custody log's storage (an edge): the append's reads and writes under the head's lock,
and the reads of entries, nodes, checkpoints, cosignatures, states, findings and exam
policies.

Rules:
- One style with the other repositories, and fast: SQLAlchemy Core, no ORM; what runs for
  every event (the entry, package link, node and state rows an append writes, the statement
  ids it looks up) and the tree's nodes as the driver's own SQL, rows as tuples, one round
  trip however many. ``custody/log.py`` holds no SQL and keeps the rules (what is accepted,
  the tree, what is signed).
- A ``LogStore`` works on one connection. ``appending`` runs the log's append in one
  transaction that starts by locking the head row (``head_size``); a write the database
  still refuses there is a ``StorageError``, or a ``LogStateError`` when the log's own rows
  collide (the head row is behind). ``reading`` opens a read-only connection;
  ``snapshot`` one consistent snapshot for the start check.
- Entries are stored in their parts (``store/leaves.py``) and come back as their leaf bytes,
  notes as stored: whoever uses them verifies them again. Cached
  package states come back as the rules' ``PackageState``, exam policies as ``ExamPolicy``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import SQLModel

from custody.errors import N_, LogStateError, StorageError
from custody.exams import ExamPolicy, exam_policy_from_body
from custody.rules import PackageState
from custody.store import log_tables as _log_tables  # noqa: F401  (registers the tables)
from custody.store.db import driver_sql, read_options, sqlite_marks
from custody.store.guard import RECOVER as GUARD_RECOVER
from custody.store.leaves import leaf_of
from custody.store.states import state_from_json, state_to_json

HEAD: Table = SQLModel.metadata.tables["log_head"]
ENTRY: Table = SQLModel.metadata.tables["log_entry"]
PKG_EVENT: Table = SQLModel.metadata.tables["package_event"]
NODE: Table = SQLModel.metadata.tables["tree_node"]
CHECKPOINT: Table = SQLModel.metadata.tables["checkpoint"]
STATE: Table = SQLModel.metadata.tables["package_state"]
FINDING: Table = SQLModel.metadata.tables["finding"]
COSIGNATURE: Table = SQLModel.metadata.tables["cosignature"]
EXAM: Table = SQLModel.metadata.tables["exam_policy"]

_T = TypeVar("_T")

# The statements every append runs once, built once: building a select or an update with its
# where clause costs SQLAlchemy about three times what executing the built one does (measured
# 258 against 71 µs on SQLite), and an append of a few events pays it for each.
_HEAD_SIZE = select(HEAD.c.size).where(HEAD.c.id == 1).with_for_update()
_SET_SIZE = update(HEAD).where(HEAD.c.id == 1).values(size=bindparam("size"))
_NEW_STATES = insert(STATE)
_NEW_FINDINGS = insert(FINDING)
_SIGNED_AT = select(CHECKPOINT.c.root, CHECKPOINT.c.note).where(
    CHECKPOINT.c.size == bindparam("size")
)
_NEW_CHECKPOINT = insert(CHECKPOINT)
_HEX = frozenset("0123456789abcdef")

# Stored nodes by (level, idx), as the driver's own SQL: one fixed statement on PostgreSQL (two
# array parameters, however many nodes), and on SQLite one OR of primary-key lookups per node
# count (SQLite answers it from the index; row-value IN makes it scan). With ``_SIZE`` the log's
# size comes back in the same round trip, as a row of level -1.
_PG_NODES = (
    "SELECT t.level, t.idx, t.hash FROM tree_node t "
    "JOIN unnest(%b::integer[], %b::integer[]) AS w(level, idx) "
    "ON t.level = w.level AND t.idx = w.idx"
)
_SIZE = " UNION ALL SELECT -1, size, NULL FROM log_head WHERE id = 1"
# The roots signed for one or two sizes, in the same statement (a proof is checked against them).
_ROOTS = {
    ("postgresql", 1): " UNION ALL SELECT -2, size, root FROM checkpoint WHERE size = %s",
    ("postgresql", 2): " UNION ALL SELECT -2, size, root FROM checkpoint WHERE size IN (%s, %s)",
    ("sqlite", 1): " UNION ALL SELECT -2, size, root FROM checkpoint WHERE size = ?",
    ("sqlite", 2): " UNION ALL SELECT -2, size, root FROM checkpoint WHERE size IN (?, ?)",
}
_SQLITE_NODES: dict[int, str] = {}


_INSERT_ENTRIES = (
    "INSERT INTO log_entry (idx, statement_id, kind, received_at, envelope) "
    "VALUES ({0}, {0}, {0}, {0}, {0})"
)
_INSERT_LINKS = "INSERT INTO package_event (package_id, idx) VALUES ({0}, {0})"
_INSERT_NODES = "INSERT INTO tree_node (level, idx, hash) VALUES ({0}, {0}, {0})"
# PostgreSQL takes the same rows by COPY (psycopg's ``write_row``): a third of the server's and
# the driver's work of a multi-row INSERT.
# In COPY's binary format, each value as the column's type takes it (``set_types``): no text
# escaping of the envelopes' and hashes' bytes.
_COPY_ENTRIES = (
    "COPY log_entry (idx, statement_id, kind, received_at, envelope) FROM STDIN (FORMAT BINARY)",
    ("int4", "bytea", "text", "text", "bytea"),
)
_COPY_LINKS = ("COPY package_event (package_id, idx) FROM STDIN (FORMAT BINARY)", ("text", "int4"))
_COPY_NODES = (
    "COPY tree_node (level, idx, hash) FROM STDIN (FORMAT BINARY)",
    ("int4", "int4", "bytea"),
)
_UPDATE_STATES = "UPDATE package_state SET state = {0}, last_idx = {0} WHERE package_id = {0}"
_PG_UPDATE_STATES = (
    "UPDATE package_state AS p SET state = u.state, last_idx = u.last_idx "
    "FROM unnest(%b::text[], %b::bigint[], %b::text[]) AS u(state, last_idx, package_id) "
    "WHERE p.package_id = u.package_id"
)
# The ids as one array joined to the table: ``WHERE statement_id = ANY(%s)``, once psycopg had
# prepared it, was planned as a scan of the whole log (20-50 ms for 128 ids at 14,000 entries).
_PG_ENTRIES = (
    "SELECT e.statement_id, e.idx, e.received_at FROM unnest(%b::bytea[]) AS wanted(id) "
    "JOIN log_entry e ON e.statement_id = wanted.id"
)
_SQLITE_ENTRIES = "SELECT statement_id, idx, received_at FROM log_entry WHERE statement_id IN "
# A batch's package states, by id: the driver's own SQL, as the entries above.
_PG_STATES = (
    "SELECT s.package_id, s.state FROM unnest(%b::text[]) AS wanted(id) "
    "JOIN package_state s ON s.package_id = wanted.id"
)
_SQLITE_STATES = "SELECT package_id, state FROM package_state WHERE package_id IN "


def _copy_rows(
    conn: Connection, *tables: tuple[tuple[str, Sequence[str]], Sequence[Sequence[Any]]]
) -> None:
    """Write rows by COPY (binary, of the given column types) on the connection's psycopg
    connection, inside its transaction. A refusal of the server is raised as SQLAlchemy raises
    it for a statement (``IntegrityError`` for a duplicate key, ``OperationalError`` for a full
    disk or a lost server), so the append handles it as any other write's."""
    import psycopg  # noqa: PLC0415 - only with PostgreSQL

    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    current = tables[0][0][0] if tables else "COPY"  # the statement a refusal is reported with
    try:
        with raw.cursor() as cur:
            for (sql, types), rows in tables:
                if rows:
                    current = sql
                    with cur.copy(sql) as copy:
                        copy.set_types(list(types))
                        for row in rows:
                            copy.write_row(row)
    except psycopg.Error as e:
        wrapped = DBAPIError.instance(
            current, None, e, psycopg.Error, dialect=conn.dialect, ismulti=True
        )
        raise wrapped from e


_SQLITE_IDS = 4096


def _sqlite_entries_sql(count: int) -> str:
    return _SQLITE_ENTRIES + sqlite_marks(count)


def _sqlite_nodes_sql(count: int) -> str:
    sql = _SQLITE_NODES.get(count)
    if sql is None:
        where = " OR ".join(["(level = ? AND idx = ?)"] * count)
        sql = _SQLITE_NODES[count] = f"SELECT level, idx, hash FROM tree_node WHERE {where}"  # noqa: S608
    return sql


@dataclass(frozen=True)
class CosignatureAdded:
    """A witness's cosignature the log now holds (``duplicate``: it held it already)."""

    size: int
    witness: str
    line: str
    cosigned_at: int
    duplicate: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "witness": self.witness,
            "cosigned_at": self.cosigned_at,
            "line": self.line,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True)
class NewCosignature:
    """A verified cosignature line to keep: its witness, key hash (hex) and timestamp."""

    witness: str
    key_hash: str
    line: str
    cosigned_at: int
    added_at: str


def _id_bytes(statement_ids: Iterable[str]) -> list[bytes]:
    """Statement ids (64 lowercase hex digits) as their stored 32 bytes; anything else cannot
    be on the log and is left out."""
    return [bytes.fromhex(s) for s in statement_ids if len(s) == 64 and _HEX.issuperset(s)]


def entry_row(
    idx: int, statement_id: str, kind: str, received_at: str, stored: bytes
) -> tuple[int, bytes, str, str, bytes]:
    """The ``log_entry`` row (the columns of ``_INSERT_ENTRIES``) of an accepted envelope
    kept as ``stored`` (``store/leaves.py``: ``stored_envelope``, its parts or its leaf): the
    statement id as its 32 bytes. Built once, as the log accepts the event; the append hands
    these tuples to the driver as they are."""
    return (idx, bytes.fromhex(statement_id), kind, received_at, stored)


@dataclass(frozen=True)
class NewEntries:
    """An append's rows, as the log built them: entries (``entry_row``), package links, the
    tree's new nodes (level, index, hash) and findings."""

    entries: Sequence[tuple[int, bytes, str, str, bytes]]
    links: Sequence[tuple[str, int]]
    nodes: Sequence[tuple[int, int, bytes]]
    findings: Sequence[Mapping[str, Any]]


def ensure_head(engine: Engine) -> None:
    """Make the head row (size 0) if it is not there yet."""
    with engine.begin() as conn:
        if conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).first() is None:
            with contextlib.suppress(IntegrityError):  # another process created it first
                conn.execute(insert(HEAD).values(id=1, size=0))


class LogStore:
    """The log's tables, read and written on one connection (inside its transaction).

    ``conn`` is handed on, as it is, to the writes that must commit with an append (the
    caller's ``alongside`` rows, the incident desk, the guard's checks)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- the append, under the head's lock ----------------------------------------------

    def head_size(self) -> int:
        """The log's size, taking the head row's lock (``FOR UPDATE``; SQLite holds the
        write lock from ``BEGIN IMMEDIATE``) until the transaction ends."""
        return int(self.conn.execute(_HEAD_SIZE).scalar_one())

    def entries_of(self, statement_ids: Iterable[str]) -> list[tuple[str, int, str]]:
        """(statement id, index, receive time) of those of these statements on the log."""
        return [(sid.hex(), idx, received) for sid, idx, received in self._entries(statement_ids)]

    def indices(self, statement_ids: Iterable[str]) -> dict[str, int]:
        """The log index of each of these statements that is on the log."""
        return {sid.hex(): idx for sid, idx, _ in self._entries(statement_ids)}

    def _entries(self, statement_ids: Iterable[str]) -> list[tuple[bytes, int, str]]:
        """(statement id, index, receive time) by statement id, as the driver's own SQL: one
        array parameter on PostgreSQL, one ``IN`` list per count on SQLite (no SQLAlchemy
        processing per id: the append asks this for every statement of a batch)."""
        wanted = list(dict.fromkeys(_id_bytes(statement_ids)))  # each id once
        if not wanted:
            return []
        if self.conn.dialect.name == "postgresql":
            rows = list(self.conn.exec_driver_sql(_PG_ENTRIES, (wanted,)))
        else:  # at most _SQLITE_IDS parameters a statement (SQLite's limit is 32,766)
            rows = []
            for i in range(0, len(wanted), _SQLITE_IDS):
                part = wanted[i : i + _SQLITE_IDS]
                rows += self.conn.exec_driver_sql(_sqlite_entries_sql(len(part)), tuple(part))
        return [(bytes(sid), int(idx), str(received)) for sid, idx, received in rows]

    def states(self, package_ids: Iterable[str]) -> dict[str, PackageState]:
        """The cached states of those of these packages that have one."""
        ids = list(dict.fromkeys(package_ids))
        if not ids:
            return {}
        if self.conn.dialect.name == "postgresql":
            rows = self.conn.exec_driver_sql(_PG_STATES, (ids,))
        else:
            rows = self.conn.exec_driver_sql(_SQLITE_STATES + sqlite_marks(len(ids)), tuple(ids))
        return {str(pid): state_from_json(state) for pid, state in rows}

    def exam_policies(self, exam_ids: Sequence[str] | None = None) -> dict[str, ExamPolicy]:
        """The exams' policies in force (all, or those of ``exam_ids``), by exam id."""
        return load_exam_policies(self.conn, exam_ids)

    def add_entries(self, rows: NewEntries) -> None:
        """Insert an append's rows. Those written for every event (entries, package links,
        nodes) go to the driver as tuples in the driver's own SQL: no SQLAlchemy processing
        (or garbage-collected dicts) per row."""
        if self.conn.dialect.name == "postgresql":
            _copy_rows(
                self.conn,
                (_COPY_ENTRIES, rows.entries),
                (_COPY_LINKS, rows.links),
                (_COPY_NODES, rows.nodes),
            )
        else:
            sql = partial(driver_sql, self.conn)
            for template, many in (
                (_INSERT_ENTRIES, rows.entries),
                (_INSERT_LINKS, rows.links),
                (_INSERT_NODES, rows.nodes),
            ):
                if many:
                    self.conn.exec_driver_sql(sql(template), list(many))
        if rows.findings:
            self.conn.execute(_NEW_FINDINGS, list(rows.findings))

    def save_states(
        self, touched: Mapping[str, PackageState], last_idx: int, present: set[str]
    ) -> None:
        """Cache ``touched``: a new row for a package not ``present``, an update otherwise."""
        new_rows = [
            {"package_id": pid, "state": state_to_json(s), "last_idx": last_idx}
            for pid, s in touched.items()
            if pid not in present
        ]
        if new_rows:
            self.conn.execute(_NEW_STATES, new_rows)
        changed = [
            (state_to_json(s), last_idx, pid) for pid, s in touched.items() if pid in present
        ]
        if not changed:
            return
        if self.conn.dialect.name == "postgresql":  # one statement, the rows as three arrays
            states, indices, pids = (list(column) for column in zip(*changed, strict=True))
            self.conn.exec_driver_sql(_PG_UPDATE_STATES, (states, indices, pids))
        else:  # one row per event: the driver's own SQL, as add_entries
            self.conn.exec_driver_sql(driver_sql(self.conn, _UPDATE_STATES), changed)

    def replace_exam_policies(self, policies: Mapping[str, Mapping[str, Any]]) -> None:
        """The policy rows (exam id, index, body) in force now, replacing those held."""
        self.conn.execute(delete(EXAM).where(EXAM.c.exam_id.in_(list(policies))))
        self.conn.execute(insert(EXAM), [dict(row) for row in policies.values()])

    def set_size(self, size: int) -> None:
        self.conn.execute(_SET_SIZE, {"size": size})

    def signed_at_size(self, size: int) -> tuple[bytes, str] | None:
        """(root, note) of the checkpoint signed for ``size``, if one was."""
        row = self.conn.execute(_SIGNED_AT, {"size": size}).first()
        return None if row is None else (bytes(row.root), str(row.note))

    def add_checkpoint(self, size: int, root: bytes, note: str, signed_at: str) -> None:
        self.conn.execute(
            _NEW_CHECKPOINT, {"size": size, "root": root, "note": note, "signed_at": signed_at}
        )

    # -- the tree ------------------------------------------------------------------------

    def nodes(self, wanted: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        got, _ = self.nodes_and_size(list(wanted), with_size=False)
        return got

    def nodes_from_level(self, level: int, limit: int) -> dict[tuple[int, int], bytes]:
        """Every stored node at ``level`` and above (the tree's top), at most ``limit``."""
        rows = self.conn.execute(
            select(NODE.c.level, NODE.c.idx, NODE.c.hash)
            .where(NODE.c.level >= level)
            .order_by(NODE.c.level.desc(), NODE.c.idx)
            .limit(limit)
        )
        return {(r.level, r.idx): bytes(r.hash) for r in rows}

    def nodes_and_size(
        self, wanted: list[tuple[int, int]], *, with_size: bool
    ) -> tuple[dict[tuple[int, int], bytes], int]:
        """The stored nodes ``wanted`` (and, ``with_size``, the log's size; else -1), in one
        statement the driver runs as it is (no per-call SQL compilation). A node missing is a
        ``LogStateError``."""
        got, size, _ = self.proof_reads(wanted, with_size=with_size)
        return got, size

    def proof_reads(
        self, wanted: list[tuple[int, int]], *, with_size: bool, roots: Sequence[int] = ()
    ) -> tuple[dict[tuple[int, int], bytes], int, dict[int, bytes]]:
        """``nodes_and_size``, and the roots the log signed for the sizes ``roots`` (at most
        two; a size it signed none for is absent), in the same statement."""
        if not wanted and not with_size and not roots:
            return {}, -1, {}
        dialect = self.conn.dialect.name
        tail = (_SIZE if with_size else "") + (_ROOTS[(dialect, len(roots))] if roots else "")
        params: tuple[Any, ...]
        if dialect == "postgresql":
            sql = _PG_NODES + tail
            params = ([w[0] for w in wanted], [w[1] for w in wanted], *roots)
        elif wanted:
            sql = _sqlite_nodes_sql(len(wanted)) + tail
            params = (*(x for w in wanted for x in w), *roots)
        else:
            sql, params = tail.removeprefix(" UNION ALL "), tuple(roots)
        got: dict[tuple[int, int], bytes] = {}
        size = -1
        signed: dict[int, bytes] = {}
        for level, idx, node in self.conn.exec_driver_sql(sql, params):
            if level == -1:
                size = int(idx)
            elif level == -2:
                signed[int(idx)] = bytes(node)
            else:
                got[(level, idx)] = bytes(node)
        missing = set(wanted) - set(got)
        if missing:
            raise LogStateError(
                N_(
                    "the tree table lacks node(s) {nodes}: the head row is ahead of the tree, "
                    "or nodes were deleted"
                ),
                hint=GUARD_RECOVER,
                nodes=sorted(missing)[:3],
            )
        return got, size, signed

    # -- reads ---------------------------------------------------------------------------

    def size(self) -> int:
        return int(self.conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).scalar_one())

    def latest_checkpoint(self) -> str | None:
        query = select(CHECKPOINT.c.note).order_by(CHECKPOINT.c.size.desc()).limit(1)
        row = self.conn.execute(query).first()
        return None if row is None else str(row.note)

    def checkpoint_note(self, size: int) -> str | None:
        query = select(CHECKPOINT.c.note).where(CHECKPOINT.c.size == size)
        row = self.conn.execute(query).first()
        return None if row is None else str(row.note)

    def checkpoints(self) -> list[str]:
        """Every checkpoint note signed, by size."""
        query = select(CHECKPOINT.c.note).order_by(CHECKPOINT.c.size)
        return [str(r.note) for r in self.conn.execute(query)]

    def cosignature_lines(self, size: int) -> list[str]:
        """The witnesses' cosignature lines stored for the checkpoint of ``size``, by name."""
        rows = self.conn.execute(
            select(COSIGNATURE.c.line)
            .where(COSIGNATURE.c.size == size)
            .order_by(COSIGNATURE.c.witness, COSIGNATURE.c.key_hash)
        )
        return [str(r.line) for r in rows]

    def add_cosignature(self, size: int, sig: NewCosignature) -> CosignatureAdded:
        """Keep ``sig`` for the checkpoint of ``size``; a witness already held for that size
        (with that key) keeps its first line, returned as a duplicate."""
        where = (
            (COSIGNATURE.c.size == size)
            & (COSIGNATURE.c.witness == sig.witness)
            & (COSIGNATURE.c.key_hash == sig.key_hash)
        )
        held = select(COSIGNATURE.c.line, COSIGNATURE.c.cosigned_at).where(where)
        row = self.conn.execute(held).first()
        if row is not None:
            return CosignatureAdded(size, sig.witness, str(row.line), int(row.cosigned_at), True)
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    insert(COSIGNATURE).values(
                        size=size,
                        witness=sig.witness,
                        key_hash=sig.key_hash,
                        cosigned_at=sig.cosigned_at,
                        line=sig.line,
                        added_at=sig.added_at,
                    )
                )
        except IntegrityError:  # another request stored this witness's line first
            first = self.conn.execute(held).one()
            return CosignatureAdded(
                size, sig.witness, str(first.line), int(first.cosigned_at), True
            )
        return CosignatureAdded(size, sig.witness, sig.line, sig.cosigned_at, False)

    def leaf(self, index: int) -> bytes | None:
        """The leaf bytes of entry ``index`` as hashed into the tree (``None``: no entry)."""
        query = select(ENTRY.c.envelope, ENTRY.c.received_at).where(ENTRY.c.idx == index)
        row = self.conn.execute(query).first()
        return None if row is None else leaf_of(row.envelope, row.received_at)

    def leaves(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """(index, leaf bytes) of the entries from ``start`` up to ``end`` (excluded)."""
        rows = self.conn.execute(
            select(ENTRY.c.idx, ENTRY.c.envelope, ENTRY.c.received_at)
            .where(ENTRY.c.idx >= start, ENTRY.c.idx < end)
            .order_by(ENTRY.c.idx)
        ).all()
        return [(int(r.idx), leaf_of(r.envelope, r.received_at)) for r in rows]

    def package_state(self, package_id: str) -> PackageState | None:
        query = select(STATE.c.state).where(STATE.c.package_id == package_id)
        row = self.conn.execute(query).first()
        return None if row is None else state_from_json(row.state)

    def package_history(self, package_id: str) -> list[int]:
        """The indexes of the entries naming ``package_id``, in order."""
        query = (
            select(PKG_EVENT.c.idx)
            .where(PKG_EVENT.c.package_id == package_id)
            .order_by(PKG_EVENT.c.idx)
        )
        return [int(r.idx) for r in self.conn.execute(query)]

    def findings(self, at: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """Every finding, or (``at``) those of the entries at these log indices (asked 500
        at a time: a statement's parameters are bounded), in the order they were found."""
        query = select(FINDING).order_by(FINDING.c.id)
        if at is None:
            return [dict(r) for r in self.conn.execute(query).mappings().all()]
        wanted = sorted(set(at))
        rows = [
            dict(r)
            for n in range(0, len(wanted), 500)
            for r in self.conn.execute(query.where(FINDING.c.idx.in_(wanted[n : n + 500])))
            .mappings()
            .all()
        ]
        return sorted(rows, key=lambda r: int(r["id"]))


def load_exam_policies(
    conn: Connection, exam_ids: Sequence[str] | None = None
) -> dict[str, ExamPolicy]:
    """The exams' policies in force on the log (all, or those of ``exam_ids``), by exam id."""
    query = select(EXAM.c.exam_id, EXAM.c.body)
    if exam_ids is not None:
        query = query.where(EXAM.c.exam_id.in_(list(exam_ids)))
    return {row.exam_id: exam_policy_from_body(json.loads(row.body)) for row in conn.execute(query)}


def appending(engine: Engine, work: Callable[[LogStore], _T]) -> _T:
    """Run ``work`` in one transaction and commit it. Appends are serialised and checked
    first: a write the database still refuses (full disk, a constraint or trigger the log did
    not expect) is a storage fault, and the whole transaction is rolled back."""
    try:
        with engine.begin() as conn:
            return work(LogStore(conn))
    except (OperationalError, IntegrityError) as e:
        if isinstance(e, IntegrityError) and any(
            table in str(e.orig) for table in ("log_entry", "tree_node", "checkpoint")
        ):  # under the append lock only a damaged head collides with the log's own rows
            raise LogStateError(
                N_(
                    "the log's tables refuse the append: an entry, node or checkpoint "
                    "already sits beyond the head row's size (the head row is behind)"
                ),
                hint=GUARD_RECOVER,
            ) from e
        raise StorageError(N_("the log database refused the append: {orig}"), orig=e.orig) from e


def keeping_cosignatures(engine: Engine, work: Callable[[LogStore], _T]) -> _T:
    """Run ``work`` (checks, then cosignatures kept) in one transaction; a write the database
    refuses is a ``StorageError``."""
    try:
        with engine.begin() as conn:
            return work(LogStore(conn))
    except OperationalError as e:
        raise StorageError(
            N_("the log database refused the cosignature: {orig}"), orig=e.orig
        ) from e


@contextmanager
def reading(engine: Engine) -> Iterator[LogStore]:
    """A repository for reads on a read-only connection of its own (no write lock)."""
    with engine.connect().execution_options(**read_options(engine)) as conn:
        yield LogStore(conn)


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only snapshot for every read of a check while other writers append: a
    repeatable-read transaction on PostgreSQL; SQLite's read transaction already is one."""
    options: dict[str, object] = dict(read_options(engine))
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    with engine.connect().execution_options(**options) as conn:
        yield conn
