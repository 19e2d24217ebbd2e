"""`custody paper ...` in-process: the propose -> quorum open session, refusals, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from crypto.encoding import format_time
from custody.cli import main
from custody.demo import EXAM_ID, Season
from custody.errors import NotFoundError, WindowError
from custody.events import Event, Kind, parse_event
from custody.store.paper_tables import PaperKeyRow
from tests.conftest import PASS, T0
from tests.custody.snapshot_reader import files_with_copies, snapshot_reader

SAMPLES = Path(__file__).resolve().parents[3] / "custody" / "samples"
START, END = "2027-03-03T08:00:00Z", "2027-03-03T11:00:00Z"
IN_WINDOW = "2027-03-03T08:30:00Z"


def keyfile(season: Season, subject: str) -> str:
    (path,) = season.home.people_dir().glob(f"{subject}-*.key")
    return str(path)


def entries(season: Season) -> list[tuple[int, Event]]:
    return [(i, parse_event(season.log().entry(i).payload)) for i in range(season.log().size())]


def run(season: Season, *args: str, now: str = format_time(T0)) -> int:
    return main(["--home", str(season.home.path), "--now", now, *args])


def run_json(
    season: Season, capsys: pytest.CaptureFixture[str], *args: str, now: str = format_time(T0)
) -> tuple[int, dict]:  # type: ignore[type-arg]
    capsys.readouterr()
    code = main(["--home", str(season.home.path), "--now", now, "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


@pytest.fixture
def proposed(
    season: Season, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Season:
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    for name, pid, extra in (
        ("interview-main.json", "SX-INT-P01-A", []),
        (
            "interview-backup.json",
            "SX-INT-P01-B",
            ["--role", "backup", "--backup-of", "SX-INT-P01-A"],
        ),
    ):
        code, data = run_json(
            season, capsys, "paper", "propose", str(SAMPLES / name), "--structured",
            "--exam", EXAM_ID, "--position", "P01", "--paper-id", pid,
            "--printer", "print-qian",
            "--officer", "examiner-zheng", "--officer", "supervisor-wang",
            "--threshold", "2", "--standby", "secrecy-chen",
            "--window-start", START, "--window-end", END,
            "--key", keyfile(season, "prop-zhao"), *extra,
        )  # fmt: skip
        assert code == 0, data
        assert data["paper"] == f"{pid}@v1"
        assert len(data["recipients"]) == 5  # printer, 2 officers, standby, the log
    return season


def test_propose_list_open_to_file_and_stdout(
    proposed: Season, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, listing = run_json(proposed, capsys, "paper", "list")
    assert code == 0
    assert [(p["ref"], p["role"], p["keys_held"]) for p in listing["papers"]] == [
        ("SX-INT-P01-A@v1", "main", 5),
        ("SX-INT-P01-B@v1", "backup", 5),
    ]
    out = tmp_path / "paper.json"
    keys = [
        "--key",
        keyfile(proposed, "examiner-zheng"),
        "--key",
        keyfile(proposed, "supervisor-wang"),
    ]
    code, act = run_json(
        proposed, capsys, "paper", "open", "SX-INT-P01-A", *keys, "--out", str(out), now=IN_WINDOW
    )
    assert code == 0, act
    assert out.read_bytes() == (SAMPLES / "interview-main.json").read_bytes()
    assert act["incident"] is None
    capsys.readouterr()
    assert run(proposed, "paper", "open", "SX-INT-P01-A", *keys, "--out", "-", now=IN_WINDOW) == 0
    assert "结构化面试" in capsys.readouterr().out


def test_open_outside_window_refused_with_exit_code(
    proposed: Season, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "paper.json"
    keys = [
        "--key",
        keyfile(proposed, "examiner-zheng"),
        "--key",
        keyfile(proposed, "supervisor-wang"),
    ]
    code, err = run_json(
        proposed, capsys, "paper", "open", "SX-INT-P01-A", *keys, "--out", str(out)
    )
    assert (code, err["error"]) == (10, "window")
    assert not out.exists()
    code, err = run_json(
        proposed, capsys, "paper", "open", "SX-INT-P01-A",
        "--key", keyfile(proposed, "supervisor-wang"), "--out", str(out), now=IN_WINDOW,
    )  # fmt: skip
    assert err["error"] == "threshold"
    assert not out.exists()


def test_per_key_passphrase_variables(
    proposed: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("CUSTODY_PASSPHRASE")
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE", PASS)  # the service records the act first
    monkeypatch.setenv("CUSTODY_SYSTEM_PASSPHRASE", PASS)
    monkeypatch.setenv("CUSTODY_PASSPHRASE_1", PASS)
    monkeypatch.setenv("CUSTODY_PASSPHRASE_2", "wrong")
    keys = [
        "--key",
        keyfile(proposed, "examiner-zheng"),
        "--key",
        keyfile(proposed, "supervisor-wang"),
    ]
    out = tmp_path / "p"
    code, err = run_json(
        proposed, capsys, "paper", "open", "SX-INT-P01-A", *keys, "--out", str(out), now=IN_WINDOW
    )
    assert (code, err["error"]) == (11, "decryption")
    monkeypatch.setenv("CUSTODY_PASSPHRASE_2", PASS)
    code, _ = run_json(
        proposed, capsys, "paper", "open", "SX-INT-P01-A", *keys, "--out", str(out), now=IN_WINDOW
    )
    assert code == 0
    assert out.exists()


def test_break_glass_backup_and_destroy(
    proposed: Season, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    act = tmp_path / "bg.dsse.json"
    code, data = run_json(
        proposed, capsys, "paper", "break-glass", "SX-INT-P01-A",
        "--key", keyfile(proposed, "examiner-zheng"), "--key", keyfile(proposed, "secrecy-chen"),
        "--reason", "supervisor's device broke", "--out", str(tmp_path / "bg.json"),
        "--act-out", str(act), now=IN_WINDOW,
    )  # fmt: skip
    assert code == 0, data
    assert data["incident"]["kind"] == "break_glass_opening"
    assert json.loads(act.read_bytes())["payloadType"].endswith("paper-opening.v1+json")
    code, data = run_json(
        proposed, capsys, "paper", "activate-backup", "SX-INT-P01-A", "--backup", "SX-INT-P01-B",
        "--key", keyfile(proposed, "secrecy-chen"), "--reason", "leak suspected",
    )  # fmt: skip
    assert code == 0, data
    code, data = run_json(
        proposed, capsys, "paper", "destroy", "SX-INT-P01-A",
        "--key", keyfile(proposed, "destroy-feng"), "--key", keyfile(proposed, "secrecy-chen"),
    )  # fmt: skip
    assert code == 0, data
    code, listing = run_json(proposed, capsys, "paper", "list")
    assert {p["ref"]: (p["status"], p["keys_held"]) for p in listing["papers"]} == {
        "SX-INT-P01-A@v1": ("destroyed", 0),
        "SX-INT-P01-B@v1": ("active", 5),
    }
    code, err = run_json(
        proposed, capsys, "paper", "print-decrypt", "SX-INT-P01-A",
        "--key", keyfile(proposed, "print-qian"), "--out", str(tmp_path / "x"),
    )  # fmt: skip
    assert err["error"] == "closed"
    assert not (tmp_path / "x").exists()


def test_destroy_fails_loudly_while_a_reader_holds_a_snapshot(
    proposed: Season, capsys: pytest.CaptureFixture[str]
) -> None:
    home = proposed.home
    with Session(home.engine) as s:
        query = select(PaperKeyRow).where(PaperKeyRow.paper_ref == "SX-INT-P01-A@v1")
        blobs = [r.sealed for r in s.exec(query)]
    assert len(blobs) == 5  # printer, two officers, standby, the log service
    destroy = (
        "paper", "destroy", "SX-INT-P01-A",
        "--key", keyfile(proposed, "destroy-feng"), "--key", keyfile(proposed, "secrecy-chen"),
    )  # fmt: skip
    with snapshot_reader(home.engine):
        code, err = run_json(proposed, capsys, *destroy)
        assert (code, err["error"]) == (6, "shred_incomplete")
        assert files_with_copies(home.path, blobs)  # it did not claim an erase that is not done
    code, data = run_json(proposed, capsys, *destroy)  # the reader is gone: run it again
    assert code == 0, data
    assert data["erased"] is True
    assert files_with_copies(home.path, blobs) == []
    code, err = run_json(proposed, capsys, *destroy)
    assert (code, err["error"]) == (10, "closed")


def test_print_decrypt(
    proposed: Season, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "print.json"
    code, data = run_json(
        proposed, capsys, "paper", "print-decrypt", "SX-INT-P01-B",
        "--key", keyfile(proposed, "print-qian"), "--out", str(out),
    )  # fmt: skip
    assert code == 0, data
    assert out.read_bytes() == (SAMPLES / "interview-backup.json").read_bytes()


def test_malformed_structured_paper_refused(
    season: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "custody-interview-paper/v1", "questions": []}')
    code, err = run_json(
        season, capsys, "paper", "propose", str(bad), "--structured", "--exam", EXAM_ID,
        "--position", "P01", "--paper-id", "X", "--printer", "print-qian",
        "--officer", "examiner-zheng", "--officer", "supervisor-wang",
        "--window-start", START, "--window-end", END, "--key", keyfile(season, "prop-zhao"),
    )  # fmt: skip
    assert (code, err["error"]) == (3, "format")
    assert not (season.home.path / "papers").exists() or not any(
        (season.home.path / "papers").iterdir()
    )


def blobs(season: Season) -> set[str]:
    return {p.name for p in (season.home.path / "papers").glob("*.cpaper")}


def test_purge_takes_each_exam_retention_from_its_policy(
    proposed: Season, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "SX-2027-WRI"
    code, data = run_json(
        proposed, capsys, "paper", "propose", str(SAMPLES / "interview-main.json"),
        "--exam", other, "--position", "P01", "--paper-id", "SX-WRI-P01-A",
        "--printer", "print-qian", "--officer", "examiner-zheng", "--officer", "supervisor-wang",
        "--window-start", START, "--window-end", END, "--key", keyfile(proposed, "prop-zhao"),
    )  # fmt: skip
    assert code == 0, data
    for paper in ("SX-INT-P01-A", "SX-WRI-P01-A"):
        code, data = run_json(
            proposed, capsys, "paper", "destroy", paper,
            "--key", keyfile(proposed, "destroy-feng"), "--key", keyfile(proposed, "secrecy-chen"),
        )  # fmt: skip
        assert code == 0, data
    code, listing = run_json(proposed, capsys, "paper", "list")
    commitments = {p["ref"]: p["commitment"] for p in listing["papers"]}
    assert len(blobs(proposed)) == 3
    policy = {
        EXAM_ID: {"handover_witness": False, "retention_until": "2028-03-01T00:00:00Z"},
        other: {"handover_witness": True, "retention_until": "2028-06-01T00:00:00Z"},
    }
    exams_json = proposed.home.path / "exams.json"
    exams_json.write_text(json.dumps({"exams": {EXAM_ID: policy[EXAM_ID]}}))
    april, july = "2028-04-01T00:00:00Z", "2028-07-01T00:00:00Z"

    # The date is the policy's, never an argument.
    assert run(proposed, "paper", "purge", "--retention-until", START, now=july) == 2
    # An exam with destroyed papers and no policy: nothing is deleted.
    code, err = run_json(proposed, capsys, "paper", "purge", now=july)
    assert (code, err["error"]) == (NotFoundError.exit_code, NotFoundError.code)
    assert len(blobs(proposed)) == 3

    exams_json.write_text(json.dumps({"exams": policy}))
    # The file is a draft: until the writing exam's policy is on the log, nothing of it goes.
    code, err = run_json(proposed, capsys, "paper", "purge", "--exam", other, now=april)
    assert (code, err["error"]) == (NotFoundError.exit_code, NotFoundError.code)
    assert "on the log" in err["message"]
    code, data = run_json(proposed, capsys, "exam", "publish", now=april)
    assert code == 0, data
    assert [e["published"] for e in data["exams"]] == [True, True]  # INT's date changed too
    # In April the writing exam is still within its retention: a purge of everything refuses.
    code, err = run_json(proposed, capsys, "paper", "purge", now=april)
    assert (code, err["error"]) == (WindowError.exit_code, WindowError.code)
    code, err = run_json(proposed, capsys, "paper", "purge", "--exam", other, now=april)
    assert (code, err["error"]) == (WindowError.exit_code, WindowError.code)
    assert len(blobs(proposed)) == 3
    # The interview's retention is over: its destroyed paper goes, its live backup stays.
    code, data = run_json(proposed, capsys, "paper", "purge", "--exam", EXAM_ID, now=april)
    assert code == 0, data
    assert (data["purged"], data["kept"]) == (["SX-INT-P01-A@v1"], ["SX-INT-P01-B@v1"])
    assert f"{commitments['SX-INT-P01-A@v1']}.cpaper" not in blobs(proposed)
    assert len(blobs(proposed)) == 2
    purges = [
        e for _, e in entries(proposed) if e.kind == Kind.PAPER_ACT
        and e.body["act_kind"] == "purge"
    ]  # fmt: skip
    assert [(e.body["paper"], e.body["exam"]) for e in purges] == [("SX-INT-P01-A@v1", EXAM_ID)]
    # In July both retentions are over.
    code, data = run_json(proposed, capsys, "paper", "purge", now=july)
    assert code == 0, data
    assert "SX-WRI-P01-A@v1" in data["purged"] and data["kept"] == ["SX-INT-P01-B@v1"]
    assert blobs(proposed) == {f"{commitments['SX-INT-P01-B@v1']}.cpaper"}
