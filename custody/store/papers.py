"""The papers' storage (an edge): the paper tables in, domain values out, and back.

Rules:
- One style: SQLAlchemy Core over the tables of ``paper_tables.py``; no ORM session. The
  papers service (``custody/paper_service.py``) holds no SQL and imports no database library:
  it asks a ``PaperRepository`` for values and hands it values to store.
- A repository works on one connection. Writes run inside the caller's transaction: the
  custody log's append runs ``alongside(...)`` in its own, so the act on the log and the
  paper's rows commit together or not at all; ``reading`` and ``writing`` open a connection
  of their own for reads, and for the one write done outside an append (forgetting erased
  keys).
- A row the database refuses inside an ``alongside`` write is a ``StorageError`` naming what
  was being stored; a fault of the database itself is already its storage error
  (``store/faults.py``).
- A stored status, role or slot this version does not know is a ``FormatError``, not a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import SQLModel

from crypto.encoding import format_time
from custody.errors import N_, FormatError, StorageError
from custody.papers import PaperRole, PaperStatus, Slot
from custody.store import paper_tables as _paper_tables  # noqa: F401  (registers the tables)
from custody.store.db import READ_ONLY

PAPER: Table = SQLModel.metadata.tables["paper"]
KEY: Table = SQLModel.metadata.tables["paper_key"]
ACT: Table = SQLModel.metadata.tables["paper_act"]
ERASE: Table = SQLModel.metadata.tables["paper_erase"]
INCIDENT: Table = SQLModel.metadata.tables["paper_incident"]

KEY_TABLE = "paper_key"  # the table whose ``sealed`` column destruction must erase
KEY_BLOB_COLUMN = "sealed"

CHUNK = 500  # refs per IN (...) list


@dataclass(frozen=True)
class StoredPaper:
    """One stored paper version: the columns for finding it, and its signed proposal as
    received (whoever uses it verifies it again)."""

    ref: str
    paper_id: str
    version: int
    exam: str
    position: str
    role: PaperRole
    backup_of: str | None
    classification: str
    status: PaperStatus
    commitment: str
    proposed_at: str
    proposal: bytes


@dataclass(frozen=True)
class SealedKey:
    """One sealed share of a paper version's key."""

    slot: Slot
    subject: str
    sealed: bytes


@dataclass(frozen=True)
class StoredAct:
    """An act's row: its kind, time (RFC 3339, as stored) and signed envelope."""

    kind: str
    at: str
    envelope: bytes


@dataclass(frozen=True)
class PendingErase:
    """A destroyed sealed key whose erase from the database is not yet proven (no key
    material: the SHA-256 the proposal publishes and the locator, as hex)."""

    id: int
    paper_ref: str
    slot: str
    subject: str
    sealed_sha256: str
    locator: str


@dataclass(frozen=True)
class PaperSummary:
    """A paper version as listed: its columns and how many sealed keys it still holds."""

    ref: str
    paper_id: str
    version: int
    exam: str
    position: str
    role: str
    backup_of: str | None
    classification: str
    status: str
    commitment: str
    keys_held: int


@dataclass(frozen=True)
class PaperIncidentRecord:
    """An incident a paper act raised (break-glass), as stored for the incident desk."""

    id: int
    paper_ref: str
    kind: str
    at: str
    act_id: int
    act_sha256: str
    summary: str
    acknowledged: bool


def _enum(kind: Any, value: str, what: str) -> Any:
    try:
        return kind(value)
    except ValueError as e:
        raise FormatError(
            N_("{what} holds {value!r}, which this version does not know"), what=what, value=value
        ) from e


def _paper(row: Any) -> StoredPaper:
    what = f"paper row {row.ref}"
    return StoredPaper(
        ref=row.ref,
        paper_id=row.paper_id,
        version=row.version,
        exam=row.exam,
        position=row.position,
        role=_enum(PaperRole, row.role, f"the role of {what}"),
        backup_of=row.backup_of,
        classification=row.classification,
        status=_enum(PaperStatus, row.status, f"the status of {what}"),
        commitment=row.commitment,
        proposed_at=row.proposed_at,
        proposal=bytes(row.proposal),
    )


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield list(items[i : i + CHUNK])


class PaperRepository:
    """The paper tables, read and written on one connection (inside its transaction)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- reads ---------------------------------------------------------------------------

    def versions(self, paper_id: str) -> list[StoredPaper]:
        """Every stored version of ``paper_id``, oldest first."""
        rows = self.conn.execute(
            select(PAPER).where(PAPER.c.paper_id == paper_id).order_by(PAPER.c.version)
        )
        return [_paper(r) for r in rows]

    def other_main(self, exam: str, position: str, paper_id: str) -> StoredPaper | None:
        """A main paper of ``exam`` at ``position`` with another paper id than ``paper_id``."""
        row = self.conn.execute(
            select(PAPER)
            .where(
                PAPER.c.exam == exam,
                PAPER.c.position == position,
                PAPER.c.role == PaperRole.MAIN.value,
                PAPER.c.paper_id != paper_id,
            )
            .order_by(PAPER.c.ref)
            .limit(1)
        ).first()
        return None if row is None else _paper(row)

    def keys(self, ref: str) -> list[SealedKey]:
        rows = self.conn.execute(
            select(KEY.c.slot, KEY.c.subject, KEY.c.sealed)
            .where(KEY.c.paper_ref == ref)
            .order_by(KEY.c.id)
        )
        return [
            SealedKey(_enum(Slot, r.slot, f"a sealed key row of {ref}"), r.subject, bytes(r.sealed))
            for r in rows
        ]

    def act_ids(self, ref: str, envelope: bytes) -> list[int]:
        """The ids of the act rows of ``ref`` holding exactly ``envelope``."""
        query = (
            select(ACT.c.id)
            .where(ACT.c.paper_ref == ref, ACT.c.envelope == envelope)
            .order_by(ACT.c.id)
        )
        return [int(i) for i in self.conn.execute(query).scalars()]

    def acts_on(self, ref: str) -> list[StoredAct]:
        """Every act row of one version, in the order stored."""
        rows = self.conn.execute(
            select(ACT.c.kind, ACT.c.at, ACT.c.envelope)
            .where(ACT.c.paper_ref == ref)
            .order_by(ACT.c.id)
        )
        return [StoredAct(r.kind, r.at, bytes(r.envelope)) for r in rows]

    def acts(self, refs: Sequence[str], kind: str) -> list[bytes]:
        """The envelopes of the ``kind`` acts of these versions, in the order stored."""
        found: list[tuple[int, bytes]] = []
        for part in _chunks(refs):
            query = select(ACT.c.id, ACT.c.envelope).where(
                ACT.c.paper_ref.in_(part), ACT.c.kind == kind
            )
            found += [(int(r.id), bytes(r.envelope)) for r in self.conn.execute(query)]
        return [env for _, env in sorted(found)]

    def summaries(self, exam: str | None = None) -> list[PaperSummary]:
        """Every paper version (of ``exam``, if given) by exam and ref, with its keys held."""
        held = (
            select(func.count(KEY.c.id))
            .where(KEY.c.paper_ref == PAPER.c.ref)
            .scalar_subquery()
            .label("keys_held")
        )
        query = select(PAPER, held).order_by(PAPER.c.exam, PAPER.c.ref)
        if exam is not None:
            query = query.where(PAPER.c.exam == exam)
        return [
            PaperSummary(
                r.ref,
                r.paper_id,
                r.version,
                r.exam,
                r.position,
                r.role,
                r.backup_of,
                r.classification,
                r.status,
                r.commitment,
                int(r.keys_held),
            )
            for r in self.conn.execute(query)
        ]

    def pending_erase(self, refs: Sequence[str]) -> list[PendingErase]:
        out: list[PendingErase] = []
        for part in _chunks(refs):
            query = select(ERASE).where(ERASE.c.paper_ref.in_(part)).order_by(ERASE.c.id)
            out += [
                PendingErase(r.id, r.paper_ref, r.slot, r.subject, r.sealed_sha256, r.locator)
                for r in self.conn.execute(query)
            ]
        return sorted(out, key=lambda p: p.id)

    def incidents(self) -> list[PaperIncidentRecord]:
        rows = self.conn.execute(select(INCIDENT).order_by(INCIDENT.c.id))
        return [
            PaperIncidentRecord(
                r.id,
                r.paper_ref,
                r.kind,
                r.at,
                r.act_id,
                r.act_sha256,
                r.summary,
                bool(r.acknowledged),
            )
            for r in rows
        ]

    # -- writes (inside the caller's transaction) ----------------------------------------

    def add_version(self, paper: StoredPaper, keys: Iterable[SealedKey]) -> None:
        """Store a new version of a paper with its sealed keys; every older version of the
        same paper id becomes superseded."""
        self.conn.execute(
            update(PAPER)
            .where(PAPER.c.paper_id == paper.paper_id)
            .values(status=PaperStatus.SUPERSEDED.value)
        )
        columns = {**asdict(paper), "role": paper.role.value, "status": paper.status.value}
        self.conn.execute(insert(PAPER).values(**columns))
        rows = [
            {"paper_ref": paper.ref, "slot": k.slot.value, "subject": k.subject, "sealed": k.sealed}
            for k in keys
        ]
        if rows:
            self.conn.execute(insert(KEY), rows)

    def set_status(self, ref: str, status: PaperStatus) -> None:
        done = self.conn.execute(
            update(PAPER).where(PAPER.c.ref == ref).values(status=status.value)
        )
        if done.rowcount != 1:
            raise StorageError(N_("paper {ref} is not stored; its status was not changed"), ref=ref)

    def add_act(
        self, ref: str, kind: str, at: datetime, envelope: bytes, *, incident: bool = False
    ) -> int:
        """Store an act's row (an index: the act itself is on the custody log); its id."""
        result = self.conn.execute(
            insert(ACT).values(
                paper_ref=ref,
                kind=kind,
                at=format_time(at),
                incident=incident,
                envelope=envelope,
            )
        )
        key = result.inserted_primary_key
        if key is None or key[0] is None:  # pragma: no cover - both engines return it
            raise StorageError(
                N_("the {act} act of {ref} was stored without an id"), act=kind, ref=ref
            )
        return int(key[0])

    def require_secure_delete(self) -> None:
        """SQLite: this connection overwrites deleted rows and freed pages with zeros, or
        nothing is deleted (``StorageError``). PostgreSQL: nothing to ask (VACUUM erases)."""
        if self.conn.dialect.name != "sqlite":
            return
        on = self.conn.exec_driver_sql("PRAGMA secure_delete=ON").scalar()
        if on != 1:
            raise StorageError(
                N_(
                    "this SQLite cannot overwrite deleted rows (secure_delete is off); "
                    "nothing was destroyed"
                )
            )

    def delete_keys(self, ref: str) -> None:
        self.conn.execute(delete(KEY).where(KEY.c.paper_ref == ref))
        version = self.conn.dialect.server_version_info or ()
        if self.conn.dialect.name == "postgresql" and version >= (15,):
            # A backend keeps its table counters up to 10 s before it shares them; VACUUM's
            # own count of what is left would then be raised later by these deletions, and
            # the erase check (or anyone reading pg_stat) would see rows that are gone.
            self.conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")

    def add_erase(
        self, ref: str, slot: str, subject: str, sealed_sha256: str, locator: str
    ) -> None:
        self.conn.execute(
            insert(ERASE).values(
                paper_ref=ref,
                slot=slot,
                subject=subject,
                sealed_sha256=sealed_sha256,
                locator=locator,
            )
        )

    def forget_erased(self, refs: Sequence[str]) -> None:
        """Drop the pending-erase rows of these versions (their erase is proven)."""
        for part in _chunks(refs):
            self.conn.execute(delete(ERASE).where(ERASE.c.paper_ref.in_(part)))


@contextmanager
def reading(engine: Engine) -> Iterator[PaperRepository]:
    """A repository for reads on a connection of its own (one snapshot on SQLite, taking no
    write lock); nothing it does is committed."""
    with engine.connect().execution_options(**READ_ONLY) as conn:
        yield PaperRepository(conn)


@contextmanager
def writing(engine: Engine) -> Iterator[PaperRepository]:
    """A repository on a transaction of its own, committed when the block ends."""
    with engine.begin() as conn:
        yield PaperRepository(conn)


def alongside(work: Callable[[PaperRepository], None], what: str) -> Callable[[Connection], None]:
    """``work`` as a write the custody log runs inside its append transaction (its
    ``alongside``): both commit or neither. A row the database refuses is a
    ``StorageError`` naming ``what`` was being stored."""

    def write(conn: Connection) -> None:
        try:
            work(PaperRepository(conn))
        except (IntegrityError, OperationalError) as e:
            raise StorageError(
                N_("the database refused the rows of {what}: {reason}"),
                what=what,
                reason=str(e.orig),
            ) from e

    return write
