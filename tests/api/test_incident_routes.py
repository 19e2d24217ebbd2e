"""The incident routes through the real app: the secrecy officer's queue (list with filters
and pages, one incident with its ladder), the access log written for each read, and signed acts
posted as the console posts them: recorded, on the log, refused with a stable code otherwise."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from custody.demo import Season
from custody.events import Kind, parse_event
from custody.incidents.acts import Act, seal_note
from custody.incidents.model import blocked_keys, get_incident
from custody.incidents.policy import note_recipients
from custody.service import open_reader
from tests.api.helpers import as_person, client, seal_event, transfer_event

JSON = {"content-type": "application/json"}


@pytest.fixture
def world(season: Season) -> tuple[Season, TestClient]:
    """PK-1 sealed and dispatched; courier-sun hands it to custodian-wu off its route: the
    desk opens INC-00001 (off_route, high), freezes PK-1 and blocks custodian-wu's key."""
    c = client(season)
    assert c.post("/v1/events", content=seal_event(season).to_bytes(), headers=JSON).is_success
    dispatch = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    assert c.post("/v1/events", content=dispatch.to_bytes(), headers=JSON).is_success
    off = transfer_event(season, Kind.HANDOVER, "PK-1", "courier-sun", "custodian-wu")
    assert c.post("/v1/events", content=off.to_bytes(), headers=JSON).status_code == 403
    return season, c


def act(
    season: Season, person: str, what: str, *, incident: str = "INC-00001", **kw: object
) -> bytes:
    cert = season.trust().certificate(season.keys[person].signing.key_id)
    a = Act(
        season.authority.id,
        incident,
        what,
        cert.subject,
        kw.pop("time", season.now),  # type: ignore[arg-type]
        seal_note(str(kw.pop("note", "")), note_recipients(season.trust(), season.now)),
        kw.pop("key", None),  # type: ignore[arg-type]
    )
    return a.sign(season.keys[person].signing).to_bytes()


def test_the_queue_lists_filters_and_pages(world: tuple[Season, TestClient]) -> None:
    season, c = world
    h = as_person(c, season, "secrecy-chen")
    got = c.get("/v1/incidents", headers=h).json()
    assert got["total"] == 1 and got["next_offset"] is None
    (item,) = got["items"]
    assert (item["id"], item["kind"], item["severity"], item["status"]) == (
        "INC-00001",
        "off_route",
        "high",
        "open",
    )
    assert item["scope"]["packages"] == ["PK-1"]
    assert item["containment"]["frozen"] == ["PK-1"]
    assert set(item["next_acts"]) == {"acknowledge", "contain", "resolve", "unblock"}
    exam = item["scope"]["exams"][0]

    def total(query: str) -> int:
        r = c.get(f"/v1/incidents?{query}", headers=h)
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    assert total("status=open") == 1
    assert total("status=resolved") == 0
    assert total("severity=high") == 1
    assert total("severity=low") == 0
    assert total(f"exam={exam}") == 1
    assert total("exam=NO-SUCH-EXAM") == 0
    season.log().report_public("试题泄露 leak seen online", season.now)  # INC-00002
    page = c.get("/v1/incidents?limit=1", headers=h).json()
    assert [i["id"] for i in page["items"]] == ["INC-00002"]  # newest first
    assert (page["total"], page["next_offset"]) == (2, 1)
    page = c.get("/v1/incidents?limit=1&offset=1", headers=h).json()
    assert [i["id"] for i in page["items"]] == ["INC-00001"]
    assert page["next_offset"] is None
    for bad in ("status=burning", "severity=huge", "limit=0", "limit=501", "offset=-1"):
        r = c.get(f"/v1/incidents?{bad}", headers=h)
        assert (r.status_code, r.json()["error"]) == (422, "invalid_request"), bad


def test_each_read_is_on_the_access_log(world: tuple[Season, TestClient]) -> None:
    season, c = world
    h = as_person(c, season, "auditor-chu")
    assert c.get("/v1/incidents", headers=h).status_code == 200
    assert c.get("/v1/incidents/INC-00001", headers=h).status_code == 200
    officer = as_person(c, season, "secrecy-chen")
    records = c.get("/v1/access?object=incident:INC-00001", headers=officer).json()["records"]
    routes = [(r["who"], r["route"]) for r in records]
    assert ("auditor-chu", "GET /v1/incidents") in routes
    assert ("auditor-chu", "GET /v1/incidents/{incident_id}") in routes


def test_one_incident_has_its_ladder_and_deadline(world: tuple[Season, TestClient]) -> None:
    season, c = world
    r = c.get("/v1/incidents/INC-00001", headers=as_person(c, season, "secrecy-chen"))
    assert r.status_code == 200, r.text
    got = r.json()
    assert [lv["name"] for lv in got["ladder"]] == ["custodian", "municipal", "provincial"]
    assert got["ladder"][0]["ack_within_seconds"] == 15 * 60
    assert got["ack_deadline"] is not None and got["acts"] == []
    assert got["next_acts"]["contain"] == ["secrecy_officer"]
    missing = c.get("/v1/incidents/INC-09999", headers=as_person(c, season, "secrecy-chen"))
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    bad = c.get("/v1/incidents/a%20b", headers=as_person(c, season, "secrecy-chen"))
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid_request")


def test_signed_acts_are_recorded_and_go_on_the_log(world: tuple[Season, TestClient]) -> None:
    season, c = world
    blocked = season.keys["custodian-wu"].signing.key_id
    size = open_reader(season.home).size()
    ack = act(season, "secrecy-chen", "acknowledge", note="已接手 taken in hand")
    r = c.post("/v1/incidents/INC-00001/acts", content=ack, headers=JSON)
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["act"], got["person"], got["incident"]["status"]) == (
        "acknowledge",
        "secrecy-chen",
        "acknowledged",
    )
    assert "acknowledge" not in got["incident"]["next_acts"]
    log = open_reader(season.home)
    assert log.size() == got["log_size"] == size + 1
    statement = parse_event(log.entry(size).payload)
    assert statement.id == got["statement_id"]
    assert statement.body["action"] == "acknowledge" and statement.body["by"] == "secrecy-chen"

    # The same act again: refused, nothing appended.
    again = c.post("/v1/incidents/INC-00001/acts", content=ack, headers=JSON)
    assert (again.status_code, again.json()["error"]) == (409, "conflict")
    later = act(season, "secrecy-chen", "acknowledge", time=season.now + timedelta(seconds=1))
    r = c.post("/v1/incidents/INC-00001/acts", content=later, headers=JSON)
    assert (r.status_code, r.json()["error"]) == (409, "conflict")

    unblock = act(season, "secrecy-chen", "unblock", key=blocked, note="误判 a mistake")
    r = c.post("/v1/incidents/INC-00001/acts", content=unblock, headers=JSON)
    assert r.status_code == 201, r.text
    (row,) = [r for r in blocked_keys(season.home.engine) if r["key_id"] == blocked]
    assert row["unblocked_by"] == "secrecy-chen"
    assert "unblock" not in r.json()["incident"]["next_acts"]
    for what, status in (("contain", "contained"), ("resolve", "resolved")):
        r = c.post(
            "/v1/incidents/INC-00001/acts", content=act(season, "secrecy-chen", what), headers=JSON
        )
        assert (r.status_code, r.json()["incident"]["status"]) == (201, status), r.text
    acts = c.get("/v1/incidents/INC-00001", headers=as_person(c, season, "auditor-chu")).json()[
        "acts"
    ]
    assert [a["act"] for a in acts] == ["acknowledge", "unblock", "contain", "resolve"]
    assert open_reader(season.home).size() == size + 4


def forged(season: Season) -> bytes:
    """An act naming the secrecy officer, signed by a courier's key."""
    a = Act(season.authority.id, "INC-00001", "contain", "secrecy-chen", season.now)
    return a.sign(season.keys["courier-li"].signing).to_bytes()


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("courier acts", 403, "role"),
        ("dated in the future", 422, "clock"),
        ("dated long ago", 422, "clock"),
        ("another incident", 400, "format"),
        ("no such incident", 404, "not_found"),
        ("not JSON", 400, "format"),
        ("not an act", 400, "format"),
        ("unsigned", 400, "format"),
        ("text/plain", 415, "unsupported_media_type"),
        ("too large", 413, "too_large"),
        ("unblock names no key", 400, "format"),
        ("unblock a key not blocked", 404, "not_found"),
        ("signed by another than the person", 422, "threshold"),
    ],
)
def test_refused_acts_have_stable_codes_and_change_nothing(
    world: tuple[Season, TestClient], case: str, status: int, code: str
) -> None:
    season, c = world
    now = season.now
    path, headers = "/v1/incidents/INC-00001/acts", JSON
    body = {
        "courier acts": lambda: act(season, "courier-li", "contain"),
        "dated in the future": lambda: act(
            season, "secrecy-chen", "acknowledge", time=now + timedelta(minutes=10)
        ),
        "dated long ago": lambda: act(
            season, "secrecy-chen", "acknowledge", time=now - timedelta(minutes=10)
        ),
        "another incident": lambda: act(
            season, "secrecy-chen", "acknowledge", incident="INC-00002"
        ),
        "no such incident": lambda: act(
            season, "secrecy-chen", "acknowledge", incident="INC-00009"
        ),
        "not JSON": lambda: b"{not json",
        "not an act": lambda: seal_event(season, "PK-9").to_bytes(),
        "unsigned": lambda: (
            b'{"payloadType":"application/vnd.custody.incident-act.v1+json",'
            b'"payload":"e30=","signatures":[]}'
        ),
        "text/plain": lambda: act(season, "secrecy-chen", "acknowledge"),
        "too large": lambda: b"[" + b" " * (70 * 1024) + b"]",
        "unblock names no key": lambda: act(season, "secrecy-chen", "unblock"),
        "unblock a key not blocked": lambda: act(
            season, "secrecy-chen", "unblock", key=season.keys["courier-li"].signing.key_id
        ),
        "signed by another than the person": lambda: forged(season),
    }[case]()
    if case == "no such incident":
        path = "/v1/incidents/INC-00009/acts"
    if case == "text/plain":
        headers = {"content-type": "text/plain"}
    size = open_reader(season.home).size()
    r = c.post(path, content=body, headers=headers)
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert open_reader(season.home).size() == size
    assert get_incident(season.home.engine, "INC-00001").status == "open"


def test_a_read_only_service_records_no_act(world: tuple[Season, TestClient]) -> None:
    season, _ = world
    ro = client(season, writable=False)
    r = ro.post(
        "/v1/incidents/INC-00001/acts",
        content=act(season, "secrecy-chen", "acknowledge"),
        headers=JSON,
    )
    assert (r.status_code, r.json()["error"]) == (503, "read_only")
    assert get_incident(season.home.engine, "INC-00001").status == "open"


def test_the_database_pages_incidents_newest_first(any_season: Season) -> None:
    """The same paging on SQLite and PostgreSQL (ids compare by length, then text)."""
    from custody.incidents.desk import page_incidents

    log = any_season.log()
    for n in range(3):
        log.report_public(f"线索 {n}", any_season.now)
    engine = any_season.home.engine
    page, total = page_incidents(engine, offset=0, limit=2)
    assert ([i.id for i in page], total) == (["INC-00003", "INC-00002"], 3)
    page, total = page_incidents(engine, offset=2, limit=2)
    assert ([i.id for i in page], total) == (["INC-00001"], 3)
    assert page_incidents(engine, status="resolved", limit=5) == ([], 0)
    assert page_incidents(engine, severity="low", limit=5)[1] == 0
    assert page_incidents(engine, offset=(1 << 63) - 1, limit=5) == ([], 3)
