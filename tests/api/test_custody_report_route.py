"""`GET /v1/reports/custody`: a custody report through the app, for secrecy officers and
auditors, recorded on the access log; refusals with their statuses and codes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from custody.demo import Season
from tests.api.helpers import as_person, client
from tests.custody.test_custody_report import EXAM, played  # noqa: F401 (fixture)

ROUTE = "/v1/reports/custody"
BAD = "invalid_request"


@pytest.fixture
def officer(played: Season) -> TestClient:  # noqa: F811
    c = client(played)
    c.headers.update(as_person(c, played, "secrecy-chen"))
    return c


def test_json_report_of_an_exam_is_recorded_with_its_people(
    played: Season,  # noqa: F811
    officer: TestClient,
) -> None:
    r = officer.get(ROUTE, params={"exam": EXAM, "format": "json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "custody-report/v1"
    assert len(body["packages"]) == 5 and body["statements"] == body["verified"] > 0
    auditor = as_person(officer, played, "auditor-chu")
    for obj in ("package:PK-1", "person:print-qian"):
        log = officer.get("/v1/access", params={"object": obj}, headers=auditor).json()
        reads = [(x["who"], x["route"]) for x in log["records"]]
        assert ("secrecy-chen", "GET /v1/reports/custody") in reads, obj


def test_pdf_report_of_a_package(officer: TestClient, tmp_path: Path) -> None:
    r = officer.get(ROUTE, params={"package": "PK-1"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert 'filename="custody-report-PK-1.pdf"' in r.headers["content-disposition"]
    assert r.content.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        path = tmp_path / "r.pdf"
        path.write_bytes(r.content)
        text = subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, check=True, text=True
        ).stdout
        assert "保管报告" in text and "PK-1" in text and "交接" in text


def test_a_period_report(officer: TestClient) -> None:
    body = officer.get(
        ROUTE,
        params={"from": "2027-03-01T00:00:00Z", "to": "2027-04-01T00:00:00Z", "format": "json"},
    ).json()
    assert body["scope"]["kind"] == "period" and len(body["packages"]) == 5


@pytest.mark.parametrize(
    ("person", "params", "status", "code"),
    [
        (None, {"package": "PK-1"}, 401, "login_required"),
        ("courier-sun", {"package": "PK-1"}, 403, "forbidden"),
        ("custodian-zhou", {"exam": EXAM}, 403, "forbidden"),
        ("auditor-chu", {"package": "PK-404"}, 404, "not_found"),
        ("secrecy-chen", {"exam": "NO-SUCH"}, 404, "not_found"),
        ("secrecy-chen", {}, 422, "invalid_request"),
        ("secrecy-chen", {"package": "PK-1", "exam": EXAM}, 422, "invalid_request"),
        ("secrecy-chen", {"from": "2027-03-02T00:00:00Z"}, 422, "invalid_request"),
        (
            "secrecy-chen",
            {"from": "2027-03-02T00:00:00Z", "to": "2027-03-01T00:00:00Z"},
            422,
            "invalid_request",
        ),
        ("secrecy-chen", {"from": "yesterday", "to": "2027-03-01T00:00:00Z"}, 422, BAD),
        ("secrecy-chen", {"exam": EXAM, "format": "docx"}, 422, "invalid_request"),
        ("secrecy-chen", {"package": "../etc"}, 422, "invalid_request"),
    ],
    ids=[
        "no-login", "courier", "custodian", "unknown-package", "unknown-exam", "no-scope",
        "two-scopes", "half-period", "reversed-period", "bad-time", "bad-format", "bad-id",
    ],
)  # fmt: skip
def test_refusals(
    played: Season,  # noqa: F811
    person: str | None,
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    c = client(played)
    headers = as_person(c, played, person) if person else {}
    r = c.get(ROUTE, params=params, headers=headers)
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert "message_zh" in r.json()


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2027-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T20:00:00Z", "9999-12-31T23:59:59Z"),
    ],
    ids=["to-the-last-year", "from-the-first-year", "far-future"],
)
@pytest.mark.parametrize("fmt", ["pdf", "json"])
def test_a_period_at_the_ends_of_the_calendar_is_reported(
    officer: TestClient, start: str, end: str, fmt: str
) -> None:
    # "Everything up to 9999" is how people ask for all of it: shown in the authority's zone
    # (UTC+8) that end is past the calendar; the report still answers, no 500.
    r = officer.get(ROUTE, params={"from": start, "to": end, "format": fmt})
    assert r.status_code == 200, r.text
    if fmt == "pdf":
        assert r.content.startswith(b"%PDF")
    else:
        assert r.json()["scope"]["to"] == end
