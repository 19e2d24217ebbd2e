"""A kill -9 loop of `custody serve` (short: three rounds), on SQLite and PostgreSQL; once with
`--workers 2`, the workers and their log writer killed together.

A client posts events without pause; the server is SIGKILLed in the middle of them and started
again, three times. Afterwards: every acknowledged event is in the log at its index, every
receipt's checkpoint is the one the log holds for its size, the start check passes, and the
export verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from crypto.encoding import format_time
from custody.audit import export_bundle
from custody.demo import Season, seal_events
from custody.demo.log import verify_export
from custody.service import open_reader, signed_head_file
from tests.api.helpers import free_port
from tests.conftest import PASS

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = (7, 11, 5)  # acknowledgements to wait for before each kill


def _start(season: Season, port: int, *extra: str) -> subprocess.Popen[bytes]:
    argv = ["--home", str(season.home.path), "--now", format_time(season.now), "serve"]
    argv += ["--port", str(port), "--desk-every", "0", *extra]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CUSTODY_LOG_PASSPHRASE": PASS,
        "CUSTODY_SYSTEM_PASSPHRASE": PASS,
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # killed as a group: the workers of --workers N with it
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"custody serve exited with {proc.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("custody serve did not become ready")


def test_serve_killed_again_and_again_loses_nothing_acknowledged(
    any_season: Season, tmp_path: Path
) -> None:
    _kill_loop(any_season, tmp_path, ROUNDS)


def test_serve_with_workers_killed_loses_nothing_acknowledged(
    season: Season, tmp_path: Path
) -> None:
    """`--workers 2`: a submission is acknowledged by a worker once the log writer (the serving
    process) committed it; the whole service killed at once (as a crash or systemd does)."""
    _kill_loop(season, tmp_path, ROUNDS[1:2], "--workers", "2")


def _kill_loop(season: Season, tmp_path: Path, rounds: tuple[int, ...], *extra: str) -> None:
    events = seal_events(season, [f"PK-{n}" for n in range(300)])
    season.home.engine.dispose()
    acked: list[dict[str, object]] = []
    position = 0
    for target in rounds:
        port = free_port()
        proc = _start(season, port, *extra)
        stop = threading.Event()
        have = len(acked)

        def client(port: int = port, stop: threading.Event = stop) -> None:
            nonlocal position
            while not stop.is_set() and position < len(events):
                try:
                    r = httpx.post(
                        f"http://127.0.0.1:{port}/v1/events", content=events[position], timeout=10
                    )
                except httpx.TransportError:
                    return  # the server died under this request: not acknowledged
                assert r.status_code in (200, 201), r.text
                acked.append(r.json())
                position += 1

        worker = threading.Thread(target=client)
        worker.start()
        while len(acked) < have + target and worker.is_alive():
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        worker.join(timeout=30)
        # The request in flight at the kill is sent again after the restart (a client retries).
    proc = _start(season, free_port(), *extra)  # it starts: the start check passed
    proc.terminate()
    proc.wait(timeout=30)

    log = open_reader(season.home)
    report = log.check_state(signed_head_file(season.home, season.authority), full=True)
    entries = dict(log.entries())
    assert len(acked) >= sum(rounds)
    for r in acked:
        assert int(r["index"]) in entries  # type: ignore[call-overload]
        note = str(r["checkpoint"])
        size = int(note.split("\n")[1])
        assert log.checkpoint_note(size) == note
    assert report.size == log.size() and report.leaves_checked == log.size()
    export_bundle(log, tmp_path / "export")
    verified = verify_export(tmp_path / "export")
    assert verified.ok, verified.problems[:3]
    print(
        f"kill loop ({season.home.database_url.split(':')[0]} {' '.join(extra)}): "
        f"{len(rounds)} SIGKILLs, "
        f"{len(acked)} acknowledged, {log.size()} entries, all present, export verifies"
    )
