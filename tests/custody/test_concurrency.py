"""Several processes appending at once keep one order: no gap, no duplicate index.

Runs on the real PostgreSQL (and on SQLite, whose writers serialise on BEGIN IMMEDIATE).
"""

from __future__ import annotations

import multiprocessing as mp
from datetime import datetime
from pathlib import Path

from sqlalchemy import text

from custody.audit import export_bundle, load_trust_document, read_bundle, stream_lines, verify_log
from custody.demo import Season, seal_events
from tests.conftest import PASS

WRITERS = 4
PER_WRITER = 25


def _writer(home: str, envelopes: list[bytes], now: datetime, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    from crypto.dsse import parse_envelope
    from custody.home import Home
    from custody.service import ServiceSecrets, open_writer

    log = open_writer(Home(Path(home)), ServiceSecrets(log=PASS, system=PASS))
    indexes = []
    for raw in envelopes:  # one row per transaction: maximum interleaving between writers
        indexes.append(log.submit(parse_envelope(raw), now=now).index)
    queue.put(indexes)


def test_parallel_writers_keep_one_gapless_order(any_season: Season, tmp_path: Path) -> None:
    season = any_season
    batches = [
        seal_events(season, [f"PK-{w}-{n}" for n in range(PER_WRITER)]) for w in range(WRITERS)
    ]
    season.log()  # creates the log head before the writers race
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(str(season.home.path), b, season.now, queue))
        for b in batches
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    indexes = sorted(i for r in results for i in r)
    total = WRITERS * PER_WRITER
    # one order, no gap, no duplicate (entry 0 is the exam's policy)
    assert indexes == list(range(1, total + 1))
    with season.home.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM log_entry")).scalar_one() == total + 1
        assert conn.execute(text("SELECT size FROM log_head")).scalar_one() == total + 1
        assert conn.execute(text("SELECT count(*) FROM checkpoint")).scalar_one() == total + 1
    export_bundle(season.log(), tmp_path / "export")
    trust_doc, checkpoint = read_bundle(tmp_path / "export")
    report = verify_log(
        load_trust_document(trust_doc, pinned_root_id=None),
        checkpoint,
        stream_lines(tmp_path / "export" / "events.jsonl"),
    )
    assert report.ok, report.problems[:3]
    assert report.packages == total
