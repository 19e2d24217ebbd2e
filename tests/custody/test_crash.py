"""A process killed in the middle of writing: on restart nothing acknowledged is lost and the
log still verifies (SIGKILL, no chance to clean up; SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from crypto.encoding import format_time
from custody.audit import export_bundle
from custody.demo import Season, seal_events
from custody.demo.log import verify_export
from custody.service import open_reader
from tests.conftest import PASS

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from crypto.dsse import parse_envelope
    from crypto.encoding import parse_time
    from custody.home import Home
    from custody.service import ServiceSecrets, open_writer

    home = Home(Path(sys.argv[1]))
    log = open_writer(home, ServiceSecrets(log=sys.argv[2], system=sys.argv[2]))
    now = parse_time(sys.argv[4], what="now")
    for line in open(sys.argv[3], "rb"):
        receipt = log.submit(parse_envelope(line), now=now)
        # Acknowledged: only now does the writer tell anyone the index.
        print(receipt.index, flush=True)
    """
)


def test_killed_writer_loses_nothing_acknowledged(any_season: Season, tmp_path: Path) -> None:
    season = any_season
    lines = seal_events(season, [f"PK-{n}" for n in range(400)])
    feed = tmp_path / "events.jsonl"
    feed.write_bytes(b"\n".join(lines) + b"\n")
    season.log()  # the log head exists before the writer starts
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
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
        env=env,
    )
    assert proc.stdout is not None
    acknowledged: list[int] = []
    deadline = time.monotonic() + 60
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acknowledged.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)  # in the middle of the next append
    proc.wait()
    acknowledged += [int(x) for x in proc.stdout.read().split()]
    assert len(acknowledged) >= 40

    # Restart: a fresh process view of the same database.
    reopened = open_reader(season.home)
    size = reopened.size()
    assert size >= max(acknowledged) + 1
    assert set(acknowledged) <= {i for i, _ in reopened.entries()}
    assert len(reopened.checkpoints()) == size  # every append signed one, none lost
    export_bundle(reopened, tmp_path / "export")
    report = verify_export(tmp_path / "export")
    assert report.ok, report.problems[:3]
    assert report.checked == size
