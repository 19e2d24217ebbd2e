"""The proposition page's routes: whom a paper may be sealed to, and a paper encrypted and
signed elsewhere (the proposer's browser) accepted only when everything the CLI path would
have guaranteed holds; every refusal stores nothing (no row, no file, no log entry)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crypto.dsse import parse_envelope, sign_envelope
from crypto.encoding import canonical_json
from crypto.sealing import seal_to
from crypto.signing import X25519, key_id
from custody import paper_service
from custody.demo import Season
from custody.events import Kind, parse_event
from custody.papers import PROPOSAL_TYPE, PaperRole
from tests.api.helpers import as_person, client
from tests.api.paper_helpers import open_as_printer_and_log, plan_for, submission

PLAIN = "结构化面试题本 第一题：请谈谈你对保密工作的理解。\n".encode() * 100  # 3 chunks of 1 KiB


def log_key(c: TestClient, headers: dict[str, str]) -> bytes:
    r = c.get("/v1/proposition/recipients", headers=headers)
    assert r.status_code == 200, r.text
    return base64.b64decode(r.json()["log_key"]["key"])


def paper_acts(season: Season) -> int:
    log = season.log()
    return sum(
        1 for i in range(log.size()) if parse_event(log.entry(i).payload).kind is Kind.PAPER_ACT
    )


def nothing_stored(season: Season, acts_before: int) -> None:
    """No paper row, no file under papers/ (not even a temp file), no paper act on the log
    (a refusal the desk judges may add its own system statement: that is not the paper)."""
    assert paper_service.list_papers(season.home) == []
    folder = paper_service.papers_dir(season.home)
    assert not folder.exists() or list(folder.iterdir()) == []
    assert paper_acts(season) == acts_before


def test_recipients_are_root_signed_certificates_and_the_log_key(season: Season) -> None:
    c = client(season)
    r = c.get("/v1/proposition/recipients", headers=as_person(c, season, "prop-zhao"))
    assert r.status_code == 200, r.text
    doc = r.json()
    subjects = set()
    for env in doc["certificates"]:
        cert = json.loads(base64.b64decode(env["payload"]))
        subjects.add(cert["subject"])
    assert {"print-qian", "examiner-zheng", "supervisor-wang", "secrecy-chen"} <= subjects
    assert not subjects & {"courier-sun", "custodian-zhou", "prop-zhao", "auditor-chu"}
    escrow = season.log().escrow
    assert doc["log_key"]["key_id"] == escrow.key_id == key_id(X25519, escrow.public_raw)
    assert base64.b64decode(doc["log_key"]["key"]) == escrow.public_raw


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [(None, 401, "login_required"), ("courier-sun", 403, "forbidden")],
    ids=["no-login", "courier"],
)
def test_recipients_are_for_proposers_only(
    season: Season, who: str | None, status: int, code: str
) -> None:
    c = client(season)
    headers = as_person(c, season, who) if who else {}
    r = c.get("/v1/proposition/recipients", headers=headers)
    assert (r.status_code, r.json()["error"]) == (status, code)


def test_a_paper_made_elsewhere_is_stored_and_opens_to_the_same_bytes(season: Season) -> None:
    c = client(season)
    headers = as_person(c, season, "prop-zhao")
    body = submission(season, PLAIN, log_public=log_key(c, headers))
    before = paper_acts(season)
    r = c.post("/v1/papers", json=body, headers=headers)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["ref"] == "SX-INT-P01-A@v1"
    assert paper_acts(season) == before + 1
    assert open_as_printer_and_log(season, season.log(), got["ref"]) == PLAIN
    stored = paper_service.blob_path(season.home, got["commitment"]).read_bytes()
    assert base64.b64decode(body["ciphertext"]) == stored
    assert PLAIN[:60] not in stored
    # The proposer sees their paper and its commitment; a courier sees no list of papers.
    listed = c.get("/v1/papers", headers=headers).json()["items"]
    assert [(i["ref"], i["commitment"]) for i in listed] == [(got["ref"], got["commitment"])]
    courier = c.get("/v1/papers", headers=as_person(c, season, "courier-sun"))
    assert (courier.status_code, courier.json()["error"]) == (403, "forbidden")
    # The same proposal again is a replayed version: 409, nothing new.
    again = c.post("/v1/papers", json=body, headers=headers)
    assert (again.status_code, again.json()["error"]) == (409, "conflict")
    assert paper_acts(season) == before + 1


Change = Callable[[Season, dict[str, Any], bytes], dict[str, Any] | bytes]


def _swap_sealed(season: Season, body: dict[str, Any], log_pub: bytes) -> dict[str, Any]:
    body["keys"][0]["sealed"] = base64.b64encode(seal_to(log_pub, b"x" * 40)).decode()
    return body


def _drop_a_key(season: Season, body: dict[str, Any], log_pub: bytes) -> dict[str, Any]:
    body["keys"] = body["keys"][:-2] + body["keys"][-1:]
    return body


def _flip_ciphertext(season: Season, body: dict[str, Any], log_pub: bytes) -> dict[str, Any]:
    raw = bytearray(base64.b64decode(body["ciphertext"]))
    raw[-1] ^= 1
    body["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    return body


def _cut_ciphertext(season: Season, body: dict[str, Any], log_pub: bytes) -> dict[str, Any]:
    body["ciphertext"] = base64.b64encode(base64.b64decode(body["ciphertext"])[:-1]).decode()
    return body


def _resign_by(person: str) -> Change:
    def change(season: Season, body: dict[str, Any], log_pub: bytes) -> dict[str, Any]:
        env = parse_envelope(body["proposal"])
        body["proposal"] = sign_envelope(
            PROPOSAL_TYPE, env.payload, [season.keys[person].signing]
        ).to_json_obj()
        return body

    return change


def _edit_payload(edit: Callable[[dict[str, Any]], None]) -> Change:
    def change(season: Season, body: dict[str, Any], log_pub: bytes) -> dict[str, Any]:
        env = parse_envelope(body["proposal"])
        payload = json.loads(env.payload)
        edit(payload)
        body["proposal"] = sign_envelope(
            PROPOSAL_TYPE, canonical_json(payload), [season.keys["prop-zhao"].signing]
        ).to_json_obj()
        return body

    return change


def _threshold_one(payload: dict[str, Any]) -> None:
    payload["threshold"] = 1


def _no_printer(payload: dict[str, Any]) -> None:
    payload["recipients"] = [r for r in payload["recipients"] if r["slot"] != "printer"]


def _officer_key_of_another(payload: dict[str, Any]) -> None:
    payload["recipients"][1]["key_id"] = "0" * 64


def _window_over(payload: dict[str, Any]) -> None:
    payload["window"] = {"start": "2001-03-01T08:00:00Z", "end": "2001-03-01T11:00:00Z"}


def _window_decades_ahead(payload: dict[str, Any]) -> None:
    payload["window"] = {"start": "2070-03-01T08:00:00Z", "end": "2070-03-01T11:00:00Z"}


def _not_json(season: Season, body: dict[str, Any], log_pub: bytes) -> bytes:
    return b"{not json"


CASES: list[tuple[str, Change, int, str]] = [
    ("not-json", _not_json, 400, "format"),
    ("sealed-blob-swapped", _swap_sealed, 422, "signature"),
    ("a-recipient-missing", _drop_a_key, 400, "format"),
    ("ciphertext-altered", _flip_ciphertext, 422, "signature"),
    ("ciphertext-cut", _cut_ciphertext, 422, "signature"),
    ("signed-by-the-printer", _resign_by("print-qian"), 403, "forbidden"),
    ("threshold-one", _edit_payload(_threshold_one), 422, "threshold"),
    ("no-printer", _edit_payload(_no_printer), 400, "format"),
    ("officer-key-not-certified", _edit_payload(_officer_key_of_another), 422, "signature"),
    ("window-already-over", _edit_payload(_window_over), 403, "window"),
    ("window-decades-ahead", _edit_payload(_window_decades_ahead), 403, "window"),
]


@pytest.mark.parametrize(
    ("change", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refusals_store_nothing(season: Season, change: Change, status: int, code: str) -> None:
    c = client(season)
    headers = as_person(c, season, "prop-zhao")
    log_pub = log_key(c, headers)
    before = paper_acts(season)
    body = change(season, submission(season, PLAIN, log_public=log_pub), log_pub)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = c.post(
        "/v1/papers", content=content, headers={**headers, "content-type": "application/json"}
    )
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert r.json()["message_zh"]
    nothing_stored(season, before)


def test_the_log_part_must_be_sealed_to_the_log(season: Season) -> None:
    c = client(season)
    headers = as_person(c, season, "prop-zhao")
    other = season.keys["secrecy-chen"].encryption
    assert other is not None
    before = paper_acts(season)
    body = submission(season, PLAIN, log_public=other.public_raw)
    r = c.post("/v1/papers", json=body, headers=headers)
    assert (r.status_code, r.json()["error"]) == (422, "signature"), r.text  # not the log's key
    nothing_stored(season, before)


def test_a_proposal_dated_far_from_the_service_clock_is_refused(season: Season) -> None:
    c = client(season)
    headers = as_person(c, season, "prop-zhao")
    before = paper_acts(season)
    body = submission(
        season, PLAIN, log_public=log_key(c, headers), at=season.now - timedelta(minutes=30)
    )
    r = c.post("/v1/papers", json=body, headers=headers)
    assert (r.status_code, r.json()["error"]) == (422, "clock"), r.text
    nothing_stored(season, before)


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [(None, 401, "login_required"), ("courier-sun", 403, "forbidden")],
    ids=["no-login", "courier"],
)
def test_only_a_logged_in_proposer_may_post(
    season: Season, who: str | None, status: int, code: str
) -> None:
    c = client(season)
    log_pub = season.log().escrow.public_raw
    before = paper_acts(season)
    body = submission(season, PLAIN, log_public=log_pub)
    headers = as_person(c, season, who) if who else {}
    r = c.post("/v1/papers", json=body, headers=headers)
    assert (r.status_code, r.json()["error"]) == (status, code)
    nothing_stored(season, before)


def test_a_read_only_service_stores_no_paper(season: Season) -> None:
    writer = client(season)
    headers = as_person(writer, season, "prop-zhao")  # a session the replica checks, too
    log_pub = log_key(writer, headers)
    c = client(season, writable=False)
    before = paper_acts(season)
    r = c.post("/v1/papers", json=submission(season, PLAIN, log_public=log_pub), headers=headers)
    assert (r.status_code, r.json()["error"]) == (503, "read_only"), r.text
    nothing_stored(season, before)


def test_a_backup_paper_names_its_main(season: Season) -> None:
    c = client(season)
    headers = as_person(c, season, "prop-zhao")
    log_pub = log_key(c, headers)
    before = paper_acts(season)
    plan = plan_for(season, "SX-INT-P01-B", role=PaperRole.BACKUP, backup_of="SX-INT-P01-A")
    body = submission(season, PLAIN, plan=plan, log_public=log_pub)
    r = c.post("/v1/papers", json=body, headers=headers)
    assert (r.status_code, r.json()["error"]) == (404, "not_found"), r.text
    nothing_stored(season, before)
