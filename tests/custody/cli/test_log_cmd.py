"""The log's command line: submit events, status, proofs, and clean refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crypto import merkle
from crypto.encoding import b64decode, format_time
from crypto.note import NoteVerifier, open_checkpoint
from custody.cli import main
from custody.demo import Season
from custody.events import Kind
from tests.conftest import PASS
from tests.custody.test_log import SEALS, seal


@pytest.fixture
def cli(season: Season, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--now", format_time(season.now), *args])  # the log's clock
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _write(tmp_path: Path, name: str, env: object) -> Path:
    path = tmp_path / name
    path.write_bytes(env.to_bytes())  # type: ignore[attr-defined]
    return path


def test_submit_status_and_proofs(cli, season: Season, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seal(season)
    good = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
    )
    code, out, _ = cli("--json", "event", "submit", str(_write(tmp_path, "d.json", good)))
    assert code == 0
    receipt = json.loads(out)["accepted"][0]
    assert receipt["index"] == 2
    # The same file again: the same receipt, nothing added.
    code, out, _ = cli("event", "submit", str(tmp_path / "d.json"))
    assert code == 0
    assert "already in the log" in out

    code, out, _ = cli("--json", "log", "status")
    status = json.loads(out)
    assert status["size"] == 3
    authority = season.trust().authority
    checkpoint, _ = open_checkpoint(
        status["checkpoint"], [NoteVerifier(authority.log_origin, authority.log_key)]
    )

    code, out, _ = cli("--json", "log", "proof", "1")
    proof = [b64decode(h) for h in json.loads(out)["proof"]]
    leaf = merkle.leaf_hash(season.log().leaf(1))
    merkle.verify_inclusion(leaf, 1, checkpoint.size, proof, checkpoint.root)

    code, out, _ = cli("--json", "log", "consistency", "1")
    assert code == 0
    assert json.loads(out)["new_size"] == 3

    code, out, _ = cli("log", "status")
    assert "3 events" in out


def test_submit_refusal_is_reported_with_exit_code(cli, season: Season, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seal(season)
    off_route = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-li"},
        signers=["print-qian", "courier-li"],
        body={"seals": SEALS},
    )
    code, out, err = cli("event", "submit", str(_write(tmp_path, "bad.json", off_route)))
    assert code == 10
    assert "refused" in out
    assert "route" in out
    assert "Traceback" not in out + err
    # The refusal opened an incident that blocked the off-route receiver's key: the same
    # statement again is refused at the gate, before the rules.
    code, out, _ = cli("--json", "event", "submit", str(_write(tmp_path, "bad2.json", off_route)))
    assert json.loads(out)["refused"][0]["error"] == "blocked_key"
    officer = next(season.home.people_dir().glob("secrecy-chen-*.key"))
    code, out, _ = cli("--json", "incident", "list", "--key", str(officer))
    assert [i["kind"] for i in json.loads(out)["incidents"]] == ["off_route", "blocked_key_used"]
    (tmp_path / "junk.json").write_text("{not json")
    code, _, err = cli("event", "submit", str(tmp_path / "junk.json"))
    assert code == 3
    assert "not valid JSON" in err


def test_proof_out_of_range_is_a_clean_error(cli, season: Season) -> None:  # type: ignore[no-untyped-def]
    seal(season)
    code, out, err = cli("--json", "log", "proof", "5")
    assert code == 2  # a tree size beyond the log is the caller's mistake, not a defect
    assert json.loads(out)["error"] == "usage"
    assert "Traceback" not in err


def test_wrong_log_passphrase(
    cli, season: Season, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    seal(season)
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE", "not it")
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
    )
    code, _, _err = cli("event", "submit", str(_write(tmp_path, "d.json", env)))
    assert code == 11
    assert season.log().size() == 2


def test_statement_sign_countersign_verify(cli, season: Season, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    payload = tmp_path / "p.json"
    payload.write_text('{"kind":"handover"}')
    people = season.home.people_dir()
    sun = next(people.glob("courier-sun-*.key"))
    zhou = next(people.glob("custodian-zhou-*.key"))
    env = tmp_path / "e.json"
    assert (
        cli("statement", "sign", "--key", str(sun), "--payload", str(payload), "--out", str(env))[0]
        == 0
    )
    assert (
        cli("statement", "sign", "--key", str(zhou), "--countersign", str(env), "--out", str(env))[
            0
        ]
        == 0
    )
    bundle = season.out / "trust-bundle"
    code, out, _ = cli(
        "statement",
        "verify",
        str(env),
        "--trust",
        str(bundle),
        "--require",
        "releaser=courier@courier-sun",
        "--require",
        "receiver=custodian",
    )
    assert code == 0
    assert "valid" in out
    code, out, _ = cli(
        "statement",
        "verify",
        str(env),
        "--trust",
        str(bundle),
        "--require",
        "releaser=courier@courier-li",
        "--require",
        "receiver=custodian",
    )
    assert code == 10
    assert "✗" in out
    code, _, _ = cli(
        "statement", "verify", str(env), "--trust", str(bundle), "--require", "nonsense"
    )
    assert code == 2
    code, _, _err = cli("statement", "sign", "--key", str(sun), "--out", str(tmp_path / "x.json"))
    assert code == 2


def test_receipts_for_both_parties_verify_offline(cli, season: Season, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seal(season)
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
    )
    path = _write(tmp_path, "d.json", env)
    receipts = tmp_path / "receipts"
    assert cli("event", "submit", str(path), "--receipts", str(receipts))[0] == 0
    (receipt,) = receipts.glob("*.receipt.json")
    bundle = season.out / "trust-bundle"
    code, out, _ = cli("log", "check-receipt", str(receipt), str(path), "--trust", str(bundle))
    assert code == 0, out
    assert "included" in out
    # The receipt does not vouch for another event.
    other = season.event(
        Kind.INSPECT,
        ["PK-1"],
        actors={"inspector": "courier-sun"},
        signers=["courier-sun"],
        body={},
    )
    code, _, err = cli(
        "log",
        "check-receipt",
        str(receipt),
        str(_write(tmp_path, "o.json", other)),
        "--trust",
        str(bundle),
    )
    assert code == 10
    assert "Traceback" not in err
