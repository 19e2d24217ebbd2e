"""The access log: every read of personal data, append-only, chained and checkpointed.

Its own origin (the custody log's origin followed by ``/access``) keeps its checkpoints apart
from the custody log's, though the same log key signs both.

Record (one leaf, canonical JSON; docs/formats.md "Access log"):
    {"type": "custody.access.v1", "at": RFC 3339, "who": person, "key_id": hex,
     "roles": [...], "route": "GET /v1/packages/{package_id}", "objects": ["package:PK-1"],
     "prev": hex SHA-256 leaf hash of the record before (64 zeros for the first)}

Rules:
- ``flush="full"`` (the default) and ``"lazy"``: a record is committed before the answer it
  records leaves the service (the route calls ``record`` and only then answers): a read that
  could not be recorded is not answered.
- ``flush="queued"``: ``record`` puts the record in a bounded queue of this process and
  returns; a writer thread commits the queue every ``QUEUE_INTERVAL`` seconds (or sooner once
  ``QUEUE_BATCH`` records wait), in one transaction with a full flush. So an answer may leave
  before its record is durable: a crash of the process loses the records still queued (at
  most the last ``QUEUE_INTERVAL`` seconds of reads, and never more than ``QUEUE_BOUND``);
  a full queue makes ``record`` wait for room, and a queue the writer cannot commit (a
  database fault) keeps its records and stops answering reads once full. Everything that
  reads the access log (its size, leaves, ``who_read``, checkpoints, export) first commits
  what this process has queued, so a checkpoint covers every read this process answered
  before it.
- Records get consecutive indexes under a lock on one head row (as the custody log's entries).
- Every record names the leaf hash of the one before: deleting or editing one breaks the chain
  at that place, and the RFC 9162 root in a checkpoint signed by the log key fixes the whole.
- ``verify_access`` (in ``custody.access_records``, re-exported here) is pure over the
  exported lines and checkpoint: origin, signature, size, root, each record's form and its
  link to the one before.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from crypto import merkle
from crypto.encoding import canonical_json, format_time
from crypto.note import Checkpoint, NoteVerifier, open_checkpoint, sign_checkpoint
from crypto.signing import SigningKey
from custody.access import Principal
from custody.access_records import (
    ACCESS_CHECKPOINT_FILE,
    ACCESS_FILE,
    ACCESS_TYPE,
    AccessEntry,
    access_origin,
    verify_access,
)
from custody.access_records import access_root as _root
from custody.errors import N_, CustodyError, NotFoundError, StorageError, UsageError
from custody.store import access_log as store
from custody.store.access_log import AccessRow
from custody.store.handles import Database
from keys.keyfile import write_new_file
from keys.model import Authority

# "full": each commit waits for the disk (a record survives a power loss once answered);
# "lazy": commits are durable against a process crash, flushed to disk by the next full
# commit (a checkpoint, the custody log's next append) or the OS within a moment.
FLUSH_MODES = ("full", "lazy", "queued")
QUEUE_INTERVAL = 0.05  # seconds between the queued writer's commits, at most
QUEUE_BATCH = 256  # records that wake the queued writer at once
QUEUE_BOUND = 4096  # records queued at most (then ``record`` waits)
MAX_OBJECTS = 100  # objects named in one record (a list route names its first ones)


@dataclass
class _Pending:
    """One read waiting for its record to be committed (``index``) or refused (``error``)."""

    principal: Principal
    route: str
    objects: list[str]
    at: datetime
    index: int | None = None
    error: CustodyError | None = None

    def leaf(self, prev: str) -> bytes:
        return canonical_json(
            {
                "type": ACCESS_TYPE,
                "at": format_time(self.at),
                "who": self.principal.subject,
                "key_id": self.principal.key_id,
                "roles": sorted(r.value for r in self.principal.roles),
                "route": self.route,
                "objects": self.objects,
                "prev": prev,
            }
        )


class AccessLog:
    """The access log of one home (``log_key`` signs its checkpoints; None: read only)."""

    def __init__(
        self,
        engine: Database,
        authority: Authority,
        log_key: SigningKey | None,
        *,
        flush: str = "full",
    ) -> None:
        if flush not in FLUSH_MODES:
            raise UsageError(
                N_("access log flush {flush!r}: one of {flush_modes}"),
                flush=flush,
                flush_modes=", ".join(FLUSH_MODES),
            )
        self.engine = engine
        self.flush = flush
        self._turn = threading.Condition()
        self._pending: list[_Pending] = []
        self._writing = False
        self.origin = access_origin(authority)
        self.log_key = log_key
        self.verifier = NoteVerifier(self.origin, authority.log_key)
        store.ensure_head(engine)
        self._queue: list[_Pending] = []
        self._queued = threading.Condition()
        self._queue_error: CustodyError | None = None
        self._closing = False
        self._writer: threading.Thread | None = None
        if flush == "queued":
            self._writer = threading.Thread(
                target=self._drain_loop, name="access-log-writer", daemon=True
            )
            self._writer.start()

    # -- queued records ----------------------------------------------------------------------

    def _drain_loop(self) -> None:
        while True:
            with self._queued:
                if len(self._queue) < QUEUE_BATCH and not self._closing:
                    self._queued.wait(QUEUE_INTERVAL)
                if self._closing and not self._queue:
                    return
            try:
                self.drain()
            except StorageError:
                time.sleep(QUEUE_INTERVAL)  # a database fault: the records wait, try again

    def drain(self) -> None:
        """Commit every record this process has queued (``flush="queued"``; otherwise
        nothing waits). Raises ``StorageError`` if they could not be committed (they stay
        queued, in order, for the next try)."""
        if self.flush != "queued":
            return
        with self._turn:  # one batch at a time, in queue order
            with self._queued:
                batch, self._queue = self._queue, []
            if not batch:
                return
            self._write(batch)
            failed = [item for item in batch if item.error is not None]
            with self._queued:
                if failed:
                    for item in failed:
                        item.error = None
                    self._queue[:0] = failed
                    self._queue_error = StorageError(
                        N_("the access log's queued records could not be committed")
                    )
                else:
                    self._queue_error = None
                self._queued.notify_all()
        if failed:
            raise self._queue_error or StorageError(N_("the access log could not be written"))

    def close(self) -> None:
        """Commit what is queued and stop the writer (``flush="queued"``)."""
        if self._writer is None:
            return
        with self._queued:
            self._closing = True
            self._queued.notify_all()
        self._writer.join(timeout=30)
        self.drain()
        self._writer = None

    def _enqueue(self, item: _Pending) -> int:
        with self._queued:
            while len(self._queue) >= QUEUE_BOUND:
                if self._queue_error is not None:
                    raise StorageError(
                        N_(
                            "the read could not be recorded: the access log's queue is "
                            "full and its records cannot be committed"
                        )
                    )
                self._queued.wait(QUEUE_INTERVAL)
            self._queue.append(item)
            if len(self._queue) >= QUEUE_BATCH:
                self._queued.notify_all()
            return -1

    def record(self, principal: Principal, route: str, objects: Sequence[str], at: datetime) -> int:
        """Append one read and return its index once it is durable. Raises ``StorageError``
        if it could not be stored (the read is then not answered).

        Group commit: the reads of this process that arrive while a transaction is being
        written go into the next one together, so concurrent reads share one fsync instead
        of queueing one each; every caller still returns only after its own record is
        committed.

        ``flush="queued"``: the record is queued and -1 returned at once (module docstring)."""
        mine = _Pending(principal, route, sorted(set(objects))[:MAX_OBJECTS], at)
        if self.flush == "queued":
            return self._enqueue(mine)
        with self._turn:
            self._pending.append(mine)
            while self._writing and mine.index is None and mine.error is None:
                self._turn.wait()
            if mine.index is None and mine.error is None:
                self._writing = True
                batch, self._pending = self._pending, []
            else:
                batch = []
        if batch:
            try:
                self._write(batch)
            finally:
                with self._turn:
                    self._writing = False
                    self._turn.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.index is not None
        return mine.index

    def _write(self, batch: list[_Pending]) -> None:
        def rows_for(first: int, prev: str) -> tuple[list[AccessRow], str]:
            rows = []
            for n, item in enumerate(batch):
                leaf = item.leaf(prev)
                rows.append(
                    AccessRow(first + n, item.principal.subject, item.at, leaf, item.objects)
                )
                prev = merkle.leaf_hash(leaf).hex()
            return rows, prev

        try:
            first = store.append(self.engine, len(batch), rows_for, lazy=self.flush == "lazy")
        except Exception as e:  # noqa: BLE001 - any database failure: the reads are not answered
            error = StorageError(N_("the read could not be recorded on the access log"))
            error.__cause__ = e
            for item in batch:
                item.error = error
            return
        for n, item in enumerate(batch):
            item.index = first + n

    def size(self) -> int:
        self.drain()
        return store.size(self.engine)

    def leaves(self, start: int = 0, end: int | None = None) -> list[bytes]:
        self.drain()
        return store.leaves(self.engine, start, end)

    def who_read(
        self, *, obj: str | None = None, who: str | None = None, limit: int = 1000
    ) -> list[AccessEntry]:
        """The reads that named ``obj`` (``package:ID``, ``person:ID``...) or were made by
        ``who``, oldest first."""
        self.drain()
        return store.who_read(self.engine, obj=obj, who=who, limit=limit)

    def checkpoint(self, now: datetime) -> str:
        """The signed checkpoint of the access log as it is now (signed once per size)."""
        self.drain()
        return store.checkpoint(self.engine, now, self._sign)

    def _sign(self, size: int, leaves: Iterator[bytes]) -> tuple[bytes, str]:
        """The root over ``leaves`` (``size`` of them) and the checkpoint note signed on it."""
        if self.log_key is None:
            raise NotFoundError(
                N_(
                    "the access log has no checkpoint for its {size} records, and"
                    " this service holds no log key to sign one"
                ),
                size=size,
            )
        count, root = _root(leaves)
        if count != size:  # pragma: no cover - would need an edited table
            raise StorageError(
                N_("the access log holds {count} records, its head says {size}"),
                count=count,
                size=size,
            )
        note = sign_checkpoint(Checkpoint(self.origin, size, root), self.origin, self.log_key)
        return root, note

    def latest_checkpoint(self) -> str | None:
        self.drain()
        return store.latest_checkpoint(self.engine)

    def export(self, out: Path, now: datetime) -> dict[str, str]:
        """Write ``access.jsonl`` and ``access-checkpoint.note`` into ``out``; their SHA-256s.

        A writer signs a checkpoint of the access log as it is now; a reader (no log key)
        exports up to the latest checkpoint the service signed (an empty dict: none yet)."""
        note = self.checkpoint(now) if self.log_key is not None else self.latest_checkpoint()
        if note is None:
            return {}
        checkpoint, _ = open_checkpoint(note, [self.verifier], origin=self.origin)
        lines = b"".join(leaf + b"\n" for leaf in self.leaves(0, checkpoint.size))
        files = {ACCESS_FILE: lines, ACCESS_CHECKPOINT_FILE: note.encode()}
        for name, data in files.items():
            write_new_file(out / name, data, mode=0o644)
        return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


__all__ = [
    "ACCESS_CHECKPOINT_FILE",
    "ACCESS_FILE",
    "AccessEntry",
    "AccessLog",
    "access_origin",
    "verify_access",
]
