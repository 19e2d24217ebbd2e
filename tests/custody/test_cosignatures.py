"""Witness cosignatures kept by the log: verified under witnesses.json before storing, served
with the checkpoint, on both databases; and `custody log add-cosignature|checkpoint`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crypto.encoding import format_time
from crypto.note import Checkpoint, cosign, parse_checkpoint, parse_note, sign_checkpoint
from crypto.signing import SigningKey
from custody.cli import main
from custody.demo import Season
from custody.errors import (
    ConflictError,
    DuplicateSignatureError,
    FormatError,
    NotFoundError,
    SignatureError,
    UnknownSignerError,
)
from custody.events import Kind
from custody.witness import Cosigner
from custody.witnesses import count_cosignatures
from tests.conftest import PASS
from tests.custody.test_log import seal, transfer
from tests.custody.witness_helpers import WITNESSES, cosign_latest, write_policy

W1, W2, W3 = WITNESSES


def test_cosignatures_are_stored_once_and_served_on_both_databases(any_season: Season) -> None:
    season = any_season
    seal(season)
    write_policy(season.home.path, 2)
    policy = season.home.require_witness_policy()
    assert policy is not None
    log = season.log()
    line1 = cosign_latest(season, W1)
    # The witness's line alone: it cosigns the latest checkpoint.
    [added] = log.add_cosignatures(line1, policy, now=season.now)
    assert (added.size, added.witness, added.duplicate) == (2, W1.name, False)
    assert added.line == line1
    # The cosigned note (the log's own signature in it is ignored): W1 again is a duplicate.
    note = log.latest_checkpoint() + line1 + cosign_latest(season, W2)
    first, second = log.add_cosignatures(note, policy, now=season.now)
    assert (first.witness, first.duplicate) == (W1.name, True)
    assert (second.witness, second.duplicate) == (W2.name, False)
    # A later cosignature by W1 of the same checkpoint: the first one is kept.
    later = cosign(parse_checkpoint(parse_note(note).text), W1.name, W1.key, 1900000000)
    [again] = log.add_cosignatures(later, policy, now=season.now)
    assert again.duplicate
    assert again.line == line1

    served = log.cosigned_checkpoint()
    assert served.startswith(log.latest_checkpoint())
    signatures = parse_note(served).signatures
    assert [s.name for s in signatures][1:] == [W1.name, W2.name]
    checkpoint = parse_checkpoint(parse_note(served).text)
    assert count_cosignatures(policy, checkpoint, signatures).valid == (W1.name, W2.name)

    # The log grows: the new checkpoint holds no cosignature yet, the old one keeps its own.
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    assert log.cosigned_checkpoint() == log.latest_checkpoint()
    assert log.cosigned_checkpoint(2) == served
    [old] = log.add_cosignatures(
        cosign(checkpoint, W3.name, W3.key, 1), policy, now=season.now, size=2
    )
    assert (old.size, old.witness) == (2, W3.name)
    assert log.cosignature_lines(3) == []


def _refusals(season: Season) -> list[tuple[str, str, type[Exception]]]:
    log = season.log()
    note = log.latest_checkpoint()
    checkpoint = parse_checkpoint(parse_note(note).text)
    good = cosign(checkpoint, W1.name, W1.key, 1800000000)
    # W1's name and key hash over a signature made by W2's key.
    raw = parse_note(checkpoint.body() + "\n" + cosign(checkpoint, W1.name, W2.key, 1)).signatures
    forged_sig = parse_note(checkpoint.body() + "\n" + good).signatures[0]
    forged = type(forged_sig)(W1.name, forged_sig.key_hash, raw[0].signature).line()
    stranger = Cosigner("stranger", SigningKey(b"\x09" * 32))
    authority = season.trust().authority
    other_root = sign_checkpoint(
        Checkpoint(authority.log_origin, checkpoint.size, b"\x05" * 32),
        authority.log_origin,
        season.home.authority_key("log", PASS).signing,
    )
    other_checkpoint = parse_checkpoint(parse_note(other_root).text)
    return [
        ("forged", forged, SignatureError),
        ("unknown-witness", cosign(checkpoint, stranger.name, stranger.key, 1), UnknownSignerError),
        ("no-witness-line", note, UnknownSignerError),
        ("witness-twice", good + cosign(checkpoint, W1.name, W1.key, 5), DuplicateSignatureError),
        (
            "another-root-same-size",
            other_root + cosign(other_checkpoint, W1.name, W1.key, 1),
            ConflictError,
        ),
        ("size-never-signed", cosign(checkpoint, W1.name, W1.key, 1), NotFoundError),
        ("garbage", "not a note", FormatError),
        ("another-log", note.replace(authority.log_origin, "other/log", 1) + good, FormatError),
    ]


@pytest.mark.parametrize(
    "case",
    [
        "forged",
        "unknown-witness",
        "no-witness-line",
        "witness-twice",
        "another-root-same-size",
        "size-never-signed",
        "garbage",
        "another-log",
    ],
)
def test_bad_cosignatures_store_nothing(any_season: Season, case: str) -> None:
    season = any_season
    seal(season)
    write_policy(season.home.path, 1)
    policy = season.home.require_witness_policy()
    log = season.log()
    _, text, error = next(c for c in _refusals(season) if c[0] == case)
    size = 7 if case == "size-never-signed" else None
    with pytest.raises(error):
        log.add_cosignatures(text, policy, now=season.now, size=size)
    assert log.cosignature_lines(1) == []


def test_without_witnesses_json_nothing_is_accepted(season: Season) -> None:
    seal(season)
    assert season.home.witness_policy() is None
    with pytest.raises(NotFoundError):
        season.home.require_witness_policy()


def test_cli_add_cosignature_and_checkpoint(
    season: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--now", format_time(season.now), *args])
        out, err = capsys.readouterr()
        return code, out, err

    seal(season)
    line = tmp_path / "w1.line"
    line.write_text(cosign_latest(season, W1))
    code, _, err = run("log", "add-cosignature", str(line))
    assert code == 4, err  # no witnesses.json: not_found
    write_policy(season.home.path, 2)
    code, out, err = run("--json", "log", "add-cosignature", str(line))
    assert code == 0, err
    [added] = json.loads(out)["cosignatures"]
    assert (added["witness"], added["size"], added["duplicate"]) == (W1.name, 2, False)
    code, out, _ = run("log", "add-cosignature", str(line), "--size", "2")
    assert code == 0
    assert "already held" in out
    code, out, _ = run("log", "checkpoint")
    assert code == 0
    assert out == season.log().latest_checkpoint() + line.read_text()
    forged = tmp_path / "forged.line"
    forged.write_text(line.read_text().replace(W1.name, W2.name))
    code, _, _ = run("log", "add-cosignature", str(forged))
    assert code != 0
    assert season.log().cosignature_lines(2) == [line.read_text()]
