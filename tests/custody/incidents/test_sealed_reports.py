"""Personal data off the public log: a public leak report's text and the reporter's contact are
sealed to the secrecy officers' keys; the log holds the boxes and the SHA-256, never the phone
number. Recorded through the real CLI (a subprocess)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from crypto.encoding import format_time
from custody.demo import Season
from custody.errors import ConflictError, DecryptionError
from custody.incidents.desk import open_public_report
from custody.incidents.model import get_incident
from tests.api.test_access_log import custody_cli

PHONE = "13912345678"
TEXT = "考场外有人出售答案 answers sold outside the site"


def _all_bytes(season: Season) -> bytes:
    """Every statement on the log, decoded (the payloads, as signed)."""
    log = season.log()
    return b"\n".join(log.entry(i).payload for i in range(log.size()))


def test_a_public_report_is_sealed_to_the_secrecy_officers(season: Season) -> None:
    done = custody_cli(season, "--json", "incident", "public-report", TEXT, "--contact", PHONE)
    assert done.returncode == 0, done.stderr
    incident_id = json.loads(done.stdout)["id"]
    on_log = _all_bytes(season)
    assert season.log().size() >= 1
    assert PHONE.encode() not in on_log
    assert b"answers sold" not in on_log and TEXT.encode() not in on_log
    assert PHONE not in done.stdout  # nor in what the command prints

    incident = get_incident(season.home.engine, incident_id)
    facts = incident.evidence[0]["facts"]
    assert [b["to"] for b in facts["sealed"]] == ["secrecy-chen"]
    officer = season.keys["secrecy-chen"]
    assert officer.encryption is not None
    opened = open_public_report(facts, officer.encryption.key_id, officer.encryption)
    assert opened == {"text": TEXT, "contact": PHONE}
    plain = json.dumps(opened | {}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(plain.encode()).hexdigest() == facts["sha256"]
    # the hash the log holds is on the log
    assert facts["sha256"].encode() in on_log

    auditor = season.keys["auditor-chu"]
    assert auditor.encryption is not None
    with pytest.raises(DecryptionError):
        open_public_report(facts, auditor.encryption.key_id, auditor.encryption)
    with pytest.raises(DecryptionError):  # the officer's key id, another person's secret
        open_public_report(facts, officer.encryption.key_id, auditor.encryption)


def test_without_a_secrecy_officer_nothing_is_recorded_in_clear(season: Season) -> None:
    from tests.conftest import revoke_now

    revoke_now(season, "secrecy-chen", "left_post")
    size = season.log().size()
    with pytest.raises(ConflictError):
        season.log().report_public(TEXT, season.now, contact=PHONE)
    assert season.log().size() == size


NOTE = "监考员王芳说 13800001111 的人取走了试卷袋 (the invigilator says)"


def test_an_acts_note_is_sealed_and_a_secrecy_officer_reads_it_back_on_the_record(
    season: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The note a person writes into an incident goes on the log only as sealed boxes and a
    salted SHA-256; the person's signature still verifies over them; a secrecy officer opens
    it through `incident show --key`, and that read is on the access log; an auditor is
    refused and nothing is recorded for them."""
    from custody.access_log import AccessLog
    from custody.cli import main
    from custody.demo.breaches import attach, play_breaches
    from custody.incidents.acts import note_plaintext, parse_act
    from custody.incidents.model import list_incidents
    from keys.model import Role
    from keys.statements import require, verify_statement
    from tests.conftest import PASS

    attach(season)
    play_breaches(season, tmp_path / "out")
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    (key,) = season.home.people_dir().glob("secrecy-chen*")
    (auditor,) = season.home.people_dir().glob("auditor-chu*")
    now = format_time(season.now)
    first = next(i for i in list_incidents(season.home.engine) if i.status == "open").id
    assert main(["--now", now, "incident", "ack", first, "--key", str(key), "--note", NOTE]) == 0
    assert main(["--now", now, "incident", "public-report", TEXT, "--contact", PHONE]) == 0
    capsys.readouterr()

    on_log = _all_bytes(season)
    assert b"13800001111" not in on_log and "王芳".encode() not in on_log
    # The act is on the log (embedded in the incident statement), its signature checkable by
    # anyone holding the trust document, without the note.
    log = season.log()
    statements = [json.loads(log.entry(i).payload) for i in range(log.size())]
    embedded = [
        s["body"]["act"] for s in statements if s.get("kind") == "incident" and "act" in s["body"]
    ]
    assert embedded
    from crypto.dsse import parse_envelope

    env = parse_envelope(embedded[-1])
    act = parse_act(env)
    assert act.note_sealed is not None and [b.to for b in act.note_sealed.sealed] == [
        "secrecy-chen"
    ]
    verify_statement(
        env, season.trust(), [require("actor", *Role, person="secrecy-chen")], at=act.time
    )
    # A guess at the note does not hash to what the log holds (the salt is sealed with it).
    assert hashlib.sha256(note_plaintext(NOTE, b"\0" * 16)).hexdigest() != act.note_sealed.sha256

    access = AccessLog(season.home.engine, season.authority, None)
    before = access.size()
    show = ["--json", "--now", now, "incident", "show"]
    assert main([*show, first, "--sealed", "--key", str(key)]) == 0
    shown = json.loads(capsys.readouterr().out)
    notes = [t for t in shown["sealed_texts"] if t["source"] == "act"]
    assert [(t["act"], t["note"], t["opened"]) for t in notes] == [("acknowledge", NOTE, True)]
    assert access.size() == before + 1
    (read,) = access.who_read(obj=f"incident:{first}")
    assert (read.who, read.route) == ("secrecy-chen", "cli incident show --sealed")

    report = next(i for i in list_incidents(season.home.engine) if i.kind == "public_report")
    assert main([*show, report.id, "--sealed", "--key", str(key)]) == 0
    (opened,) = json.loads(capsys.readouterr().out)["sealed_texts"]
    assert (opened["text"], opened["contact"]) == (TEXT, PHONE)
    assert main(["--now", now, "incident", "show", report.id, "--sealed", "--key", str(key)]) == 0
    page = capsys.readouterr().out
    assert PHONE in page and "written by people" in page

    # An auditor reads incidents but not what people wrote: refused, and no record.
    size = access.size()
    forbidden = 13
    assert main([*show, first, "--sealed", "--key", str(auditor)]) == forbidden
    assert "13800001111" not in capsys.readouterr().out
    assert access.size() == size
    # Without --sealed, nothing is opened; the read of the incident itself is recorded.
    for reader in (key, auditor):
        assert main([*show, report.id, "--key", str(reader)]) == 0
        plain = capsys.readouterr().out
        assert "sealed_texts" not in json.loads(plain) and PHONE not in plain
    assert access.size() == size + 2


def test_an_act_with_a_note_in_clear_or_sealed_to_a_non_officer_is_refused(season: Season) -> None:
    from crypto.dsse import sign_envelope
    from crypto.encoding import canonical_json, format_time
    from custody.errors import FormatError, RoleError
    from custody.incidents.acts import ACT_TYPE, Act, Recipient, parse_act, seal_note
    from custody.incidents.policy import check_note

    signer = season.keys["secrecy-chen"].signing
    clear = {
        "type": "custody.incident-act.v1",
        "authority": season.authority.id,
        "incident": "INC-00001",
        "act": "acknowledge",
        "person": "secrecy-chen",
        "time": format_time(season.now),
        "note": PHONE,
        "key": None,
    }
    with pytest.raises(FormatError, match="note in clear"):
        parse_act(sign_envelope(ACT_TYPE, canonical_json(clear), [signer]))
    auditor = season.trust().certificates[season.keys["auditor-chu"].signing.key_id]
    wrong = seal_note(
        "x", [Recipient(auditor.subject, auditor.encryption_key_id, auditor.encryption_key)]
    )
    act = Act(season.authority.id, "INC-00001", "acknowledge", "secrecy-chen", season.now, wrong)
    with pytest.raises(RoleError, match="not a secrecy officer"):
        check_note(act, season.trust())
