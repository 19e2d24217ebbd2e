"""Another authority witnesses our log: it cosigns honest growth and refuses a fork."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto.encoding import format_time
from crypto.note import Checkpoint, CosignatureVerifier, parse_note, sign_checkpoint
from custody.cli import main
from custody.demo import Season, start_season
from custody.events import Kind
from custody.witness import format_add_checkpoint
from tests.conftest import PASS, T0, fast_kdf
from tests.custody.test_log import seal, transfer


def test_witness_cosigns_growth_and_refuses_a_fork(
    season: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = start_season(tmp_path / "other", now=T0, passphrase=PASS, kdf=fast_kdf())
    witness_key = next(other.home.people_dir().glob("secrecy-chen-*.key"))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    state_file = tmp_path / "witness-state.json"

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--now", format_time(season.now), *args])  # the log's clock
        out, err = capsys.readouterr()
        return code, out, err

    seal(season)
    code, vkey, _ = run("log", "vkey")
    vkey = vkey.strip()
    witness = [
        "--log-vkey",
        vkey,
        "--state",
        str(state_file),
        "--key",
        str(witness_key),
        "--name",
        "shaanxi-witness",
    ]
    req = tmp_path / "req"
    assert run("log", "witness-request", "--old-size", "0", "--out", str(req))[0] == 0
    # A witness without its state never cosigns as if new: --init says it is new.
    code, _, err = run("witness", "cosign", str(req), *witness)
    assert code == 4, err
    assert "--init" in err
    code, out, _ = run("witness", "cosign", str(req), *witness, "--init")
    assert code == 0, out
    line = out.strip()
    assert line.startswith("— shaanxi-witness ")
    # The cosignature verifies as a c2sp cosignature/v1 over our checkpoint.
    note = season.log().latest_checkpoint()
    text = parse_note(note).text
    verifier = CosignatureVerifier("shaanxi-witness", other.keys["secrecy-chen"].signing.verify_key)
    sig = parse_note(text + "\n" + line + "\n").signatures[0]
    assert verifier.verify(text.encode(), sig.signature)

    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-li")
    assert run("log", "witness-request", "--old-size", "2", "--out", str(req))[0] == 0
    assert run("witness", "cosign", str(req), *witness, "--init")[0] == 5  # state exists
    assert run("witness", "cosign", str(req), *witness)[0] == 0

    # The operator shows the witness another history of size 5: refused, both checkpoints named.
    authority = season.trust().authority
    log_key = season.home.authority_key("log", PASS).signing
    forged = sign_checkpoint(
        Checkpoint(authority.log_origin, 5, b"\x05" * 32), authority.log_origin, log_key
    )
    proof = season.log().consistency_proof(3, 4)
    req.write_bytes(format_add_checkpoint(4, proof, forged))
    code, _, err = run("witness", "cosign", str(req), *witness)
    assert code == 10
    assert "two different histories" in err

    # A rollback to the first checkpoint: refused as a conflict, state unchanged.
    before = state_file.read_bytes()
    req.write_bytes(format_add_checkpoint(0, [], note))
    code, _, err = run("witness", "cosign", str(req), *witness)
    assert code == 5, err
    assert state_file.read_bytes() == before
