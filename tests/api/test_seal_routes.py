"""Packages sealed from the proposition page: ``POST /v1/packages`` accepts a label and its seal
event signed elsewhere (the sealer's browser) only as ``custody package seal`` would have made
them, and every refusal stores nothing (no package row, no entry by a person on the log); the
accepted package is sealed on the log and its label PDF prints to the very label text."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crypto.dsse import Envelope, sign_envelope
from crypto.encoding import canonical_json
from custody import package_service
from custody.demo import Season
from custody.events import EVENT_TYPE
from custody.packages import Manifest, RouteStep
from labels.payload import seal_manifest, verify_label
from tests.api.helpers import (
    as_person,
    client,
    forged_label,
    labels_printed,
    people_entries,
    stranger_label,
)
from tests.labels.fixtures import typical_manifest

PACKAGE = "SX27-INT-0001"


def seal_request(
    season: Season,
    manifest: Manifest,
    *,
    label_by: str = "print-qian",
    event_by: str | None = None,
    handover_witness: bool = False,
    label: str | None = None,
    edit: Any = None,
) -> dict[str, Any]:
    """The body the page posts: the label signed by ``label_by`` and the seal event the CLI
    would build from it, signed by ``event_by`` (the same person by default)."""
    key = season.keys[label_by].signing
    text = label if label is not None else seal_manifest(manifest, key)
    sealer = season.trust().certificate(key.key_id)
    event = package_service.seal_event_of(
        manifest, text, sealer.subject, season.authority.id, handover_witness=handover_witness
    )
    payload = event.payload()
    if edit is not None:
        obj = json.loads(payload)
        edit(obj)
        payload = canonical_json(obj)
    env: Envelope = sign_envelope(EVENT_TYPE, payload, [season.keys[event_by or label_by].signing])
    return {"label": text, "seal": env.to_json_obj()}


def post(c: TestClient, headers: dict[str, str], body: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return c.post(
        "/v1/packages", content=data, headers={**headers, "content-type": "application/json"}
    )


def nothing_stored(season: Season, entries_before: int) -> None:
    assert package_service.all_package_ids(season.home) == []
    assert people_entries(season) == entries_before


def test_a_seal_signed_elsewhere_is_stored_with_its_event_and_prints(
    season: Season, tmp_path: Path
) -> None:
    c = client(season)
    headers = as_person(c, season, "print-qian")
    manifest = typical_manifest(season.now)
    body = seal_request(season, manifest)
    r = post(c, headers, body)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["package_id"] == PACKAGE
    assert got["handover_witness"] is False
    assert got["label_pdf"] == f"/v1/packages/{PACKAGE}/label.pdf"
    # The package is sealed on the log, held by its sealer, and its row holds the label.
    state = c.get(f"/v1/packages/{PACKAGE}", headers=headers).json()
    assert state["state"]["status"] == "sealed"
    assert state["state"]["holder"] == "print-qian"
    assert state["history"] == [got["receipt"]["index"]]
    assert package_service.label_text(season.home, PACKAGE) == body["label"]
    # The label PDF, rasterised and decoded as a printer's output, is the very label.
    pdf = c.get(got["label_pdf"], headers=headers)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    (printed,) = labels_printed(pdf.content, tmp_path / "print")
    assert printed == body["label"]
    assert verify_label(printed, season.trust(), now=season.now).manifest == manifest
    # The same request again: the package is sealed already, nothing changes.
    entries = people_entries(season)
    again = post(c, headers, body)
    assert (again.status_code, again.json()["error"]) == (409, "conflict")
    assert people_entries(season) == entries


def test_the_label_pdf_is_for_those_who_may_read_the_package(season: Season) -> None:
    c = client(season)
    headers = as_person(c, season, "print-qian")
    assert post(c, headers, seal_request(season, typical_manifest(season.now))).status_code == 201
    url = f"/v1/packages/{PACKAGE}/label.pdf"
    assert c.get(url).json()["error"] == "login_required"
    r = c.get(url, headers=as_person(c, season, "courier-li"))  # not on its route
    assert (r.status_code, r.json()["error"]) == (403, "forbidden")
    assert c.get(url, headers=as_person(c, season, "courier-sun")).status_code == 200
    r = c.get("/v1/packages/NO-SUCH/label.pdf", headers=headers)
    assert (r.status_code, r.json()["error"]) == (404, "not_found")


def _later(season: Season) -> Manifest:
    return typical_manifest(season.now, issued_at=season.now + timedelta(minutes=10))


def _route(*steps: tuple[str, str]) -> Any:
    """The typical package with another planned route."""
    return lambda s: seal_request(
        s, typical_manifest(s.now, route=tuple(RouteStep(p, where) for p, where in steps))
    )


REFUSALS: list[tuple[str, Any, str, int, str]] = [
    # (name, body builder, person logged in, status, code)
    ("not JSON", lambda s: b"{not json", "print-qian", 400, "format"),
    (
        "no label",
        lambda s: {"seal": seal_request(s, typical_manifest(s.now))["seal"]},
        "print-qian",
        400,
        "format",
    ),
    (
        "another's seal event",
        lambda s: seal_request(
            s, typical_manifest(s.now), label_by="prop-zhao", event_by="print-qian"
        ),
        "prop-zhao",
        403,
        "forbidden",
    ),
    (
        "another's label",
        lambda s: seal_request(
            s, typical_manifest(s.now), label_by="print-qian", event_by="prop-zhao"
        ),
        "prop-zhao",
        403,
        "forbidden",
    ),
    (
        "a courier",
        lambda s: seal_request(s, typical_manifest(s.now)),
        "courier-sun",
        403,
        "forbidden",
    ),
    (
        "forged label",
        lambda s: seal_request(s, typical_manifest(s.now, copy_count=29), label=forged_label(s)),
        "print-qian",
        422,
        "signature",
    ),
    (
        "stranger's label",
        lambda s: seal_request(s, typical_manifest(s.now), label=stranger_label(s)),
        "print-qian",
        422,
        "unknown_signer",
    ),
    (
        "issued after the service's now",
        lambda s: seal_request(s, _later(s)),
        "print-qian",
        422,
        "not_yet_valid",
    ),
    (
        "an exam with no policy",
        lambda s: seal_request(s, typical_manifest(s.now, exam_id="OTHER-2027")),
        "print-qian",
        404,
        "not_found",
    ),
    (
        "a witness the policy does not ask",
        lambda s: seal_request(s, typical_manifest(s.now), handover_witness=True),
        "print-qian",
        422,
        "exam_policy",
    ),
    (
        "a body other than its label's",
        lambda s: seal_request(
            s, typical_manifest(s.now), edit=lambda o: o["body"].update({"copies": 31})
        ),
        "print-qian",
        400,
        "format",
    ),
    (
        "another place",
        lambda s: seal_request(s, typical_manifest(s.now), edit=lambda o: o.update({"place": "X"})),
        "print-qian",
        400,
        "format",
    ),
    (
        "a route naming someone not enrolled",
        _route(("print-qian", "PRT-01"), ("courier-sunn", "ROAD"), ("custodian-zhou", "XA-01")),
        "print-qian",
        403,
        "route",
    ),
    (
        "a route through a courier recused for the exam",
        _route(("print-qian", "PRT-01"), ("courier-he", "ROAD"), ("custodian-zhou", "XA-01")),
        "print-qian",
        403,
        "recused",
    ),
    (
        "a label that expires before its window closes",
        lambda s: seal_request(s, typical_manifest(s.now, expires_at=s.now + timedelta(days=1))),
        "print-qian",
        400,
        "format",
    ),
    (
        "dated twenty hours ago",
        lambda s: seal_request(
            s,
            typical_manifest(
                s.now - timedelta(hours=20),
                opens_at=s.now + timedelta(days=1),
                closes_at=s.now + timedelta(days=1, hours=1),
            ),
        ),
        "print-qian",
        422,
        "clock",
    ),
]


@pytest.mark.parametrize(
    ("build", "person", "status", "code"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_refusals_store_nothing(
    season: Season, build: Any, person: str, status: int, code: str
) -> None:
    c = client(season)
    headers = as_person(c, season, person)
    before = people_entries(season)
    r = post(c, headers, build(season))
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert r.json()["message_zh"]
    nothing_stored(season, before)


def test_without_a_login(season: Season) -> None:
    before = people_entries(season)
    body = seal_request(season, typical_manifest(season.now))
    for c in (client(season), client(season, writable=False)):
        r = post(c, {}, body)
        assert (r.status_code, r.json()["error"]) == (401, "login_required")
    nothing_stored(season, before)


def test_exams_give_each_policy_and_the_service_clock(season: Season) -> None:
    c = client(season)
    r = c.get("/v1/proposition/exams", headers=as_person(c, season, "prop-zhao"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["now"] == season.now.isoformat().replace("+00:00", "Z")
    assert [(e["exam"], e["handover_witness"]) for e in doc["exams"]] == [("SX-2027-INT", False)]
    r = c.get("/v1/proposition/exams", headers=as_person(c, season, "courier-sun"))
    assert (r.status_code, r.json()["error"]) == (403, "forbidden")


def test_a_policy_the_log_lacks_goes_on_it_with_the_seal(tmp_path: Path) -> None:
    from custody.demo import start_season
    from tests.conftest import PASS, T0, fast_kdf

    season = start_season(
        tmp_path / "s", now=T0, passphrase=PASS, kdf=fast_kdf(), publish_exam_policy=False
    )
    c = client(season)
    r = post(c, as_person(c, season, "print-qian"), seal_request(season, typical_manifest(T0)))
    assert r.status_code == 201, r.text
    assert season.log().exam_policy("SX-2027-INT").handover_witness is False
    state = season.log().package_state(PACKAGE)
    assert (str(state.status), state.holder) == ("sealed", "print-qian")


def test_the_same_seal_sent_at_once_is_sealed_once_and_refused_after(season: Season) -> None:
    """Six identical requests at the same moment answer as six in a row: one 201, then 409
    (the log takes the envelope once; the others are not told it is theirs)."""
    from concurrent.futures import ThreadPoolExecutor

    c = client(season)
    headers = as_person(c, season, "print-qian")
    body = seal_request(season, typical_manifest(season.now))
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: post(c, headers, body), range(6)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409, 409, 409, 409, 409], [r.text for r in answers]
    assert all(r.json()["error"] == "conflict" for r in answers if r.status_code == 409)
    assert package_service.all_package_ids(season.home) == [PACKAGE]
    assert c.get(f"/v1/packages/{PACKAGE}", headers=headers).json()["history"] == [
        next(r for r in answers if r.status_code == 201).json()["receipt"]["index"]
    ]
