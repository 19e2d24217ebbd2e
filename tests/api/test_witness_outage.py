"""Witnesses as live processes on loopback ports, stopped and started while `custody serve` runs
(docs/adr/0012): the log sends each new checkpoint continually, a witness that was down gets what
it missed (with the consistency proof from what it cosigned), publication follows the policy
(k of n), and the witnesses' copies catch a database that lost its tail together with the
signed-checkpoint file."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from crypto.dsse import parse_envelope
from crypto.encoding import format_time
from crypto.note import CosignatureVerifier, NoteVerifier, parse_checkpoint, parse_note
from custody.demo import Season, seal_events
from tests.api.helpers import free_port
from tests.api.test_live_witness import ROOT, _run, _wait, running
from tests.conftest import PASS

PEOPLE = ("secrecy-chen", "auditor-chu", "examiner-zheng")


class Witness:
    """One `custody witness serve` process with its state file, restartable on its port."""

    def __init__(self, season: Season, tmp: Path, number: int) -> None:
        person = PEOPLE[number - 1]
        self.name = f"witness.example/w{number}"
        self.key_file = next(season.home.people_dir().glob(f"{person}-*.key"))
        self.vkey = CosignatureVerifier(self.name, season.keys[person].signing.verify_key).vkey()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = tmp / f"w{number}.json"
        authority = season.authority
        self.argv = ["--home", str(tmp), "--now", format_time(season.now), "witness", "serve"]
        self.argv += ["--log-vkey", NoteVerifier(authority.log_origin, authority.log_key).vkey()]
        self.argv += ["--state", str(self.state), "--key", str(self.key_file), "--name", self.name]
        self.argv += ["--port", str(self.port)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        init = [] if self.state.exists() else ["--init"]
        self.proc = _run(self.argv + init, CUSTODY_PASSPHRASE=PASS)
        _wait(self.name, lambda: httpx.get(f"{self.url}/livez").is_success, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def cosigned_size(self, origin: str) -> int:
        notes = json.loads(self.state.read_text())["cosigned"]
        sizes = [parse_checkpoint(parse_note(n).text) for n in notes]
        return max((c.size for c in sizes if c.origin == origin), default=0)


def write_policy(season: Season, witnesses: list[Witness], quorum: int) -> None:
    body = {
        "quorum": quorum,
        "witnesses": [{"name": w.name, "vkey": w.vkey, "url": w.url} for w in witnesses],
    }
    (season.home.path / "witnesses.json").write_text(json.dumps(body))


def serve_argv(season: Season, port: int) -> list[str]:
    argv = ["--home", str(season.home.path), "--now", format_time(season.now), "serve"]
    return [*argv, "--port", str(port), "--desk-every", "0", "--witness-every", "0.2"]


def start_serve(season: Season, port: int) -> subprocess.Popen[bytes]:
    proc = _run(
        serve_argv(season, port), CUSTODY_LOG_PASSPHRASE=PASS, CUSTODY_SYSTEM_PASSPHRASE=PASS
    )
    origin = season.authority.log_origin

    def ours() -> bool:  # this home's log answering, not another server on a reused port
        r = httpx.get(f"http://127.0.0.1:{port}/healthz")
        return r.is_success and r.json().get("log_origin") == origin

    _wait("the log", ours, proc)
    return proc


def size_of(note: str) -> int:
    return parse_checkpoint(parse_note(note).text).size


def has_line(base: str, size: int, witness: Witness) -> bool:
    return f"— {witness.name} " in httpx.get(f"{base}/v1/checkpoint/{size}").text


def test_a_witness_down_then_back_gets_the_checkpoint_it_missed(
    season: Season, tmp_path: Path
) -> None:
    witness = Witness(season, tmp_path, 1)
    write_policy(season, [witness], 1)
    events = seal_events(season, [f"PK-{n}" for n in range(4)])
    origin = season.authority.log_origin
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    witness.start()
    try:
        with running(start_serve(season, port)) as serve:
            assert httpx.post(f"{base}/v1/events", content=events[0]).status_code == 201
            first = size_of(httpx.get(f"{base}/v1/checkpoint").text)
            _wait("the first cosignature", lambda: has_line(base, first, witness), serve)
            assert witness.cosigned_size(origin) == first

            witness.stop()  # the witness goes down; the log goes on appending
            for line in events[1:3]:
                assert httpx.post(f"{base}/v1/events", content=line).status_code == 201
            latest = size_of(httpx.get(f"{base}/v1/checkpoint").text)
            _wait(
                "a failed round",
                lambda: any(
                    o["status"] == "failed"
                    for o in httpx.get(f"{base}/readyz").json()["witnessed"]["last_round"]
                ),
                serve,
            )
            ready = httpx.get(f"{base}/readyz").json()
            assert ready["ready"] is True  # appends go on while the witness is down
            assert ready["witnessed"]["published"] is False
            assert ready["witnessed"]["published_size"] == first
            assert ready["witnessed"]["unpublished_entries"] == latest - first
            assert witness.cosigned_size(origin) == first

            witness.start()  # back, from its state file: it still holds `first`
            _wait("the missed checkpoint cosigned", lambda: has_line(base, latest, witness), serve)
            # It cosigned `latest` from `first`: the log sent the proof between them (the
            # witness checks it against its own state; a wrong one would be answered 422).
            assert witness.cosigned_size(origin) == latest
            r = httpx.get(f"{base}/v1/checkpoint")
            assert r.headers["Custody-Published"] == "true"
            assert httpx.get(f"{base}/readyz").json()["witnessed"]["published"] is True
    finally:
        witness.stop()


def test_two_of_three_stays_published_with_one_down_and_stops_with_two(
    season: Season, tmp_path: Path
) -> None:
    witnesses = [Witness(season, tmp_path, n) for n in (1, 2, 3)]
    write_policy(season, witnesses, 2)
    events = seal_events(season, [f"PK-{n}" for n in range(4)])
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def all_cosigned(size: int, ws: list[Witness]) -> bool:
        return all(has_line(base, size, w) for w in ws)

    for w in witnesses:
        w.start()
    try:
        with running(start_serve(season, port)) as serve:
            assert httpx.post(f"{base}/v1/events", content=events[0]).status_code == 201
            s1 = size_of(httpx.get(f"{base}/v1/checkpoint").text)
            _wait("three cosignatures", lambda: all_cosigned(s1, witnesses), serve)

            witnesses[2].stop()  # one of three down: 2 of 3 still cosign
            assert httpx.post(f"{base}/v1/events", content=events[1]).status_code == 201
            s2 = size_of(httpx.get(f"{base}/v1/checkpoint").text)
            _wait("two cosignatures", lambda: all_cosigned(s2, witnesses[:2]), serve)
            r = httpx.get(f"{base}/v1/checkpoint")
            assert size_of(r.text) == s2 and r.headers["Custody-Published"] == "true"
            assert r.headers["Custody-Witness-Policy"] == "2 of 3"
            assert size_of(httpx.get(f"{base}/v1/checkpoint?published=true").text) == s2
            witnessed = httpx.get(f"{base}/readyz").json()["witnessed"]
            assert witnessed["published"] is True and witnessed["published_size"] == s2

            witnesses[1].stop()  # two down: 1 of 3 is short of the quorum
            assert httpx.post(f"{base}/v1/events", content=events[2]).status_code == 201
            s3 = size_of(httpx.get(f"{base}/v1/checkpoint").text)
            _wait("one cosignature", lambda: has_line(base, s3, witnesses[0]), serve)
            r = httpx.get(f"{base}/v1/checkpoint")
            assert size_of(r.text) == s3 and r.headers["Custody-Published"] == "false"
            # The published checkpoint stopped advancing at s2, and readiness says so.
            assert size_of(httpx.get(f"{base}/v1/checkpoint?published=true").text) == s2
            ready = httpx.get(f"{base}/readyz").json()
            assert ready["ready"] is True
            witnessed = ready["witnessed"]
            assert witnessed["published"] is False
            assert witnessed["published_size"] == s2 and witnessed["latest_size"] == s3
            assert "not published" in witnessed["detail"]
            assert httpx.get(f"{base}/v1/checkpoint/{s3}").headers["Custody-Published"] == "false"
            assert httpx.get(f"{base}/v1/checkpoint/{s2}").headers["Custody-Published"] == "true"

            witnesses[1].start()  # one back: the quorum is met again at the latest size
            _wait("published again", lambda: all_cosigned(s3, witnesses[:2]), serve)
            assert size_of(httpx.get(f"{base}/v1/checkpoint?published=true").text) == s3
    finally:
        for w in witnesses:
            w.stop()


def _backup(db: Path, to: Path) -> None:
    src, dst = sqlite3.connect(db), sqlite3.connect(to)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _check(season: Season, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["--home", str(season.home.path), "--json", "log", "check", *args]
    return subprocess.run(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_witness_copy_catches_a_database_that_lost_its_tail_and_the_file(
    season: Season, tmp_path: Path
) -> None:
    witness = Witness(season, tmp_path, 1)
    write_policy(season, [witness], 1)
    events = seal_events(season, [f"PK-{n}" for n in range(4)])
    origin = season.authority.log_origin
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = Path(season.home.engine.url.database or "")
    season.home.engine.dispose()
    backup = tmp_path / "backup.db"
    witness.start()
    try:
        with running(start_serve(season, port)) as serve:
            assert httpx.post(f"{base}/v1/events", content=events[0]).status_code == 201
            old = size_of(httpx.get(f"{base}/v1/checkpoint").text)
            _wait("a cosignature", lambda: has_line(base, old, witness), serve)
        _backup(db, backup)  # last night's backup
        with running(start_serve(season, port)) as serve:
            for line in events[1:3]:
                assert httpx.post(f"{base}/v1/events", content=line).status_code == 201
            new = size_of(httpx.get(f"{base}/v1/checkpoint").text)
            _wait("the new size cosigned", lambda: has_line(base, new, witness), serve)
        assert witness.cosigned_size(origin) == new > old

        # The disk is lost: the database comes back from the backup, and the signed-checkpoint
        # file beside the key is gone with it.
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(backup, db)
        season.home.signed_head_path.unlink()

        # Adopting the database as it is would start the file from the old size: the witness's
        # copy refuses it (storage error, exit 6), names the witness and the sizes, and the
        # witness's copy is kept in the file instead.
        done = _check(season, "--adopt")
        assert done.returncode == 6, done.stderr
        error = json.loads(done.stdout or done.stderr)
        assert error["error"] == "log_state"
        assert witness.name in error["message"] and f"size {new}" in error["message"]
        assert f"holds only {old} entries" in error["message"]
        assert size_of(season.home.signed_head_path.read_text()) == new

        # The service does not start over it either, with the witness down or up.
        witness.stop()
        refused = _run(
            serve_argv(season, port), CUSTODY_LOG_PASSPHRASE=PASS, CUSTODY_SYSTEM_PASSPHRASE=PASS
        )
        assert refused.wait(timeout=120) == 6
        witness.start()
        season.home.signed_head_path.unlink()  # even with the file lost again
        refused = _run(
            serve_argv(season, port), CUSTODY_LOG_PASSPHRASE=PASS, CUSTODY_SYSTEM_PASSPHRASE=PASS
        )
        assert refused.wait(timeout=120) == 6
    finally:
        witness.stop()


def test_a_database_that_holds_everything_the_witness_cosigned_is_accepted(
    season: Season, tmp_path: Path
) -> None:
    """The check is no blanket refusal: the same loss with no entry lost passes adopt."""
    witness = Witness(season, tmp_path, 1)
    write_policy(season, [witness], 1)
    events = seal_events(season, ["PK-1"])
    season.log().submit(parse_envelope(events[0]), now=season.now)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    season.home.engine.dispose()
    witness.start()
    try:
        with running(start_serve(season, port)) as serve:
            size = size_of(httpx.get(f"{base}/v1/checkpoint").text)
            _wait("a cosignature", lambda: has_line(base, size, witness), serve)
        season.home.signed_head_path.unlink()
        done = _check(season, "--adopt")
        assert done.returncode == 0, done.stderr
        body = json.loads(done.stdout)
        assert body["adopted"] is True
        assert body["witnesses"][0]["checkpoint"].startswith(f"size {size} ")
    finally:
        witness.stop()


def test_a_witness_back_after_start_stops_signing_over_a_database_behind_it(
    season: Season, tmp_path: Path
) -> None:
    """The witness was down when the restored database was adopted and served: when it answers
    again (409, a size beyond the log's), its copy is kept in the file and nothing more is
    signed; readiness names it."""
    witness = Witness(season, tmp_path, 1)
    write_policy(season, [witness], 1)
    events = seal_events(season, [f"PK-{n}" for n in range(4)])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = Path(season.home.engine.url.database or "")
    season.home.engine.dispose()
    backup = tmp_path / "backup.db"
    _backup(db, backup)
    witness.start()
    try:
        with running(start_serve(season, port)) as serve:
            for line in events[:2]:
                assert httpx.post(f"{base}/v1/events", content=line).status_code == 201
            new = size_of(httpx.get(f"{base}/v1/checkpoint").text)
            _wait("a cosignature", lambda: has_line(base, new, witness), serve)
        witness.stop()
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(backup, db)
        season.home.signed_head_path.unlink()
        done = _check(season, "--adopt")  # the witness is down: nobody can tell
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["witnesses"][0]["reached"] is False
        with running(start_serve(season, port)) as serve:
            old = size_of(httpx.get(f"{base}/v1/checkpoint").text)
            assert old < new
            witness.start()
            _wait(
                "the log to stop",
                lambda: httpx.get(f"{base}/readyz").json()["ready"] is False,
                serve,
            )
            ready = httpx.get(f"{base}/readyz").json()
            assert ready["checks"]["log"]["error"] == "log_state"
            assert any(o["status"] == "ahead" for o in ready["witnessed"]["last_round"])
            r = httpx.post(f"{base}/v1/events", content=events[2])
            assert r.status_code == 503 and r.json()["error"] == "log_state"
            assert size_of(httpx.get(f"{base}/v1/checkpoint").text) == old  # nothing signed
        assert size_of(season.home.signed_head_path.read_text()) == new
    finally:
        witness.stop()
