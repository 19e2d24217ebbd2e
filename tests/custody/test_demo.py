"""`custody demo` plays a season into a fresh folder and refuses a used one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custody.cli import main
from custody.demo.play import run_demo
from custody.errors import ConflictError
from keys.trust import load_trust_bundle
from tests.conftest import PASS, T0, fast_kdf


def test_demo_writes_everything_under_out(tmp_path: Path) -> None:
    out = tmp_path / "season"
    summary = run_demo(out, now=T0, passphrase=PASS, kdf=fast_kdf())
    assert (out / "summary.json").exists()
    assert json.loads((out / "summary.json").read_text())["authority_id"] == summary["authority_id"]
    trust = load_trust_bundle(
        (out / "trust-bundle").read_bytes(), pinned_root_id=summary["authority_id"]
    )
    assert len(trust.certificates) == 12
    assert set(summary["statements"]["refusals"]) == {"receiver missing", "recused courier"}
    assert len(summary["packages"]) == 12
    assert summary["destroyed"] == 12
    assert summary["incidents"]["raised_by_clean_season"] == 0
    kinds = sorted(i["kind"] for i in summary["incidents"]["breaches"])
    assert kinds == ["count_short", "off_route", "seal_mismatch"]
    assert len(list((out / "incidents").glob("*.pdf"))) == 3
    assert len(summary["papers"]["opened_by_quorum"]) == 3
    assert len(summary["papers"]["shredded"]) == 6
    assert (out / "labels" / "labels.pdf").exists()
    assert len(list((out / "labels").glob("*.png"))) == 13  # 12 played, 1 left to the user
    assert summary["verify_clean"]["ok"] is True
    assert summary["verify_tampered"]["ok"] is False
    rules = {(p["index"], p["rule"]) for p in summary["verify_tampered"]["problems"]}
    assert (30, "signature") in rules
    assert (None, "checkpoint_root") in rules
    for name in (
        "export/events.jsonl",
        "export/checkpoint.note",
        "export/trust.json",
        "verification.json",
    ):
        assert (out / name).exists(), name
    # No secret in clear text anywhere under the folder.
    for path in out.rglob("*"):
        if path.is_file():
            assert PASS.encode() not in path.read_bytes(), path


def test_demo_refuses_used_folder(tmp_path: Path) -> None:
    out = tmp_path / "used"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(ConflictError):
        run_demo(out, now=T0, passphrase=PASS, kdf=fast_kdf())


def test_demo_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "used"
    out.mkdir()
    (out / "x").write_text("x")
    assert main(["demo", "--out", str(out)]) == 5
    assert "not empty" in capsys.readouterr().err


def test_retention_purge_keeps_the_log_verifiable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from custody.demo.log import verify_export

    out = tmp_path / "season"
    run_demo(out, now=T0, passphrase=PASS, kdf=fast_kdf())
    monkeypatch.setenv("CUSTODY_HOME", str(out / "home"))
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE", PASS)  # each purge goes on the log first
    monkeypatch.setenv("CUSTODY_SYSTEM_PASSPHRASE", PASS)
    blobs = list((out / "home" / "papers").glob("*.cpaper"))
    assert len(blobs) == 6
    later = T0 + timedelta(days=400)
    # Before the exam's retention date (the demo keeps its records a year): refused.
    assert main(["--now", "2027-03-02T00:00:00Z", "paper", "purge"]) == 10
    assert len(list((out / "home" / "papers").glob("*.cpaper"))) == 6
    stamp = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    capsys.readouterr()
    assert main(["--now", stamp, "--json", "paper", "purge"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["purged"]) == 6
    assert report["kept"] == []
    assert list((out / "home" / "papers").glob("*.cpaper")) == []
    assert main(["export", "--out", str(tmp_path / "after")]) == 0
    assert verify_export(tmp_path / "after").ok


def test_no_paper_plaintext_under_the_demo_folder(tmp_path: Path) -> None:
    from importlib import resources

    out = tmp_path / "season"
    run_demo(out, now=T0, passphrase=PASS, kdf=fast_kdf())
    sample = json.loads(
        resources.files("custody.samples").joinpath("interview-main.json").read_text("utf-8")
    )
    marker = sample["questions"][0]["text"][:20].encode()  # a question, in any encoding of the file
    assert len(marker) > 30
    for path in out.rglob("*"):
        if path.is_file():
            assert marker not in path.read_bytes(), path


class _StopError(RuntimeError):
    """A failure forced in the middle of the season."""


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "empty-folder"])
def test_failed_demo_removes_what_it_wrote_and_runs_again(tmp_path: Path, existing: bool) -> None:
    out = tmp_path / "season"
    if existing:
        out.mkdir()
    steps: list[str] = []

    def fail_midway(text: str) -> None:
        steps.append(text)
        if len(steps) == 5:  # after the authority, people, papers and packages are written
            raise _StopError(text)

    with pytest.raises(_StopError):
        run_demo(out, now=T0, passphrase=PASS, kdf=fast_kdf(), say=fail_midway)
    assert (out / "home").exists() is False
    assert not out.exists() or list(out.iterdir()) == []
    # The same command again plays the whole season.
    summary = run_demo(out, now=T0, passphrase=PASS, kdf=fast_kdf())
    assert summary["verify_clean"]["ok"] is True


def test_demo_season_ends_before_now_and_leaves_statements_dated_now(tmp_path: Path) -> None:
    from crypto.dsse import parse_envelope
    from custody.events import parse_event

    out = tmp_path / "season"
    summary = run_demo(out, now=T0, passphrase=PASS, kdf=fast_kdf())
    times = [json.loads(line)["received"] for line in (out / "export" / "events.jsonl").open()]
    assert max(times) < T0.strftime("%Y-%m-%dT%H:%M:%SZ")
    for path in summary["statements"]["to_submit"]:
        event = parse_event(parse_envelope(Path(path).read_bytes(), what=path).payload)
        assert event.time == T0


def test_demo_cli_tells_the_season_as_it_plays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process `custody demo`: numbered progress on stderr, a summary of rows on stdout
    (no generated passphrase note when one is given)."""
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "season"
    assert main(["--now", "2027-03-01T08:00:00Z", "demo", "--out", str(out)]) == 0
    shown = capsys.readouterr()
    steps = [line for line in shown.err.splitlines() if line.startswith("[")]
    assert [s.split("]")[0] for s in steps] == [f"[{n}/9" for n in range(1, 10)]
    assert "Season of" in shown.out
    assert "verify export" in shown.out
    assert "event submit" in shown.out  # the command for the statements left to submit
    assert "generated for this run" not in shown.out
