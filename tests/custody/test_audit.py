"""Export and offline verification: a clean season verifies; every kind of tampering is named."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from crypto.dsse import Envelope
from crypto.encoding import canonical_json
from crypto.note import Checkpoint, sign_checkpoint
from crypto.signing import SigningKey
from custody.audit import export_bundle, load_trust_document, read_bundle, stream_lines, verify_log
from custody.cli import main
from custody.demo import Season
from custody.events import Kind, leaf_bytes, parse_leaf
from custody.store.leaves import leaf_of, stored_envelope
from tests.custody.test_log import SEALS, seal, to_storage, transfer, two


def full_life(season: Season, pkg: str) -> None:
    seal(season, pkg)
    to_storage(season, pkg)
    season.now = season.log().package_state(pkg).window_start + timedelta(minutes=1)
    two(season, Kind.OPEN, pkg, {"seals": SEALS})
    two(season, Kind.DISTRIBUTE, pkg, {"copies": 30})
    two(season, Kind.RECOVER, pkg, {"copies": 30})
    transfer(season, Kind.RETURN, pkg, "examiner-zheng", "custodian-zhou", seals=[])
    season.submit(
        season.event(
            Kind.DESTROY,
            [pkg],
            actors={"officer": "destroy-feng", "witness": "supervisor-wang"},
            signers=["destroy-feng", "supervisor-wang"],
            body={"method": "pulping", "copies": {pkg: 30}},
        )
    )


def verify_folder(folder: Path, *, since: str | None = None, workers: int = 1):  # type: ignore[no-untyped-def]
    trust_doc, checkpoint = read_bundle(folder)
    trust = load_trust_document(trust_doc, pinned_root_id=None)
    return verify_log(
        trust, checkpoint, stream_lines(folder / "events.jsonl"), since_note=since, workers=workers
    )


def test_clean_season_verifies_on_both_databases(any_season: Season, tmp_path: Path) -> None:
    full_life(any_season, "PK-1")
    full_life(any_season, "PK-2")
    manifest = export_bundle(any_season.log(), tmp_path / "export")
    assert manifest["size"] == 19
    report = verify_folder(tmp_path / "export")
    assert report.ok, report.problems
    assert report.root_ok
    assert report.destroyed == 2
    assert report.open_chains == []
    assert report.signatures == 1 + 2 * (1 + 2 + 2 + 3 + 2 + 2 + 2 + 2 + 2)  # 1: exam policy


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-processes"])
def test_insider_row_edit_is_named(any_season: Season, tmp_path: Path, workers: int) -> None:
    full_life(any_season, "PK-1")
    # An insider rewrites the seal serials observed at the handover (index 2) in the database.
    with any_season.home.engine.begin() as conn:
        row = conn.execute(text("SELECT envelope, received_at FROM log_entry WHERE idx = 2")).one()
        entry = parse_leaf(leaf_of(row.envelope, row.received_at))
        payload = json.loads(entry.envelope.payload)
        payload["body"]["seals"] = ["S-001", "S-777"]
        edited = Envelope(
            entry.envelope.payload_type, canonical_json(payload), entry.envelope.signatures
        )
        conn.execute(
            text("UPDATE log_entry SET envelope = :e WHERE idx = 2"),
            {"e": stored_envelope(edited, leaf_bytes(edited, entry.received))},
        )
    export_bundle(any_season.log(), tmp_path / "export")
    report = verify_folder(tmp_path / "export", workers=workers)
    assert not report.ok
    rules = {(p.index, p.rule) for p in report.problems}
    assert (2, "signature") in rules or (2, "threshold") in rules
    assert (None, "checkpoint_root") in rules
    # The next event's chain link names the original handover, not the edited one.
    assert (3, "chain") in rules


def test_deleted_and_reordered_events_are_named(season: Season, tmp_path: Path) -> None:
    full_life(season, "PK-1")
    export_bundle(season.log(), tmp_path / "export")
    lines = (tmp_path / "export" / "events.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "export" / "events.jsonl").write_bytes(b"".join(lines[:3] + lines[4:]))
    report = verify_folder(tmp_path / "export")
    rules = {p.rule for p in report.problems}
    assert {"checkpoint_size", "chain"} <= rules
    swapped = [*lines[:2], lines[3], lines[2], *lines[4:]]
    (tmp_path / "export" / "events.jsonl").write_bytes(b"".join(swapped))
    report = verify_folder(tmp_path / "export")
    assert {p.rule for p in report.problems} >= {"checkpoint_root", "chain"}


def test_forked_history_detected_with_earlier_checkpoint(season: Season, tmp_path: Path) -> None:
    seal(season, "PK-1")
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    earlier = season.log().latest_checkpoint()
    transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-li")
    export_bundle(season.log(), tmp_path / "good")
    assert verify_folder(tmp_path / "good", since=earlier).since_ok is True

    # The operator signs a different history of the same size: the earlier checkpoint
    # (held by an auditor) exposes it.
    log_key = season.home.authority_key("log", "correct horse battery staple").signing
    authority = season.trust().authority
    forged = sign_checkpoint(
        Checkpoint(authority.log_origin, 2, b"\x07" * 32), authority.log_origin, log_key
    )
    report = verify_folder(tmp_path / "good", since=forged)
    assert report.since_ok is False
    assert "log_consistency" in {p.rule for p in report.problems}


def test_checkpoint_signed_by_another_key_refused(season: Season, tmp_path: Path) -> None:
    seal(season, "PK-1")
    export_bundle(season.log(), tmp_path / "export")
    authority = season.trust().authority
    note = sign_checkpoint(
        Checkpoint(authority.log_origin, 1, b"\x01" * 32),
        authority.log_origin,
        SigningKey.generate(),
    )
    (tmp_path / "export" / "checkpoint.note").write_text(note)
    report = verify_folder(tmp_path / "export")
    assert [p.rule for p in report.problems] == ["checkpoint_signature"]


def test_cli_export_and_verify(
    season: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    full_life(season, "PK-1")
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    assert main(["export", "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert (
        main(["--json", "verify", str(tmp_path / "b"), "--require-closed", "--workers", "1"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["events_checked"] == 10
    lines = (tmp_path / "b" / "events.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "b" / "events.jsonl").write_bytes(b"".join(lines[:-1]))
    assert main(["verify", str(tmp_path / "b"), "--require-closed", "--workers", "1"]) == 10
    err_out = capsys.readouterr().out
    assert "checkpoint" in err_out and "never destroyed" in err_out
    assert main(["verify", str(tmp_path / "nope")]) == 4
