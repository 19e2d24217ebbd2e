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
- No SQL here: the log's tables are read and written through ``custody/store/log_store.py``
  (Core on the append path, the same statements as before), which returns domain values.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import islice
from typing import Any, Protocol

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
    LogConsistencyError,
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
from custody.exams import ExamPolicy, exam_policy_body
from custody.parallel import Answer, SignaturePool, signature_check
from custody.rules import DEFAULT_CLOCK, ClockRules, Finding, Outcome, PackageState, apply_event
from custody.store import log_store
from custody.store.guard import (
    RECOVER,
    SignedHead,
    SignedHeadFile,
    StartReport,
    check_at_start,
    check_before_signing,
)
from custody.store.handles import Database, Transaction
from custody.store.leaves import envelope_parts, stored_envelope
from custody.store.log_store import (
    CosignatureAdded,
    LogStore,
    NewCosignature,
    NewEntries,
    ensure_head,
    load_exam_policies,
)
from custody.witnesses import WitnessPolicy, open_cosignatures, split_cosigned
from keys.trust import TrustStore

PARALLEL_BATCH = 64
# A pooled batch is verified and applied in chunks of this many envelopes (``_append_pooled``).
PARALLEL_CHUNK = 128
ROOTS_KEPT = 4096  # signed roots kept in memory for proofs (``CustodyLog._proof_reads``)
# The tree's top, kept in memory by each log object (``_proof_nodes``): stored nodes at level
# TOP_LEVEL and above (one per 1,024 leaves), at most TOP_MAX of them (a 50M-event log has
# about 98,000: some 15 MB). The first proof reads the highest of them at once, about
# 2 ** (TOP_SPAN + 1) nodes whatever the log's size (a one-shot command pays a few ms); the
# others are kept as proofs read them.
TOP_LEVEL = 10
TOP_SPAN = 11
TOP_MAX = 200_000
# Packages whose state (and each observer's rows) the writer keeps in memory between appends,
# at most: each costs about 2.5 KB there (1.9 KB of state, 0.4 KB of the incident desk's row),
# so a season of a million packages held 2.5 GB and of five million would hold 12 GB, for
# good. Beyond this many, the longest kept are dropped; a dropped package's state is read
# back from the database when it is next named (docs/benchmarks.md, session 16).
CACHED_PACKAGES = 200_000


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
class Prepared:
    """An envelope parsed and signature-checked outside the lock."""

    envelope: Envelope
    event: Event
    sigcheck: SignatureCheck
    # Made beside the signature check (by a signature worker in ``_append_pooled``, or by
    # ``prepare(parts=True)``), if they were: the envelope in parts (``envelope_parts``; None:
    # it does not fit them and the row keeps the leaf), and its leaf hash under the receive
    # time ``received`` (workers only).
    stored: bytes | None = None
    leaf_hash: bytes | None = None
    received: str | None = None


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
    # that checkpoint's size and root when this process's log key made it in this append (the
    # signed-head file then takes it without verifying the note again)
    made: SignedHead | None = field(default=None, repr=False)


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
    entries: list[tuple[int, bytes, str, str, bytes]] = field(default_factory=list)
    leaf_hashes: list[bytes] = field(default_factory=list)  # the entries' leaf hashes, in order
    links: list[tuple[str, int]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    touched: dict[str, PackageState] = field(default_factory=dict)
    system_ids: set[str] = field(default_factory=set)
    exams: dict[str, ExamPolicy] | None = None  # loaded when a statement needs them
    exam_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)  # packages with a row in package_state
    # statement ids already looked up on the log (found ones are in ``existing``), and the ids
    # the batch's later chunks will bring, looked up with the first chunk's (one query a batch)
    looked_up: set[str] = field(default_factory=set)
    upcoming: list[str] = field(default_factory=list)
    gate_known: dict[str, str | None] = field(default_factory=dict)  # ``LogGate.gate``
    kept: dict[int, dict[str, Any]] = field(default_factory=dict)  # each observer's ``keep``


@dataclass(frozen=True)
class _Dispatched:
    """A batch whose signatures are being checked by the workers (``CustodyLog._dispatch``)."""

    envelopes: list[Envelope]
    now: datetime
    received: str
    pending: list[tuple[int, int, Callable[[], list[Answer]]]]
    trust: TrustStore  # the store whose keys the workers hold


def _recall_nothing(keys: Iterable[str]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class AppendView:
    """What an observer sees inside the append transaction (it may write through ``conn``).

    ``recall`` and ``keep`` spare an observer the reads of rows it wrote itself: what it puts
    in ``keep`` (by key: rows it wrote, as they now are) the log keeps once this transaction
    has committed, and ``recall(keys)`` gives back, of what it kept so, the values of those
    keys, exact for the log's size when this append began (kept like the package states: an
    append by another writer, or one that failed, empties it). A key it does not give back
    must be read from the database."""

    conn: Transaction
    now: datetime
    trust: TrustStore
    accepted: tuple[tuple[int, Event, Outcome], ...]
    rejected: tuple[Rejected, ...]
    states: Mapping[str, PackageState | None]
    recall: Callable[[Iterable[str]], dict[str, Any]] = _recall_nothing
    keep: dict[str, Any] = field(default_factory=dict)


# The caller's own writes, made in the append's transaction (see ``CustodyLog.submit``).
Alongside = Callable[[Transaction], None]


class LogGate(Protocol):
    def gate(
        self,
        conn: Transaction,
        prepared: list[tuple[int, Prepared]],
        rejected: list[Rejected],
        known: dict[str, str | None],
    ) -> list[tuple[int, Prepared]]:
        """Under the append lock, before the rules: keep what may proceed, reject the rest
        (appending each refusal to ``rejected``), e.g. statements by a blocked key. ``known``
        is what this transaction's earlier chunks learned (a key id and the incident blocking
        it, or ``None``): the gate adds to it and need not ask again."""
        ...


class LogObserver(Protocol):
    def observe(self, view: AppendView) -> list[Envelope]:
        """React to an append; return system statements to append in the same transaction."""
        ...


def _parsed(env: Envelope) -> Event | CustodyError:
    """The envelope's event, or why it is not one (``prepare`` without the signatures)."""
    try:
        if env.payload_type != EVENT_TYPE:
            raise FormatError(
                N_("not a custody event: payload type {payload_type!r}"),
                payload_type=env.payload_type,
            )
        return parse_event(env.payload)
    except CustodyError as e:
        return e


def prepare(
    env: Envelope,
    trust: TrustStore,
    *,
    parts: bool = False,
    checked: SignatureCheck | None = None,
    stored: bytes | None = None,
) -> Prepared:
    """Parse the event and verify its signatures (pure CPU; safe to run in parallel); with
    ``parts``, also make the entry row's form of the envelope (``envelope_parts``), so the
    writer does not deflate it while it holds the append lock. ``checked``: the signatures
    were verified already, by a process of this service (``api.writer_link``); ``stored``:
    that process made the row's form too (the bytes ``envelope_from_parts`` read ``env``
    from)."""
    if env.payload_type != EVENT_TYPE:
        raise FormatError(
            N_("not a custody event: payload type {payload_type!r}"), payload_type=env.payload_type
        )
    event = parse_event(env.payload)
    sigcheck = checked if checked is not None else verify_signatures(env, trust.signing_keys)
    if stored is None and parts:
        stored = envelope_parts(env)
    return Prepared(env, event, sigcheck, stored)


class CustodyLog:
    """One authority's log over one database (SQLite or PostgreSQL, same code)."""

    def __init__(
        self,
        engine: Database,
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
        # What each observer (by its place in ``observers``) asked to keep (``AppendView``),
        # valid, like the states, while the log's size is ``_states_at``.
        self._kept: dict[int, dict[str, Any]] = {}
        # The tree's top (stored nodes at level TOP_LEVEL and above), read once on the first
        # proof and kept: a stored node never changes, and these few are in every proof.
        self._top: dict[tuple[int, int], bytes] = {}
        self._top_loaded = False
        # The roots the log signed, by size (``_proof_reads``): a signed checkpoint never
        # changes, and most proofs are asked at the latest one's size.
        self._roots: dict[int, bytes] = {}
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
        # One snapshot for every read of the check (other writers append meanwhile).
        with log_store.snapshot(self.engine) as conn:
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
        if self.workers > 1 and len(envelopes) >= PARALLEL_BATCH:
            return self._append_pooled(list(envelopes), now, alongside)
        prepared, early = self._prepare_all(envelopes)
        return self.append_prepared(prepared, early, now=now, alongside=alongside)

    def append_prepared(
        self,
        prepared: list[tuple[int, Prepared]],
        early: list[Rejected],
        *,
        now: datetime,
        alongside: Alongside | None = None,
        keep: bool = True,
    ) -> AppendResult:
        """``submit_many`` after its signature checks: envelopes already parsed and verified
        (``prepare``, by the caller's threads or workers) and those refused on the way, by
        their position in the batch. The rules, the observers and the commit run here.
        ``keep=False`` leaves the new checkpoint's record in the signed-head file to the
        caller (``keep_signed``), which must make it before it hands out any receipt."""
        result = AppendResult()
        result.rejected.extend(early)
        if not prepared and not (early and self.observers):
            return result
        chunks = [(prepared, list[Rejected]())]
        self._committed(lambda db: self._append_locked(db, chunks, result, now, alongside))
        if keep:
            self.keep_signed(result)
        return result

    def submit_batches(
        self, batches: Iterable[tuple[Sequence[Envelope], datetime]]
    ) -> Iterator[AppendResult]:
        """``submit_many`` of each (envelopes, the service's clock for them) in turn, one
        transaction each, yielding each result once it is durable. With signature workers the
        next batch's signatures are checked while this one is applied and committed (its
        rules, the tree, the checkpoint, the commit run in this process alone), so the workers
        are not idle between batches. A batch whose signatures were checked against a trust
        store that changed before its turn is checked again."""
        ahead: _Dispatched | None = None
        for envelopes, now in batches:
            if self.workers <= 1 or len(envelopes) < PARALLEL_BATCH:
                if ahead is not None:  # pragma: no cover - only a mix of sizes comes here
                    yield self._append_dispatched(ahead, None)
                    ahead = None
                yield self.submit_many(envelopes, now=now)
                continue
            this = self._dispatch(list(envelopes), now)
            if ahead is not None:
                yield self._append_dispatched(ahead, None)
            ahead = this
        if ahead is not None:
            yield self._append_dispatched(ahead, None)

    def start_workers(self) -> None:
        """Start the signature workers now rather than with the first large batch (a long
        import, a season's appends: its first batch then does not wait for them)."""
        if self.workers > 1 and self._pool is None:
            self._pool = SignaturePool(self.trust.signing_keys, self.workers)
            self._pool.start()

    def _dispatch(self, envelopes: list[Envelope], now: datetime) -> _Dispatched:
        """Send a batch's signatures to the workers (in chunks, answered in order)."""
        if self._pool is None:
            self._pool = SignaturePool(self.trust.signing_keys, self.workers)
        # the workers also deflate each envelope into the form its entry row keeps, and hash
        # its leaf under the batch's receive time (``_append_locked``)
        received = format_time(now)
        pending = self._pool.signer_chunks(
            envelopes, PARALLEL_CHUNK, stored=envelope_parts, received=received
        )
        return _Dispatched(envelopes, now, received, pending, self.trust)

    def _append_pooled(
        self, envelopes: list[Envelope], now: datetime, alongside: Alongside | None
    ) -> AppendResult:
        """``submit_many`` of a large batch with the signatures checked on the worker
        processes, in chunks: this process parses and applies chunk k (inside the append's
        one transaction) while the workers verify the chunks after it, so the rules and the
        signatures run at the same time instead of one after the other."""
        return self._append_dispatched(self._dispatch(envelopes, now), alongside)

    def _append_dispatched(self, sent: _Dispatched, alongside: Alongside | None) -> AppendResult:
        if sent.trust is not self.trust:  # enrolled or revoked since: the workers' keys were old
            return self._append_pooled(sent.envelopes, sent.now, alongside)
        envelopes, received = sent.envelopes, sent.received

        def chunks() -> Iterator[tuple[list[tuple[int, Prepared]], list[Rejected]]]:
            for start, end, wait in sent.pending:
                part = envelopes[start:end]
                events = [_parsed(env) for env in part]  # while the workers verify
                prepared: list[tuple[int, Prepared]] = []
                early: list[Rejected] = []
                for i, (env, event, (found, stored, leaf_hash)) in enumerate(
                    zip(part, events, wait(), strict=True)
                ):
                    if isinstance(found, CustodyError) or isinstance(event, CustodyError):
                        error = event if isinstance(event, CustodyError) else found
                        assert isinstance(error, CustodyError)
                        early.append(Rejected(start + i, error, None, env))
                        continue
                    check = signature_check(env, found)
                    ready = Prepared(env, event, check, stored, leaf_hash, received)
                    prepared.append((start + i, ready))
                yield prepared, early

        result = AppendResult()
        now = sent.now
        # every statement id of the batch, looked up on the log with the first chunk's
        upcoming = [statement_id(env.payload) for env in envelopes]
        self._committed(
            lambda db: self._append_locked(db, chunks(), result, now, alongside, upcoming)
        )
        self.keep_signed(result)
        return result

    def append_system_work(self, now: datetime) -> AppendResult:
        """Run the observers alone under the append lock (a sweep, a person's act on an
        incident): whatever statements they return are appended in that one transaction."""
        result = AppendResult()
        self._committed(lambda db: self._append_locked(db, (), result, now))
        self.keep_signed(result)
        return result

    def _committed(self, append: Callable[[LogStore], _Batch]) -> None:
        """Run ``append`` in one transaction (``log_store.appending``: a write the database
        refuses rolls it all back, as a storage fault); once it is durable, keep the package
        states it wrote (only if the cache was exactly at the size this append started from)."""
        try:
            batch = log_store.appending(self.engine, append)
        except BaseException:
            self._forget_states()
            raise
        if not batch.accepted:
            return
        with self._states_lock:
            if self._states_at == batch.size:
                _keep_at_most(self._states, batch.touched, CACHED_PACKAGES)
                for i, keep in batch.kept.items():
                    _keep_at_most(self._kept.setdefault(i, {}), keep, CACHED_PACKAGES)
                self._states_at = batch.size + len(batch.accepted)
            else:
                self._states.clear()
                self._kept.clear()
                self._states_at = -1

    def _forget_states(self) -> None:
        with self._states_lock:
            self._states.clear()
            self._kept.clear()
            self._states_at = -1

    def _recall(self, observer: int, size: int) -> Callable[[Iterable[str]], dict[str, Any]]:
        """``AppendView.recall`` for an observer, in an append that began at ``size``."""

        def recall(keys: Iterable[str]) -> dict[str, Any]:
            with self._states_lock:
                kept = self._kept.get(observer)
                if self._states_at != size or not kept:
                    return {}
                return {k: kept[k] for k in keys if k in kept}

        return recall

    def keep_signed(self, result: AppendResult) -> None:
        """After the commit, before any receipt is handed out: the new checkpoint goes to the
        file beside the log key (fsynced)."""
        if result.signed and self.signed_head is not None:
            self.signed_head.record(result.signed, made=result.made)

    def _prepare_all(
        self, envelopes: Sequence[Envelope]
    ) -> tuple[list[tuple[int, Prepared]], list[Rejected]]:
        prepared: list[tuple[int, Prepared]] = []
        early: list[Rejected] = []
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
        db: LogStore,
        chunks: Iterable[tuple[list[tuple[int, Prepared]], list[Rejected]]],
        result: AppendResult,
        now: datetime,
        alongside: Alongside | None = None,
        upcoming: list[str] | None = None,
    ) -> _Batch:
        if self.log_key is None:
            raise ConflictError(N_("this log was opened read-only (no log key)"))
        size = db.head_size()
        batch = _Batch(size=size, received=format_time(now), now=now, upcoming=upcoming or [])
        with self._states_lock:
            if self._states_at != size:  # another writer appended meanwhile: start afresh
                self._states.clear()
                self._kept.clear()
                self._states_at = size
        for prepared, early in chunks:  # applied in order, each as its signatures are known
            result.rejected.extend(early)
            self._apply(db, prepared, batch, result)
        if alongside is not None and batch.accepted and result.rejected:
            # The caller's rows go with every statement or with none: roll the lot back.
            raise result.rejected[0].error
        if self.observers:
            view = AppendView(
                conn=db.conn,
                now=now,
                trust=self.trust,
                accepted=tuple((idx, p.event, o) for idx, p, o in batch.accepted),
                rejected=tuple(result.rejected),
                states=batch.states,
            )
            extra: list[tuple[int, Prepared]] = []
            for i, observer in enumerate(self.observers):
                mine = replace(view, recall=self._recall(i, size), keep={})
                for env in observer.observe(mine):
                    extra.append((-1, prepare(env, self.trust)))
                if mine.keep:
                    batch.kept[i] = mine.keep
            if extra:
                self._apply(db, extra, batch, result, system=True)
        checkpoint_text = ""
        if batch.accepted:
            new_size = size + len(batch.accepted)
            leaves = batch.leaf_hashes
            frontier = db.nodes(merkle.frontier_nodes(size))
            nodes = merkle.nodes_for_batch(size, leaves, lambda lvl, i: frontier[(lvl, i)])
            db.add_entries(NewEntries(batch.entries, batch.links, nodes, batch.findings))
            db.save_states(batch.touched, size, batch.present)
            if batch.exam_rows:
                db.replace_exam_policies(batch.exam_rows)
            db.set_size(new_size)
            if alongside is not None and any(
                p.event.id not in batch.system_ids for _, p, _ in batch.accepted
            ):
                alongside(db.conn)
            fresh = {(lv, ix): h for lv, ix, h in nodes}
            # every node of the new root is new or in the old frontier, read above
            root = self._root(db, new_size, fresh={**frontier, **fresh})
            check_before_signing(
                db.conn,
                old_size=size,
                frontier=frontier,
                fresh=fresh,
                leaves=leaves,
                root=root,
                head_file=self.signed_head,
            )
            checkpoint_text, result.made = self._sign_checkpoint(db, new_size, root, batch.received)
            result.signed = checkpoint_text
        elif batch.duplicates:
            checkpoint_text = self.latest_checkpoint(db)
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
        db: LogStore,
        prepared: list[tuple[int, Prepared]],
        batch: _Batch,
        result: AppendResult,
        *,
        system: bool = False,
    ) -> None:
        if not system:
            for gate in self.gates:
                prepared = gate.gate(db.conn, prepared, result.rejected, batch.gate_known)
        ask = {p.event.id for _, p in prepared} - batch.looked_up
        if ask:
            ask.update(batch.upcoming)
            batch.upcoming = []
            for sid, idx, received_at in db.entries_of(ask):
                batch.existing[sid] = idx
                batch.existing_received[sid] = received_at
            batch.looked_up |= ask
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
            stored = db.states(wanted)
            batch.states.update(stored)
            batch.present.update(stored)
        corrected = {p.event.corrects for _, p in prepared if p.event.corrects} - set(
            batch.existing
        )
        if corrected:
            batch.existing.update(db.indices(corrected))
        if batch.exams is None and any(
            p.event.kind in (Kind.SEAL, Kind.EXAM_POLICY, Kind.PAPER_ACT) for _, p in prepared
        ):
            batch.exams = db.exam_policies()
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
            if p.leaf_hash is not None and p.stored is not None and p.received == batch.received:
                leaf_hash, row_form = p.leaf_hash, p.stored  # made by a signature worker
            else:
                leaf = leaf_bytes_at(p.envelope, batch.received)
                leaf_hash = merkle.leaf_hash(leaf)
                # the parts do not depend on the receive time: made beside the signature check
                row_form = p.stored if p.stored is not None else stored_envelope(p.envelope, leaf)
            batch.leaf_hashes.append(leaf_hash)
            batch.entries.append(
                log_store.entry_row(idx, p.event.id, p.event.kind.value, batch.received, row_form)
            )
            batch.links.extend((pid, idx) for pid in p.event.package_ids)
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

    def _sign_checkpoint(
        self, db: LogStore, size: int, root: bytes, signed_at: str
    ) -> tuple[str, SignedHead | None]:
        """The checkpoint note for ``size``: the one signed before (and ``None``), or a new one
        signed now with the head it holds."""
        assert self.log_key is not None
        signed = db.signed_at_size(size)
        if signed is not None:
            if signed[0] != root:  # pragma: no cover - would need a corrupted tree table
                raise StorageError(
                    N_("refusing to sign a second, different checkpoint for size {size}"), size=size
                )
            return signed[1], None
        note = sign_checkpoint(Checkpoint(self.origin, size, root), self.origin, self.log_key)
        db.add_checkpoint(size, root, note, signed_at)
        return note, SignedHead(size, root, note)

    # -- reading -------------------------------------------------------------------------

    @staticmethod
    def _root(db: LogStore, size: int, fresh: dict[tuple[int, int], bytes] | None = None) -> bytes:
        needed = merkle.root_nodes(size)
        have = {n: fresh[n] for n in needed if fresh and n in fresh}
        have.update(db.nodes([n for n in needed if n not in have]))
        return merkle.root_from_nodes(size, have)

    def size(self) -> int:
        with log_store.reading(self.engine) as db:
            return db.size()

    def latest_checkpoint(self, db: LogStore | None = None) -> str:
        if db is None:
            with log_store.reading(self.engine) as d:
                return self.latest_checkpoint(d)
        note = db.latest_checkpoint()
        if note is None:
            raise NotFoundError(N_("the log is empty: no checkpoint signed yet"))
        return note

    def checkpoint_note(self, size: int, db: LogStore | None = None) -> str:
        """The checkpoint the log signed for ``size`` (``NotFoundError`` if it signed none)."""
        if db is None:
            with log_store.reading(self.engine) as d:
                return self.checkpoint_note(size, d)
        note = db.checkpoint_note(size)
        if note is None:
            raise NotFoundError(N_("the log signed no checkpoint of size {size}"), size=size)
        return note

    def cosignature_lines(self, size: int) -> list[str]:
        """The witnesses' cosignature lines stored for the checkpoint of ``size``, by name."""
        with log_store.reading(self.engine) as db:
            return db.cosignature_lines(size)

    def cosigned_checkpoint(self, size: int | None = None) -> str:
        """The checkpoint of ``size`` (default: the latest) with the log's signature and every
        stored cosignature line after it (a C2SP note may carry several signatures)."""
        with log_store.reading(self.engine) as db:
            note = self.latest_checkpoint(db) if size is None else self.checkpoint_note(size, db)
            tree_size = parse_checkpoint(note.split("\n\n", 1)[0] + "\n").size
            return note + "".join(db.cosignature_lines(tree_size))

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

        def keep(db: LogStore) -> list[CosignatureAdded]:
            if text is None:
                note = (
                    self.latest_checkpoint(db) if size is None else self.checkpoint_note(size, db)
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
                stored = self.checkpoint_note(checkpoint.size, db)
                if not stored.startswith(text + "\n"):
                    raise ConflictError(
                        N_("the note is not the checkpoint this log signed for size {size}: {who}"),
                        size=checkpoint.size,
                        who=checkpoint.describe(),
                    )
            verified = open_cosignatures(policy, checkpoint, lines)
            added_at = format_time(now)
            return [db.add_cosignature(checkpoint.size, _kept(s, added_at)) for s in verified]

        return log_store.keeping_cosignatures(self.engine, keep)

    def checkpoints(self) -> list[str]:
        with log_store.reading(self.engine) as db:
            return db.checkpoints()

    @staticmethod
    def _within(db: LogStore, size: int) -> None:
        """A tree size the log has not reached is the caller's mistake, not a storage fault."""
        current = db.size()
        if size > current:
            raise UsageError(
                N_("tree size {size} is beyond the log's {current} entries"),
                size=size,
                current=current,
            )

    def _proof_nodes(
        self, wanted: list[tuple[int, int]], size: int
    ) -> dict[tuple[int, int], bytes]:
        """``_proof_reads`` without roots."""
        nodes, _ = self._proof_reads(wanted, size)
        return nodes

    def _proof_reads(
        self, wanted: list[tuple[int, int]], size: int, roots: Sequence[int] = ()
    ) -> tuple[dict[tuple[int, int], bytes], dict[int, bytes]]:
        """A proof's nodes and the log's size in one round trip, and the roots the log signed
        for the sizes ``roots`` (from memory, or read in the same statement and kept; a size
        it signed none for is absent); a size the log has not reached is the caller's mistake
        (``UsageError``), not a storage fault.

        Nodes of the tree's top (level ``TOP_LEVEL`` and above: one per 1,024 leaves or
        fewer) come from memory once read; a proof at 10M leaves then reads 10 to 13 of its 24
        nodes from the database instead of 24, each on a page of its own (docs/benchmarks.md)."""
        top = self._top
        nodes = {w: top[w] for w in wanted if w in top}
        ask = [w for w in wanted if w not in nodes]
        with log_store.reading(self.engine) as db:
            if not self._top_loaded:
                self._top_loaded = True
                first = max(TOP_LEVEL, size.bit_length() - TOP_SPAN)
                top.update(db.nodes_from_level(first, TOP_MAX))
                nodes.update((w, top[w]) for w in ask if w in top)
                ask = [w for w in ask if w not in nodes]
            need = [r for r in roots if r not in self._roots]
            try:
                got, current, signed = db.proof_reads(ask, with_size=True, roots=need)
            except StorageError:
                self._within(db, size)  # nodes missing because the size is beyond the log
                raise
        if size > current:
            raise UsageError(
                N_("tree size {size} is beyond the log's {current} entries"),
                size=size,
                current=current,
            )
        if len(top) < TOP_MAX:
            top.update((w, h) for w, h in got.items() if w[0] >= TOP_LEVEL)
        known = {r: h for r in roots if (h := self._roots.get(r)) is not None}
        if signed:
            if len(self._roots) + len(signed) > ROOTS_KEPT:
                self._roots.clear()
            self._roots.update(signed)
            known.update(signed)
        nodes.update(got)
        return nodes, known

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The proof of entry ``index`` in the tree of ``size``, checked before it is handed
        out: from the entry's stored leaf hash, it leads to the root the log signed for that
        size. A proof that does not (a stored node altered or lost behind the tree's edge,
        where the checks at start and before signing do not look) is the log's state, refused
        as such, not a proof every client would refuse without saying why."""
        wanted = merkle.inclusion_proof_nodes(index, size)
        nodes, roots = self._proof_reads([*wanted, (0, index)], size, (size,))
        proof = merkle.inclusion_proof_from_nodes(index, size, nodes)
        root = roots.get(size)
        if root is not None:
            try:
                reached: bytes | None = merkle.inclusion_root(nodes[(0, index)], index, size, proof)
            except LogConsistencyError:  # pragma: no cover - the proof's length is ours
                reached = None
            if reached != root:
                raise LogStateError(
                    N_(
                        "the proof of entry {index} in the tree of size {size}, built from the "
                        "stored tree nodes, does not lead to the root the log signed: a stored "
                        "node was altered or lost (custody log check --full names it)"
                    ),
                    hint=RECOVER,
                    index=index,
                    size=size,
                )
        return proof

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The proof that the tree of ``old_size`` is a prefix of that of ``new_size``,
        checked against the roots the log signed for both before it is handed out (as
        ``inclusion_proof``)."""
        wanted = merkle.consistency_proof_nodes(old_size, new_size)
        roots = (old_size, new_size) if 0 < old_size < new_size else ()
        nodes, signed = self._proof_reads(wanted, new_size, roots)
        proof = merkle.consistency_proof_from_nodes(old_size, new_size, nodes)
        if 0 < old_size < new_size:
            old, new = signed.get(old_size), signed.get(new_size)
            if old is not None and new is not None:
                try:
                    merkle.verify_consistency(old_size, new_size, old, new, proof)
                except LogConsistencyError as e:
                    raise LogStateError(
                        N_(
                            "the consistency proof from size {old} to {new}, built from the "
                            "stored tree nodes, does not lead to the roots the log signed: a "
                            "stored node was altered or lost (custody log check --full names it)"
                        ),
                        hint=RECOVER,
                        old=old_size,
                        new=new_size,
                    ) from e
        return proof

    def leaf(self, index: int) -> bytes:
        """The leaf bytes of one entry, exactly as hashed into the tree."""
        with log_store.reading(self.engine) as db:
            leaf = db.leaf(index)
        if leaf is None:
            raise NotFoundError(N_("no log entry {index}"), index=index)
        return leaf

    def entry(self, index: int) -> Envelope:
        return parse_leaf(self.leaf(index)).envelope

    def entries(
        self, start: int = 0, end: int | None = None, batch: int = 5000
    ) -> Iterable[tuple[int, bytes]]:
        """Stream (index, leaf bytes) in order."""
        end = self.size() if end is None else end
        pos = start
        while pos < end:
            with log_store.reading(self.engine) as db:
                rows = db.leaves(pos, min(end, pos + batch))
            yield from rows
            pos += batch

    def package_state(self, package_id: str) -> PackageState:
        with log_store.reading(self.engine) as db:
            state = db.package_state(package_id)
        if state is None:
            raise NotFoundError(N_("no package {package_id!r} in the log"), package_id=package_id)
        return state

    def exam_policy(self, exam_id: str) -> ExamPolicy:
        """The exam's policy in force on the log, or ``NotFoundError`` naming the exam."""
        with log_store.reading(self.engine) as db:
            policy = db.exam_policies([exam_id]).get(exam_id)
        if policy is None:
            raise NotFoundError(
                N_("exam {exam_id!r} has no policy on the log"),
                hint=N_("publish it from the home's exams.json: custody exam publish"),
                exam_id=exam_id,
            )
        return policy

    def exam_policies(self) -> dict[str, ExamPolicy]:
        """Every exam's policy in force on the log, by exam id."""
        with log_store.reading(self.engine) as db:
            return db.exam_policies()

    def package_history(self, package_id: str) -> list[int]:
        with log_store.reading(self.engine) as db:
            return db.package_history(package_id)

    def package_state_and_history(self, package_id: str) -> tuple[PackageState, list[int]]:
        """``package_state`` and ``package_history`` read together, on one connection."""
        with log_store.reading(self.engine) as db:
            state = db.package_state(package_id)
            history = db.package_history(package_id)
        if state is None:
            raise NotFoundError(N_("no package {package_id!r} in the log"), package_id=package_id)
        return state, history

    def statement_indices(self, statement_ids: Iterable[str]) -> dict[str, int]:
        """The log index of each of these statements that is on the log (by statement id)."""
        ids = sorted(set(statement_ids))
        if not ids:
            return {}
        with log_store.reading(self.engine) as db:
            return db.indices(ids)

    def findings(self, at: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """Every finding on the log, or (``at``) those of the entries at these indices."""
        with log_store.reading(self.engine) as db:
            return db.findings(at)


def _keep_at_most(cache: dict[str, Any], new: Mapping[str, Any], most: int) -> None:
    """Add ``new`` to ``cache``, then drop the entries kept longest beyond ``most`` (down to
    nine tenths of it, so that not every append drops some). A dropped entry is only read
    again from the database: the cache holds nothing the database does not."""
    cache.update(new)
    excess = len(cache) - most
    if excess > 0:
        for key in list(islice(cache, excess + most // 10)):
            del cache[key]


def _kept(sig: NoteSignature, added_at: str) -> NewCosignature:
    """A verified cosignature as the log keeps it."""
    return NewCosignature(
        sig.name, sig.key_hash.hex(), sig.line(), cosignature_timestamp(sig), added_at
    )


def statement_id_of(env: Envelope) -> str:
    return statement_id(env.payload)


__all__ = [
    "Alongside",
    "AppendResult",
    "AppendView",
    "CosignatureAdded",
    "CustodyLog",
    "LogGate",
    "LogObserver",
    "Prepared",
    "Receipt",
    "Rejected",
    "ensure_head",
    "load_exam_policies",
    "prepare",
    "statement_id_of",
]
