"""Outages are told apart from bugs: a stopped PostgreSQL, a damaged or read-only SQLite file
and a full disk answer storage errors (HTTP 503 with Retry-After, CLI exit 6, a message naming
the database and what to do), through `custody serve` over HTTP and the CLI as a subprocess;
/livez stays up, /readyz says why the service is not ready, and it recovers when the database
returns."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import Settings, create_app
from crypto.dsse import parse_envelope
from crypto.encoding import format_time
from custody.demo import Season, seal_events, start_season
from custody.store.db import make_engine
from tests.api.helpers import free_port, seal_event
from tests.conftest import PASS, T0, fast_kdf
from tests.pg_cluster import Cluster, cluster_root

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "CUSTODY_LOG_PASSPHRASE": PASS,
    "CUSTODY_SYSTEM_PASSPHRASE": PASS,
    "CUSTODY_PASSPHRASE": PASS,
}


def cli(season: Season, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    argv = ["--home", str(season.home.path), "--now", format_time(season.now), *args]
    return subprocess.run(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env=ENV,
        capture_output=True,
        timeout=120,
        check=False,
        input=stdin,
    )


@contextlib.contextmanager
def serving(season: Season, *extra: str) -> Iterator[str]:
    port = free_port()
    argv = ["--home", str(season.home.path), "--now", format_time(season.now), "serve"]
    argv += ["--port", str(port), "--desk-every", "0", *extra]
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"custody serve exited with {proc.returncode}: {out}")
            try:
                httpx.get(f"{base}/livez", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("custody serve did not answer within 60 s")
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        assert b"Traceback" not in out, out.decode()[-2000:]


def serve_exit(season: Season) -> subprocess.CompletedProcess[bytes]:
    return cli(season, "serve", "--port", str(free_port()), "--desk-every", "0")


def assert_storage_answer(r: httpx.Response, code: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers.get("retry-after", "").isdigit()
    assert r.json()["error"] == code
    assert r.json().get("hint")


@pytest.fixture
def pg_season(tmp_path: Path) -> Iterator[tuple[Season, Cluster]]:
    root = cluster_root()
    cluster = Cluster(root, "primary")
    try:
        cluster.init()
        cluster.start()
        season = start_season(
            tmp_path / "season", now=T0, passphrase=PASS, kdf=fast_kdf(), database_url=cluster.url
        )
        yield season, cluster
    finally:
        cluster.stop_quietly()
        shutil.rmtree(root, ignore_errors=True)


def test_postgresql_stopped_is_an_outage_over_http_and_the_cli(
    pg_season: tuple[Season, Cluster],
) -> None:
    season, cluster = pg_season
    (pk2,) = seal_events(season, ["PK-2"])  # built while the database answers
    with serving(season) as base:
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert (
            httpx.post(
                f"{base}/v1/events", content=seal_event(season, "PK-1").to_bytes()
            ).status_code
            == 201
        )
        cluster.stop()
        assert httpx.get(f"{base}/livez").status_code == 200
        assert_storage_answer(httpx.post(f"{base}/v1/events", content=pk2), "db_unavailable")
        assert_storage_answer(httpx.get(f"{base}/v1/checkpoint"), "db_unavailable")
        assert_storage_answer(httpx.get(f"{base}/healthz"), "db_unavailable")
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"].isdigit()
        body = ready.json()
        assert body["ready"] is False
        assert body["checks"]["database"]["error"] == "db_unavailable"
        assert f"127.0.0.1:{cluster.port}" in body["checks"]["database"]["detail"]
        # The CLI says the same, by exit code 6, naming the database.
        done = cli(season, "log", "status")
        assert done.returncode == 6, done.stderr
        assert f"127.0.0.1:{cluster.port}" in done.stderr.decode()
        assert b"Traceback" not in done.stderr
        # The database comes back: so does the service, with no restart.
        cluster.start()
        answers = []
        for _ in range(5):
            r = httpx.post(f"{base}/v1/events", content=pk2)
            answers.append(r.status_code)
            if r.status_code == 201:
                break
        assert answers[-1] == 201, answers
        assert set(answers) <= {201, 503}
        assert httpx.get(f"{base}/readyz").json()["ready"] is True
    cluster.stop()
    done = serve_exit(season)
    assert done.returncode == 6, done.stderr
    assert b"db_unavailable" in done.stderr and b"Traceback" not in done.stderr


def test_nothing_listening_on_the_port_is_an_outage(pg_season: tuple[Season, Cluster]) -> None:
    season, cluster = pg_season
    cluster.stop()
    for args in (("log", "status"), ("event", "submit", "-"), ("export", "--out", "x")):
        done = cli(season, *args)
        assert done.returncode == 6, (args, done.stderr)
        assert b"db_unavailable" in done.stderr, done.stderr


def _forget_connections(season: Season) -> None:
    season.log().close()
    season.home.engine.dispose()


def test_a_corrupt_sqlite_file_is_named_and_serve_refuses_to_start(season: Season) -> None:
    season.submit(seal_event(season, "PK-1"))
    _forget_connections(season)
    db = season.home.path / "custody.db"
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database " * 200)
    done = cli(season, "log", "status")
    assert done.returncode == 6
    assert b"db_corrupt" in done.stderr and str(db).encode() in done.stderr
    assert b"restore" in done.stderr
    done = serve_exit(season)
    assert done.returncode == 6 and b"db_corrupt" in done.stderr
    assert b"Traceback" not in done.stderr


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """The file refuses writes even to root (immutable), or by mode when not root."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], check=False).returncode != 0:
            pytest.skip("chattr +i is not available on this file system")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o600)


def test_a_read_only_sqlite_file_answers_503_and_exit_6(season: Season) -> None:
    season.submit(seal_event(season, "PK-1"))
    pk2, pk3 = seal_events(season, ["PK-2", "PK-3"])  # dated now, built while it is writable
    _forget_connections(season)
    db = season.home.path / "custody.db"
    with read_only(db):
        # The service writes as it starts (its access log, its sessions): it refuses to start,
        # by exit 6 and the database's name, never a traceback.
        done = serve_exit(season)
        assert done.returncode == 6, done.stderr
        assert b"db_read_only" in done.stderr and b"Traceback" not in done.stderr
        del pk2
        feed = season.home.path.parent / "pk3.json"
        feed.write_bytes(pk3)
        done = cli(season, "event", "submit", str(feed))
        assert done.returncode == 6, done.stderr
        assert b"db_read_only" in done.stderr and b"Traceback" not in done.stderr


def test_readiness_floor_and_a_damaged_log_in_process(season: Season) -> None:
    season.submit(seal_event(season, "PK-1"))
    huge = Settings(
        home=season.home.path, log_passphrase=PASS, clock=lambda: season.now, min_free_bytes=1 << 62
    )
    with TestClient(create_app(huge)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["disk"]["ok"] is False
        assert r.json()["checks"]["database"]["ok"] is True
    ok = Settings(home=season.home.path, log_passphrase=PASS, clock=lambda: season.now)
    with TestClient(create_app(ok)) as client:
        assert client.get("/readyz").json()["ready"] is True
        # The file beside the log key now says more than the database holds.
        season.submit(seal_event(season, "PK-2"))
        engine = season.home.engine
        from sqlalchemy import text

        size = season.log().size()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM checkpoint WHERE size = :s"), {"s": size})
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["log"]["error"] == "log_state"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=False
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_answers_db_full(small_disk: Path) -> None:
    season = start_season(small_disk / "season", now=T0, passphrase=PASS, kdf=fast_kdf())
    season.submit(seal_event(season, "PK-1"))
    events = seal_events(season, [f"PK-{n}" for n in range(2, 6)])  # all dated now
    _forget_connections(season)
    filler = small_disk / "filler"
    with serving(season) as base:
        assert httpx.post(f"{base}/v1/events", content=events[0]).status_code == 201
        with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
        answers = [httpx.post(f"{base}/v1/events", content=e) for e in events[1:]]
        codes = {r.json().get("error") for r in answers if r.status_code != 201}
        assert codes and codes <= {"db_full"}, [r.text for r in answers]
        assert all(r.status_code in (201, 503) for r in answers)
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["ready"] is False and ready.json()["checks"]["disk"]["ok"] is False
    done = cli(season, "event", "submit", "-", stdin=events[-1])
    assert done.returncode == 6, done.stderr
    assert b"db_full" in done.stderr, done.stderr


def test_a_damaged_log_is_refused_by_serve_and_while_serving(season: Season) -> None:
    """A frontier node zeroed while `custody serve` runs: the next append answers 503
    log_state and nothing is signed; restarted, serve refuses to start (exit 6)."""
    for line in seal_events(season, ["PK-1", "PK-2", "PK-3"]):
        season.submit(parse_envelope(line))
    (pk4,) = seal_events(season, ["PK-4"])
    _forget_connections(season)
    with serving(season) as base:
        assert httpx.get(f"{base}/readyz").json()["ready"] is True
        engine = make_engine(season.home.database_url)
        with engine.begin() as conn:  # the highest frontier node of the log's size
            size = int(conn.execute(text("SELECT size FROM log_head WHERE id = 1")).scalar_one())
            level = size.bit_length() - 1
            conn.execute(
                text("UPDATE tree_node SET hash = :h WHERE level = :l AND idx = 0"),
                {"h": bytes(32), "l": level},
            )
        engine.dispose()
        assert_storage_answer(httpx.post(f"{base}/v1/events", content=pk4), "log_state")
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["log"]["error"] == "log_state"
        assert httpx.get(f"{base}/v1/checkpoint").text.split("\n")[1] == str(size)  # nothing new
    done = serve_exit(season)
    assert done.returncode == 6 and b"log_state" in done.stderr
    assert b"Traceback" not in done.stderr
