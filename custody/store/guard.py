"""The log checks its own state before it signs, against what its key already signed.

Rules:
- The last checkpoint the log key signed is kept twice: in the database (``checkpoint``) and,
  outside it, in a file beside the log key (``authority/log.checkpoint``), written and fsynced
  after the append commits and before its receipt is handed out. The file only moves forward
  (under an exclusive lock, a smaller or equal size never replaces a larger one).
- Before each signing (``check_before_signing``, called by the log at its signing point, under
  the append lock): the stored frontier nodes must give the root of the checkpoint signed for
  the current size; the new root is recomputed from those nodes and this transaction's leaves
  and must equal the root about to be signed; a consistency proof from the old to the new tree
  is built from the same nodes and verified; and the database must not be behind the file, nor
  hold a different checkpoint for the file's size.
- At start (``check_at_start``): the head row, the entry rows (no gap, none beyond the head),
  the checkpoint rows (the latest verifies under the log key and has the head's size), the tree
  (the frontier gives the signed root; the last ``tail`` leaves hash to their stored nodes),
  the cached package states touched by those leaves, and the file, all agree.
- Any disagreement is a ``LogStateError`` naming what is wrong and how to recover; nothing is
  signed over it. The log never signs two checkpoints of one size: the file and the unique
  ``checkpoint.size`` refuse it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, bindparam, func, select

from crypto import merkle
from crypto.encoding import b64encode
from crypto.errors import CustodyError
from crypto.note import NoteVerifier, open_checkpoint
from custody.errors import N_, LogStateError, Phrase, Said, Words
from custody.store.faults import file_error
from custody.store.leaves import leaf_of
from custody.store.log_tables import CheckpointRow, LogEntry, LogHead, PackageStateRow, TreeNode
from custody.store.states import state_from_json

HEAD = LogHead.__table__  # type: ignore[attr-defined]
ENTRY = LogEntry.__table__  # type: ignore[attr-defined]
NODE = TreeNode.__table__  # type: ignore[attr-defined]
CHECKPOINT = CheckpointRow.__table__  # type: ignore[attr-defined]
STATE = PackageStateRow.__table__  # type: ignore[attr-defined]

SIGNED_HEAD_NAME = "log.checkpoint"
EPOCH_NAME = "log.epoch"
EPOCH_ROW = 2  # log_head row 2 holds the database's epoch (row 1 the log's size)
MAX_NOTE_BYTES = 64 * 1024
DEFAULT_TAIL = 4096  # leaves re-hashed at start (the whole log when it is smaller)

RECOVER = N_(
    "do not append: restore the database from the standby or the last backup that holds this "
    "checkpoint, then replay the receipts clients hold (docs/operations.md, 'Recovery')"
)


@dataclass(frozen=True)
class SignedHead:
    """A checkpoint the log key signed: its size, root and the whole signed note."""

    size: int
    root: bytes
    note: str

    def describe(self) -> str:
        """For messages (``Words``: in the reader's language where shown)."""
        return Words.of(
            Said(N_("size {size} (root {root})"), {"size": self.size, "root": b64encode(self.root)})
        )


def open_signed(note: str, verifier: NoteVerifier, origin: str, *, what: str) -> SignedHead:
    """A signed checkpoint note, verified under the log key, or ``LogStateError``."""
    try:
        checkpoint, _ = open_checkpoint(note, [verifier], origin=origin)
    except CustodyError as e:
        raise LogStateError(
            N_("{what} is not a checkpoint signed by this log's key ({error})"),
            hint=RECOVER,
            what=what,
            error=e,
        ) from e
    return SignedHead(checkpoint.size, checkpoint.root, note)


class SignedHeadFile:
    """The last signed checkpoint, in a file beside the log key (outside the database)."""

    def __init__(self, path: Path, verifier: NoteVerifier, origin: str) -> None:
        self.path = path
        self.verifier = verifier
        self.origin = origin
        self._cache: tuple[tuple[int, int, int, int], SignedHead] | None = None
        # The last note this object verified or wrote: the same text read back is not
        # verified again (a writer reads the file before each signing and again under the
        # lock when it records; the text is compared whole, so a replaced file is verified).
        self._known: SignedHead | None = None
        # One thread of this process at a time (a service's writer reads the file before each
        # signing while its answering thread records the batch before; ``GroupCommit``).
        self._lock = threading.RLock()

    def read(self) -> SignedHead | None:
        """The file's checkpoint; None when the log never signed one (no file).

        A file unchanged since the last read (same inode, size and times) is not verified again.
        """
        with self._lock:
            return self._read_cached()

    def _read_cached(self) -> SignedHead | None:
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise LogStateError(
                N_("cannot read the log's signed-checkpoint file {path}: {strerror}"),
                hint=N_("it must be a regular file beside the log key, readable by this account"),
                path=self.path,
                strerror=e.strerror,
            ) from e
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        head = self._read()
        if head is not None:
            self._cache = (key, head)
        return head

    def _read(self) -> SignedHead | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise LogStateError(
                N_("cannot read the log's signed-checkpoint file {path}: {strerror}"),
                hint=N_("it must be a regular file beside the log key, readable by this account"),
                path=self.path,
                strerror=e.strerror,
            ) from e
        try:
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise LogStateError(
                        N_("{path} is not a regular file"), hint=RECOVER, path=self.path
                    )
                data = f.read(MAX_NOTE_BYTES + 1)
        except OSError as e:
            raise LogStateError(
                N_("cannot read {path}: {strerror}"),
                hint=RECOVER,
                path=self.path,
                strerror=e.strerror,
            ) from e
        if len(data) > MAX_NOTE_BYTES:
            raise LogStateError(
                N_("{path} is larger than a checkpoint note"), hint=RECOVER, path=self.path
            )
        if not data:
            return None  # the empty file a writer made before the log's first signing
        try:
            note = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LogStateError(N_("{path} is not UTF-8 text"), hint=RECOVER, path=self.path) from e
        known = self._known
        if known is not None and known.note == note:
            return known
        head = open_signed(note, self.verifier, self.origin, what=str(self.path))
        self._known = head
        return head

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def start_empty(self) -> None:
        """Before a new log's first signing: an empty file, so that a writer starting between
        that signing's commit and its record here does not take the log for a home without a
        file. Never replaces a file."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise file_error(e, str(lock_path)) from e
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            if not self.exists():
                self._write("")
        finally:
            os.close(lock_fd)

    def record(self, note: str, *, made: SignedHead | None = None) -> None:
        """Keep ``note`` as the last signed checkpoint, durably, if it is newer than the file's.

        Several processes may append to one database: the file is replaced under an exclusive
        lock, and only by a larger size. A different note for the size the file holds is a
        fork and is refused. ``made``: the head the caller's log key has just signed into
        this very note (the writer, after each append), taken as it is; any other note is
        verified under the log key first.
        """
        if made is not None and made.note == note:
            new = made
        else:
            new = open_signed(
                note, self.verifier, self.origin, what=Phrase("the checkpoint just signed")
            )
        with self._lock:
            self._record(new, note)

    def _record(self, new: SignedHead, note: str) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise file_error(e, str(lock_path)) from e
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            self._cache = None  # another process may have replaced it
            held = self.read()
            if held is not None and held.size >= new.size:
                if held.size == new.size and held.root != new.root:
                    raise LogStateError(
                        N_(
                            "the log signed two different checkpoints of size {size}: "
                            "{describe} in {path}, {describe2} now"
                        ),
                        hint=RECOVER,
                        size=new.size,
                        describe=held.describe(),
                        path=self.path,
                        describe2=new.describe(),
                    )
                return
            self._write(note)
            self._known = new
        finally:
            os.close(lock_fd)  # releases the lock

    # -- the epoch: which primary this log's key follows (see ``fence``) -------------------

    @property
    def epoch_path(self) -> Path:
        return self.path.with_name(EPOCH_NAME)

    def epoch(self) -> int:
        """The highest epoch this host's log key has followed (1 before any failover)."""
        try:
            data = self.epoch_path.read_bytes()[:32]
        except FileNotFoundError:
            return 1
        except OSError as e:
            raise LogStateError(
                N_("cannot read {epoch_path}: {strerror}"),
                epoch_path=self.epoch_path,
                strerror=e.strerror,
            ) from e
        text = data.decode("ascii", "replace").strip()
        if not text.isdigit() or not 0 < int(text) < 1 << 62:
            raise LogStateError(
                N_("{epoch_path} does not hold an epoch"), hint=RECOVER, epoch_path=self.epoch_path
            )
        return int(text)

    def record_epoch(self, epoch: int) -> None:
        """Keep ``epoch`` if it is higher than the one held (forward only, fsynced)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise file_error(e, str(lock_path)) from e
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            if epoch > self.epoch():
                self._write(f"{epoch}\n", self.epoch_path)
        finally:
            os.close(lock_fd)

    def _write(self, note: str, path: Path | None = None) -> None:
        target = self.path if path is None else path
        tmp = target.with_name(target.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, note.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise file_error(e, f"the log's file {target}") from e


# -- epochs: fencing a former primary ---------------------------------------------------------


_EPOCH = select(HEAD.c.size).where(HEAD.c.id == EPOCH_ROW)  # asked before every signing
_SIGNED_ROOT = select(CHECKPOINT.c.root).where(CHECKPOINT.c.size == bindparam("size"))


def db_epoch(conn: Connection) -> int:
    """The database's epoch: 1, raised by one at each failover (``raise_epoch``)."""
    row = conn.execute(_EPOCH).first()
    return 1 if row is None else int(row.size)


def fence(conn: Connection, head_file: SignedHeadFile | None) -> int:
    """Refuse a database whose epoch is below the one this log key already followed: a former
    primary that came back after a failover. Returns the database's epoch."""
    epoch = db_epoch(conn)
    if head_file is not None:
        held = head_file.epoch()
        if epoch < held:
            raise LogStateError(
                N_(
                    "this database is of epoch {epoch}, but the log moved to "
                    "epoch {held} at a failover: it is a former primary and may "
                    "not sign"
                ),
                hint=N_(
                    "point the home at the current primary; rebuild this one as "
                    "its standby (pg_rewind or pg_basebackup), never serve from "
                    "it"
                ),
                epoch=epoch,
                held=held,
            )
    return epoch


def raise_epoch(conn: Connection) -> int:
    """At failover, on the promoted primary: the next epoch (under the append lock)."""
    conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1).with_for_update())
    epoch = db_epoch(conn) + 1
    if conn.execute(select(HEAD.c.id).where(HEAD.c.id == EPOCH_ROW)).first() is None:
        conn.execute(HEAD.insert().values(id=EPOCH_ROW, size=epoch))
    else:
        conn.execute(HEAD.update().where(HEAD.c.id == EPOCH_ROW).values(size=epoch))
    return epoch


# -- before each signing ---------------------------------------------------------------------


def _signed_root(conn: Connection, size: int) -> bytes | None:
    row = conn.execute(_SIGNED_ROOT, {"size": size}).first()
    return None if row is None else bytes(row.root)


def check_before_signing(
    conn: Connection,
    *,
    old_size: int,
    frontier: Mapping[merkle.Node, bytes],
    fresh: Mapping[merkle.Node, bytes],
    leaves: Sequence[bytes],
    root: bytes,
    head_file: SignedHeadFile | None,
) -> None:
    """Raise ``LogStateError`` unless signing ``root`` for ``old_size + len(leaves)`` extends
    what the log already signed (see the module rules)."""
    fence(conn, head_file)
    held = head_file.read() if head_file is not None else None
    new_size = old_size + len(leaves)
    old_root = merkle.root_from_nodes(old_size, frontier)
    if old_size > 0:
        signed = _signed_root(conn, old_size)
        if signed is None:
            raise LogStateError(
                N_(
                    "the log's head says {old_size} entries but no checkpoint of "
                    "that size was signed: the head row is ahead of the signed "
                    "log"
                ),
                hint=RECOVER,
                old_size=old_size,
            )
        if signed != old_root:
            raise LogStateError(
                N_(
                    "the stored tree nodes give root {old_root} for size "
                    "{old_size}, but the checkpoint signed for that size has "
                    "{signed}: a stored node was altered or lost"
                ),
                hint=RECOVER,
                old_root=b64encode(old_root),
                old_size=old_size,
                signed=b64encode(signed),
            )
    if held is not None:
        if held.size > old_size:
            raise LogStateError(
                N_(
                    "the database holds {old_size} entries, but the log already "
                    "signed {describe}: the database lost acknowledged entries"
                ),
                hint=RECOVER,
                old_size=old_size,
                describe=held.describe(),
            )
        at_held = old_root if held.size == old_size else _signed_root(conn, held.size)
        if held.size > 0 and at_held != held.root:
            raise LogStateError(
                N_(
                    "the database's checkpoint of size {size} is not the one the "
                    "log signed ({describe}): it holds a different history"
                ),
                hint=RECOVER,
                size=held.size,
                describe=held.describe(),
            )
    # The new root, again: from the frontier just checked and this transaction's leaves alone.
    again = merkle.nodes_for_batch(old_size, list(leaves), lambda lv, ix: frontier[(lv, ix)])
    known = {**frontier, **{(lv, ix): h for lv, ix, h in again}}
    recomputed = merkle.root_from_nodes(new_size, known)
    if recomputed != root or any(fresh.get((lv, ix), h) != h for lv, ix, h in again):
        raise LogStateError(
            N_("the root about to be signed for size {new_size} is not the one its nodes give"),
            hint=RECOVER,
            new_size=new_size,
        )
    if old_size > 0:
        needed = merkle.consistency_proof_nodes(old_size, new_size)
        missing = [n for n in needed if n not in known]
        if missing:
            for row in conn.execute(
                select(NODE.c.level, NODE.c.idx, NODE.c.hash).where(
                    NODE.c.level.in_({lv for lv, _ in missing}),
                    NODE.c.idx.in_({ix for _, ix in missing}),
                )
            ):
                known.setdefault((row.level, row.idx), bytes(row.hash))
        try:
            proof = merkle.consistency_proof_from_nodes(old_size, new_size, known)
            merkle.verify_consistency(old_size, new_size, old_root, root, proof)
        except (KeyError, CustodyError) as e:
            raise LogStateError(
                N_(
                    "the tree of size {new_size} is not consistent with the "
                    "signed tree of size {old_size}"
                ),
                hint=RECOVER,
                new_size=new_size,
                old_size=old_size,
            ) from e


# -- at start --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartReport:
    """What the start check saw (for readiness and `custody log check`)."""

    size: int
    checkpoint: SignedHead | None
    file: SignedHead | None
    leaves_checked: int
    states_checked: int
    epoch: int = 1

    def as_dict(self) -> dict[str, object]:
        return {
            "size": self.size,
            "checkpoint": self.checkpoint.describe() if self.checkpoint else None,
            "signed_head_file": self.file.describe() if self.file else None,
            "leaves_checked": self.leaves_checked,
            "states_checked": self.states_checked,
            "epoch": self.epoch,
        }


def check_at_start(
    conn: Connection,
    verifier: NoteVerifier,
    origin: str,
    held_file: SignedHeadFile | None,
    *,
    tail: int | None = DEFAULT_TAIL,
    light: bool = False,
) -> StartReport:
    """Raise ``LogStateError`` unless the stored log agrees with itself and with the last
    signed checkpoint kept outside the database (see the module rules).

    ``tail``: how many of the newest leaves are re-hashed (None: the whole tree is rebuilt and
    every stored node compared). ``light`` (readiness, often): O(log n) queries only, no
    entry count, no leaf and no package state read.
    """
    # The file first, then the database's snapshot: the file moves forward only after a commit,
    # so what it holds is never ahead of a snapshot taken after reading it (other writers may
    # append while this runs).
    held = held_file.read() if held_file is not None else None
    epoch = fence(conn, held_file)
    row = conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).first()
    if row is None:
        size = 0
    else:
        size = row.size
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise LogStateError(
                N_("the log's head row holds {size!r}, not a size"), hint=RECOVER, size=size
            )
    if light:  # O(log n): the highest entry only
        high = conn.execute(select(func.max(ENTRY.c.idx))).scalar_one_or_none()
        count, low = (size if high == size - 1 or (high is None and not size) else -1), 0
    else:
        count, low, high = conn.execute(
            select(func.count(), func.min(ENTRY.c.idx), func.max(ENTRY.c.idx))
        ).one()
    if count != size or (size and (low != 0 or high != size - 1)):
        raise LogStateError(
            N_(
                "the log's head says {size} entries, but the entry table "
                "holds {count} (indexes {low}..{high}): rows were deleted or "
                "added outside the log"
            ),
            hint=RECOVER,
            size=size,
            count=count,
            low=low,
            high=high,
        )
    top = conn.execute(
        select(CHECKPOINT.c.size, CHECKPOINT.c.root, CHECKPOINT.c.note)
        .order_by(CHECKPOINT.c.size.desc())
        .limit(1)
    ).first()
    latest: SignedHead | None = None
    if top is None:
        if size:
            raise LogStateError(
                N_("the log holds {size} entries but no signed checkpoint"), hint=RECOVER, size=size
            )
    else:
        latest = open_signed(
            str(top.note), verifier, origin, what=f"the stored checkpoint of size {top.size}"
        )
        if latest.size != top.size or latest.root != bytes(top.root):
            raise LogStateError(
                N_("the stored checkpoint row of size {size} does not match its signed note"),
                hint=RECOVER,
                size=top.size,
            )
        if latest.size != size:
            raise LogStateError(
                N_(
                    "the log's head says {size} entries, but the last signed "
                    "checkpoint is of size {size2}: the head row is {direction}"
                ),
                hint=RECOVER,
                size=size,
                size2=latest.size,
                direction=Phrase("ahead") if size > latest.size else Phrase("behind"),
            )
    beyond = conn.execute(
        select(func.max(NODE.c.idx)).where(NODE.c.level == 0)
    ).scalar_one_or_none()
    if beyond is not None and beyond >= size:
        raise LogStateError(
            N_("the tree table holds leaf {beyond}, beyond the log's {size} entries"),
            hint=RECOVER,
            beyond=beyond,
            size=size,
        )
    frontier: dict[merkle.Node, bytes] = {}
    wanted = merkle.frontier_nodes(size)
    if wanted:
        for n in conn.execute(
            select(NODE.c.level, NODE.c.idx, NODE.c.hash).where(
                NODE.c.idx.in_({ix for _, ix in wanted}), NODE.c.level.in_({lv for lv, _ in wanted})
            )
        ):
            if (n.level, n.idx) in wanted:
                frontier[(n.level, n.idx)] = bytes(n.hash)
        lost = [w for w in wanted if w not in frontier]
        if lost:
            raise LogStateError(
                N_("the tree table lacks node(s) {lost}"), hint=RECOVER, lost=lost[:3]
            )
        root = merkle.root_from_nodes(size, frontier)
        assert latest is not None  # size > 0 implies a checkpoint (checked above)
        if root != latest.root:
            raise LogStateError(
                N_(
                    "the stored tree nodes give root {root} for size {size}, but "
                    "the log signed {describe}: a stored node was altered or lost"
                ),
                hint=RECOVER,
                root=b64encode(root),
                size=size,
                describe=latest.describe(),
            )
    if held is not None:
        if held.size > size:
            raise LogStateError(
                N_(
                    "the database holds {size} entries, but the log already "
                    "signed {describe} ({path}): the database lost acknowledged "
                    "entries"
                ),
                hint=RECOVER,
                size=size,
                describe=held.describe(),
                path=held_file.path if held_file else "",
            )
        if held.size and (
            (latest is not None and held.size == latest.size and held.note != latest.note)
            or _signed_root(conn, held.size) != held.root
        ):
            raise LogStateError(
                N_(
                    "the database's checkpoint of size {size} is not the one the "
                    "log signed ({describe}): it holds a different history"
                ),
                hint=RECOVER,
                size=held.size,
                describe=held.describe(),
            )
    elif held_file is not None and size > 0 and not held_file.exists():
        raise LogStateError(
            N_(
                "the log's signed-checkpoint file {path} is missing but the database holds "
                "{size} entries"
            ),
            hint=N_(
                "if this database is the right one, run `custody log check --adopt` to audit "
                "it in full and keep its last checkpoint; otherwise {recover}"
            ),
            path=held_file.path,
            size=size,
            recover=Phrase(RECOVER),
        )
    if light:
        return StartReport(size, latest, held, 0, 0, epoch)
    start = 0 if tail is None else max(0, size - tail)
    checked = _audit_tree(conn, size) if tail is None else _audit_leaves(conn, start)
    states = 0
    for st in conn.execute(
        select(STATE.c.package_id, STATE.c.state, STATE.c.last_idx).where(STATE.c.last_idx >= start)
    ):
        if st.last_idx >= size:
            raise LogStateError(
                N_(
                    "package {package_id}'s cached state is from entry "
                    "{last_idx}, beyond the log's {size} entries"
                ),
                hint=RECOVER,
                package_id=st.package_id,
                last_idx=st.last_idx,
                size=size,
            )
        if state_from_json(st.state).package_id != st.package_id:
            raise LogStateError(
                N_("package {package_id}'s cached state names another package"),
                package_id=st.package_id,
            )
        states += 1
    return StartReport(size, latest, held, checked, states, epoch)


def _audit_leaves(conn: Connection, start: int) -> int:
    """Every entry from ``start`` on hashes to its stored leaf node; returns how many."""
    checked = 0
    for entry in conn.execute(
        select(ENTRY.c.idx, ENTRY.c.envelope, ENTRY.c.received_at, NODE.c.hash)
        .join(NODE, (NODE.c.level == 0) & (NODE.c.idx == ENTRY.c.idx), isouter=True)
        .where(ENTRY.c.idx >= start)
        .order_by(ENTRY.c.idx)
    ):
        leaf = leaf_of(entry.envelope, entry.received_at)
        if entry.hash is None or merkle.leaf_hash(leaf) != bytes(entry.hash):
            raise LogStateError(
                N_(
                    "log entry {idx} does not hash to its stored tree leaf: the "
                    "entry (or its node) was altered"
                ),
                hint=RECOVER,
                idx=entry.idx,
            )
        checked += 1
    return checked


AUDIT_CHUNK = 4096


def _getter(nodes: Mapping[merkle.Node, bytes]) -> merkle.NodeGetter:
    return lambda level, idx: nodes[(level, idx)]


def _audit_tree(conn: Connection, size: int) -> int:
    """The whole tree rebuilt from the entries, chunk by chunk, and every stored node compared
    with it (none altered, none missing, none extra); returns the number of leaves."""
    frontier: dict[merkle.Node, bytes] = {}
    pos = 0
    while pos < size:
        leaves = [
            merkle.leaf_hash(leaf_of(r.envelope, r.received_at))
            for r in conn.execute(
                select(ENTRY.c.envelope, ENTRY.c.received_at)
                .where(ENTRY.c.idx >= pos, ENTRY.c.idx < pos + AUDIT_CHUNK)
                .order_by(ENTRY.c.idx)
            )
        ]
        if not leaves:
            raise LogStateError(N_("log entries from {pos} on are missing"), hint=RECOVER, pos=pos)
        built = merkle.nodes_for_batch(pos, leaves, _getter(frontier))
        end = pos + len(leaves)
        stored: dict[merkle.Node, bytes] = {}
        for level in range(end.bit_length()):
            low, high = pos >> level, end >> level
            if low == high:
                continue
            for r in conn.execute(
                select(NODE.c.idx, NODE.c.hash).where(
                    NODE.c.level == level, NODE.c.idx >= low, NODE.c.idx < high
                )
            ):
                stored[(level, int(r.idx))] = bytes(r.hash)
        for level, idx, h in built:
            if stored.get((level, idx)) != h:
                raise LogStateError(
                    N_(
                        "stored tree node ({level}, {idx}) is not the hash of the "
                        "entries below it (entries {first}..{last})"
                    ),
                    hint=RECOVER,
                    level=level,
                    idx=idx,
                    first=idx << level,
                    last=(idx + 1 << level) - 1,
                )
        known = {**frontier, **{(lv, ix): h for lv, ix, h in built}}
        frontier = {n: known[n] for n in merkle.frontier_nodes(end)}
        pos = end
    expected = 2 * size - bin(size).count("1")
    count = conn.execute(select(func.count()).select_from(NODE)).scalar_one()
    if count != expected:
        raise LogStateError(
            N_("the tree table holds {count} nodes, a log of {size} entries has {expected}"),
            hint=RECOVER,
            count=count,
            size=size,
            expected=expected,
        )
    return size
