"""The rate limiter's counters: in the process that serves the home, or shared by every
worker process of ``serve --workers N``.

One server process counts in its own memory (``ProcessCounters``): nothing else answers for
the home, and a counter costs no write. ``serve --workers N`` runs N processes; with counters
in each process's memory a client would get N times its limit. Their counters live instead in
a small table file of the home (``rates.table``, ``SharedCounters``) that every worker maps
into its memory, so every worker counts against the same numbers. Both are storages for the
``limits`` library's fixed-window strategy (``limits.strategies.FixedWindowRateLimiter``) and
count alike.

Rules:
- The file is a fixed-size hash table (``SLOTS`` slots of 32 bytes after a 64-byte header;
  2 MiB), made whole when first opened (its blocks allocated: a full disk is found then, not
  in the middle of a count). A slot holds a keyed BLAKE2b digest of (limit, kind, who), the
  count and when its window ends; a window that has ended counts as none. The digest's key
  is random, made with the file: the file holds no client address or key id in clear.
- Every count (``incr``) is made under ``flock`` on the file (one process at a time; the
  kernel wakes a waiting process as soon as the holder lets go) and a thread lock (one thread
  of a process at a time): two processes never both take the last request. A count is a few
  memory reads and writes: microseconds, where an SQLite upsert with its transaction took
  tens (docs/benchmarks.md, session 12). The digests are made before the turn is taken: the
  turn is held only for the table's own reads and writes.
- A read that counts nothing (``get_many``: the check before a signed request's work, which
  refuses a key already at its rate) takes no turn. It sees each count as before or after a
  count being made meanwhile, and a slot being filled or a table being rebuilt at that instant
  as no count: such a check lets one request through that a locked one would have refused, no
  more. The count after the work stays exact. (A check and its count were never one turn: two
  requests checked at once both pass; the per-key rate is the count's.) Skipping the turn
  saves one of a submission's three (docs/benchmarks.md, session 15).
- Counters are not made durable: a power cut only gives clients a fresh window.
- A digest stays for at most one window and one sweep: every ``SWEEP_EVERY`` hits of a
  process also sweep ``SWEEP`` slots (a cursor kept in the header goes round the table),
  turning slots whose window has ended into free ones. Slots are found by linear probing;
  when a search walks past ``REBUILD_AFTER`` slots the table is rebuilt with only the live
  windows. A table whose every slot holds a live window refuses the hit with
  ``StorageError`` (503), as does a store that cannot be opened: requests are not answered
  uncounted. Until the first of those windows ends, a process that found the table full
  searches only ``REBUILD_AFTER`` slots and refuses what it does not find there (a flood of
  new addresses must not cost a walk of the whole table per request).
- Each process opens the table itself (``flock`` does not keep apart two processes sharing
  one open file): uvicorn's workers are started afresh, each building its own app.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import secrets
import struct
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

from limits.storage import Storage

from custody.errors import N_, StorageError

RATES_FILE = "rates.table"
PURGE_EVERY = 4096  # the memory store's sweep of ended windows, in hits

MAGIC = b"custody-rates-1\n"  # 16 bytes
HEADER = 64  # magic, digest key (16 bytes), sweep cursor and slot count (u32 each), zeros
SLOTS = 1 << 16
SLOT = 32  # digest (16 bytes), count (u32), zeros (4 bytes), window end (f64, Unix seconds)
SWEEP = 1024  # slots swept at a time (a divisor of SLOTS)
SWEEP_EVERY = 64  # hits of a process between its sweeps
REBUILD_AFTER = 64  # slots a search may walk before the table is rebuilt
_FREE = bytes(16)  # never used
_GONE = b"\xff" * 16  # used before, free now (a search walks on past it)
_COUNT_ENDS = struct.Struct("<I4xd")
_CURSOR = struct.Struct("<I")


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
    """Fixed-window counters in ``<home>/rates.table``, mapped by every worker (a ``limits``
    storage)."""

    STORAGE_SCHEME = ["custody-home"]  # noqa: RUF012 - the type limits declares

    def __init__(self, path: Path | str, **options: float | str | bool) -> None:
        super().__init__(str(path), wrap_exceptions=False, **options)
        self.path = Path(path)
        self._turn = threading.Lock()  # this process's threads, one at a time on the file lock
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._ends: memoryview[float] | None = None  # the slots' window ends (4 doubles a slot)
        self._hits = 0
        self._full_until = 0.0  # found full until this time (this process's knowledge)
        try:
            self._fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            with self._file_lock():
                size = os.fstat(self._fd).st_size
                if size == 0:  # new: allocated whole, then marked as a table
                    os.posix_fallocate(self._fd, 0, HEADER + SLOTS * SLOT)
                    header = MAGIC + secrets.token_bytes(16) + struct.pack("<II", 0, SLOTS)
                    os.pwrite(self._fd, header, 0)
                    size = HEADER + SLOTS * SLOT
                if size != HEADER + SLOTS * SLOT:
                    raise OSError(f"{size} bytes, not a rate table")
                self._map = mmap.mmap(self._fd, size)
            if self._map[:16] != MAGIC:
                raise OSError("not a rate table")
            self._secret = bytes(self._map[16:32])
            self._ends = memoryview(self._map)[HEADER:].cast("d")
        except OSError as e:
            self.close()
            raise StorageError(
                N_("the rate limiter's store {path} could not be opened"), path=str(self.path)
            ) from e

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """The processes' turns at the table, taken in the kernel (``flock``): a process
        waiting wakes as soon as the other lets go."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _enter(self) -> mmap.mmap:
        """This process's turn, then the processes' turn, at the table (``_leave`` after)."""
        table = self._map
        if table is None:
            raise StorageError(
                N_("the rate limiter's store {path} could not be opened"), path=str(self.path)
            )
        self._turn.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._turn.release()
            raise
        return table

    def _leave(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._turn.release()

    @contextlib.contextmanager
    def _table(self) -> Iterator[mmap.mmap]:
        table = self._enter()
        try:
            yield table
        finally:
            self._leave()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return OSError

    def _digest(self, key: str) -> bytes:
        d = hashlib.blake2b(key.encode("utf-8"), digest_size=16, key=self._secret).digest()
        return d if d not in (_FREE, _GONE) else bytes(15) + b"\x01"

    def _find(
        self, table: mmap.mmap, digest: bytes, now: float, limit: int | None = None
    ) -> tuple[int, int, int]:
        """(the digest's slot or -1, the first slot free to take or -1, slots walked), walking
        at most ``limit`` slots (all of them by default)."""
        mask = SLOTS - 1
        i = int.from_bytes(digest[:8], "little") & mask
        free = -1
        for walked in range(SLOTS if limit is None else min(limit, SLOTS)):
            at = HEADER + i * SLOT
            held = table[at : at + 16]
            if held == digest:
                return i, free, walked
            if held == _FREE:
                return -1, (i if free < 0 else free), walked
            if free < 0 and (held == _GONE or _COUNT_ENDS.unpack_from(table, at + 16)[1] <= now):
                free = i
            i = (i + 1) & mask
        return -1, free, SLOTS

    def _hit(self, table: mmap.mmap, digest: bytes, expiry: int, amount: int, now: float) -> int:
        # Once this process found the table full, until its first window ends a newcomer is
        # refused after a short search: no walk of the whole table, no rebuild, per request.
        full = now < self._full_until
        found, free, walked = self._find(table, digest, now, REBUILD_AFTER if full else None)
        if found >= 0:
            at = HEADER + found * SLOT
            count, ends = _COUNT_ENDS.unpack_from(table, at + 16)
            count, ends = (count + amount, ends) if ends > now else (amount, now + expiry)
            _COUNT_ENDS.pack_into(table, at + 16, min(count, 0xFFFFFFFF), ends)
            return int(count)
        if not full and walked > REBUILD_AFTER:
            earliest = self._rebuild(table, now)
            found, free, walked = self._find(table, digest, now)
            if free < 0:
                self._full_until = earliest
        if full or free < 0:
            raise StorageError(
                N_(
                    "the rate limiter's store {path} is full: {slots} clients and keys "
                    "are counted in their windows now"
                ),
                hint=N_("retry once the windows counted now have ended (at most one rate period)"),
                path=str(self.path),
                slots=SLOTS,
            )
        at = HEADER + free * SLOT
        _COUNT_ENDS.pack_into(table, at + 16, amount, now + expiry)
        table[at : at + 16] = digest
        return amount

    def _sweep(self, table: mmap.mmap, now: float) -> None:
        """Free ``SWEEP`` slots' ended windows, from the cursor on (their digests are gone).
        A free slot's window end is 0; a used one's is after the epoch."""
        assert self._ends is not None
        sweep = min(SWEEP, SLOTS)
        (cursor,) = _CURSOR.unpack_from(table, 32)
        cursor -= cursor % sweep
        ends = self._ends[4 * cursor + 3 : 4 * (cursor + sweep) : 4].tolist()
        for k, end in enumerate(ends):
            if 0 < end <= now:
                at = HEADER + (cursor + k) * SLOT
                table[at : at + SLOT] = _GONE + bytes(SLOT - 16)
        _CURSOR.pack_into(table, 32, (cursor + sweep) % SLOTS)

    def _rebuild(self, table: mmap.mmap, now: float) -> float:
        """The table again with only its live windows (searches walk no freed slots); returns
        when the first of them ends (0 if none is live)."""
        live = []
        for i in range(SLOTS):
            at = HEADER + i * SLOT
            held = table[at : at + 16]
            if held not in (_FREE, _GONE):
                count, ends = _COUNT_ENDS.unpack_from(table, at + 16)
                if ends > now:
                    live.append((bytes(held), count, ends))
        table[HEADER:] = bytes(SLOTS * SLOT)
        mask = SLOTS - 1
        for digest, count, ends in live:
            i = int.from_bytes(digest[:8], "little") & mask
            while table[HEADER + i * SLOT : HEADER + i * SLOT + 16] != _FREE:
                i = (i + 1) & mask
            at = HEADER + i * SLOT
            _COUNT_ENDS.pack_into(table, at + 16, count, ends)
            table[at : at + 16] = digest
        return min((ends for _, _, ends in live), default=0.0)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.incr_many([key], expiry, amount)[0]

    def incr_many(self, keys: Sequence[str], expiry: int, amount: int = 1) -> list[int]:
        """``incr`` of each key, in order, in one turn at the table (a submission counts
        against each of its signers' keys)."""
        digests = [self._digest(key) for key in keys]
        now = time.time()
        table = self._enter()
        try:
            counts = [self._hit(table, digest, expiry, amount, now) for digest in digests]
            self._hits += 1
            if self._hits % SWEEP_EVERY == 0:
                self._sweep(table, now)
        finally:
            self._leave()
        return counts

    def _row(self, key: str) -> tuple[int, float] | None:
        return self._rows([key])[0]

    def _rows(self, keys: Sequence[str]) -> list[tuple[int, float] | None]:
        """Each key's (count, end of its window) or ``None``, read without a turn (the
        module's rules: a read that counts nothing)."""
        table = self._map
        if table is None:
            raise StorageError(
                N_("the rate limiter's store {path} could not be opened"), path=str(self.path)
            )
        digests = [self._digest(key) for key in keys]
        now = time.time()
        rows: list[tuple[int, float] | None] = []
        for digest in digests:
            found, _, _ = self._find(table, digest, now)
            if found < 0:
                rows.append(None)
                continue
            count, ends = _COUNT_ENDS.unpack_from(table, HEADER + found * SLOT + 16)
            rows.append((int(count), float(ends)) if ends > now else None)
        return rows

    def get_many(self, keys: Sequence[str]) -> list[int]:
        return [0 if row is None else row[0] for row in self._rows(keys)]

    def check(self) -> bool:
        table = self._map
        return table is not None and table[:16] == MAGIC

    def reset(self) -> int | None:
        now = time.time()
        with self._table() as table:
            n = sum(
                1
                for i in range(SLOTS)
                if table[HEADER + i * SLOT : HEADER + i * SLOT + 16] not in (_FREE, _GONE)
                and _COUNT_ENDS.unpack_from(table, HEADER + i * SLOT + 16)[1] > now
            )
            table[HEADER:] = bytes(SLOTS * SLOT)
        return n

    def clear(self, key: str) -> None:
        now = time.time()
        with self._table() as table:
            found, _, _ = self._find(table, self._digest(key), now)
            if found >= 0:
                at = HEADER + found * SLOT
                table[at : at + SLOT] = _GONE + bytes(SLOT - 16)

    def close(self) -> None:
        """Unmap the table and close the file."""
        table, self._map = self._map, None
        fd, self._fd = self._fd, -1
        ends, self._ends = self._ends, None
        if ends is not None:
            ends.release()
        if table is not None:
            with contextlib.suppress(BufferError):
                table.close()
        if fd >= 0:
            os.close(fd)


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
