"""`custody serve` and `custody witness serve` refuse a bad start before they listen, leaving
nothing behind; under `--workers N` exactly one worker process runs the incident desk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from api.rate_store import SharedCounters
from crypto.encoding import format_time
from crypto.signing import SigningKey
from custody.cli import main, serve_cmd
from custody.demo import Season, start_season
from custody.witness import Cosigner
from tests.conftest import PASS, T0, fast_kdf

ROOT = Path(__file__).resolve().parents[3]
Run = Callable[..., tuple[int, str]]


@pytest.fixture
def cli(season: Season, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)

    def run(*args: str) -> tuple[int, str]:
        code = main(["--now", format_time(season.now), *args])
        out, err = capsys.readouterr()
        return code, out + err

    return run


def witness_key(tmp_path: Path) -> Path:
    other = start_season(tmp_path / "other", now=T0, passphrase=PASS, kdf=fast_kdf())
    return next(other.home.people_dir().glob("secrecy-chen-*.key"))


def log_vkey(run: Run) -> str:
    code, out = run("log", "vkey")
    assert code == 0, out
    return out.strip()


def test_witness_serve_refuses_a_bad_start_before_listening(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = cli
    key = witness_key(tmp_path)
    state = tmp_path / "witness.json"
    base = ["--state", str(state), "--key", str(key), "--name", "shaanxi-witness"]

    # A witness's own (cosignature) key is not a log's key.
    cosigner_vkey = Cosigner("w.example/w", SigningKey(bytes(32))).verifier().vkey()
    code, out = run("witness", "serve", "--log-vkey", cosigner_vkey, *base, "--init")
    assert code == 2 and "--log-vkey" in out
    assert not state.exists()

    # Without --init, the state must already be there.
    code, out = run("witness", "serve", "--log-vkey", log_vkey(run), *base)
    assert code == 4 and "witness.json" in out
    assert not state.exists()

    # A key that does not open (wrong passphrase) starts no witness: no state is left for a
    # retry with --init to trip over.
    monkeypatch.setenv("CUSTODY_PASSPHRASE", "not the passphrase of this key")
    code, out = run("witness", "serve", "--log-vkey", log_vkey(run), *base, "--init")
    assert code == 11 and not state.exists()
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)

    # --init never replaces a witness's state.
    state.write_text('{"cosigned": []}\n')
    code, out = run("witness", "serve", "--log-vkey", log_vkey(run), *base, "--init")
    assert code == 5 and "--init" in out
    assert state.read_text() == '{"cosigned": []}\n'


def test_serve_refuses_a_rate_that_is_not_one(cli: Run, season: Season) -> None:
    run = cli
    size = season.log().size()
    code, out = run("serve", "--read-only", "--rate-per-address", "lots")
    assert code == 2 and "--rate-per-address" in out and "lots" in out
    code, out = run("serve", "--read-only", "--workers", "2", "--rate-per-key", "9/fortnight")
    assert code == 2 and "--rate-per-key" in out
    assert serve_cmd.WORKER_SPEC not in os.environ  # refused before any worker was told
    assert season.log().size() == size


@pytest.fixture
def worker_spec(season: Season, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    spec: dict[str, object] = {
        "home": str(season.home.path),
        "now": format_time(season.now),
        "desk_every": 7.5,
        "witness_every": 2.0,
        "smtp": [None, "custody@localhost", False, False],
        "read_only": False,
        "public_origin": None,
        "body_timeout": 30.0,
        "rate_per_address": "600/minute",
        "rate_per_key": "300/minute",
        "access_flush": "full",
    }
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE", PASS)
    monkeypatch.setenv("CUSTODY_SYSTEM_PASSPHRASE", PASS)
    monkeypatch.setenv(serve_cmd.WORKER_SPEC, json.dumps(spec))
    yield spec
    held = serve_cmd._desk_lock
    if held is not None:  # this process stands for one worker: its lock goes with it
        held.close()
        serve_cmd._desk_lock = None


def desk_every(app: FastAPI) -> float:
    return float(app.state.backend.settings.desk_every)


TAKE_DESK = (
    "import sys; from pathlib import Path; from custody.cli.serve_cmd import _take_desk; "
    "print(_take_desk(Path(sys.argv[1])))"
)


def test_one_worker_runs_the_desk(
    season: Season, worker_spec: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = serve_cmd.worker_app()
    assert desk_every(first) == 7.5
    assert first.state.backend.writable
    # the workers count each client in the home's shared file, not each in its memory
    assert first.state.backend.settings.shared_rates
    assert isinstance(first.state.limiter._limiter.storage, SharedCounters)
    # Another worker process finds the desk taken and serves without it.
    other = subprocess.run(
        [sys.executable, "-c", TAKE_DESK, str(season.home.path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert other.stdout.strip() == "False"
    # The worker holding it keeps it for its life.
    assert desk_every(serve_cmd.worker_app()) == 7.5
    # A read-only service runs no desk and holds no key.
    monkeypatch.setenv(serve_cmd.WORKER_SPEC, json.dumps({**worker_spec, "read_only": True}))
    reader = serve_cmd.worker_app()
    assert desk_every(reader) == 0.0 and not reader.state.backend.writable


def test_a_worker_that_finds_the_desk_taken_serves_without_it(
    season: Season, worker_spec: dict[str, object]
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            TAKE_DESK + "; sys.stdout.flush(); sys.stdin.read()",
            str(season.home.path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        app = serve_cmd.worker_app()
        assert desk_every(app) == 0.0 and app.state.backend.writable
        assert serve_cmd._desk_lock is None
    finally:
        holder.communicate("")
