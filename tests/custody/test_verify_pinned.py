"""`custody verify` checks a bundle against a pinned authority, says which one, and reads every
file of the bundle: the manifest's every byte, its hashes, authority, origin and size."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from custody.audit import export_bundle, load_trust_document, read_bundle, verify_bundle
from custody.cli import main
from custody.demo import Season, start_season
from custody.errors import CustodyError
from tests.conftest import PASS, T0, fast_kdf
from tests.custody.test_audit import full_life


@pytest.fixture
def bundle(season: Season, tmp_path: Path) -> Path:
    full_life(season, "PK-1")
    export_bundle(season.log(), tmp_path / "export")
    return tmp_path / "export"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_verify_outside_a_home_needs_a_pin_or_a_trust_bundle(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], season: Season
) -> None:
    nohome = str(tmp_path / "no-home")
    code, out = _run(capsys, "--home", nohome, "--json", "verify", str(bundle), "--workers", "1")
    assert code == 2
    assert json.loads(out)["error"] == "usage"
    pin = season.authority.id
    code, out = _run(
        capsys, "--home", nohome, "verify", str(bundle), "--pin", pin, "--workers", "1"
    )
    assert code == 0
    assert season.authority.name in out  # says which authority it checked
    assert pin in out
    assert "checkpoint" in out and "size 10" in out


def test_another_authoritys_export_is_refused(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], season: Season
) -> None:
    other = start_season(tmp_path / "other", now=T0, passphrase=PASS, kdf=fast_kdf())
    full_life(other, "PK-1")
    export_bundle(other.log(), tmp_path / "other-export")
    nohome = str(tmp_path / "no-home")
    ours = season.authority.id
    # pinned to our authority: the other bundle's trust.json is not ours
    code, _ = _run(
        capsys, "--home", nohome, "verify", str(tmp_path / "other-export"), "--pin", ours
    )
    assert code == 10
    # inside our home (its pin by default): refused too
    code, _ = _run(
        capsys, "--home", str(season.home.path), "verify", str(tmp_path / "other-export")
    )
    assert code == 10
    # with our trust bundle: the checkpoint and the manifest are named
    ours_trusted = (
        "verify", str(tmp_path / "other-export"), "--trust", str(season.out / "trust-bundle"),
        "--workers", "1",
    )  # fmt: skip
    code, out = _run(capsys, "--home", nohome, "--json", *ours_trusted)
    assert code == 10
    problems = json.loads(out)["problems"]
    rules = {p["rule"] for p in problems}
    assert "checkpoint_signature" in rules
    assert "manifest" in rules
    # only what is so: the files are the ones the manifest lists (the events, not checked
    # against a refused checkpoint, are hashed all the same), and no size is compared with
    # a checkpoint that could not be read
    manifest = [p["message"] for p in problems if p["rule"] == "manifest"]
    assert manifest, problems
    assert not [m for m in manifest if "does not match the SHA-256" in m], manifest
    assert not [m for m in manifest if "events, the checkpoint" in m], manifest
    assert any("names authority" in m for m in manifest), manifest
    code, shown = _run(capsys, "--home", nohome, *ours_trusted)
    assert code == 10
    assert "root (empty)" not in shown and "size 0" not in shown
    assert "refused (see the problems below)" in shown


def _verify(folder: Path, season: Season) -> list[str]:
    trust_doc, _ = read_bundle(folder)
    try:
        trust = load_trust_document(trust_doc, pinned_root_id=season.authority.id)
        return [p.rule for p in verify_bundle(folder, trust).problems]
    except CustodyError as e:
        return [e.code]


def test_every_byte_of_the_manifest_is_read(bundle: Path, season: Season) -> None:
    assert _verify(bundle, season) == []
    manifest = bundle / "manifest.json"
    original = manifest.read_bytes()
    rng = random.Random(7)
    positions = rng.sample(range(len(original)), k=min(80, len(original)))
    unnoticed = []
    for pos in positions:
        changed = bytearray(original)
        changed[pos] = (changed[pos] + rng.randrange(1, 256)) % 256
        manifest.write_bytes(bytes(changed))
        if not _verify(bundle, season):
            unnoticed.append(pos)
    manifest.write_bytes(original)
    assert unnoticed == []


def test_a_manifest_that_disagrees_with_its_files_is_named(bundle: Path, season: Season) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["size"] = manifest["size"] + 1
    manifest["files"]["events.jsonl"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    problems = _verify(bundle, season)
    assert problems.count("manifest") >= 2
    (bundle / "manifest.json").unlink()
    assert "manifest" in _verify(bundle, season)
