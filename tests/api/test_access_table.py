"""The authorisation table: role x route x scope, allowed and refused, through the real app.

Two packages of two exams at two sites:
  PK-A  exam SX-2027-INT, site 西安考点, route courier-sun -> custodian-zhou
  PK-B  exam OTHER-2027,  site 宝鸡考点, route courier-li  -> custodian-wu
and a leak report (an incident entry that names no package). custodian-wu is assigned to
西安考点 (so reads PK-A by site) and is on PK-B's route; the chief examiner and the supervisor
are assigned to SX-2027-INT; print-qian sealed both.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from custody.audit import load_trust_document
from custody.demo import Season, seal_body
from custody.events import Kind, parse_event
from tests.api.helpers import as_person, client, good_label

SITE_A, SITE_B = "西安考点", "宝鸡考点"


def _seal(season: Season, pkg: str, exam: str, site: str, route: list[str]) -> None:
    start = season.now + timedelta(hours=4)
    body: dict[str, Any] = seal_body(
        exam=exam,
        position="P-01",
        paper=f"PAPER-{pkg}",
        copies=30,
        seals=["S-1"],
        window=(start, start + timedelta(hours=2)),
        route=route,
    )
    body["destination"] = {"site": site, "room": "101"}
    env = season.event(
        Kind.SEAL,
        [pkg],
        actors={"sealer": "print-qian"},
        signers=["print-qian"],
        body=body,
        prevs={pkg: None},
    )
    season.submit(env)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Season, TestClient, dict[str, int]]:
    from custody.demo import start_season
    from tests.conftest import PASS, T0, fast_kdf

    season = start_season(
        tmp_path_factory.mktemp("table") / "s", now=T0, passphrase=PASS, kdf=fast_kdf()
    )
    _seal(season, "PK-A", "SX-2027-INT", SITE_A, ["courier-sun", "custodian-zhou"])
    season.publish_exam_policy("OTHER-2027")  # a seal follows its exam's policy on the log
    _seal(season, "PK-B", "OTHER-2027", SITE_B, ["courier-li", "custodian-wu"])
    season.log().report_public("试题泄露 leak seen online", season.now)
    log = season.log()
    kinds = {i: parse_event(log.entry(i).payload) for i in range(log.size())}
    entries = {
        "entry_A": next(i for i, e in kinds.items() if "PK-A" in e.packages),
        "entry_B": next(i for i, e in kinds.items() if "PK-B" in e.packages),
        "entry_incident": next(i for i, e in kinds.items() if not e.packages),
    }
    return season, client(season), entries


PEOPLE = [
    "courier-sun",
    "courier-li",
    "custodian-zhou",
    "custodian-wu",
    "examiner-zheng",
    "supervisor-wang",
    "print-qian",
    "prop-zhao",
    "destroy-feng",
    "secrecy-chen",
    "auditor-chu",
]

# (what, path) -> the people allowed (everyone else logged in: 403; no login: 401)
TABLE: list[tuple[str, str, set[str]]] = [
    (
        "package A",
        "/v1/packages/PK-A",
        {
            "courier-sun",
            "custodian-zhou",
            "custodian-wu",
            "examiner-zheng",
            "supervisor-wang",
            "print-qian",
            "secrecy-chen",
            "auditor-chu",
        },
    ),
    (
        "package B",
        "/v1/packages/PK-B",
        {
            "courier-li",
            "custodian-wu",
            "print-qian",
            "secrecy-chen",
            "auditor-chu",
        },
    ),
    (
        "entry of A",
        "{entry_A}",
        {
            "courier-sun",
            "custodian-zhou",
            "custodian-wu",
            "examiner-zheng",
            "supervisor-wang",
            "print-qian",
            "secrecy-chen",
            "auditor-chu",
        },
    ),
    (
        "entry of B",
        "{entry_B}",
        {
            "courier-li",
            "custodian-wu",
            "print-qian",
            "secrecy-chen",
            "auditor-chu",
        },
    ),
    ("incident entry", "{entry_incident}", {"secrecy-chen", "auditor-chu"}),
    ("proof", "/v1/proofs/consistency?old=1&new=2", set(PEOPLE)),
    ("trust bundle", "/v1/trust-bundle", set(PEOPLE)),
    ("access log", "/v1/access?object=package:PK-A", {"secrecy-chen", "auditor-chu"}),
    ("access checkpoint", "/v1/access/checkpoint", {"secrecy-chen", "auditor-chu"}),
    ("incident list", "/v1/incidents", {"secrecy-chen", "auditor-chu"}),
    ("incident list by exam", "/v1/incidents?exam=SX-2027-INT", {"secrecy-chen", "auditor-chu"}),
    ("one incident", "/v1/incidents/INC-00001", {"secrecy-chen", "auditor-chu"}),
    ("export bundle", "/v1/export", {"auditor-chu"}),
    (
        "custody report of a package",
        "/v1/reports/custody?package=PK-A&format=json",
        {"secrecy-chen", "auditor-chu"},
    ),
    (
        "custody report of an exam",
        "/v1/reports/custody?exam=SX-2027-INT",
        {"secrecy-chen", "auditor-chu"},
    ),
]

CASES = [
    pytest.param(path, person, person in allowed, id=f"{what}|{person}")
    for what, path, allowed in TABLE
    for person in PEOPLE
]


def _path(path: str, entries: dict[str, int]) -> str:
    if path.startswith("{"):
        return f"/v1/entries/{entries[path.strip('{}')]}"
    return path


@pytest.mark.parametrize(("path", "person", "allowed"), CASES)
def test_authorisation_table(
    world: tuple[Season, TestClient, dict[str, int]], path: str, person: str, allowed: bool
) -> None:
    season, c, entries = world
    r = c.get(_path(path, entries), headers=as_person(c, season, person))
    if allowed:
        assert r.status_code == 200, r.text
    else:
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")


PUBLIC = ["/healthz", "/v1/checkpoint", "/v1/checkpoint/1", "/v1/time-zone"]


@pytest.mark.parametrize("path", PUBLIC)
def test_public_without_login(world: tuple[Season, TestClient, dict[str, int]], path: str) -> None:
    _, c, _ = world
    assert c.get(path).status_code == 200


@pytest.mark.parametrize(("what", "path"), [(t[0], t[1]) for t in TABLE])
def test_everything_else_needs_a_login(
    world: tuple[Season, TestClient, dict[str, int]], what: str, path: str
) -> None:
    _, c, entries = world
    r = c.get(_path(path, entries))
    assert (r.status_code, r.json()["error"]) == (401, "login_required"), what
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_label_verification_needs_no_login(
    world: tuple[Season, TestClient, dict[str, int]],
) -> None:
    season, c, _ = world
    text = good_label(season)
    r = c.post("/v1/labels/verify", content=text, headers={"content-type": "text/plain"})
    assert r.status_code == 200
    assert r.json()["ok"] is True


def test_couriers_get_the_directory_not_organisations_or_recusals(
    world: tuple[Season, TestClient, dict[str, int]],
) -> None:
    import json

    from crypto.dsse import parse_envelope, verify_signatures

    season, c, _ = world
    r = c.get("/v1/trust-bundle", headers=as_person(c, season, "courier-sun"))
    doc = r.json()
    assert set(doc) == {"authority", "directory", "revocations"}
    directory = parse_envelope(doc["directory"])
    system = season.authority.system_key
    check = verify_signatures(directory, {system.key_id: system})
    assert check.signed_by == {system.key_id}
    people = json.loads(check.payload)["people"]
    assert {p["subject"] for p in people} >= set(PEOPLE)
    for p in people:
        assert set(p) == {
            "subject",
            "name",
            "roles",
            "key_id",
            "signing_key",
            "not_before",
            "not_after",
        }
    assert "organisation" not in check.payload.decode() and "recusals" not in check.payload.decode()
    full = c.get("/v1/trust-bundle", headers=as_person(c, season, "secrecy-chen")).content
    store = load_trust_document(full, pinned_root_id=season.authority.id)
    he = next(c for c in store.certificates.values() if c.subject == "courier-he")
    assert he.organisation and he.recusals  # the whole certificate, for the secrecy officer
