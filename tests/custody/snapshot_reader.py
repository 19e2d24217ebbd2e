"""A concurrent reader in another process that holds a read snapshot of the sealed keys, and
what is left of destroyed blobs in a database (its files on SQLite, its rows on PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

_READER = r"""
import sys
dialect, target = sys.argv[1], sys.argv[2]
if dialect == "sqlite":
    import sqlite3
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("BEGIN")
else:
    import psycopg
    conn = psycopg.connect(target)
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
rows = conn.execute("SELECT sealed FROM paper_key").fetchall()
print(len(rows), flush=True)
sys.stdin.read()  # the snapshot stays open until the test closes our stdin
conn.rollback()
conn.close()
"""

SQLITE_FILES = ("custody.db", "custody.db-wal", "custody.db-shm")


@contextmanager
def snapshot_reader(engine: Engine) -> Iterator[Callable[[], None]]:
    """Start a process that opens a read transaction and reads every sealed key, then holds
    its snapshot; yields ``release``, which ends the transaction and the process."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        args = ["sqlite", str(url.database)]
    else:
        args = ["postgresql", url.set(drivername="postgresql").render_as_string(False)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _READER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def release() -> None:
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0

    try:
        assert int(proc.stdout.readline()) > 0  # it read the keys: its snapshot holds them
        yield release
    finally:
        if proc.poll() is None:
            release()
        proc.stdout.close()


def files_with_copies(folder: Path, blobs: Sequence[bytes]) -> list[str]:
    """The SQLite files (database, WAL, shared memory) that contain any of ``blobs``."""
    out = []
    for name in SQLITE_FILES:
        path = folder / name
        if path.exists():
            data = path.read_bytes()
            if any(b in data for b in blobs):
                out.append(name)
    return out


def pg_leftovers(engine: Engine, blobs: Sequence[bytes]) -> list[str]:
    """What PostgreSQL still holds: live rows with a blob, row versions (live or dead, read
    from the table's pages with pageinspect) holding one, or no VACUUM. The statistics'
    ``n_dead_tup`` is not used: it is a counter that backends update late."""
    with engine.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        live = conn.execute(
            text("SELECT count(*) FROM paper_key WHERE sealed = ANY(:b)"), {"b": list(blobs)}
        ).scalar_one()
        blocks = conn.execute(
            text("SELECT pg_relation_size('paper_key') / current_setting('block_size')::int")
        ).scalar_one()
        versions = [
            bytes(data)
            for block in range(blocks)
            for (data,) in conn.execute(
                text("SELECT t_data FROM heap_page_items(get_raw_page('paper_key', :n))"),
                {"n": block},
            )
            if data is not None
        ]
        vacuumed = conn.execute(
            text("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'paper_key'")
        ).scalar_one()
        conn.commit()
    holding = sum(1 for v in versions if any(b in v for b in blobs))
    out = []
    if live:
        out.append(f"{live} live rows")
    if holding - live:
        out.append(f"{holding - live} old row versions")
    if vacuumed is None:
        out.append("never vacuumed")
    return out


def leftovers(engine: Engine, folder: Path, blobs: Sequence[bytes]) -> list[str]:
    if engine.dialect.name == "sqlite":
        return files_with_copies(folder, blobs)
    return pg_leftovers(engine, blobs)
