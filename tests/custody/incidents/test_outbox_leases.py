"""The outbox under concurrency and outage: two deliverers on real PostgreSQL send each row once
(to a real loopback receiver that counts), a lease taken over is noticed at update, e-mail rows
wait while no relay is configured, dead rows are listed and requeued by the CLI, and `custody
serve` delivers on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from crypto.encoding import format_time
from custody.demo import Season, start_season
from custody.incidents.outbox import Mailer, deliver_outbox, outbox_rows
from custody.store.incident_tables import OutboxRow
from tests.api.helpers import free_port
from tests.conftest import PASS, T0, fast_kdf
from tests.custody.incidents.servers import SmtpServer, WebhookReceiver

OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
ROOT = Path(__file__).resolve().parents[3]


def add_rows(season: Season, count: int, address: str, channel: str = "webhook") -> None:
    """``count`` notifications as the desk writes them (a DSSE envelope the system signs)."""
    note = {
        "incident": "INC-0001",
        "kind": "route",
        "severity": "high",
        "action": "opened",
        "level_title": "provincial",
        "ack_deadline": format_time(season.now),
        "detail": "off route",
        "scope": {"packages": ["PK-1"]},
        "containment": {"frozen": ["PK-1"]},
    }
    env = season.sign("application/vnd.custody.notification.v1+json", note, "secrecy-chen")
    stamp = format_time(season.now)
    engine: Engine = season.home.engine
    with engine.begin() as conn:
        conn.execute(
            insert(OUTBOX),
            [
                {
                    "incident_id": f"INC-{n:04d}",
                    "channel": channel,
                    "target": "province",
                    "address": address,
                    "idempotency_key": f"{channel}-{n:06d}-{os.urandom(4).hex()}",
                    "subject": "incident",
                    "payload": env.to_bytes(),
                    "created_at": stamp,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": stamp,
                }
                for n in range(count)
            ],
        )


class SlowReceiver(WebhookReceiver):
    """A real HTTP receiver that takes a little while per request, so deliverers overlap."""

    def __init__(self) -> None:
        super().__init__()
        handler = self.server.RequestHandlerClass
        original = handler.do_POST  # type: ignore[attr-defined]

        def slow(inner: object) -> None:
            time.sleep(0.01)
            original(inner)

        handler.do_POST = slow  # type: ignore[attr-defined]


@pytest.fixture
def pg_season(pg_url: str, tmp_path: Path) -> Season:
    return start_season(
        tmp_path / "season", now=T0, passphrase=PASS, kdf=fast_kdf(), database_url=pg_url
    )


def test_two_deliverers_on_postgresql_send_each_row_once(pg_season: Season) -> None:
    season = pg_season
    receiver = SlowReceiver()
    try:
        add_rows(season, 180, receiver.url)
        reports: list[list[int]] = [[], []]
        start = threading.Barrier(2)

        def deliverer(n: int) -> None:
            start.wait()
            while True:
                report = deliver_outbox(season.home.engine, season.now, limit=10)
                reports[n].extend(report.sent)
                if not report.sent and not report.failed:
                    return

        threads = [threading.Thread(target=deliverer, args=(n,)) for n in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        keys = Counter(h["idempotency-key"] for h, _ in receiver.got.requests)
    finally:
        receiver.stop()
    assert len(keys) == 180
    assert set(keys.values()) == {1}, [k for k, v in keys.items() if v > 1][:5]
    assert reports[0] and reports[1], "both deliverers took part"
    assert not set(reports[0]) & set(reports[1])
    assert {r["status"] for r in outbox_rows(season.home.engine)} == {"sent"}


def test_a_lease_taken_over_is_noticed_at_update(any_season: Season) -> None:
    season = any_season
    receiver = WebhookReceiver()
    try:
        add_rows(season, 1, receiver.url)
        engine = season.home.engine
        late: list[object] = []

        def expire_and_take_over(_row: int) -> None:
            # Deliverer A sent but is slow to mark it; its lease expires and B takes the row.
            late.append(deliver_outbox(engine, season.now + timedelta(minutes=10)))

        first = deliver_outbox(engine, season.now, after_send=expire_and_take_over)
    finally:
        receiver.stop()
    (second,) = late
    assert second.sent == [1]  # type: ignore[attr-defined]
    assert first.sent == [] and first.lost == [1]
    (row,) = outbox_rows(engine)
    assert row["status"] == "sent" and row["attempts"] == 1  # marked once, by B
    # Both sends carried the same idempotency key: the receiver keeps one.
    assert len(receiver.got.requests) == 2 and len(receiver.got.effective) == 1


def test_email_rows_wait_while_no_relay_is_configured(season: Season, tmp_path: Path) -> None:
    add_rows(season, 2, "province@secrecy.example", channel="email")
    engine = season.home.engine
    for hours in (1, 24, 72):
        report = deliver_outbox(engine, season.now + timedelta(hours=hours))
        assert report.waiting == 2 and report.failed == [] and report.dead == []
    assert {(r["status"], r["attempts"]) for r in outbox_rows(engine)} == {("pending", 0)}
    smtp = SmtpServer(tmp_path)
    try:
        mailer = Mailer("127.0.0.1", smtp.port, "custody@exam.example", ssl_context=smtp.client_ctx)
        report = deliver_outbox(engine, season.now + timedelta(hours=73), mailer=mailer)
        assert len(report.sent) == 2 and report.waiting == 0
        assert len(smtp.messages) == 2
    finally:
        smtp.stop()


def _cli(season: Season, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["--home", str(season.home.path), "--now", format_time(season.now), "--json", *args]
    return subprocess.run(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "CUSTODY_PASSPHRASE": PASS},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dead_rows_are_listed_and_requeued_by_the_cli(season: Season) -> None:
    port = free_port()  # the receiver is down
    add_rows(season, 2, f"http://127.0.0.1:{port}/hook")
    report = deliver_outbox(season.home.engine, season.now, max_attempts=1)
    assert sorted(report.dead) == [1, 2]
    auditor = next(season.home.people_dir().glob("auditor-chu-*.key"))
    listed = _cli(season, "incident", "outbox", "list", "--status", "dead", "--key", str(auditor))
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["notifications"]
    assert [r["id"] for r in rows] == [1, 2] and all(r["last_error"] for r in rows)
    assert _cli(season, "incident", "outbox", "requeue").returncode == 2  # nothing named
    assert _cli(season, "incident", "outbox", "requeue", "7").returncode == 4  # no such dead row
    done = _cli(season, "incident", "outbox", "requeue", "--all-dead")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["requeued"] == [1, 2]
    receiver = WebhookReceiver(port)  # back up
    try:
        delivered = _cli(season, "incident", "deliver")
        assert delivered.returncode == 0, delivered.stderr
        assert sorted(json.loads(delivered.stdout)["sent"]) == [1, 2]
    finally:
        receiver.stop()
    assert len(receiver.got.requests) == 2
    assert {r["status"] for r in outbox_rows(season.home.engine)} == {"sent"}


def test_custody_serve_delivers_the_outbox_on_its_own(season: Season) -> None:
    receiver = WebhookReceiver()
    add_rows(season, 3, receiver.url)
    season.home.engine.dispose()
    port = free_port()
    argv = ["--home", str(season.home.path), "--now", format_time(season.now), "serve"]
    argv += ["--port", str(port), "--desk-every", "0.2"]
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
    )
    try:
        deadline = time.monotonic() + 60
        while len(receiver.got.requests) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, "custody serve exited"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        receiver.stop()
    assert len(receiver.got.requests) == 3
    assert {r["status"] for r in outbox_rows(season.home.engine)} == {"sent"}
