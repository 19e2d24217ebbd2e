"""Personal data off the public log: a public leak report's text and the reporter's contact are
sealed to the secrecy officers' keys; the log holds the boxes and the SHA-256, never the phone
number. Recorded through the real CLI (a subprocess)."""

from __future__ import annotations

import hashlib
import json

import pytest

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
    from custody import identity
    from keys.model import RevocationReason
    from tests.conftest import PASS

    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=season.keys["secrecy-chen"].signing.key_id,
        reason=RevocationReason.LEFT_POST,
        effective_at=season.now,
        now=season.now,
    )
    season.refresh_trust()
    size = season.log().size()
    with pytest.raises(ConflictError):
        season.log().report_public(TEXT, season.now, contact=PHONE)
    assert season.log().size() == size
