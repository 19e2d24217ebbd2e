"""Escalation on a controlled clock; signed acts; the outbox delivered to real receivers on
loopback (HTTP and SMTP with STARTTLS), a receiver down at first, and a crash mid-delivery."""

from __future__ import annotations

import email.policy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from crypto.dsse import parse_envelope, verify_signatures
from crypto.encoding import parse_time
from custody.demo import Season
from custody.demo.breaches import attach
from custody.errors import ConflictError, KeyBlockedError, RoleError
from custody.events import Kind, parse_leaf
from custody.incidents.acts import Act, seal_note
from custody.incidents.config import policy_from_json
from custody.incidents.desk import (
    NOTIFY_TYPE,
    WatchedLog,
    blocked_keys,
    get_incident,
    list_incidents,
)
from custody.incidents.outbox import Mailer, deliver_outbox, outbox_rows
from custody.incidents.policy import Policy, Target, note_recipients
from custody.store.incident_tables import OutboxRow
from tests.custody.incidents.servers import SmtpServer, WebhookReceiver, free_port
from tests.custody.test_log import seal, transfer

OFF_ROUTE = ("courier-sun", "custodian-wu")


def off_route(season: Season) -> str:
    seal(season)
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    with pytest.raises(Exception):  # noqa: B017, PT011 - RouteError; the incident matters here
        transfer(season, Kind.HANDOVER, "PK-1", *OFF_ROUTE)
    (incident,) = list_incidents(season.home.engine)
    return incident.id


def act(season: Season, incident: str, what: str, person: str, key: str | None = None):  # type: ignore[no-untyped-def]
    note = seal_note("on it", note_recipients(season.trust(), season.now))
    return Act(season.authority.id, incident, what, person, season.now, note, key).sign(
        season.keys[person].signing
    )


def watched_log(season: Season, policy: Policy | None = None) -> WatchedLog:
    return attach(season, policy)


def test_ladder_climbs_until_acknowledged(season: Season) -> None:
    log = watched_log(season)
    incident_id = off_route(season)
    t0 = season.now
    assert get_incident(log.engine, incident_id).level == 0
    log.sweep(t0 + timedelta(minutes=14))
    assert get_incident(log.engine, incident_id).level == 0
    log.sweep(t0 + timedelta(minutes=16))
    inc = get_incident(log.engine, incident_id)
    assert (inc.level, inc.status) == (1, "open")
    # The custodian on site may no longer acknowledge: the incident is at the municipal level.
    season.now = t0 + timedelta(minutes=17)
    with pytest.raises(RoleError):
        log.act(act(season, incident_id, "acknowledge", "custodian-zhou"), season.now)
    log.sweep(t0 + timedelta(minutes=47))
    assert get_incident(log.engine, incident_id).level == 2
    # At the top it stays, and its deadline renews.
    log.sweep(t0 + timedelta(minutes=200))
    inc = get_incident(log.engine, incident_id)
    assert inc.level == 2
    assert inc.ack_deadline is not None and inc.ack_deadline > t0 + timedelta(minutes=200)
    season.now = t0 + timedelta(minutes=201)
    log.act(act(season, incident_id, "acknowledge", "secrecy-chen"), season.now)
    deadline_level = get_incident(log.engine, incident_id).level
    log.sweep(t0 + timedelta(days=1))
    inc = get_incident(log.engine, incident_id)
    assert (inc.status, inc.level) == ("acknowledged", deadline_level)
    with pytest.raises(ConflictError):
        log.act(act(season, incident_id, "acknowledge", "secrecy-chen"), season.now)
    escalations = [parse_envelope(log.entry(i).to_bytes()) for i in range(log.size())]
    actions = [
        json.loads(e.payload)["body"].get("action")
        for e in escalations
        if json.loads(e.payload)["kind"] == "incident"
    ]
    assert actions.count("escalate") >= 3
    assert "acknowledge" in actions


def test_custodian_acknowledges_at_first_level(season: Season) -> None:
    log = watched_log(season)
    incident_id = off_route(season)
    log.act(act(season, incident_id, "acknowledge", "custodian-zhou"), season.now)
    log.sweep(season.now + timedelta(hours=5))
    assert get_incident(log.engine, incident_id).level == 0


def test_blocked_key_refused_until_officer_unblocks(season: Season) -> None:
    log = watched_log(season)
    incident_id = off_route(season)
    wu = season.keys["custodian-wu"].signing.key_id
    assert [b["key_id"] for b in blocked_keys(log.engine)] == [wu]
    seal(season, "PK-2", route=["custodian-wu"])
    with pytest.raises(KeyBlockedError):
        transfer(season, Kind.DISPATCH, "PK-2", "print-qian", "custodian-wu")
    with pytest.raises(RoleError):  # only a secrecy officer decides
        log.act(act(season, incident_id, "unblock", "custodian-zhou", key=wu), season.now)
    log.act(act(season, incident_id, "unblock", "secrecy-chen", key=wu), season.now)
    transfer(season, Kind.DISPATCH, "PK-2", "print-qian", "custodian-wu")
    log.act(act(season, incident_id, "contain", "secrecy-chen"), season.now)
    with pytest.raises(RoleError):
        log.act(act(season, incident_id, "resolve", "courier-li"), season.now)
    log.act(act(season, incident_id, "resolve", "secrecy-chen"), season.now)
    assert get_incident(log.engine, incident_id).status == "resolved"


def test_incidents_verify_in_an_export(season: Season, tmp_path: Path) -> None:
    from custody.audit import export_bundle
    from tests.custody.test_audit import verify_folder

    log = watched_log(season)
    incident_id = off_route(season)
    log.act(act(season, incident_id, "acknowledge", "secrecy-chen"), season.now)
    export_bundle(log, tmp_path / "export")
    report = verify_folder(tmp_path / "export")
    assert report.ok, report.problems
    # The act embedded in the system statement verifies under the officer's key.
    lines = (tmp_path / "export" / "events.jsonl").read_bytes().splitlines()
    bodies = [json.loads(parse_leaf(line).envelope.payload)["body"] for line in lines]
    embedded = [b["act"] for b in bodies if "act" in b]
    env = parse_envelope(embedded[0])
    assert verify_signatures(env, log.trust.signing_keys).signed_by == {
        season.keys["secrecy-chen"].signing.key_id
    }


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    yield server
    server.stop()


def test_outbox_delivers_to_real_receivers_with_retries(
    season: Season, smtp: SmtpServer, tmp_path: Path
) -> None:
    site = WebhookReceiver()
    down_port = free_port()  # the province's receiver is down at first
    policy = Policy(
        places=policy_from_json(None).places,
        recipients={
            "custodian": (Target("site", "webhook", site.url),),
            "municipal": (Target("city", "email", "city@secrecy.example"),),
            "provincial": (
                Target("province", "webhook", f"http://127.0.0.1:{down_port}/hook"),
                Target("province-mail", "email", "province@secrecy.example"),
            ),
        },
    )
    log = watched_log(season, policy)
    mailer = Mailer(
        "127.0.0.1",
        smtp.port,
        "custody@exam.example",
        ssl_context=smtp.client_ctx,
    )
    incident_id = off_route(season)
    t0 = season.now
    log.sweep(t0 + timedelta(minutes=16))
    log.sweep(t0 + timedelta(minutes=47))
    now = t0 + timedelta(minutes=48)
    report = deliver_outbox(log.engine, now, mailer=mailer, zone="Asia/Tokyo")
    assert len(report.sent) == 3 and len(report.failed) == 1
    # Retried with backoff: not due 10 s later; due after 30 s, when the receiver is back.
    assert deliver_outbox(log.engine, now + timedelta(seconds=10), mailer=mailer).sent == []
    province = WebhookReceiver(down_port)
    try:
        later = deliver_outbox(log.engine, now + timedelta(seconds=31), mailer=mailer)
        assert len(later.sent) == 1
    finally:
        province.stop()
        site.stop()
    assert {r["status"] for r in outbox_rows(log.engine)} == {"sent"}
    # Every webhook body is a DSSE envelope the authority's system key signed.
    system = log.trust.authority.system_key
    for headers, body in site.got.requests + province.got.requests:
        env = parse_envelope(body)
        assert env.payload_type == NOTIFY_TYPE
        assert verify_signatures(env, {system.key_id: system}).signed_by == {system.key_id}
        note = json.loads(env.payload)
        assert note["incident"] == incident_id
        assert headers["idempotency-key"] == note["idempotency_key"]
    assert json.loads(parse_envelope(province.got.requests[0][1]).payload)["level_name"] == (
        "provincial"
    )
    # Both e-mails went over STARTTLS, each with its idempotency key.
    assert len(smtp.messages) == 2
    assert all(tls for tls, *_ in smtp.messages)
    assert {tuple(rcpt) for _, _, rcpt, _ in smtp.messages} == {
        ("city@secrecy.example",),
        ("province@secrecy.example",),
    }
    assert all(b"X-Custody-Idempotency-Key" in content for *_, content in smtp.messages)
    # The readable body: Chinese first, the deadline in the zone asked for (the home's), named.
    for *_, content in smtp.messages:
        mail = message_from_bytes(content, policy=email.policy.default)
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        attached = next(mail.iter_attachments()).get_content()
        note = json.loads(parse_envelope(attached).payload)
        deadline = parse_time(note["ack_deadline"], what="deadline")
        local = deadline.astimezone(ZoneInfo("Asia/Tokyo"))
        assert text.startswith(f"事件 Incident {incident_id}: 偏离路线 off_route")
        assert f"确认期限 acknowledge by: {local:%Y-%m-%d %H:%M:%S} Asia/Tokyo" in text
        assert text.index("详情：") < text.index("Detail: ") < text.index("The attached")
        assert "不是计划中的下一持有人" in text.split("详情：")[1].split("\n")[0]  # in Chinese


CRASHER = """
import os, sys
from datetime import datetime
from custody.store.db import make_engine
from custody.incidents.outbox import deliver_outbox
engine = make_engine(sys.argv[1])
now = datetime.fromisoformat(sys.argv[2])
deliver_outbox(engine, now, after_send=lambda _id: os.kill(os.getpid(), 9))
"""


def test_crash_between_send_and_mark_resends_with_same_key(season: Season) -> None:
    receiver = WebhookReceiver()
    try:
        policy = Policy(recipients={"custodian": (Target("site", "webhook", receiver.url),)})
        log = watched_log(season, policy)
        off_route(season)
        # The incident is committed; nothing was sent yet (a crash right after the commit
        # loses nothing): the row is pending in the database.
        assert [r["status"] for r in outbox_rows(log.engine)] == ["pending"]
        url = season.home.database_url
        now = season.now
        proc = subprocess.run(
            [sys.executable, "-c", CRASHER, url, now.isoformat()],
            cwd=Path(__file__).resolve().parents[3],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == -9, proc.stderr
        assert len(receiver.got.requests) == 1
        assert [r["status"] for r in outbox_rows(log.engine)] == ["pending"]
        # The dead deliverer's lease holds the row for a while; then it is sent again.
        assert deliver_outbox(log.engine, now + timedelta(minutes=1)).sent == []
        again = deliver_outbox(log.engine, now + timedelta(minutes=6))
        assert len(again.sent) == 1
        assert deliver_outbox(log.engine, now + timedelta(hours=1)).sent == []
    finally:
        receiver.stop()
    keys = [h["idempotency-key"] for h, _ in receiver.got.requests]
    assert len(keys) == 2 and keys[0] == keys[1]  # sent twice, never without the same key
    assert len(receiver.got.effective) == 1
    with log.engine.connect() as conn:
        assert conn.execute(select(OutboxRow.__table__.c.status)).scalars().all() == ["sent"]  # type: ignore[attr-defined]


def test_dead_after_max_attempts(season: Season) -> None:
    policy = Policy(
        recipients={"custodian": (Target("gone", "webhook", f"http://127.0.0.1:{free_port()}/"),)}
    )
    log = watched_log(season, policy)
    off_route(season)
    now = season.now
    for i in range(3):
        report = deliver_outbox(log.engine, now + timedelta(hours=i), max_attempts=3)
    assert report.dead and outbox_rows(log.engine)[0]["status"] == "dead"
