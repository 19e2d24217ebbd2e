"""The export carries the cosignatures the log holds, and `custody verify` checks them against
a witness policy of k of n: through the CLI, with real witness keys, on both databases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crypto.note import NoteSignature, parse_note
from custody.cli import main
from custody.demo import Season
from tests.custody.test_audit import full_life
from tests.custody.witness_helpers import WITNESSES, cosign_latest, policy_document, write_policy

W1, W2, W3 = WITNESSES


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str]:
        self.capsys.readouterr()
        code = main(list(args))
        return code, self.capsys.readouterr().out

    def verify(self, bundle: Path, *extra: str) -> tuple[int, dict[str, Any]]:
        code, out = self("--json", "verify", str(bundle), "--workers", "1", *extra)
        return code, json.loads(out)


@pytest.fixture
def cli(
    any_season: Season, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    monkeypatch.setenv("CUSTODY_HOME", str(any_season.home.path))
    return Cli(capsys)


def rules(report: dict[str, Any]) -> list[str]:
    return [p["rule"] for p in report["problems"]]


def test_two_of_three_cosigned_passes_two_of_three_and_fails_three_of_three(
    any_season: Season, cli: Cli, tmp_path: Path
) -> None:
    season = any_season
    full_life(season, "PK-1")
    write_policy(season.home.path, 2)
    for witness in (W1, W2):
        line = tmp_path / f"{witness.name.rsplit('/', 1)[1]}.line"
        line.write_text(cosign_latest(season, witness))
        assert cli("log", "add-cosignature", str(line))[0] == 0
    bundle = tmp_path / "bundle"
    assert cli("export", "--out", str(bundle))[0] == 0
    note = (bundle / "checkpoint.note").read_text()
    assert [s.name for s in parse_note(note).signatures][1:] == [W1.name, W2.name]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "events.jsonl",
        "trust.json",
        "checkpoint.note",
        "witnesses.json",
        "labels.jsonl",
    }
    assert (bundle / "witnesses.json").read_bytes() == policy_document(2)

    two_of_three = tmp_path / "2of3.json"
    two_of_three.write_bytes(policy_document(2))
    three_of_three = tmp_path / "3of3.json"
    three_of_three.write_bytes(policy_document(3))

    code, report = cli.verify(bundle, "--witness-policy", str(two_of_three))
    assert code == 0, report["problems"]
    assert report["witness_policy"] == {
        "source": str(two_of_three),
        "quorum": 2,
        "witnesses": [W1.name, W2.name, W3.name],
        "cosigned_by": [W1.name, W2.name],
        "invalid": [],
        "ok": True,
    }
    code, report = cli.verify(bundle, "--witness-policy", str(three_of_three))
    assert code == 10
    assert rules(report) == ["witness_policy"]
    assert "cosigned by 2 of the 3" in report["problems"][0]["message"]
    assert report["witness_policy"]["cosigned_by"] == [W1.name, W2.name]
    # Inside the home and without the option, the home's own policy (2 of 3) is used.
    code, report = cli.verify(bundle)
    assert code == 0
    assert report["witness_policy"]["source"].endswith("witnesses.json")
    code, out = cli(
        "verify", str(bundle), "--workers", "1", "--witness-policy", str(three_of_three)
    )
    assert code == 10
    assert "NOT MET" in out and "witness_policy" in out


def test_a_forged_cosignature_in_the_bundle_is_not_counted(
    any_season: Season, cli: Cli, tmp_path: Path
) -> None:
    season = any_season
    full_life(season, "PK-1")
    write_policy(season.home.path, 2)
    line = tmp_path / "w1.line"
    line.write_text(cosign_latest(season, W1))
    assert cli("log", "add-cosignature", str(line))[0] == 0
    bundle = tmp_path / "bundle"
    assert cli("export", "--out", str(bundle))[0] == 0
    # Someone adds a line under W2's name and key hash, signed by W3's key.
    note_path = bundle / "checkpoint.note"
    real_w2 = parse_note(note_path.read_text() + cosign_latest(season, W2)).signatures[-1]
    by_w3 = parse_note(note_path.read_text() + cosign_latest(season, W3)).signatures[-1]
    forged = NoteSignature(W2.name, real_w2.key_hash, by_w3.signature).line()
    note_path.write_text(note_path.read_text() + forged)
    code, report = cli.verify(bundle)
    assert code == 10
    assert "witness_policy" in rules(report)
    assert report["witness_policy"]["cosigned_by"] == [W1.name]
    assert report["witness_policy"]["invalid"] == [W2.name]
    assert "witness_cosignature" in rules(report)


def test_a_forged_cosignature_fails_verify_even_with_the_quorum_met(
    any_season: Season, cli: Cli, tmp_path: Path
) -> None:
    season = any_season
    full_life(season, "PK-1")
    write_policy(season.home.path, 1)  # W1 alone meets the quorum
    line = tmp_path / "w1.line"
    line.write_text(cosign_latest(season, W1))
    assert cli("log", "add-cosignature", str(line))[0] == 0
    bundle = tmp_path / "bundle"
    assert cli("export", "--out", str(bundle))[0] == 0
    assert cli.verify(bundle)[0] == 0
    note_path = bundle / "checkpoint.note"
    real_w2 = parse_note(note_path.read_text() + cosign_latest(season, W2)).signatures[-1]
    by_w3 = parse_note(note_path.read_text() + cosign_latest(season, W3)).signatures[-1]
    forged = NoteSignature(W2.name, real_w2.key_hash, by_w3.signature).line()
    note_path.write_text(note_path.read_text() + forged)
    code, report = cli.verify(bundle)
    assert code == 10
    assert "witness_cosignature" in rules(report)  # named, beside the manifest's hash
    assert "witness_policy" not in rules(report)  # the quorum itself is met
    assert report["witness_policy"]["cosigned_by"] == [W1.name]


def test_without_a_policy_verify_says_it_checked_none(
    any_season: Season, cli: Cli, tmp_path: Path
) -> None:
    full_life(any_season, "PK-1")
    bundle = tmp_path / "bundle"
    assert cli("export", "--out", str(bundle))[0] == 0
    assert not (bundle / "witnesses.json").exists()
    code, report = cli.verify(bundle)
    assert code == 0
    assert report["witness_policy"] is None
    code, out = cli("verify", str(bundle), "--workers", "1")
    assert code == 0
    assert "none checked" in out
    bad = tmp_path / "bad.json"
    bad.write_text('{"quorum": 4, "witnesses": []}')
    assert cli("verify", str(bundle), "--witness-policy", str(bad))[0] == 3
