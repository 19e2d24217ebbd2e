"""The demo's three breaches and their reports; the `custody incident` commands."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crypto.encoding import format_time, parse_time
from custody.cli import main
from custody.demo import Season
from custody.demo.breaches import attach, play_breaches
from custody.incidents.desk import list_incidents
from custody.incidents.detect import KIND_NAMES, DetectionKind
from tests.conftest import PASS
from tests.custody.stored import changes, stored
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
    (key,) = season.home.people_dir().glob("secrecy-chen*")
    at = ["--now", format_time(season.now)]
    assert main(["--json", *at, "incident", "list", "--key", str(key)]) == 0
    listed = json.loads(capsys.readouterr().out)["incidents"]
    assert len(listed) == 3
    first = listed[0]["id"]
    assert main(["--json", *at, "incident", "show", first, "--key", str(key)]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == first
    assert main([*at, "incident", "show", "INC-99999", "--key", str(key)]) == 4
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
    (custodian,) = season.home.people_dir().glob("custodian-zhou*")
    # At the municipal level a custodian may not acknowledge any more.
    assert main(["--now", now, "incident", "ack", first, "--key", str(custodian)]) == 10
    assert main(["--json", "--now", now, "incident", "ack", first, "--key", str(key)]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "acknowledged"
    assert (
        main(["--now", now, "incident", "resolve", first, "--key", str(key), "--note", "ok"]) == 0
    )
    capsys.readouterr()
    report = ["--now", now, "incident", "report", first, "--key", str(key)]
    assert main([*report, "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [a["act"] for a in rep["acts"]] == ["acknowledge", "resolve"]
    assert main([*report, "--format", "pdf"]) == 2
    assert main([*report, "--format", "pdf", "--out", str(tmp_path / "r.pdf")]) == 0
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    assert main(report) == 0
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
    assert main(["--now", now, "incident", "list", "--key", str(key)]) == 0
    table = capsys.readouterr().out
    assert first in table
    assert "(Asia/Shanghai)" in table  # the zone named once, in the column header
    assert main(["--now", now, "incident", "show", first, "--key", str(key)]) == 0
    page = capsys.readouterr().out
    assert not page.lstrip().startswith("{")
    assert f"incident {first}" in page
    assert "acknowledge" in page  # the act, in the acts table, with who and when
    assert "secrecy-chen" in page
    assert "time (Asia/Shanghai)" in page
    assert "containment:" in page
    assert "['" not in page
    assert "{'" not in page


def test_incident_reads_are_judged_by_the_reader_s_key_and_recorded(
    season: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Incidents are read on the command line as over HTTP (``GET /v1/incidents``): with the
    reader's own key, by secrecy officers and auditors only, each read on the access log
    before anything is shown; the texts people wrote open only with --sealed and a secrecy
    officer's key. A refusal shows nothing and records nothing."""
    from custody.access_log import AccessLog
    from tests.custody.incidents.test_outbox_leases import add_rows

    attach(season)
    play_breaches(season, tmp_path / "out")
    add_rows(season, 1, "https://hooks.example.org/custody")  # a notification of INC-0000
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    capsys.readouterr()
    people = ("courier-sun", "custodian-zhou", "examiner-zheng", "auditor-chu", "secrecy-chen")
    key = {who: str(next(season.home.people_dir().glob(f"{who}-*.key"))) for who in people}
    first = list_incidents(season.home.engine)[0].id
    at = ["--now", format_time(season.now)]
    access = AccessLog(season.home.engine, season.authority, None)
    before = access.size()
    reads = (
        ["incident", "list"],
        ["incident", "show", first],
        ["incident", "report", first, "--format", "json"],
        ["incident", "outbox", "list"],
    )
    for args in reads:  # no key: a usage error naming --key
        assert main([*at, *args]) == 2, args
        out, err = capsys.readouterr()
        assert out == "" and "--key" in err and "access log" in err
        for reader in ("courier-sun", "custodian-zhou", "examiner-zheng"):  # not their role
            assert main([*at, *args, "--key", key[reader]]) == 13, (args, reader)
            out, err = capsys.readouterr()
            assert out == "" and first not in err
    assert access.size() == before
    # an auditor reads them all, but opens nothing sealed
    for args in reads:
        assert main(["--json", *at, *args, "--key", key["auditor-chu"]]) == 0, args
        assert (first if "outbox" not in args else "INC-0000") in capsys.readouterr().out
    assert main([*at, "incident", "show", first, "--sealed", "--key", key["auditor-chu"]]) == 13
    capsys.readouterr()
    assert main(["--json", *at, "incident", "show", first, "--sealed", "--key",
                 key["secrecy-chen"]]) == 0  # fmt: skip
    assert "sealed_texts" in json.loads(capsys.readouterr().out)
    on_log = [(r.who, r.route) for r in access.who_read(obj=f"incident:{first}")]
    assert on_log == [
        ("auditor-chu", "cli incident list"),
        ("auditor-chu", "cli incident show"),
        ("auditor-chu", "cli incident report"),
        ("secrecy-chen", "cli incident show --sealed"),
    ]
    outbox = [(r.who, r.route) for r in access.who_read(obj="incident:INC-0000")]
    assert outbox == [("auditor-chu", "cli incident outbox list")]
    assert access.size() == before + 5


def _text_of(pdf: Path) -> str:
    """The PDF's text as pdftotext extracts it, runs of white space made one space."""
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True, text=True)
    return " ".join(out.stdout.split())


HEADINGS = ("事件报告", "范围 Scope", "处置 Containment", "保管人", "时间线", "确认与处理 Acts")


def test_reports_read_chinese_first_with_times_in_the_homes_zone(
    season: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The text and PDF reports: Chinese headings and labels before the English, every time
    in the zone the home names (with its name), the JSON and the stored rows in UTC."""
    assert shutil.which("pdftotext"), "poppler-utils (pdftotext) is needed to read the PDF"
    attach(season)
    paths = play_breaches(season, tmp_path / "out")  # the demo's reports: the default zone
    written = next(p for p in paths if p.suffix == ".txt").read_text()
    assert written.startswith("事件报告 Incident report INC-")
    assert " Asia/Shanghai" in written
    config = json.loads(season.home.config_path.read_text())
    config["time_zone"] = "Asia/Tokyo"  # UTC+9 all year: not the default zone
    season.home.config_path.write_text(json.dumps(config))
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    now = (season.now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (key,) = season.home.people_dir().glob("secrecy-chen*")
    incident = next(i for i in list_incidents(season.home.engine) if i.kind == "seal_mismatch")
    assert main(["--now", now, "incident", "ack", incident.id, "--key", str(key)]) == 0
    before = stored(season.home)
    opened = incident.opened_at.astimezone(ZoneInfo("Asia/Tokyo"))
    opened_shown = f"{opened:%Y-%m-%d %H:%M:%S} Asia/Tokyo"
    acked = parse_time(now, what="now").astimezone(ZoneInfo("Asia/Tokyo"))
    acked_shown = f"{acked:%Y-%m-%d %H:%M:%S} Asia/Tokyo"

    pdf = tmp_path / "report.pdf"
    report = ["--now", now, "incident", "report", incident.id, "--key", str(key)]
    assert main([*report, "--format", "pdf", "--out", str(pdf)]) == 0
    text = _text_of(pdf)
    for heading in HEADINGS:
        assert heading in text, heading
    assert text.index("事件报告") < text.index("Incident report")
    assert f"发现时间 Opened: {opened_shown}" in text
    assert "类型 Kind: 封条编号不符 seal_mismatch" in text
    assert f"{acked_shown} 确认 acknowledge" in text
    assert f"生成时间 Generated: {acked_shown}" in text
    assert "Asia/Shanghai" not in text

    capsys.readouterr()
    assert main(report) == 0
    page = capsys.readouterr().out
    lines = page.splitlines()
    assert lines[0] == f"事件报告 Incident report {incident.id}"
    assert set(lines[1]) == {"="} and len(lines[1]) == len(lines[0]) + len("事件报告")
    for heading in HEADINGS:
        assert heading in page, heading
    assert f"发现时间 Opened: {opened_shown}" in page
    assert "Asia/Shanghai" not in page and "Z " not in page
    assert "['" not in page and "{'" not in page  # sentences, not Python

    assert main([*report, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["incident"]["opened_at"] == format_time(incident.opened_at)  # UTC, as stored
    assert all(t["time"].endswith("Z") for t in data["timeline"])
    # reading a report stores nothing but the record of each read, on the access log
    assert changes(before, stored(season.home)) == ["table access_head", "table access_record"]


def test_every_detection_kind_has_a_chinese_name_in_the_report() -> None:
    assert set(KIND_NAMES) == {k.value for k in DetectionKind}
