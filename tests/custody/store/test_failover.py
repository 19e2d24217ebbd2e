"""Failover on real PostgreSQL: a primary and a synchronous standby on loopback ports, in
folders of their own. The primary is SIGKILLed (with every backend) in the middle of appends;
the standby is promoted and the home pointed at it; `custody log failover` raises the epoch.
Every acknowledged event is there, every receipt's checkpoint is the one the new primary holds,
the next checkpoint is consistent with every receipt, and the old primary, back up, is fenced:
no writer may sign on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from crypto import merkle
from crypto.dsse import parse_envelope
from crypto.encoding import format_time
from crypto.note import NoteVerifier, open_checkpoint
from custody.demo import Season, seal_events, start_season
from custody.errors import LogStateError
from custody.readiness import database_check
from custody.service import ServiceSecrets, open_reader, open_writer
from tests.conftest import PASS, T0, fast_kdf
from tests.pg_cluster import Cluster, cluster_root

ROOT = Path(__file__).resolve().parents[3]
SECRETS = ServiceSecrets(log=PASS, system=PASS)

WRITER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from crypto.dsse import parse_envelope
    from crypto.encoding import parse_time
    from custody.errors import CustodyError
    from custody.home import Home
    from custody.service import ServiceSecrets, open_writer

    home = Home(Path(sys.argv[1]))
    log = open_writer(home, ServiceSecrets(log=sys.argv[2], system=sys.argv[2]))
    now = parse_time(sys.argv[4], what="now")
    try:
        for line in open(sys.argv[3], "rb"):
            r = log.submit(parse_envelope(line), now=now)
            # Acknowledged: only now is the receipt handed out.
            print(json.dumps({"index": r.index, "id": r.statement_id, "checkpoint": r.checkpoint}),
                  flush=True)
    except CustodyError as e:
        print(json.dumps({"error": e.code}), flush=True)
    """
)


@pytest.fixture
def pair() -> Iterator[tuple[Cluster, Cluster]]:
    root = cluster_root()
    primary = Cluster(root, "primary")
    standby = Cluster(root, "standby")
    try:
        primary.init(
            synchronous_standby_names="'standby1'",
            synchronous_commit="on",
            wal_level="replica",
            max_wal_senders="5",
        )
        primary.start()
        standby.standby_of(primary, "standby1")
        standby.configure(
            port=str(standby.port),
            synchronous_standby_names="''",
            unix_socket_directories=f"'{root}'",
        )
        standby.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with psycopg.connect(primary.url, autocommit=True) as c:
                row = c.execute(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'"
                ).fetchone()
            if row and row[0] == "sync":
                break
            time.sleep(0.1)
        else:
            pytest.fail("the standby never became synchronous")
        yield primary, standby
    finally:
        primary.stop_quietly()
        standby.stop_quietly()
        shutil.rmtree(root, ignore_errors=True)


def point_home_at(season: Season, url: str) -> None:
    config = season.home.path / "custody.json"
    body = json.loads(config.read_text())
    body["database_url"] = url
    config.write_text(json.dumps(body, indent=2) + "\n")
    if "log" in season.facts:
        season.facts.pop("log").close()
    season.home.engine.dispose()
    season.home.__dict__.pop("engine", None)
    season.home.__dict__.pop("config", None)


def test_failover_to_the_synchronous_standby_loses_nothing_acknowledged(
    pair: tuple[Cluster, Cluster], tmp_path: Path
) -> None:
    primary, standby = pair
    season = start_season(
        tmp_path / "season", now=T0, passphrase=PASS, kdf=fast_kdf(), database_url=primary.url
    )
    log = season.log()
    check, standbys = database_check(log)
    assert check.ok and [s["sync_state"] for s in standbys] == ["sync"]
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(seal_events(season, [f"PK-{n}" for n in range(400)])) + b"\n")
    log.close()
    season.home.engine.dispose()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(season.home.path),
            PASS,
            str(feed),
            format_time(season.now),
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    receipts: list[dict[str, object]] = []
    while len(receipts) < 40:
        line = proc.stdout.readline()
        assert line, "the writer stopped before 40 acknowledgements"
        receipts.append(json.loads(line))
    primary.kill9()  # the machine is lost in the middle of the next appends
    for line in proc.stdout:
        receipts.append(json.loads(line))
    proc.wait(timeout=60)
    assert "error" in receipts[-1], receipts[-1]  # the writer saw the outage, as a storage error
    acknowledged = [r for r in receipts if "index" in r]
    assert len(acknowledged) >= 40

    standby.promote()
    point_home_at(season, standby.url)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from custody.cli import main; raise SystemExit(main("
            f"{['--home', str(season.home.path), '--json', 'log', 'failover']!r}))",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["epoch"] == 2

    # Every acknowledged event is on the new primary, at its index, under its receipt's checkpoint.
    reader = open_reader(season.home)
    held = dict(reader.entries())
    authority = season.authority
    verifier = NoteVerifier(authority.log_origin, authority.log_key)
    sizes: dict[int, bytes] = {}
    for r in acknowledged:
        assert int(r["index"]) in held  # type: ignore[arg-type]
        checkpoint, _ = open_checkpoint(
            str(r["checkpoint"]), [verifier], origin=authority.log_origin
        )
        assert reader.checkpoint_note(checkpoint.size) == r["checkpoint"]
        sizes[checkpoint.size] = checkpoint.root

    # The next checkpoint, signed on the new primary, is consistent with every receipt.
    writer = open_writer(season.home, SECRETS)
    for line in seal_events(season, ["AFTER-1", "AFTER-2", "AFTER-3"]):
        last = writer.submit(parse_envelope(line), now=season.now)
    new, _ = open_checkpoint(last.checkpoint, [verifier], origin=authority.log_origin)
    for size, root in sizes.items():
        proof = writer.consistency_proof(size, new.size)
        merkle.verify_consistency(size, new.size, root, new.root, proof)
    print(
        f"failover: {len(acknowledged)} acknowledged before the kill, {len(held)} entries on the "
        f"promoted standby, {len(sizes)} receipt checkpoints identical there, next checkpoint "
        f"size {new.size} consistent with all of them"
    )
    writer.close()
    season.home.engine.dispose()

    # The old primary comes back: it is at epoch 1, and the log key here follows epoch 2.
    primary.start()
    point_home_at(season, primary.url)
    with pytest.raises(LogStateError) as caught:
        open_writer(season.home, SECRETS)
    assert "epoch 1" in caught.value.message and "former primary" in caught.value.message
