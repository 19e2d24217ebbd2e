"""The rate limiter's counters: in the process that serves the home, or shared by every
worker process of ``serve --workers N``.

One server process counts in its own memory (``ProcessCounters``): nothing else answers for
the home, and a counter costs no write. ``serve --workers N`` runs N processes; with counters
in each process's memory a client would get N times its limit. Their counters live instead in
a small SQLite file of the home (``rates.sqlite``, ``SharedCounters``), so every worker counts
against the same numbers. Both are storages for the ``limits`` library's fixed-window strategy
(``limits.strategies.FixedWindowRateLimiter``) and count alike.

Rules:
- One row per (limit, kind, who): its count and when its window ends. A hit is one SQL
  statement (an upsert that starts a new window once the old one has ended, returning the
  count), atomic under SQLite's write lock: two processes never both take the last request.
- Writers take turns on a file lock beside it (``rates.sqlite.lock``, ``flock``) before
  SQLite's own lock: two processes meeting in SQLite's busy handler sleep a millisecond or
  more (measured: a worker's event loop stopped up to 180 ms), while one waiting on the file
  lock wakes as soon as the other lets go (worst 2-5 ms).
- The file is the home's, apart from its database (``custody.db`` or PostgreSQL), so the
  counting of every request never waits on the log's or the access log's writes, and it
  needs no server. It is written without waiting for the disk (``synchronous=OFF``, WAL):
  counters lost in a power cut only give clients a fresh window.
- It holds client addresses and key ids for at most one window: rows whose window has ended
  are deleted as the store goes (every ``PURGE_EVERY`` hits of a process); so does the
  in-memory store with its entries.
- A store that cannot be read or written raises ``StorageError`` (503): requests are not
  answered uncounted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

from limits.storage import Storage

from custody.errors import N_, StorageError
from custody.store.faults import storage_error

RATES_FILE = "rates.sqlite"
PURGE_EVERY = 4096
BUSY_MS = 2000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS rate_window ("
    "key TEXT PRIMARY KEY, count INTEGER NOT NULL, ends REAL NOT NULL) WITHOUT ROWID"
)
_HIT = (
    "INSERT INTO rate_window (key, count, ends) VALUES (:key, :amount, :ends) "
    "ON CONFLICT (key) DO UPDATE SET "
    "count = CASE WHEN rate_window.ends <= :now THEN :amount "
    "ELSE rate_window.count + :amount END, "
    "ends = CASE WHEN rate_window.ends <= :now THEN :ends ELSE rate_window.ends END "
    "RETURNING count"
)


class Counters(Storage):
    """What both stores read alike: a key's count and the end of its window, from ``_row``
    (``None`` once the window has ended)."""

    @abstractmethod
    def incr_many(self, keys: Sequence[str], expiry: int, amount: int = 1) -> list[int]:
        """``incr`` of each key, in order, counted together."""

    @abstractmethod
    def _row(self, key: str) -> tuple[int, float] | None:
        """The key's (count, end of its window), or ``None`` (no window, or one that ended)."""

    def get(self, key: str) -> int:
        row = self._row(key)
        return 0 if row is None else row[0]

    def get_many(self, keys: Sequence[str]) -> list[int]:
        """``get`` of each key, in order (nothing counted)."""
        return [self.get(key) for key in keys]

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return time.time() if row is None else row[1]


class SharedCounters(Counters):
    """Fixed-window counters in ``<home>/rates.sqlite`` (a ``limits`` storage)."""

    STORAGE_SCHEME = ["custody-home"]  # noqa: RUF012 - the type limits declares

    def __init__(self, path: Path | str, **options: float | str | bool) -> None:
        super().__init__(str(path), wrap_exceptions=False, **options)
        self.path = Path(path)
        self._idle: list[sqlite3.Connection] = []  # connections not in use, any thread's
        self._lock = threading.Lock()
        self._hits = 0
        self._turn = threading.Lock()  # this process's threads, one at a time on the file lock
        self._lock_fd = -1
        try:
            self._lock_fd = os.open(
                f"{self.path}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            with self._conn() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise StorageError(
                N_("the rate limiter's store {path} could not be opened"), path=str(self.path)
            ) from e

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        """A connection of the pool (one thread at a time uses it; the server's threads are
        many and short-lived, so connections are not tied to them)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        try:
            yield conn
        except BaseException:
            conn.close()  # a connection that failed is not reused
            raise
        with self._lock:
            self._idle.append(conn)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """The processes' turns at writing, taken in the kernel (``flock``): a process waiting
        wakes as soon as the other lets go. Without it the writers meet in SQLite, whose busy
        handler sleeps a millisecond or more each time, with the server's event loop stopped."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.incr_many([key], expiry, amount)[0]

    def incr_many(self, keys: Sequence[str], expiry: int, amount: int = 1) -> list[int]:
        """``incr`` of each key, in order, on one turn at the file lock and in one transaction
        (a submission counts against each of its signers' keys)."""
        now = time.time()
        counts: list[int] = []
        try:
            with self._turn, self._file_lock(), self._conn() as conn:
                if len(keys) > 1:
                    conn.execute("BEGIN IMMEDIATE")
                for key in keys:
                    row = conn.execute(
                        _HIT, {"key": key, "amount": amount, "ends": now + expiry, "now": now}
                    ).fetchone()
                    counts.append(int(row[0]))
                if len(keys) > 1:
                    conn.execute("COMMIT")
                self._hits += 1
                if self._hits % PURGE_EVERY == 0:
                    conn.execute("DELETE FROM rate_window WHERE ends <= ?", (now,))
        except sqlite3.Error as e:
            # A full disk is db_full, a read-only one read_only, as for the log's own database.
            # (A connection that failed inside its transaction is closed, not reused: _conn.)
            raise storage_error(e, f"sqlite:///{self.path}") or StorageError(
                N_("the rate limiter's store {path} could not be written"), path=str(self.path)
            ) from e
        except OSError as e:  # the file lock
            raise StorageError(
                N_("the rate limiter's store {path} could not be written"), path=str(self.path)
            ) from e
        return counts

    def _row(self, key: str) -> tuple[int, float] | None:
        return self._rows([key])[0]

    def _rows(self, keys: Sequence[str]) -> list[tuple[int, float] | None]:
        """Each key's (count, end of its window) or ``None``, read on one connection."""
        now = time.time()
        rows: list[tuple[int, float] | None] = []
        try:
            with self._conn() as conn:
                for key in keys:
                    row = conn.execute(
                        "SELECT count, ends FROM rate_window WHERE key = ?", (key,)
                    ).fetchone()
                    live = row is not None and float(row[1]) > now
                    rows.append((int(row[0]), float(row[1])) if live else None)
        except sqlite3.Error as e:
            raise storage_error(e, f"sqlite:///{self.path}") or StorageError(
                N_("the rate limiter's store could not be read")
            ) from e
        return rows

    def get_many(self, keys: Sequence[str]) -> list[int]:
        return [0 if row is None else row[0] for row in self._rows(keys)]

    def check(self) -> bool:
        try:
            with self._conn() as conn:
                conn.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        # writes take their turn at the file lock, as ``incr_many`` does
        with self._turn, self._file_lock(), self._conn() as conn:
            return int(conn.execute("DELETE FROM rate_window").rowcount)

    def clear(self, key: str) -> None:
        with self._turn, self._file_lock(), self._conn() as conn:
            conn.execute("DELETE FROM rate_window WHERE key = ?", (key,))

    def close(self) -> None:
        """Close the pool's idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
            lock_fd, self._lock_fd = self._lock_fd, -1
        for conn in idle:
            conn.close()
        if lock_fd >= 0:
            os.close(lock_fd)


class ProcessCounters(Counters):
    """Fixed-window counters in this process's memory, counted as ``SharedCounters`` counts
    (a window starts at the first hit after the last one ended): one ``serve`` process."""

    STORAGE_SCHEME = ["custody-process"]  # noqa: RUF012 - the type limits declares

    def __init__(self, uri: str = "custody-process://", **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions=False, **options)
        self._windows: dict[str, tuple[int, float]] = {}  # key: (count, when the window ends)
        self._lock = threading.Lock()
        self._hits = 0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            count, ends = self._windows.get(key, (0, now))
            count, ends = (count + amount, ends) if ends > now else (amount, now + expiry)
            self._windows[key] = (count, ends)
            self._hits += 1
            if self._hits % PURGE_EVERY == 0:
                self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
        return count

    def incr_many(self, keys: Sequence[str], expiry: int, amount: int = 1) -> list[int]:
        return [self.incr(key, expiry, amount) for key in keys]

    def _row(self, key: str) -> tuple[int, float] | None:
        row = self._windows.get(key)
        return row if row is not None and row[1] > time.time() else None

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            n, self._windows = len(self._windows), {}
        return n

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)


__all__ = ["RATES_FILE", "Counters", "ProcessCounters", "SharedCounters"]
