"""A person's free text never goes on the log in clear (issue 12, point 4): a leak report's
text and a freeze's, release's or correction's reason are sealed to the secrecy officers
(``custody.sealed_text``, the shape of an incident act's note). The rules refuse a text in
clear and a malformed or misaddressed box, through the CLI (a subprocess) and through
``POST /v1/events``; the commands seal for the person; a secrecy officer opens the words with
``incident show --key``; neither the database files nor an export hold the sentence."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from crypto.dsse import Envelope
from custody.demo import Season
from custody.errors import FormatError, RoleError
from custody.events import Kind
from custody.incidents.acts import Recipient, open_note, parse_sealed_note, seal_note
from custody.sealed_text import check_paper_act_text, seal_text
from custody.store.leaves import leaf_of
from tests.api.helpers import client, seal_event, transfer_event
from tests.api.test_access_log import custody_cli

REASON = "押运员孙明 13700002222 报告车辆被跟踪 (the escort reports being followed)"
TEXT = "微信群里有人出售本场试题 someone sells this paper in a chat group"


def _started(season: Season) -> None:
    """PK-1 sealed and dispatched to courier-sun."""
    season.submit(seal_event(season))
    season.submit(transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun"))


def _stored_bytes(root: Path) -> bytes:
    """Every file under ``root`` (the database and its WAL, an export), concatenated, and
    every base64 run in them decoded (a statement's payload is base64 in its envelope). The
    log's rows hold their payloads deflated (``store/leaves.py``): a database's leaves are
    rebuilt and added, so a byte search sees every payload as the log serves it."""
    raw = b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())
    for db_path in sorted(root.rglob("custody.db")):
        with contextlib.closing(sqlite3.connect(db_path)) as db:
            rows = db.execute("SELECT envelope, received_at FROM log_entry").fetchall()
        raw += b"\n".join(leaf_of(stored, received) for stored, received in rows)
    decoded = []
    for run in re.findall(rb"[A-Za-z0-9+/]{24,}={0,2}", raw):
        with contextlib.suppress(binascii.Error, ValueError):
            decoded.append(base64.b64decode(run + b"=" * (-len(run) % 4)))
    return raw + b"\n".join(decoded)


def _absent(data: bytes, *texts: str) -> bool:
    return all(t.encode() not in data and t.split(" (")[0].encode() not in data for t in texts)


def _sealed(season: Season, text: str, field: str = "reason") -> dict[str, Any]:
    sealed = seal_text(text, season.trust(), season.now, field=field)
    assert sealed is not None
    return sealed.as_json()


def _freeze(season: Season, body: dict[str, Any]) -> Envelope:
    return season.event(
        Kind.FREEZE,
        ["PK-1"],
        actors={"officer": "secrecy-chen"},
        signers=["secrecy-chen"],
        body=body,
    )


def _leak(season: Season, body: dict[str, Any]) -> Envelope:
    return season.event(
        Kind.LEAK_REPORT,
        [],
        actors={"reporter": "courier-li"},
        signers=["courier-li"],
        body={"packages": ["PK-1"], **body},
    )


def test_the_commands_seal_the_words_and_a_secrecy_officer_opens_them(
    season: Season, tmp_path: Path
) -> None:
    """`custody freeze --reason` and `custody leak-report --text` (real subprocesses) put only
    boxes and a salted hash on the log; the database files and an export hold neither
    sentence; `incident show --key` opens both for the secrecy officer, on the access log."""
    _started(season)
    done = custody_cli(
        season, "--json", "freeze", "PK-1", "--by", "secrecy-chen", "--reason", REASON, "--yes"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"]["frozen"] is True
    done = custody_cli(
        season, "--json", "leak-report", "--by", "courier-li", "--package", "PK-1",
        "--text", TEXT, "--yes",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _absent((done.stdout + done.stderr).encode(), TEXT, REASON)

    log = season.log()
    bodies = [json.loads(log.entry(i).payload)["body"] for i in range(log.size())]
    freeze = next(b for b in bodies if "reason_sealed" in b)
    leak = next(b for b in bodies if "text_sealed" in b)
    assert "reason" not in freeze and "text" not in leak
    assert [b["to"] for b in freeze["reason_sealed"]["sealed"]] == ["secrecy-chen"]
    officer = season.keys["secrecy-chen"].encryption
    assert officer is not None
    note = parse_sealed_note(leak["text_sealed"])
    assert note is not None and open_note(note, officer.key_id, officer) == TEXT

    export = tmp_path / "export"
    done = custody_cli(season, "--json", "export", "--out", str(export))
    assert done.returncode == 0, done.stderr
    stored, exported = _stored_bytes(season.home.path), _stored_bytes(export)
    assert _absent(stored, TEXT, REASON)
    assert _absent(exported, TEXT, REASON)
    # the search reads the payloads: the sealed hashes (inside the base64 payloads) are found
    for digest in (freeze["reason_sealed"]["sha256"], leak["text_sealed"]["sha256"]):
        assert digest.encode() in stored and digest.encode() in exported

    (key,) = season.home.people_dir().glob("secrecy-chen*")
    (auditor,) = season.home.people_dir().glob("auditor-chu*")
    incidents = custody_cli(season, "--json", "incident", "list", "--key", str(key))
    assert incidents.returncode == 0, incidents.stderr
    listed = json.loads(incidents.stdout)
    rows = listed["incidents"] if isinstance(listed, dict) else listed
    (leak_incident,) = [i for i in rows if i["kind"] == "leak_report"]
    inc = leak_incident["id"]
    shown = custody_cli(season, "--json", "incident", "show", inc, "--sealed", "--key", str(key))
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    texts = {(t["kind"], t["field"]): t for t in found["sealed_texts"]}
    assert ("leak_report", "text") in texts, found
    assert texts[("leak_report", "text")]["note"] == TEXT
    assert texts[("freeze", "reason")]["note"] == REASON
    assert all(t["opened"] for t in texts.values())
    # the human page shows the words to the officer, and nothing to anyone without the key
    page = custody_cli(season, "incident", "show", inc, "--sealed", "--key", str(key))
    assert "chat group" in page.stdout
    for reader in (key, auditor):  # without --sealed, the officer's own page holds no words
        plain = custody_cli(season, "--json", "incident", "show", inc, "--key", str(reader))
        assert plain.returncode == 0, plain.stderr
        assert _absent(plain.stdout.encode(), TEXT, REASON)


def test_a_text_in_clear_is_refused_by_event_submit(season: Season, tmp_path: Path) -> None:
    """`custody event submit` (a subprocess) refuses a freeze whose reason is in clear, names
    the field and says to seal it; the log does not grow and keeps no trace of the words."""
    _started(season)
    size = season.log().size()
    envelope = tmp_path / "freeze.json"
    envelope.write_bytes(_freeze(season, {"reason": REASON}).to_bytes())
    done = custody_cli(season, "--json", "event", "submit", str(envelope))
    assert done.returncode == FormatError.exit_code, done.stderr
    (refused,) = json.loads(done.stdout)["refused"]
    assert refused["error"] == "format"
    assert "reason" in refused["message"] and "reason_sealed" in refused["message"]
    assert season.log().size() == size
    assert _absent(_stored_bytes(season.home.path), REASON)
    # The same words sealed are accepted.
    envelope = tmp_path / "sealed.json"
    envelope.write_bytes(_freeze(season, {"reason_sealed": _sealed(season, REASON)}).to_bytes())
    done = custody_cli(season, "--json", "event", "submit", str(envelope))
    assert done.returncode == 0, done.stdout + done.stderr
    assert season.log().size() == size + 1


def _tampered(season: Season, how: str) -> dict[str, Any]:
    sealed = _sealed(season, TEXT, "text")
    if how == "sha256":
        sealed["sha256"] = "XYZ"
    elif how == "no-box":
        sealed["sealed"] = []
    elif how == "box-not-base64":
        sealed["sealed"][0]["box"] = "not base64!"
    elif how == "not-an-object":
        return {"text_sealed": "sealed"}
    return {"text_sealed": sealed}


def _to_auditor(season: Season) -> dict[str, Any]:
    cert = next(c for c in season.trust().certificates.values() if c.subject == "auditor-chu")
    sealed = seal_note(TEXT, [Recipient(cert.subject, cert.encryption_key_id, cert.encryption_key)])
    assert sealed is not None
    return {"text_sealed": sealed.as_json()}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (lambda s: {"text": TEXT}, 400, "format"),
        (lambda s: _tampered(s, "sha256"), 400, "format"),
        (lambda s: _tampered(s, "no-box"), 400, "format"),
        (lambda s: _tampered(s, "box-not-base64"), 400, "format"),
        (lambda s: _tampered(s, "not-an-object"), 400, "format"),
        (_to_auditor, 403, "role"),
    ],
    ids=["clear", "bad-sha256", "no-box", "box-not-base64", "not-an-object", "to-an-auditor"],
)
def test_post_events_refuses_clear_or_malformed_text(
    season: Season, body: Any, status: int, code: str
) -> None:
    """`POST /v1/events`: a leak report's text in clear, a malformed box, or a box sealed to
    someone who is not a secrecy officer is refused with the field named; the log does not
    grow; the sealed text is accepted."""
    _started(season)
    c = client(season)
    size = season.log().size()
    answer = c.post("/v1/events", content=_leak(season, body(season)).to_bytes())
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    assert "text" in answer.json()["message"]
    assert season.log().size() == size
    assert _absent(_stored_bytes(season.home.path), TEXT)
    sealed = _leak(season, {"text_sealed": _sealed(season, TEXT, "text")})
    ok = c.post("/v1/events", content=sealed.to_bytes())
    assert ok.status_code == 201, ok.text
    assert season.log().size() > size  # the report, and the incident it opens


def test_an_empty_reason_is_no_text(season: Season) -> None:
    """Only a person's words are sealed: an empty reason is no text at all (accepted)."""
    _started(season)
    assert season.submit(_freeze(season, {"reason": ""})).index > 0


def _payload(reason: dict[str, Any]) -> dict[str, Any]:
    return {"type": "custody.paper-backup-activation.v1", **reason}


def test_a_paper_acts_reason_is_sealed_to_secrecy_officers(season: Season) -> None:
    """Break-glass and backup-activation acts carry ``reason_sealed``: a reason in clear is
    ``format``, a box to a non-officer ``role``; an opening without break-glass has none."""
    trust, at = season.trust(), season.now
    with pytest.raises(FormatError, match="reason_sealed"):
        check_paper_act_text("custody.paper-opening.v1", {"reason": "门锁坏了"}, trust, at)
    with pytest.raises(RoleError):
        check_paper_act_text(
            "custody.paper-backup-activation.v1",
            {"reason_sealed": _to_auditor(season)["text_sealed"]},
            trust,
            at,
        )
    sealed = check_paper_act_text(
        "custody.paper-backup-activation.v1",
        {"reason_sealed": _sealed(season, "试卷外泄")},
        trust,
        at,
    )
    assert sealed is not None
    assert check_paper_act_text("custody.paper-print.v1", {"reason": "x"}, trust, at) is None


def test_sealing_with_no_secrecy_officer_standing_is_a_clear_refusal(season: Season) -> None:
    from custody.errors import ConflictError

    later = datetime(2100, 1, 1, tzinfo=season.now.tzinfo)  # every certificate expired
    with pytest.raises(ConflictError, match="secrecy officer"):
        seal_text(REASON, season.trust(), later, field="reason")
    assert seal_text("  ", season.trust(), season.now, field="reason") is None
