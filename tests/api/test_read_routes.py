"""The read routes: packages (paged, filtered), a package's timeline, papers and one paper;
through the app in-process, and over HTTP from a real `custody serve`."""

from __future__ import annotations

import contextlib
import io
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from custody.cli import main
from custody.demo import EXAM_ID, Season
from custody.events import Kind, parse_event
from tests.api.helpers import as_person, client
from tests.api.test_serve import _serve
from tests.conftest import PASS
from tests.custody.cli.test_view_cmd import SAMPLES, packages, run  # noqa: F401 (fixture)


def test_packages_paged_and_filtered(packages: Season) -> None:  # noqa: F811
    c = client(packages)
    c.headers.update(as_person(c, packages, "secrecy-chen"))
    page = c.get("/v1/packages").json()
    assert [p["package_id"] for p in page["items"]] == ["PK-A", "PK-B", "PK-C"]
    assert (page["total"], page["next_offset"]) == (3, None)
    page = c.get("/v1/packages", params={"limit": 1, "offset": 1}).json()
    assert ([p["package_id"] for p in page["items"]], page["next_offset"]) == (["PK-B"], 2)
    ids = lambda **q: [p["package_id"] for p in c.get("/v1/packages", params=q).json()["items"]]  # noqa: E731
    assert ids(state="stored") == ["PK-A"]
    assert ids(holder="courier-sun") == ["PK-B"]
    assert ids(site="宝鸡考点") == ["PK-C"]
    assert ids(exam=EXAM_ID, state="sealed") == ["PK-C"]
    assert ids(overdue=True) == []
    r = c.get("/v1/packages", params={"state": "lost"})
    assert (r.status_code, r.json()["error"]) == (400, "usage")
    r = c.get("/v1/packages", params={"limit": 501})
    assert (r.status_code, r.json()["error"]) == (422, "invalid_request")
    r = c.get("/v1/packages", params={"offset": -1})
    assert r.status_code == 422


def test_overdue_is_judged_by_the_services_clock(packages: Season) -> None:  # noqa: F811
    later = packages.now + timedelta(hours=7)
    c = TestClient(
        create_app(Settings(home=packages.home.path, log_passphrase=PASS, clock=lambda: later))
    )
    c.headers.update(as_person(c, packages, "auditor-chu"))
    page = c.get("/v1/packages", params={"overdue": "true"}).json()
    assert [p["package_id"] for p in page["items"]] == ["PK-B"]


def test_timeline_with_names_and_marks(packages: Season) -> None:  # noqa: F811
    c = client(packages)
    c.headers.update(as_person(c, packages, "secrecy-chen"))
    body = c.get("/v1/packages/PK-A/timeline").json()
    assert [e["kind"] for e in body["events"]] == ["seal", "dispatch", "receive"]
    assert all(e["verified"] for e in body["events"])
    sealer = body["events"][0]["signers"][0]
    assert (sealer["slot"], sealer["person"], sealer["name"]) == (
        "sealer",
        "print-qian",
        "钱峰 Qian Feng",
    )
    r = c.get("/v1/packages/PK-NONE/timeline")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = c.get("/v1/packages/bad id!/timeline")
    assert r.status_code == 422


def test_papers_and_one_paper(season: Season, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    (key,) = season.home.people_dir().glob("prop-zhao-*.key")
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(
            [
                "--home", str(season.home.path), "--now", "2027-03-01T08:00:00Z",
                "paper", "propose", str(SAMPLES / "interview-main.json"), "--structured",
                "--exam", EXAM_ID, "--position", "P01", "--paper-id", "SX-INT-P01-A",
                "--printer", "print-qian", "--officer", "examiner-zheng",
                "--officer", "supervisor-wang", "--threshold", "2",
                "--window-start", "2027-03-03T08:00:00Z", "--window-end", "2027-03-03T11:00:00Z",
                "--key", str(key),
            ]
        )  # fmt: skip
    assert code == 0
    c = client(season)
    c.headers.update(as_person(c, season, "secrecy-chen"))
    page = c.get("/v1/papers").json()
    assert [p["ref"] for p in page["items"]] == ["SX-INT-P01-A@v1"]
    assert page["total"] == 1
    paper = c.get("/v1/papers/SX-INT-P01-A@v1").json()
    assert paper["status"] == "active"
    assert [(a["kind"], a["signatures_ok"]) for a in paper["acts"]] == [("proposal", True)]
    recorded = parse_event(season.log().entry(paper["acts"][0]["log_index"]).payload)
    assert (recorded.kind, recorded.body["act_kind"]) == (Kind.PAPER_ACT, "proposal")
    assert paper["acts"][0]["signers"][0]["person"] == "prop-zhao"
    r = c.get("/v1/papers/NOPE")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = c.get("/v1/papers/X@vX")
    assert (r.status_code, r.json()["error"]) == (400, "usage")


@pytest.mark.parametrize(
    ("person", "path", "status"),
    [
        pytest.param(None, "/v1/packages", 401, id="list-without-login"),
        pytest.param(None, "/v1/packages/PK-A/timeline", 401, id="timeline-without-login"),
        pytest.param(None, "/v1/papers", 401, id="papers-without-login"),
        pytest.param("courier-sun", "/v1/packages", 403, id="list-is-for-officers"),
        pytest.param("courier-sun", "/v1/papers", 403, id="papers-are-for-officers"),
        pytest.param("courier-sun", "/v1/packages/PK-A/timeline", 200, id="own-route"),
        pytest.param("courier-li", "/v1/packages/PK-A/timeline", 403, id="not-on-the-route"),
        pytest.param("auditor-chu", "/v1/packages/PK-A/timeline", 200, id="auditor"),
    ],
)
def test_reads_ask_the_access_policy_and_are_recorded(
    packages: Season,  # noqa: F811
    person: str | None,
    path: str,
    status: int,
) -> None:
    c = client(packages)
    headers = as_person(c, packages, person) if person is not None else {}
    r = c.get(path, headers=headers)
    assert r.status_code == status, r.text
    if status != 200:
        return
    officer = as_person(c, packages, "secrecy-chen")
    log = c.get("/v1/access", params={"object": "package:PK-A"}, headers=officer)
    assert log.status_code == 200, log.text
    reads = [(r["who"], r["route"]) for r in log.json()["records"]]
    assert (person, "GET /v1/packages/{package_id}/timeline") in reads


@pytest.mark.slow
def test_read_routes_over_http_from_custody_serve(packages: Season, tmp_path: Path) -> None:  # noqa: F811
    proc, base = _serve(packages)
    try:
        with httpx.Client(base_url=base) as h:
            assert h.get("/v1/packages").status_code == 401
            h.headers.update(as_person(h, packages, "secrecy-chen"))  # type: ignore[arg-type]
            page = h.get("/v1/packages", params={"state": "in_transit"}).json()
            assert [p["package_id"] for p in page["items"]] == ["PK-B"]
            events = h.get("/v1/packages/PK-A/timeline").json()["events"]
            assert [e["verified"] for e in events] == [True, True, True]
            assert h.get("/v1/papers").json()["total"] == 0
        schema = httpx.get(f"{base}/openapi.json").json()
        assert "/v1/packages/{package_id}/timeline" in schema["paths"]
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
