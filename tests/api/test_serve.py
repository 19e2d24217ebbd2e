"""`custody serve` in its own process, and the last-resort guard against bugs (500, no secret)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from crypto.dsse import Envelope, Signature
from crypto.encoding import format_time, parse_time
from custody.demo import Season
from custody.errors import NotFoundError
from custody.events import Kind
from custody.sessions import Challenge, sign_login
from tests.api.helpers import free_port, seal_event, transfer_event
from tests.conftest import PASS

ROOT = Path(__file__).resolve().parents[2]


def _serve(
    season: Season, *extra: str, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = port or free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CUSTODY_LOG_PASSPHRASE": PASS,
        "CUSTODY_SYSTEM_PASSPHRASE": PASS,
    }
    # the season's clock (a rehearsal home): its statements are dated by it
    argv = ["--home", str(season.home.path), "--now", format_time(season.now), "serve"]
    argv += ["--port", str(port), *extra]
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90  # a loaded CI machine starts two workers under coverage slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"custody serve exited with {proc.returncode}: {out}")
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("custody serve did not answer within 90 s")


@pytest.mark.parametrize(
    ("extra", "writable", "status"),
    [((), True, 201), (("--read-only",), False, 503)],
    ids=["with-log-key", "read-only"],
)
def test_serve_runs_the_api(
    season: Season, extra: tuple[str, ...], writable: bool, status: int
) -> None:
    proc, base = _serve(season, *extra)
    try:
        assert httpx.get(f"{base}/healthz").json()["writable"] is writable
        r = httpx.post(f"{base}/v1/events", content=seal_event(season).to_bytes())
        assert r.status_code == status
        assert httpx.get(f"{base}/scan").status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert PASS.encode() not in out  # the passphrase is never printed


def test_wrong_log_passphrase_stops_serve_before_listening(season: Season) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CUSTODY_LOG_PASSPHRASE": "wrong",
        "CUSTODY_SYSTEM_PASSPHRASE": PASS,
    }
    argv = ["--home", str(season.home.path), "serve", "--port", str(port)]
    done = subprocess.run(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 11  # DecryptionError's exit code
    assert b"Traceback" not in done.stderr


def test_a_bug_answers_500_in_our_shape_and_logs_no_message(
    season: Season, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(home=season.home.path, clock=lambda: season.now))

    @app.get("/boom")
    def boom() -> None:
        secret = "hunter" + str(2)  # built at run time: the source line does not show it
        raise RuntimeError(f"passphrase={secret}")  # a bug whose message holds a secret

    with caplog.at_level(logging.ERROR, logger="custody.api"):
        r = TestClient(app).get("/boom")
    assert r.status_code == 500
    assert r.json() == {"error": "internal", "message": "internal error; it was logged"}
    assert "RuntimeError" in caplog.text and "/boom" in caplog.text
    assert "hunter2" not in caplog.text
    assert "hunter2" not in r.text


def test_serve_with_several_workers_shares_one_log(season: Season) -> None:
    start = season.now
    seals = []
    for n in range(12):  # all dated at the service's clock (each event ticks the season's)
        season.now = start
        seals.append(seal_event(season, f"PK-{n}"))
    season.now = start
    alone = transfer_event(season, Kind.DISPATCH, "PK-0", "print-qian", "courier-sun",
                           signers=["courier-sun"])  # fmt: skip
    proc, base = _serve(season, "--workers", "2")
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/healthz").json()["writable"] is True

            def post(env: Envelope) -> httpx.Response:
                with httpx.Client(base_url=base, timeout=30) as own:  # a connection each
                    return own.post("/v1/events", content=env.to_bytes())

            with ThreadPoolExecutor(6) as pool:  # at once: both workers, one log writer
                answers = list(pool.map(post, seals))
            assert [a.status_code for a in answers] == [201] * 12
            indexes = sorted(a.json()["index"] for a in answers)
            assert indexes == list(range(indexes[0], indexes[0] + 12))  # one order, no gap
            again = http.post("/v1/events", content=seals[0].to_bytes())
            assert again.status_code == 200 and again.json()["duplicate"] is True
            refused = http.post("/v1/events", content=alone.to_bytes())
            assert refused.status_code == 422, refused.text  # as one process answers it
            assert refused.json()["error"] == "threshold"
            assert "print-qian" in refused.json()["message"]
            assert "尚未签名" in refused.json()["message_zh"]
            listed = http.post("/v1/events", content=f"[{alone.to_bytes().decode()}]")
            assert listed.status_code == 200  # a list is answered by the worker itself
            assert listed.json()["refused"][0]["error"] == "threshold"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert PASS.encode() not in out
    log = season.log()
    assert all(log.package_state(f"PK-{n}").status.value == "sealed" for n in range(12))


def test_several_workers_count_a_key_once_its_events_are_appended(season: Season) -> None:
    """Under ``--workers 2`` (a worker checks the signatures, the serving process appends): a
    key counts for each event newly appended, across both workers; junk naming another key
    costs that key nothing; a key at its rate is refused before its event reaches the log."""
    start = season.now
    seals = []
    for n in range(4):
        season.now = start
        seals.append(seal_event(season, f"PK-{n}"))
    season.now = start
    sun = season.keys["courier-sun"].signing.verify_key.key_id
    junk = Envelope(seals[3].payload_type, seals[3].payload, (Signature(sun, bytes(64)),))
    proc, base = _serve(season, "--workers", "2", "--rate-per-key", "3/minute")
    try:
        codes = []
        for env in [*seals[:3], junk, junk, junk, junk, seals[3]]:
            with httpx.Client(base_url=base, timeout=30) as own:  # a connection each: both workers
                r = own.post("/v1/events", content=env.to_bytes())
                codes.append((r.status_code, r.json().get("error")))
        assert codes[:3] == [(201, None)] * 3
        assert all(status == 422 for status, _ in codes[3:7])  # junk, whichever check refuses
        assert codes[7] == (429, "rate_limited")  # print-qian has appended three
        with httpx.Client(base_url=base, timeout=30) as http:
            got = http.post("/v1/login/challenge").json()
            challenge = Challenge(got["challenge"], got["origin"], parse_time(got["expires_at"]))
            statement = sign_login(challenge, season.keys["courier-sun"].signing)
            login = http.post(
                "/v1/login",
                content=statement.to_bytes(),
                headers={"content-type": "application/json"},
            )
            assert login.status_code == 200, login.text
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    log = season.log()
    assert [log.package_state(f"PK-{n}").status.value for n in range(3)] == ["sealed"] * 3
    with pytest.raises(NotFoundError):  # the refused seal never reached the log
        log.package_state("PK-3")


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def test_workers_stop_when_the_serving_process_is_killed(season: Season) -> None:
    """The serving process is the one log writer: killed (kill -9, no goodbye), its workers
    stop by themselves and free the port, so the service can simply be started again."""
    proc, base = _serve(season, "--workers", "2")
    port = int(base.rsplit(":", 1)[1])
    workers: list[int] = []
    spawned: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # uvicorn's two workers (and any helper)
            workers = _children(proc.pid)
            spawned = [p for p in workers if b"spawn_main" in _cmdline(p)]
            if len(spawned) >= 2:
                break
            time.sleep(0.1)
        assert len(spawned) == 2, [_cmdline(p) for p in workers]
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "a process outlived the serving process"
        again, _ = _serve(season, port=port)  # the same port: nothing holds it any more
        try:
            with httpx.Client(base_url=base, timeout=30) as http:
                assert http.get("/healthz").json()["writable"] is True
        finally:
            again.terminate()
            again.communicate(timeout=30)
    finally:
        for p in workers:
            if _alive(p):
                os.kill(p, 9)
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
