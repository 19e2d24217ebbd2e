"""Shared set-up for the log benchmarks: a season and a stream of valid countersigned handovers."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import nacl.pwhash

from crypto.dsse import Envelope
from crypto.encoding import utc
from crypto.sealing import KdfParams
from custody.demo import Season, seal_body, start_season
from custody.events import Event, Kind, statement_id

PASS = "bench passphrase"
T0 = utc(2027, 3, 1, 8)


def season(url: str | None = None, folder: Path | None = None) -> Season:
    kdf = KdfParams.fresh(nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)
    out = (folder or Path(tempfile.mkdtemp(prefix="custody-bench-"))) / "season"
    return start_season(out, now=T0, passphrase=PASS, kdf=kdf, database_url=url)


def handover_stream(s: Season, packages: int, per_package: int) -> Iterator[list[Envelope]]:
    """Seal ``packages`` packages, then yield rounds of one handover per package.

    Each package's route alternates between two couriers, so every handover is a valid
    countersigned transfer from the current holder to the next planned one.
    """
    authority = s.authority.id
    couriers = ["courier-sun", "courier-li"]
    keys = {p: s.keys[p].signing for p in [*couriers, "print-qian"]}
    window = (T0 + timedelta(days=30), T0 + timedelta(days=31))
    route = [couriers[i % 2] for i in range(per_package + 1)]
    last: dict[str, str] = {}
    seals = []
    t = T0
    for n in range(packages):
        pid = f"PK-{n:07d}"
        body = seal_body(
            position="P-01", paper="PA", copies=30, seals=["S1", "S2"], window=window, route=route
        )
        ev = Event(Kind.SEAL, authority, t, "printer", {pid: None}, {"sealer": "print-qian"}, body)
        env = ev.sign([keys["print-qian"]])
        last[pid] = statement_id(env.payload)
        seals.append(env)
    yield seals
    holder = {f"PK-{n:07d}": "print-qian" for n in range(packages)}
    for step in range(per_package):
        t = t + timedelta(seconds=1)
        batch = []
        for n in range(packages):
            pid = f"PK-{n:07d}"
            to = route[step]
            kind = Kind.DISPATCH if step == 0 else Kind.HANDOVER
            frm = holder[pid]
            ev = Event(
                kind,
                authority,
                t,
                "road",
                {pid: last[pid]},
                {"releaser": frm, "receiver": to},
                {"seals": ["S1", "S2"]},
            )
            env = ev.sign([keys[frm], keys[to]])
            last[pid] = statement_id(env.payload)
            holder[pid] = to
            batch.append(env)
        yield batch


def commit_ms(folder: Path, commits: int = 30) -> float:
    """Median milliseconds of one small SQLite commit that waits for the disk (WAL,
    ``synchronous=FULL``, as the home's) in ``folder``: what one durable access record costs
    at least on this disk at this moment (a shared machine's disk swings by 10x)."""
    import sqlite3
    import statistics
    import time

    path = folder / "commit-probe.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (a INTEGER PRIMARY KEY, b BLOB)")
        times = []
        for _ in range(commits):
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (b) VALUES (?)", (b"x" * 400,))
            conn.execute("COMMIT")
            times.append(time.perf_counter() - t0)
    finally:
        conn.close()
    return statistics.median(times) * 1000
