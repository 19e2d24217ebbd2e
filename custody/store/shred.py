"""Checked shredding: proof that deleted bytes left the database, or a list of what is left.

Deleting a row is not erasing it. SQLite keeps the old page in the write-ahead log (and in the
database file) until a checkpoint folds the log back and truncates it, and a checkpoint cannot
pass a reader that still holds an older snapshot. PostgreSQL keeps the old row version until
VACUUM, and VACUUM cannot remove it while an older transaction might still see it.

Rules:
- Live rows: no row of the table still holds a destroyed blob (matched by its SHA-256 or by
  its locator). Checked on both engines.
- SQLite: ``PRAGMA wal_checkpoint(TRUNCATE)`` must report ``busy = 0`` and an empty log; it is
  retried with short sleeps for at most ``wait`` seconds (a reader holding a snapshot blocks
  it). Then the database file and its ``-wal``, ``-shm`` and ``-journal`` files (those that
  exist) are read in full: none may contain a destroyed blob or its locator.
- PostgreSQL: ``VACUUM`` on the table, outside any transaction; it must have run (the table's
  ``last_vacuum`` moved) and left no dead row version (``n_dead_tup = 0``); it is repeated
  with short sleeps for at most ``wait`` seconds while an older snapshot holds old versions.
  A server's files cannot be read by a client, so nothing here proves the bytes left the
  disk (docs/adr/0005-checked-shredding.md).
- Reports name what is left and where (a file, a table, a session), never the bytes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, LargeBinary, column, select, table, text

from custody.errors import N_, StorageError
from custody.store.db import BUSY_TIMEOUT_MS, read_options

ERASE_WAIT = 5.0  # seconds a checkpoint (or VACUUM) is retried while a snapshot blocks it
RETRY_SLEEP = 0.05
CHECKPOINT_BUSY_MS = 100  # how long one checkpoint attempt waits for readers
LOCATOR_BYTES = 16  # half of a sealed box's ephemeral public key (docs/adr/0005)
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
SCAN_CHUNK = 1 << 20


def locator(blob: bytes) -> bytes:
    """The first bytes of a sealed box: its ephemeral public key, which is public by design.

    A copy of the box without its whole ephemeral key cannot be opened by anyone, so every
    copy that matters contains the locator.
    """
    return blob[:LOCATOR_BYTES]


@dataclass(frozen=True)
class Destroyed:
    """One destroyed blob to look for.

    ``label`` names it for people (slot, holder, paper) and never contains key material;
    ``patterns`` are the byte strings whose presence betrays a copy (the whole blob when this
    process still holds it, and its locator).
    """

    label: str
    sealed_sha256: str
    patterns: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True)
class EraseCheck:
    """What a shredding check found: copies still present and reasons it could not finish."""

    copies: tuple[str, ...] = ()
    obstacles: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.copies and not self.obstacles

    def describe(self) -> str:
        return "; ".join(self.obstacles + self.copies)


def check_erased(
    engine: Engine,
    table_name: str,
    blob_column: str,
    destroyed: Sequence[Destroyed],
    *,
    wait: float = ERASE_WAIT,
) -> EraseCheck:
    """Make the engine drop its old copies of ``destroyed`` and prove they are gone.

    Runs after the deleting transaction committed, outside any transaction. Returns what is
    left (nothing when ``complete``); raises ``StorageError`` only when it cannot even look.
    """
    copies = _held_by(
        f"a live row of table {table_name}",
        _live_rows_holding(engine, table_name, blob_column, destroyed),
    )
    obstacles: list[str] = []
    if engine.dialect.name == "sqlite":
        blocked = _truncate_wal(engine, wait)
        if blocked is not None:
            obstacles.append(blocked)
        for path in sqlite_files(engine):
            copies += _held_by(str(path), files_holding(path, destroyed))
    elif engine.dialect.name == "postgresql":
        obstacles += _vacuum(engine, table_name, wait)
    else:
        obstacles.append(f"no erase check is known for the {engine.dialect.name} engine")
    return EraseCheck(tuple(copies), tuple(obstacles))


def _held_by(where: str, found: Sequence[Destroyed]) -> list[str]:
    if not found:
        return []
    return [f"{where} still holds a copy of " + ", ".join(d.label for d in found)]


def _live_rows_holding(
    engine: Engine, table_name: str, blob_column: str, destroyed: Sequence[Destroyed]
) -> list[Destroyed]:
    query = select(column(blob_column, LargeBinary())).select_from(table(table_name))
    with engine.connect().execution_options(**read_options(engine)) as conn:
        blobs = [bytes(b) for b in conn.execute(query).scalars()]
    hashes = {hashlib.sha256(b).hexdigest() for b in blobs}
    return [
        d
        for d in destroyed
        if d.sealed_sha256 in hashes or any(p in b for b in blobs for p in d.patterns)
    ]


def _truncate_wal(engine: Engine, wait: float) -> str | None:
    """Checkpoint and truncate the WAL, retrying until ``wait`` runs out; the obstacle if not."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        # One attempt waits briefly for readers; the loop, not SQLite's 30 s busy handler,
        # decides how long the command may hang.
        cursor.execute(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")
        deadline = time.monotonic() + wait
        while True:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            row = cursor.fetchone()
            if row is None:  # pragma: no cover  (SQLite always answers one row)
                raise StorageError(N_("SQLite returned no result for wal_checkpoint(TRUNCATE)"))
            busy, log_frames, checkpointed = (int(v) for v in row)
            # (0, 0, 0): folded back and truncated; (0, -1, -1): not in WAL mode, no log.
            if busy == 0 and log_frames <= 0:
                return None
            if time.monotonic() >= deadline:
                return (
                    f"the write-ahead log could not be truncated within {wait:g} s "
                    f"(busy={busy}, {log_frames} frames in the log, {checkpointed} "
                    "checkpointed): another connection holds an older read snapshot"
                )
            time.sleep(RETRY_SLEEP)
    finally:
        try:
            raw.cursor().execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        finally:
            raw.close()


def sqlite_files(engine: Engine) -> list[Path]:
    """The main database file and those of its companions that exist now."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA database_list")
        rows = cursor.fetchall()
    finally:
        raw.close()
    main = next((str(r[2]) for r in rows if r[1] == "main"), "")
    if not main:  # an in-memory database has no file to hold anything
        return []
    return [p for p in (Path(main + s) for s in SQLITE_SUFFIXES) if p.exists()]


def files_holding(path: Path, destroyed: Sequence[Destroyed]) -> list[Destroyed]:
    """The destroyed blobs of which ``path`` contains a pattern, read in overlapping chunks."""
    patterns = [p for d in destroyed for p in d.patterns]
    if not patterns:
        return []
    overlap = max(len(p) for p in patterns) - 1
    found: set[int] = set()
    tail = b""
    try:
        with path.open("rb") as fh:
            while block := fh.read(SCAN_CHUNK):
                window = tail + block
                for i, d in enumerate(destroyed):
                    if i not in found and any(p in window for p in d.patterns):
                        found.add(i)
                tail = window[-overlap:] if overlap else b""
    except FileNotFoundError:  # the last connection closed and SQLite removed it
        return []
    except OSError as e:
        raise StorageError(
            N_("cannot read {path} to check that destroyed keys left it: {strerror}"),
            path=path,
            strerror=e.strerror,
        ) from e
    return [d for i, d in enumerate(destroyed) if i in found]


def _vacuum(engine: Engine, table_name: str, wait: float) -> list[str]:
    """VACUUM the table outside a transaction, again while old row versions survive (at most
    ``wait`` seconds); what kept it from removing them."""
    quoted = engine.dialect.identifier_preparer.quote(table_name)
    stats = text(
        "SELECT n_dead_tup, last_vacuum FROM pg_stat_user_tables "
        "WHERE relname = :t AND schemaname = current_schema()"
    )
    holders = text(
        "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_xmin IS NOT NULL AND pid <> pg_backend_pid() "
        "ORDER BY age(backend_xmin) DESC LIMIT 5"
    )
    deadline = time.monotonic() + wait
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while True:
            started = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
            conn.exec_driver_sql(f"VACUUM {quoted}")
            after = conn.execute(stats, {"t": table_name}).one_or_none()
            if after is None or after.last_vacuum is None or after.last_vacuum < started:
                # VACUUM by a role that does not own the table only warns and skips it.
                return [f"VACUUM did not run on table {table_name} (does this role own it?)"]
            if not after.n_dead_tup:
                return []
            if time.monotonic() >= deadline:
                found = conn.execute(holders).all()
                sessions = ", ".join(f"pid {h.pid} ({h.state})" for h in found) or "none seen"
                return [
                    f"VACUUM left {after.n_dead_tup} old row version(s) in table {table_name} "
                    f"after {wait:g} s: a transaction older than the deletion still holds "
                    f"them (sessions with an open snapshot: {sessions})"
                ]
            time.sleep(RETRY_SLEEP)
