"""The custody log service: verify, judge and append events; checkpoints, proofs, receipts.

Rules:
- Signatures are verified before the log's lock is taken (the costly part runs in parallel);
  the chain and state-machine rules run under the lock, against the latest states.
- Appends are serialised by a row lock on ``log_head`` (PostgreSQL ``FOR UPDATE``; SQLite
  ``BEGIN IMMEDIATE``): one order, no gap, no duplicate index, across processes.
- An event is acknowledged only after its transaction commits (durable).
- Re-submitting a statement already in the log returns its original receipt and adds nothing.
- Every append signs a checkpoint for the new size and stores it in the same transaction; the
  log never signs a second, different checkpoint for a size it already signed.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from crypto import merkle
from crypto.dsse import Envelope, SignatureCheck, verify_signatures
from crypto.encoding import format_time
from crypto.note import (
    Checkpoint,
    NoteSignature,
    NoteVerifier,
    cosignature_timestamp,
    parse_checkpoint,
    sign_checkpoint,
)
from crypto.signing import SigningKey
from custody.errors import (
    N_,
    ChainError,
    ConflictError,
    CustodyError,
    FormatError,
    LogStateError,
    NotFoundError,
    StorageError,
    UsageError,
)
from custody.events import (
    EVENT_TYPE,
    Event,
    Kind,
    leaf_bytes_at,
    parse_event,
    parse_leaf,
    statement_id,
)
from custody.exams import ExamPolicy, exam_policy_body, exam_policy_from_body
from custody.parallel import SignaturePool, signature_check
from custody.rules import DEFAULT_CLOCK, ClockRules, Finding, Outcome, PackageState, apply_event
from custody.store.db import read_options
from custody.store.guard import RECOVER as GUARD_RECOVER
from custody.store.guard import SignedHeadFile, StartReport, check_at_start, check_before_signing
from custody.store.log_tables import (
    CheckpointRow,
    CosignatureRow,
    ExamPolicyRow,
    FindingRow,
    LogEntry,
    LogHead,
    PackageEvent,
    PackageStateRow,
    TreeNode,
)
from custody.store.states import state_from_json, state_to_json
from custody.witnesses import WitnessPolicy, open_cosignatures, split_cosigned
from keys.trust import TrustStore

PARALLEL_BATCH = 64
# Stored nodes by (level, idx), as the driver's own SQL: one fixed statement on PostgreSQL (two
# array parameters, however many nodes), and on SQLite one OR of primary-key lookups per node
# count (SQLite answers it from the index; row-value IN makes it scan). With ``_SIZE`` the log's
# size comes back in the same round trip, as a row of level -1.
_PG_NODES = (
    "SELECT t.level, t.idx, t.hash FROM tree_node t "
    "JOIN unnest(%s::integer[], %s::integer[]) AS w(level, idx) "
    "ON t.level = w.level AND t.idx = w.idx"
)
_SIZE = " UNION ALL SELECT -1, size, NULL FROM log_head WHERE id = 1"
_SQLITE_NODES: dict[int, str] = {}


def _sqlite_nodes_sql(count: int) -> str:
    sql = _SQLITE_NODES.get(count)
    if sql is None:
        where = " OR ".join(["(level = ? AND idx = ?)"] * count)
        sql = _SQLITE_NODES[count] = f"SELECT level, idx, hash FROM tree_node WHERE {where}"  # noqa: S608
    return sql


HEAD = LogHead.__table__  # type: ignore[attr-defined]
ENTRY = LogEntry.__table__  # type: ignore[attr-defined]
PKG_EVENT = PackageEvent.__table__  # type: ignore[attr-defined]
NODE = TreeNode.__table__  # type: ignore[attr-defined]
CHECKPOINT = CheckpointRow.__table__  # type: ignore[attr-defined]
STATE = PackageStateRow.__table__  # type: ignore[attr-defined]
FINDING = FindingRow.__table__  # type: ignore[attr-defined]
COSIGNATURE = CosignatureRow.__table__  # type: ignore[attr-defined]
EXAM = ExamPolicyRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Receipt:
    """What both parties of an event keep: where it is in the log and the signed tree head."""

    index: int
    statement_id: str
    checkpoint: str
    findings: tuple[Finding, ...] = ()
    duplicate: bool = False
    received: str = ""  # the log's receive time (part of the leaf)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "statement_id": self.statement_id,
            "received": self.received,
            "checkpoint": self.checkpoint,
            "findings": [
                {"kind": f.kind, "package": f.package_id, "detail": f.detail} for f in self.findings
            ],
            "duplicate": self.duplicate,
        }


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
class Prepared:
    """An envelope parsed and signature-checked outside the lock."""

    envelope: Envelope
    event: Event
    sigcheck: SignatureCheck


@dataclass(frozen=True)
class Rejected:
    """A refused submission: its position in the batch, the refusal, and what was refused."""

    envelope_index: int
    error: CustodyError
    event: Event | None = None
    envelope: Envelope | None = None


@dataclass
class AppendResult:
    receipts: list[Receipt] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    system: list[Receipt] = field(default_factory=list)
    signed: str = ""  # the checkpoint this append signed ("" if it signed none)


@dataclass
class _Batch:
    """Work in progress inside one append transaction."""

    size: int
    received: str
    now: datetime
    states: dict[str, PackageState | None] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)
    existing_received: dict[str, str] = field(default_factory=dict)
    accepted: list[tuple[int, Prepared, Outcome]] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    touched: dict[str, PackageState] = field(default_factory=dict)
    system_ids: set[str] = field(default_factory=set)
    exams: dict[str, ExamPolicy] | None = None  # loaded when a statement needs them
    exam_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)  # packages with a row in package_state


@dataclass(frozen=True)
class AppendView:
    """What an observer sees inside the append transaction (it may write through ``conn``)."""

    conn: Connection
    now: datetime
    trust: TrustStore
    accepted: tuple[tuple[int, Event, Outcome], ...]
    rejected: tuple[Rejected, ...]
    states: Mapping[str, PackageState | None]


# The caller's own writes, made in the append's transaction (see ``CustodyLog.submit``).
Alongside = Callable[[Connection], None]


class LogGate(Protocol):
    def gate(
        self, conn: Connection, prepared: list[tuple[int, Prepared]], rejected: list[Rejected]
    ) -> list[tuple[int, Prepared]]:
        """Under the append lock, before the rules: keep what may proceed, reject the rest
        (appending each refusal to ``rejected``), e.g. statements by a blocked key."""
        ...


class LogObserver(Protocol):
    def observe(self, view: AppendView) -> list[Envelope]:
        """React to an append; return system statements to append in the same transaction."""
        ...


def prepare(env: Envelope, trust: TrustStore) -> Prepared:
    """Parse the event and verify its signatures (pure CPU; safe to run in parallel)."""
    if env.payload_type != EVENT_TYPE:
        raise FormatError(
            N_("not a custody event: payload type {payload_type!r}"), payload_type=env.payload_type
        )
    event = parse_event(env.payload)
    sigcheck = verify_signatures(env, trust.signing_keys)
    return Prepared(env, event, sigcheck)


def ensure_head(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).first() is None:
            with contextlib.suppress(IntegrityError):  # another process created it first
                conn.execute(insert(HEAD).values(id=1, size=0))


class CustodyLog:
    """One authority's log over one database (SQLite or PostgreSQL, same code)."""

    def __init__(
        self,
        engine: Engine,
        trust: TrustStore,
        log_key: SigningKey | None,
        observers: Sequence[LogObserver] = (),
        workers: int = 1,
        gates: Sequence[LogGate] = (),
        clock_rules: ClockRules = DEFAULT_CLOCK,
    ) -> None:
        self.engine = engine
        self.clock_rules = clock_rules
        self.observers = list(observers)
        self.gates = list(gates)
        # Signature checks of large batches run on this many processes (1 = in-process).
        self.workers = workers
        self._pool: SignaturePool | None = None
        self.trust = trust
        self.log_key = log_key
        self.origin = trust.authority.log_origin
        if log_key is not None and log_key.key_id != trust.authority.log_key.key_id:
            raise ConflictError(N_("this is not the authority's log key"))
        # The last signed checkpoint kept outside the database (``attach_signed_head``).
        self.signed_head: SignedHeadFile | None = None
        # Package states as this writer last committed them, valid while the log's size is
        # ``_states_at`` (another writer's append changes the size and empties the cache).
        self._states: dict[str, PackageState] = {}
        self._states_at = -1
        self._states_lock = threading.Lock()
        ensure_head(engine)

    def attach_signed_head(self, head_file: SignedHeadFile) -> StartReport:
        """Check the stored log against itself and ``head_file`` (``LogStateError`` if they
        disagree), then keep every checkpoint this log signs in that file too."""
        report = self.check_state(head_file)
        head_file.record_epoch(report.epoch)  # this host now follows this primary's epoch
        if report.size == 0:
            head_file.start_empty()
        self.signed_head = head_file
        return report

    def check_state(
        self, head_file: SignedHeadFile | None, *, full: bool = False, light: bool = False
    ) -> StartReport:
        """The start check (``custody.store.guard.check_at_start``): the newest leaves are
        re-hashed, or with ``full`` every entry and every stored node; ``light`` reads only
        the head, the last checkpoint and the frontier (readiness)."""
        # One snapshot for every read of the check (other writers append meanwhile): a
        # repeatable-read transaction on PostgreSQL; SQLite's read transaction already is one.
        options: dict[str, object] = dict(read_options(self.engine))
        if self.engine.dialect.name == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        with self.engine.connect().execution_options(**options) as conn:
            verifier = NoteVerifier(self.origin, self.trust.authority.log_key)
            if full:
                return check_at_start(conn, verifier, self.origin, head_file, tail=None)
            return check_at_start(conn, verifier, self.origin, head_file, light=light)

    def set_trust(self, trust: TrustStore) -> None:
        """After an enrolment or a revocation: judge signers against the new store."""
        if trust.authority.id != self.trust.authority.id:
            raise ConflictError(N_("the new trust store is another authority's"))
        self.trust = trust
        self.close()  # the signature workers hold the old keys

    # -- appending -----------------------------------------------------------------------

    def submit(
        self, env: Envelope, *, now: datetime, alongside: Alongside | None = None
    ) -> Receipt:
        """Append one event; raises the refusal if it is not accepted.

        ``alongside`` writes the caller's own rows (a sealed package's label, a paper's sealed
        keys) through the append's connection, only if the event is newly accepted: the event
        and those rows are committed together, or neither is (a failure there rolls back the
        append and is raised). With several envelopes (``submit_many``) it is called only if
        every one is accepted; if some are refused, the accepted ones are rolled back too."""
        result = self.submit_many([env], now=now, alongside=alongside)
        if result.rejected:
            raise result.rejected[0].error
        return result.receipts[0]

    def submit_many(
        self,
        envelopes: Sequence[Envelope],
        *,
        now: datetime,
        alongside: Alongside | None = None,
    ) -> AppendResult:
        """Append a batch in one transaction; each envelope is accepted or rejected alone.

        Observers (the incident system) see every accepted and rejected event inside the same
        transaction, write their own rows there, and may return system statements (incident,
        freeze) that are appended in that transaction too: nothing is acknowledged, and no
        incident exists, unless both are durable together.
        """
        prepared, early = self._prepare_all(envelopes)
        return self.append_prepared(prepared, early, now=now, alongside=alongside)

    def append_prepared(
        self,
        prepared: list[tuple[int, Prepared]],
        early: list[Rejected],
        *,
        now: datetime,
        alongside: Alongside | None = None,
    ) -> AppendResult:
        """``submit_many`` after its signature checks: envelopes already parsed and verified
        (``prepare``, by the caller's threads or workers) and those refused on the way, by
        their position in the batch. The rules, the observers and the commit run here."""
        result = AppendResult()
        result.rejected.extend(early)
        if not prepared and not (early and self.observers):
            return result
        self._committed(lambda conn: self._append_locked(conn, prepared, result, now, alongside))
        self._keep_signed(result)
        return result

    def append_system_work(self, now: datetime) -> AppendResult:
        """Run the observers alone under the append lock (a sweep, a person's act on an
        incident): whatever statements they return are appended in that one transaction."""
        result = AppendResult()
        self._committed(lambda conn: self._append_locked(conn, [], result, now))
        self._keep_signed(result)
        return result

    def _committed(self, append: Callable[[Connection], _Batch]) -> None:
        """Run ``append(conn)`` in one transaction; once it is durable, keep the package states
        it wrote (only if the cache was exactly at the size this append started from)."""
        try:
            with self.engine.begin() as conn:
                batch = append(conn)
        except (OperationalError, IntegrityError) as e:
            # Appends are serialised and checked first: a write the database still refuses
            # (full disk, a constraint or trigger the log did not expect) is a storage fault,
            # and the whole transaction was rolled back.
            self._forget_states()
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
            raise StorageError(
                N_("the log database refused the append: {orig}"), orig=e.orig
            ) from e
        except BaseException:
            self._forget_states()
            raise
        if not batch.accepted:
            return
        with self._states_lock:
            if self._states_at == batch.size:
                self._states.update(batch.touched)
                self._states_at = batch.size + len(batch.accepted)
            else:
                self._states.clear()
                self._states_at = -1

    def _forget_states(self) -> None:
        with self._states_lock:
            self._states.clear()
            self._states_at = -1

    def _keep_signed(self, result: AppendResult) -> None:
        """After the commit, before any receipt is handed out: the new checkpoint goes to the
        file beside the log key (fsynced)."""
        if result.signed and self.signed_head is not None:
            self.signed_head.record(result.signed)

    def _prepare_all(
        self, envelopes: Sequence[Envelope]
    ) -> tuple[list[tuple[int, Prepared]], list[Rejected]]:
        prepared: list[tuple[int, Prepared]] = []
        early: list[Rejected] = []
        if self.workers > 1 and len(envelopes) >= PARALLEL_BATCH:
            if self._pool is None:
                self._pool = SignaturePool(self.trust.signing_keys, self.workers)
            answers = self._pool.signers(list(envelopes))
            # the events are parsed here while the workers verify the signatures
            events: list[Event | CustodyError] = []
            for env in envelopes:
                try:
                    if env.payload_type != EVENT_TYPE:
                        raise FormatError(
                            N_("not a custody event: payload type {payload_type!r}"),
                            payload_type=env.payload_type,
                        )
                    events.append(parse_event(env.payload))
                except CustodyError as e:
                    events.append(e)
            for i, (env, event, found) in enumerate(zip(envelopes, events, answers(), strict=True)):
                if isinstance(found, CustodyError) or isinstance(event, CustodyError):
                    error = event if isinstance(event, CustodyError) else found  # as prepare()
                    assert isinstance(error, CustodyError)
                    early.append(Rejected(i, error, None, env))
                    continue
                prepared.append((i, Prepared(env, event, signature_check(env, found))))
            return prepared, early
        for i, env in enumerate(envelopes):
            try:
                prepared.append((i, prepare(env, self.trust)))
            except CustodyError as e:
                early.append(Rejected(i, e, None, env))
        return prepared, early

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _append_locked(
        self,
        conn: Connection,
        prepared: list[tuple[int, Prepared]],
        result: AppendResult,
        now: datetime,
        alongside: Alongside | None = None,
    ) -> _Batch:
        if self.log_key is None:
            raise ConflictError(N_("this log was opened read-only (no log key)"))
        size = conn.execute(
            select(HEAD.c.size).where(HEAD.c.id == 1).with_for_update()
        ).scalar_one()
        batch = _Batch(size=size, received=format_time(now), now=now)
        with self._states_lock:
            if self._states_at != size:  # another writer appended meanwhile: start afresh
                self._states.clear()
                self._states_at = size
        self._apply(conn, prepared, batch, result)
        if alongside is not None and batch.accepted and result.rejected:
            # The caller's rows go with every statement or with none: roll the lot back.
            raise result.rejected[0].error
        if self.observers:
            view = AppendView(
                conn=conn,
                now=now,
                trust=self.trust,
                accepted=tuple((idx, p.event, o) for idx, p, o in batch.accepted),
                rejected=tuple(result.rejected),
                states=batch.states,
            )
            extra: list[tuple[int, Prepared]] = []
            for observer in self.observers:
                for env in observer.observe(view):
                    extra.append((-1, prepare(env, self.trust)))
            if extra:
                self._apply(conn, extra, batch, result, system=True)
        checkpoint_text = ""
        if batch.accepted:
            new_size = size + len(batch.accepted)
            leaves = [merkle.leaf_hash(e["envelope"]) for e in batch.entries]
            frontier = self._nodes(conn, merkle.frontier_nodes(size))
            nodes = merkle.nodes_for_batch(size, leaves, lambda lvl, i: frontier[(lvl, i)])
            conn.execute(insert(ENTRY), batch.entries)
            if batch.links:
                conn.execute(insert(PKG_EVENT), batch.links)
            conn.execute(insert(NODE), [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in nodes])
            if batch.findings:
                conn.execute(insert(FINDING), batch.findings)
            self._save_states(conn, batch.touched, size, batch.present)
            if batch.exam_rows:
                conn.execute(delete(EXAM).where(EXAM.c.exam_id.in_(list(batch.exam_rows))))
                conn.execute(insert(EXAM), list(batch.exam_rows.values()))
            conn.execute(update(HEAD).where(HEAD.c.id == 1).values(size=new_size))
            if alongside is not None and any(
                p.event.id not in batch.system_ids for _, p, _ in batch.accepted
            ):
                alongside(conn)
            fresh = {(lv, ix): h for lv, ix, h in nodes}
            root = self._root(conn, new_size, fresh=fresh)
            check_before_signing(
                conn,
                old_size=size,
                frontier=frontier,
                fresh=fresh,
                leaves=leaves,
                root=root,
                head_file=self.signed_head,
            )
            checkpoint_text = self._sign_checkpoint(conn, new_size, root, batch.received)
            result.signed = checkpoint_text
        elif batch.duplicates:
            checkpoint_text = self.latest_checkpoint(conn)
        for idx, p, outcome in batch.accepted:
            receipt = Receipt(
                idx, p.event.id, checkpoint_text, outcome.findings, received=batch.received
            )
            if p.event.id in batch.system_ids:
                result.system.append(receipt)
            else:
                result.receipts.append(receipt)
        for sid, idx in batch.duplicates:
            received = batch.existing_received.get(sid, batch.received)
            result.receipts.append(
                Receipt(idx, sid, checkpoint_text, duplicate=True, received=received)
            )
        return batch

    def _apply(
        self,
        conn: Connection,
        prepared: list[tuple[int, Prepared]],
        batch: _Batch,
        result: AppendResult,
        *,
        system: bool = False,
    ) -> None:
        if not system:
            for gate in self.gates:
                prepared = gate.gate(conn, prepared, result.rejected)
        ids = [p.event.id for _, p in prepared]
        for row in conn.execute(
            select(ENTRY.c.statement_id, ENTRY.c.idx, ENTRY.c.received_at).where(
                ENTRY.c.statement_id.in_(ids)
            )
        ):
            batch.existing[row.statement_id] = row.idx
            batch.existing_received[row.statement_id] = row.received_at
        wanted = {pid for _, p in prepared for pid in p.event.package_ids} - set(batch.states)
        batch.states.update(dict.fromkeys(wanted))
        with self._states_lock:
            if self._states_at == batch.size:
                for pid in list(wanted):
                    cached = self._states.get(pid)
                    if cached is not None:
                        batch.states[pid] = cached
                        batch.present.add(pid)
                        wanted.discard(pid)
        if wanted:
            for row in conn.execute(
                select(STATE.c.package_id, STATE.c.state).where(STATE.c.package_id.in_(wanted))
            ):
                batch.states[row.package_id] = state_from_json(row.state)
                batch.present.add(row.package_id)
        corrected = {p.event.corrects for _, p in prepared if p.event.corrects} - set(
            batch.existing
        )
        if corrected:
            for row in conn.execute(
                select(ENTRY.c.statement_id, ENTRY.c.idx).where(ENTRY.c.statement_id.in_(corrected))
            ):
                batch.existing[row.statement_id] = row.idx
        if batch.exams is None and any(
            p.event.kind in (Kind.SEAL, Kind.EXAM_POLICY, Kind.PAPER_ACT) for _, p in prepared
        ):
            batch.exams = load_exam_policies(conn)
        for i, p in prepared:
            if p.event.id in batch.existing:
                batch.duplicates.append((p.event.id, batch.existing[p.event.id]))
                continue
            try:
                if p.event.corrects and p.event.corrects not in batch.existing:
                    raise ChainError(
                        N_("the correction names statement {corrects}, which is not in the log"),
                        corrects=p.event.corrects[:16],
                    )
                outcome = apply_event(
                    p.event,
                    p.sigcheck,
                    p.envelope,
                    batch.states,
                    self.trust,
                    received=batch.now,
                    exams=batch.exams or {},
                    clock=self.clock_rules,
                )
            except CustodyError as e:
                if system:  # pragma: no cover - the system builds its statements from the states
                    raise StorageError(
                        N_("the system's own statement was refused: {error}"), error=e
                    ) from e
                result.rejected.append(Rejected(i, e, p.event, p.envelope))
                continue
            idx = batch.size + len(batch.accepted)
            batch.existing[p.event.id] = idx
            batch.accepted.append((idx, p, outcome))
            if system:
                batch.system_ids.add(p.event.id)
            batch.states.update(outcome.states)
            batch.touched.update(outcome.states)
            if outcome.exam is not None:
                assert batch.exams is not None
                batch.exams[outcome.exam.exam_id] = outcome.exam
                batch.exam_rows[outcome.exam.exam_id] = {
                    "exam_id": outcome.exam.exam_id,
                    "idx": idx,
                    "body": json.dumps(exam_policy_body(outcome.exam), sort_keys=True),
                }
            batch.entries.append(
                {
                    "idx": idx,
                    "statement_id": p.event.id,
                    "kind": p.event.kind.value,
                    "event_time": format_time(p.event.time),
                    "received_at": batch.received,
                    "envelope": leaf_bytes_at(p.envelope, batch.received),
                }
            )
            batch.links.extend({"package_id": pid, "idx": idx} for pid in p.event.package_ids)
            batch.findings.extend(
                {
                    "idx": idx,
                    "kind": f.kind,
                    "package_id": f.package_id,
                    "detail": f.detail,
                    "evidence": json.dumps(dict(f.evidence), sort_keys=True),
                }
                for f in outcome.findings
            )

    def _save_states(
        self, conn: Connection, touched: dict[str, PackageState], size: int, present: set[str]
    ) -> None:
        new_rows = [
            {"package_id": pid, "state": state_to_json(s), "last_idx": size}
            for pid, s in touched.items()
            if pid not in present
        ]
        if new_rows:
            conn.execute(insert(STATE), new_rows)
        changed = [
            {"pid": pid, "st": state_to_json(s), "li": size}
            for pid, s in touched.items()
            if pid in present
        ]
        if changed:
            conn.execute(
                update(STATE)
                .where(STATE.c.package_id == bindparam("pid"))
                .values(state=bindparam("st"), last_idx=bindparam("li")),
                changed,
            )

    def _sign_checkpoint(self, conn: Connection, size: int, root: bytes, signed_at: str) -> str:
        assert self.log_key is not None
        signed = conn.execute(
            select(CHECKPOINT.c.root, CHECKPOINT.c.note).where(CHECKPOINT.c.size == size)
        ).first()
        if signed is not None:
            if signed.root != root:  # pragma: no cover - would need a corrupted tree table
                raise StorageError(
                    N_("refusing to sign a second, different checkpoint for size {size}"), size=size
                )
            return str(signed.note)
        note = sign_checkpoint(Checkpoint(self.origin, size, root), self.origin, self.log_key)
        conn.execute(
            insert(CHECKPOINT).values(size=size, root=root, note=note, signed_at=signed_at)
        )
        return note

    # -- reading -------------------------------------------------------------------------

    def _reader(self) -> Connection:
        return self.engine.connect().execution_options(**read_options(self.engine))

    @staticmethod
    def _nodes(conn: Connection, wanted: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        got, _ = CustodyLog._fetch_nodes(conn, list(wanted), with_size=False)
        return got

    @staticmethod
    def _fetch_nodes(
        conn: Connection, wanted: list[tuple[int, int]], *, with_size: bool
    ) -> tuple[dict[tuple[int, int], bytes], int]:
        """The stored nodes ``wanted`` (and, ``with_size``, the log's size; else -1), in one
        statement the driver runs as it is (no per-call SQL compilation)."""
        if not wanted and not with_size:
            return {}, -1
        tail = _SIZE if with_size else ""
        params: tuple[Any, ...]
        if conn.dialect.name == "postgresql":
            sql = _PG_NODES + tail
            params = ([w[0] for w in wanted], [w[1] for w in wanted])
        elif wanted:
            sql = _sqlite_nodes_sql(len(wanted)) + tail
            params = tuple(x for w in wanted for x in w)
        else:
            sql, params = tail.removeprefix(" UNION ALL "), ()
        got: dict[tuple[int, int], bytes] = {}
        size = -1
        for level, idx, node in conn.exec_driver_sql(sql, params):
            if level == -1:
                size = int(idx)
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
        return got, size

    def _root(
        self, conn: Connection, size: int, fresh: dict[tuple[int, int], bytes] | None = None
    ) -> bytes:
        needed = merkle.root_nodes(size)
        have = {n: fresh[n] for n in needed if fresh and n in fresh}
        have.update(self._nodes(conn, [n for n in needed if n not in have]))
        return merkle.root_from_nodes(size, have)

    def size(self) -> int:
        with self._reader() as conn:
            return int(conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).scalar_one())

    def latest_checkpoint(self, conn: Connection | None = None) -> str:
        if conn is None:
            with self._reader() as c:
                return self.latest_checkpoint(c)
        row = conn.execute(
            select(CHECKPOINT.c.note).order_by(CHECKPOINT.c.size.desc()).limit(1)
        ).first()
        if row is None:
            raise NotFoundError(N_("the log is empty: no checkpoint signed yet"))
        return str(row.note)

    def checkpoint_note(self, size: int, conn: Connection | None = None) -> str:
        """The checkpoint the log signed for ``size`` (``NotFoundError`` if it signed none)."""
        if conn is None:
            with self._reader() as c:
                return self.checkpoint_note(size, c)
        row = conn.execute(select(CHECKPOINT.c.note).where(CHECKPOINT.c.size == size)).first()
        if row is None:
            raise NotFoundError(N_("the log signed no checkpoint of size {size}"), size=size)
        return str(row.note)

    def cosignature_lines(self, size: int, conn: Connection | None = None) -> list[str]:
        """The witnesses' cosignature lines stored for the checkpoint of ``size``, by name."""
        if conn is None:
            with self._reader() as c:
                return self.cosignature_lines(size, c)
        rows = conn.execute(
            select(COSIGNATURE.c.line)
            .where(COSIGNATURE.c.size == size)
            .order_by(COSIGNATURE.c.witness, COSIGNATURE.c.key_hash)
        )
        return [str(r.line) for r in rows]

    def cosigned_checkpoint(self, size: int | None = None) -> str:
        """The checkpoint of ``size`` (default: the latest) with the log's signature and every
        stored cosignature line after it (a C2SP note may carry several signatures)."""
        with self._reader() as conn:
            if size is None:
                note = self.latest_checkpoint(conn)
            else:
                note = self.checkpoint_note(size, conn)
            tree_size = parse_checkpoint(note.split("\n\n", 1)[0] + "\n").size
            return note + "".join(self.cosignature_lines(tree_size, conn))

    def add_cosignatures(
        self, unverified: str, policy: WitnessPolicy, *, now: datetime, size: int | None = None
    ) -> list[CosignatureAdded]:
        """Store the cosignatures a witness returned, each verified first.

        ``unverified`` is the cosigned checkpoint note, or the cosignature lines alone for the
        checkpoint of ``size`` (default: the latest). The note's text must be exactly the
        checkpoint this log signed for its size. Only witnesses of ``policy`` are accepted
        (``witnesses.open_cosignatures``); a witness already stored for that size is a
        duplicate and keeps its first line.
        """
        text, lines = split_cosigned(unverified)
        try:
            with self.engine.begin() as conn:
                if text is None:
                    note = (
                        self.latest_checkpoint(conn)
                        if size is None
                        else self.checkpoint_note(size, conn)
                    )
                    checkpoint = parse_checkpoint(note.split("\n\n", 1)[0] + "\n")
                else:
                    checkpoint = parse_checkpoint(text)
                    if checkpoint.origin != self.origin:
                        raise FormatError(
                            N_("a checkpoint of log {origin!r}, not of {origin2!r}"),
                            origin=checkpoint.origin,
                            origin2=self.origin,
                        )
                    if size is not None and size != checkpoint.size:
                        raise UsageError(
                            N_("the note is a checkpoint of size {size}, not {size2}"),
                            size=checkpoint.size,
                            size2=size,
                        )
                    stored = self.checkpoint_note(checkpoint.size, conn)
                    if not stored.startswith(text + "\n"):
                        raise ConflictError(
                            N_(
                                "the note is not the checkpoint this log signed for size "
                                "{size}: {who}"
                            ),
                            size=checkpoint.size,
                            who=checkpoint.describe(),
                        )
                verified = open_cosignatures(policy, checkpoint, lines)
                return [self._store_cosignature(conn, checkpoint.size, s, now) for s in verified]
        except OperationalError as e:
            raise StorageError(
                N_("the log database refused the cosignature: {orig}"), orig=e.orig
            ) from e

    @staticmethod
    def _store_cosignature(
        conn: Connection, size: int, sig: NoteSignature, now: datetime
    ) -> CosignatureAdded:
        key_hash = sig.key_hash.hex()
        where = (
            (COSIGNATURE.c.size == size)
            & (COSIGNATURE.c.witness == sig.name)
            & (COSIGNATURE.c.key_hash == key_hash)
        )
        held = conn.execute(select(COSIGNATURE.c.line, COSIGNATURE.c.cosigned_at).where(where))
        row = held.first()
        if row is not None:
            return CosignatureAdded(size, sig.name, str(row.line), int(row.cosigned_at), True)
        added = CosignatureAdded(size, sig.name, sig.line(), cosignature_timestamp(sig), False)
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(COSIGNATURE).values(
                        size=size,
                        witness=sig.name,
                        key_hash=key_hash,
                        cosigned_at=added.cosigned_at,
                        line=added.line,
                        added_at=format_time(now),
                    )
                )
        except IntegrityError:  # another request stored this witness's line first
            first = conn.execute(
                select(COSIGNATURE.c.line, COSIGNATURE.c.cosigned_at).where(where)
            ).one()
            return CosignatureAdded(size, sig.name, str(first.line), int(first.cosigned_at), True)
        return added

    def checkpoints(self) -> list[str]:
        with self._reader() as conn:
            return [
                str(r.note)
                for r in conn.execute(select(CHECKPOINT.c.note).order_by(CHECKPOINT.c.size))
            ]

    @staticmethod
    def _within(conn: Connection, size: int) -> None:
        """A tree size the log has not reached is the caller's mistake, not a storage fault."""
        current = int(conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).scalar_one())
        if size > current:
            raise UsageError(
                N_("tree size {size} is beyond the log's {current} entries"),
                size=size,
                current=current,
            )

    def _proof_nodes(
        self, wanted: list[tuple[int, int]], size: int
    ) -> dict[tuple[int, int], bytes]:
        """A proof's nodes and the log's size in one round trip; a size the log has not reached
        is the caller's mistake (``UsageError``), not a storage fault."""
        with self._reader() as conn:
            try:
                nodes, current = self._fetch_nodes(conn, wanted, with_size=True)
            except StorageError:
                self._within(conn, size)  # nodes missing because the size is beyond the log
                raise
        if size > current:
            raise UsageError(
                N_("tree size {size} is beyond the log's {current} entries"),
                size=size,
                current=current,
            )
        return nodes

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        wanted = merkle.inclusion_proof_nodes(index, size)
        return merkle.inclusion_proof_from_nodes(index, size, self._proof_nodes(wanted, size))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        wanted = merkle.consistency_proof_nodes(old_size, new_size)
        nodes = self._proof_nodes(wanted, new_size)
        return merkle.consistency_proof_from_nodes(old_size, new_size, nodes)

    def leaf(self, index: int) -> bytes:
        """The leaf bytes of one entry, exactly as hashed into the tree."""
        with self._reader() as conn:
            row = conn.execute(select(ENTRY.c.envelope).where(ENTRY.c.idx == index)).first()
        if row is None:
            raise NotFoundError(N_("no log entry {index}"), index=index)
        return bytes(row.envelope)

    def entry(self, index: int) -> Envelope:
        return parse_leaf(self.leaf(index)).envelope

    def entries(
        self, start: int = 0, end: int | None = None, batch: int = 5000
    ) -> Iterable[tuple[int, bytes]]:
        """Stream (index, leaf bytes) in order."""
        end = self.size() if end is None else end
        pos = start
        while pos < end:
            with self._reader() as conn:
                rows = conn.execute(
                    select(ENTRY.c.idx, ENTRY.c.envelope)
                    .where(ENTRY.c.idx >= pos, ENTRY.c.idx < min(end, pos + batch))
                    .order_by(ENTRY.c.idx)
                ).all()
            for r in rows:
                yield int(r.idx), bytes(r.envelope)
            pos += batch

    def package_state(self, package_id: str) -> PackageState:
        with self._reader() as conn:
            row = conn.execute(
                select(STATE.c.state).where(STATE.c.package_id == package_id)
            ).first()
        if row is None:
            raise NotFoundError(N_("no package {package_id!r} in the log"), package_id=package_id)
        return state_from_json(row.state)

    def exam_policy(self, exam_id: str) -> ExamPolicy:
        """The exam's policy in force on the log, or ``NotFoundError`` naming the exam."""
        with self._reader() as conn:
            policy = load_exam_policies(conn, [exam_id]).get(exam_id)
        if policy is None:
            raise NotFoundError(
                N_("exam {exam_id!r} has no policy on the log"),
                hint=N_("publish it from the home's exams.json: custody exam publish"),
                exam_id=exam_id,
            )
        return policy

    def exam_policies(self) -> dict[str, ExamPolicy]:
        """Every exam's policy in force on the log, by exam id."""
        with self._reader() as conn:
            return load_exam_policies(conn)

    def package_history(self, package_id: str) -> list[int]:
        with self._reader() as conn:
            return [
                int(r.idx)
                for r in conn.execute(
                    select(PKG_EVENT.c.idx)
                    .where(PKG_EVENT.c.package_id == package_id)
                    .order_by(PKG_EVENT.c.idx)
                )
            ]

    def statement_indices(self, statement_ids: Iterable[str]) -> dict[str, int]:
        """The log index of each of these statements that is on the log (by statement id)."""
        ids = sorted(set(statement_ids))
        if not ids:
            return {}
        with self._reader() as conn:
            return {
                r.statement_id: int(r.idx)
                for r in conn.execute(
                    select(ENTRY.c.statement_id, ENTRY.c.idx).where(ENTRY.c.statement_id.in_(ids))
                )
            }

    def findings(self) -> list[dict[str, Any]]:
        with self._reader() as conn:
            rows = conn.execute(select(FINDING).order_by(FINDING.c.id)).mappings().all()
        return [dict(r) for r in rows]


def load_exam_policies(
    conn: Connection, exam_ids: Sequence[str] | None = None
) -> dict[str, ExamPolicy]:
    query = select(EXAM.c.exam_id, EXAM.c.body)
    if exam_ids is not None:
        query = query.where(EXAM.c.exam_id.in_(list(exam_ids)))
    return {row.exam_id: exam_policy_from_body(json.loads(row.body)) for row in conn.execute(query)}


def statement_id_of(env: Envelope) -> str:
    return statement_id(env.payload)
