"""Custody reports (`custody.custody_report`, `custody report`): a demo-like season of two
clean packages and three breaches, reported by package, by exam and by period."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from crypto.encoding import format_time, parse_time
from custody.access_log import AccessLog
from custody.cli import main as cli_main
from custody.custody_report import (
    build_custody_report,
    custody_report_json,
    render_custody_pdf,
    render_custody_text,
    report_scope,
)
from custody.demo import Season
from custody.demo.breaches import attach, play_breaches
from custody.errors import NotFoundError, UsageError
from custody.views import Views
from tests.conftest import PASS
from tests.custody.test_audit import full_life

EXAM = "SX-2027-INT"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def played(season: Season, tmp_path: Path) -> Season:
    attach(season)
    full_life(season, "PK-1")
    full_life(season, "PK-2")
    play_breaches(season, tmp_path / "breaches")
    return season


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout


def test_an_exam_report_lists_every_package_and_verifies_every_statement(
    played: Season, tmp_path: Path
) -> None:
    views = Views(played.home, played.log())
    report = build_custody_report(views, report_scope(exam=EXAM), played.now)
    data = custody_report_json(report)
    assert data["type"] == "custody-report/v1"
    assert [p["package_id"] for p in data["packages"]] == [
        "BR-COUNT", "BR-ROUTE", "BR-SEAL", "PK-1", "PK-2",
    ]  # fmt: skip
    by_id = {p["package_id"]: p for p in data["packages"]}
    assert by_id["PK-1"]["status"] == "destroyed"
    assert by_id["BR-COUNT"]["compromised"] and by_id["BR-COUNT"]["findings"] == 1
    assert by_id["BR-ROUTE"]["holder_name"] == "孙立 Sun Li"
    assert data["checkpoint"]["size"] == played.log().size()
    assert data["statements"] == data["verified"] > 0
    kinds = [e["kind"] for e in data["timelines"][3]["events"]]
    assert kinds[0] == "seal" and kinds[-1] == "destroy"
    assert sorted(i["kind"] for i in data["incidents"]) == [
        "count_short", "off_route", "seal_mismatch",
    ]  # fmt: skip
    text = render_custody_text(report, "Asia/Shanghai")
    assert "保管报告 Custody report" in text
    assert "封装 seal" in text and "销毁 destroy" in text
    assert "分发 30 份，回收 29 份" in text  # the finding, in Chinese
    assert "Asia/Shanghai" in text
    assert "custody verify" in text
    if shutil.which("pdftotext"):
        pdf = _pdf_text(render_custody_pdf(report), tmp_path)
        for words in ("保管报告", "封装", "交接", "接收入库", "启封", "销毁", "PK-1", "BR-SEAL"):
            assert words in pdf, words
        assert "钱峰" in pdf  # the sealer's name


def test_timelines_are_capped_and_the_report_says_so(played: Season) -> None:
    views = Views(played.home, played.log())
    report = build_custody_report(views, report_scope(exam=EXAM), played.now, max_timelines=2)
    data = custody_report_json(report)
    assert len(data["packages"]) == 5
    assert data["timelines_shown"] == 2
    assert [t["package_id"] for t in data["timelines"]] == ["BR-COUNT", "BR-ROUTE"]
    assert "前 2 个试卷袋（共 5 个" in render_custody_text(report)


def test_a_period_shows_only_what_the_log_received_in_it(played: Season) -> None:
    views = Views(played.home, played.log())
    pk2 = views.timeline("PK-2")
    start, end = pk2[0].received, pk2[-1].received + timedelta(seconds=1)
    report = build_custody_report(views, report_scope(start=start, end=end), played.now)
    data = custody_report_json(report)
    assert [p["package_id"] for p in data["packages"]] == ["PK-2"]
    assert len(data["timelines"][0]["events"]) == len(pk2)
    assert data["incidents"] == []
    # The same period without its last second loses the destruction.
    report = build_custody_report(
        views, report_scope(start=start, end=end - timedelta(seconds=1)), played.now
    )
    (timeline,) = custody_report_json(report)["timelines"]
    assert [e["kind"] for e in timeline["events"]][-1] == "return"
    # With an exam no package has: nothing happened.
    empty = build_custody_report(
        views, report_scope(start=start, end=end, exam="NO-SUCH"), played.now
    )
    assert empty.packages == () and empty.timelines == ()


def test_one_package_with_its_incident(played: Season) -> None:
    views = Views(played.home, played.log())
    report = build_custody_report(views, report_scope(package="BR-SEAL"), played.now)
    data = custody_report_json(report)
    assert [p["package_id"] for p in data["packages"]] == ["BR-SEAL"]
    assert [i["kind"] for i in data["incidents"]] == ["seal_mismatch"]
    assert "缺少 BR-S2" in data["incidents"][0]["detail_zh"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, UsageError),
        ({"package": "PK-1", "exam": EXAM}, UsageError),
        ({"start": "2027-03-02T00:00:00Z"}, UsageError),
        ({"start": "2027-03-02T00:00:00Z", "end": "2027-03-02T00:00:00Z"}, UsageError),
        ({"start": "2027-03-03T00:00:00Z", "end": "2027-03-02T00:00:00Z"}, UsageError),
        ({"package": "PK-404"}, NotFoundError),
        ({"exam": "NO-SUCH-EXAM"}, NotFoundError),
    ],
    ids=["none", "two-scopes", "half-period", "empty-period", "reversed", "unknown-package",
         "unknown-exam"],
)  # fmt: skip
def test_bad_scopes_are_refused(played: Season, kwargs: dict[str, str], error: type) -> None:
    times = {k: parse_time(v) for k, v in kwargs.items() if k in ("start", "end")}
    with pytest.raises(error):
        scope = report_scope(**{**kwargs, **times})  # type: ignore[arg-type]
        build_custody_report(Views(played.home, played.log()), scope, played.now)


def test_cli_custody_report(
    played: Season,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CUSTODY_HOME", str(played.home.path))
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASS)
    capsys.readouterr()
    people = played.home.people_dir()
    auditor = str(next(people.glob("auditor-chu-*.key")))
    printer = str(next(people.glob("print-qian-*.key")))
    access = AccessLog(played.home.engine, played.authority, None)
    before = access.size()
    # it names people: without a key, or with a printer's, nothing is shown or recorded
    at = ["--now", format_time(played.now)]  # the season's clock: the keys are valid then
    assert cli_main([*at, "report", "--package", "PK-1", "--format", "json"]) == 2
    assert "--key" in capsys.readouterr().err
    assert (
        cli_main([*at, "report", "--package", "PK-1", "--format", "json", "--key", printer]) == 13
    )
    assert capsys.readouterr().out == ""
    assert access.size() == before

    def main(argv: list[str]) -> int:  # an auditor's reads
        return cli_main([*at, *argv, "--key", auditor])

    pdf = tmp_path / "exam.pdf"
    assert main(["report", "--exam", EXAM, "--out", str(pdf)]) == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert "exam.pdf" in capsys.readouterr().out
    assert main(["report", "--package", "PK-1", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scope"] == {
        "kind": "package", "package": "PK-1", "exam": None, "from": None, "to": None,
    }  # fmt: skip
    assert main(["report", "--package", "PK-1", "--format", "text"]) == 0
    assert "封装 seal" in capsys.readouterr().out
    start = format_time(played.now - timedelta(days=30))
    end = format_time(played.now + timedelta(days=1))
    out = tmp_path / "period.json"
    assert (
        main(["report", "--from", start, "--to", end, "--format", "json", "--out", str(out)]) == 0
    )
    assert len(json.loads(out.read_text())["packages"]) == 5
    assert main(["report", "--package", "PK-1"]) == 2  # pdf needs --out
    assert main(["report", "--package", "PK-404", "--format", "json"]) == 4
    assert main(["report", "--from", end, "--to", start, "--format", "json"]) == 2
    assert main(["report", "--from", "yesterday", "--to", end, "--format", "json"]) == 2
    assert main(["report", "--exam", EXAM, "--format", "docx"]) == 2
    assert not (tmp_path / "none.pdf").exists()
    # each report read is on the access log with the packages and the people it names
    reads = access.who_read(obj="package:PK-1")
    assert [(r.who, r.route) for r in reads] == [("auditor-chu", "cli report")] * 4
    assert access.who_read(obj="person:courier-sun")


def test_a_period_report_on_both_databases(any_season: Season) -> None:
    """The period's packages come from the received_at index of SQLite and PostgreSQL alike."""
    full_life(any_season, "PK-1")
    views = Views(any_season.home, any_season.log())
    events = views.timeline("PK-1")
    start, end = events[1].received, events[-1].received
    report = build_custody_report(views, report_scope(start=start, end=end), any_season.now)
    (timeline,) = custody_report_json(report)["timelines"]
    assert len(timeline["events"]) == len(events) - 2  # the first and the last fall outside
    assert report.verified == report.statements


@pytest.mark.parametrize("fmt", ["text", "pdf", "json"])
def test_cli_period_to_the_last_year_is_reported(played: Season, tmp_path: Path, fmt: str) -> None:
    # `custody report` as a person runs it (a subprocess): a period up to 9999 is shown in the
    # authority's zone without overflowing the calendar (before: internal error, exit 70).
    out = tmp_path / f"all.{fmt}"
    argv = ["--home", str(played.home.path), "--now", format_time(played.now), "report"]
    argv += ["--from", "2027-01-01T00:00:00Z", "--to", "9999-12-31T23:59:59Z"]
    argv += ["--format", fmt, "--out", str(out)]
    argv += ["--key", str(next(played.home.people_dir().glob("secrecy-chen-*.key")))]
    done = subprocess.run(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "CUSTODY_KEY_PASSPHRASE": PASS},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "internal error" not in done.stderr.decode()
    assert out.stat().st_size > 0
