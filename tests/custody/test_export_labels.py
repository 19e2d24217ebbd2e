"""The export carries each sealed package's signed label; verify checks every label at its own
issued time and against the package's seal event on the log, naming the package that differs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crypto.encoding import canonical_json
from custody.audit import load_trust_document, read_bundle, verify_bundle
from custody.cli import main
from custody.demo import Season
from custody.errors import ConflictError
from custody.package_service import all_package_ids, label_text, seal_event, seal_package
from tests.labels.fixtures import resign, typical_manifest

A, B, UNLOGGED = "SX27-INT-0001", "SX27-INT-0002", "SX27-INT-0003"


def seal_labelled(season: Season, package_id: str, *, submit: bool = True) -> str:
    """Seal as `custody package seal` does: store the label, then append its seal event."""
    manifest = typical_manifest(season.now, package_id=package_id)
    sealer = season.keys["print-qian"].signing
    seal_package(season.home, manifest, sealer, now=season.now)
    text = label_text(season.home, package_id)
    if submit:
        trust = season.trust()
        cert = trust.certificate(sealer.key_id)
        season.submit(
            seal_event(manifest, text, cert, trust.authority.id, sealer, handover_witness=False)
        )
    return text


def export(season: Season, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    assert main(["export", "--out", str(out)]) == 0
    return out


def labels_of(bundle: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in (bundle / "labels.jsonl").read_text().splitlines()]


def write_labels(bundle: Path, items: list[dict[str, str]]) -> None:
    (bundle / "labels.jsonl").write_bytes(b"".join(canonical_json(i) + b"\n" for i in items))


def label_problems(bundle: Path) -> list[tuple[int | None, str]]:
    trust_doc, _ = read_bundle(bundle)
    report = verify_bundle(bundle, load_trust_document(trust_doc, pinned_root_id=None))
    return [(p.index, p.message) for p in report.problems if p.rule == "label"]


def test_labels_are_exported_and_verify_on_both_databases(
    any_season: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    season = any_season
    text_a = seal_labelled(season, A)
    text_b = seal_labelled(season, B)
    seal_labelled(season, UNLOGGED, submit=False)  # stored, its seal event never appended
    bundle = export(season, tmp_path / "bundle", monkeypatch)
    assert labels_of(bundle) == [
        {"label": text_a, "package_id": A},
        {"label": text_b, "package_id": B},
    ]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert "labels.jsonl" in manifest["files"]
    capsys.readouterr()
    assert main(["--json", "verify", str(bundle), "--workers", "1"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert report["ok"], report["problems"]
    assert report["labels_checked"] == 2
    assert main(["verify", str(bundle), "--workers", "1"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "labels checked 2 (each against its seal event)" in shown


def test_a_tampered_label_in_the_export_is_named(
    season: Season, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seal_labelled(season, A)
    seal_labelled(season, B)
    bundle = export(season, tmp_path / "bundle", monkeypatch)
    items = labels_of(bundle)
    # The printer (a valid sealer) re-signs B's manifest with one copy fewer: the signature is
    # good, but the log's seal event committed to the other label.
    manifest_b = typical_manifest(season.now, package_id=B)
    short = resign(manifest_b, season.keys["print-qian"].signing, lambda f: f.update({7: 29}))
    write_labels(bundle, [items[0], {"label": short, "package_id": B}])
    [(index, message)] = label_problems(bundle)
    assert index == 2  # B's seal event (0 is the exam's policy)
    assert message.startswith(f"package {B}: the label disagrees with its seal event")
    assert "copies" in message and "label_sha256" in message


def test_every_label_fault_is_named(
    season: Season, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text_a = seal_labelled(season, A)
    seal_labelled(season, B)
    bundle = export(season, tmp_path / "bundle", monkeypatch)
    good = labels_of(bundle)
    altered = text_a[:-3] + ("A" if text_a[-3] != "A" else "B") + text_a[-2:]
    other = typical_manifest(season.now, package_id="SX27-INT-0009")
    stranger = resign(other, season.keys["print-qian"].signing, lambda f: None)
    cases: list[tuple[list[dict[str, str]], str]] = [
        ([{"label": altered, "package_id": A}, good[1]], f"package {A}: label refused"),
        ([{"label": text_a, "package_id": B}, good[0]], f"package {B}: the label is package {A}"),
        ([good[1]], f"package {A}: its seal event commits to a label the bundle lacks"),
        ([*good, {"label": stranger, "package_id": "SX27-INT-0009"}], "no seal event on the log"),
        ([*good, good[0]], "listed twice"),
        ([*good, {"package_id": A}], "exactly label and package_id"),
    ]
    for items, expected in cases:
        write_labels(bundle, items)
        messages = [m for _, m in label_problems(bundle)]
        assert any(expected in m for m in messages), (expected, messages)
    (bundle / "labels.jsonl").unlink()
    messages = [m for _, m in label_problems(bundle)]
    assert len(messages) == 2
    assert all("commits to a label the bundle lacks" in m for m in messages)


def test_sealing_an_id_twice_is_a_conflict_and_keeps_the_first_label(any_season: Season) -> None:
    first = seal_labelled(any_season, A, submit=False)
    again = typical_manifest(any_season.now, package_id=A, copy_count=29)
    with pytest.raises(ConflictError):
        seal_package(
            any_season.home, again, any_season.keys["print-qian"].signing, now=any_season.now
        )
    assert label_text(any_season.home, A) == first
    assert all_package_ids(any_season.home) == [A]
