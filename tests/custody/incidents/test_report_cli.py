"""The demo's three breaches and their reports; the `custody incident` commands."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from custody.cli import main
from custody.demo import Season
from custody.demo.breaches import attach, play_breaches
from custody.incidents.desk import list_incidents
from tests.conftest import PASS
from tests.custody.test_audit import full_life


def test_breaches_raise_three_incidents_and_clean_packages_none(
    season: Season, tmp_path: Path
) -> None:
    attach(season)
    for pkg in ("PK-1", "PK-2"):
        full_life(season, pkg)
    assert list_incidents(season.home.engine) == []
    paths = play_breaches(season, tmp_path / "out")
    incidents = list_incidents(season.home.engine)
    assert sorted(i.kind for i in incidents) == ["count_short", "off_route", "seal_mismatch"]
    assert {i.package_id for i in incidents} == {"BR-SEAL", "BR-ROUTE", "BR-COUNT"}
    by_kind = {i.kind: i for i in incidents}
    assert by_kind["seal_mismatch"].containment["frozen"] == ["BR-SEAL"]
    assert by_kind["count_short"].containment["compromised"] == ["BR-COUNT"]
    assert season.log().package_state("BR-COUNT").compromised
    assert season.log().package_state("BR-SEAL").frozen
    assert len(paths) == 9 and all(p.parent == tmp_path / "out" / "incidents" for p in paths)
    pdfs = [p for p in paths if p.suffix == ".pdf"]
    assert all(p.read_bytes().startswith(b"%PDF") for p in pdfs)
    report = json.loads(
        next(p for p in paths if p.name == f"{by_kind['off_route'].id}.json").read_text()
    )
    assert [h["person"] for h in report["holders"]] == ["print-qian", "courier-sun"]
    assert any(t["index"] is None and "route" in t["summary"] for t in report["timeline"])
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", str(pdfs[0]), "-"], capture_output=True, check=True, text=True
        ).stdout
        assert "事件报告" in text and "钱峰" in text


def test_cli_incident_commands(
    season: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    attach(season)
    play_breaches(season, tmp_path / "out")
    capsys.readouterr()
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    assert main(["--json", "incident", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)["incidents"]
    assert len(listed) == 3
    first = listed[0]["id"]
    assert main(["--json", "incident", "show", first]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == first
    assert main(["incident", "show", "INC-99999"]) == 4
    now = (season.now + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["--json", "--now", now, "incident", "sweep"]) == 0
    touched = set(json.loads(capsys.readouterr().out)["incidents"])
    # The two unacknowledged breaches climbed; the two packages left on the road (frozen in
    # transit, refused handover) have missed their escorts' hourly check-in.
    assert {i["id"] for i in listed if i["status"] == "open"} <= touched
    new = [
        i for i in list_incidents(season.home.engine) if i.id in touched - {x["id"] for x in listed}
    ]
    assert sorted((i.kind, i.package_id) for i in new) == [
        ("missed_checkin", "BR-ROUTE"),
        ("missed_checkin", "BR-SEAL"),
    ]
    (key,) = season.home.people_dir().glob("secrecy-chen*")
    (custodian,) = season.home.people_dir().glob("custodian-zhou*")
    # At the municipal level a custodian may not acknowledge any more.
    assert main(["--now", now, "incident", "ack", first, "--key", str(custodian)]) == 10
    assert main(["--json", "--now", now, "incident", "ack", first, "--key", str(key)]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "acknowledged"
    assert (
        main(["--now", now, "incident", "resolve", first, "--key", str(key), "--note", "ok"]) == 0
    )
    capsys.readouterr()
    assert main(["incident", "report", first, "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [a["act"] for a in rep["acts"]] == ["acknowledge", "resolve"]
    assert main(["incident", "report", first, "--format", "pdf"]) == 2
    assert (
        main(["incident", "report", first, "--format", "pdf", "--out", str(tmp_path / "r.pdf")])
        == 0
    )
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    assert main(["incident", "report", first]) == 0
    assert "Timeline" in capsys.readouterr().out
    assert main(["--json", "--now", now, "incident", "public-report", "答案已泄露"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "public_report"
    assert main(["--now", now, "incident", "public-report", "  "]) == 3
    assert main(["--json", "--now", now, "incident", "deliver"]) == 0


def test_cli_incident_show_and_list_read_as_pages(
    season: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Human output: a table of incidents, and one incident as a page with its acts; times in
    the authority's zone; JSON only under --json."""
    attach(season)
    play_breaches(season, tmp_path / "out")
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: no cell wraps
    now = (season.now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (key,) = season.home.people_dir().glob("secrecy-chen*")
    first = list_incidents(season.home.engine)[0].id
    assert main(["--now", now, "incident", "ack", first, "--key", str(key), "--note", "on it"]) == 0
    capsys.readouterr()
    assert main(["incident", "list"]) == 0
    table = capsys.readouterr().out
    assert first in table
    assert "(Asia/Shanghai)" in table  # the zone named once, in the column header
    assert main(["incident", "show", first]) == 0
    page = capsys.readouterr().out
    assert not page.lstrip().startswith("{")
    assert f"incident {first}" in page
    assert "acknowledge" in page  # the act, in the acts table, with who and when
    assert "secrecy-chen" in page
    assert "time (Asia/Shanghai)" in page
    assert "containment:" in page
    assert "['" not in page
    assert "{'" not in page
