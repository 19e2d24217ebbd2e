"""Every route of the HTTP API, and every refusal class mapped to its status and stable code."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crypto import merkle
from crypto.dsse import Envelope, Signature, parse_envelope, sign_envelope
from crypto.encoding import canonical_json, parse_time
from crypto.note import NoteVerifier, open_checkpoint
from custody import identity
from custody.audit import load_trust_document
from custody.demo import Season, start_season
from custody.events import Kind, leaf_bytes
from keys.model import RevocationReason
from tests.api.helpers import (
    STRANGER,
    as_person,
    blank_png,
    client,
    forged_label,
    good_label,
    label_png,
    people_entries,
    seal_event,
    stranger_label,
    transfer_event,
)
from tests.conftest import PASS, T0, fast_kdf


def post_env(c: TestClient, env: Envelope) -> tuple[int, dict[str, object]]:
    r = c.post("/v1/events", content=env.to_bytes(), headers={"content-type": "application/json"})
    return r.status_code, r.json()


def b64(data: bytes) -> bytes:
    return base64.b64decode(data)


# -- service and trust ---------------------------------------------------------------------


def test_healthz_reports_authority_size_and_mode(season: Season) -> None:
    body = client(season).get("/healthz").json()
    assert body == {
        "ok": True,
        "authority_id": season.authority.id,
        "log_origin": season.authority.log_origin,
        "log_size": 1,  # the exam's policy
        "writable": True,
    }
    assert client(season, writable=False).get("/healthz").json()["writable"] is False


def test_trust_bundle_verifies_under_the_pinned_root(season: Season) -> None:
    c = client(season)
    r = c.get("/v1/trust-bundle", headers=as_person(c, season, "secrecy-chen"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    store = load_trust_document(r.content, pinned_root_id=season.authority.id)
    assert set(store.certificates) == set(season.trust().certificates)


def test_checkpoint_is_404_while_empty_then_a_verifiable_note(tmp_path: Path) -> None:
    season = start_season(
        tmp_path / "s", now=T0, passphrase=PASS, kdf=fast_kdf(), publish_exam_policy=False
    )
    c = client(season)
    r = c.get("/v1/checkpoint")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    season.publish_exam_policy()
    post_env(c, seal_event(season))
    r = c.get("/v1/checkpoint")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    authority = season.authority
    verifier = NoteVerifier(authority.log_origin, authority.log_key)
    checkpoint, _ = open_checkpoint(r.text, [verifier], origin=authority.log_origin)
    assert checkpoint.size == 2


# -- appending -----------------------------------------------------------------------------


def test_event_accepted_201_then_duplicate_200_with_the_same_receipt(season: Season) -> None:
    c = client(season)
    env = seal_event(season)
    status, first = post_env(c, env)
    assert status == 201
    assert first["index"] == 1 and first["duplicate"] is False  # 0: the exam's policy
    status, again = post_env(c, env)
    assert status == 200
    assert again["index"] == 1 and again["duplicate"] is True
    assert again["statement_id"] == first["statement_id"]
    assert season.log().size() == 2


def test_whole_route_entries_package_and_proofs(season: Season) -> None:
    c = client(season)
    post_env(c, seal_event(season))
    post_env(c, transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun"))
    post_env(c, transfer_event(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-li"))
    post_env(c, seal_event(season, "PK-2"))
    c.headers.update(as_person(c, season, "auditor-chu"))  # a session of 15 min of its clock

    pkg = c.get("/v1/packages/PK-1").json()
    assert pkg["history"] == [1, 2, 3]
    assert pkg["state"]["holder"] == "courier-li"
    assert pkg["state"]["status"] == season.log().package_state("PK-1").status.value

    entry = c.get("/v1/entries/1").json()
    assert b64(entry["leaf"]) == season.log().leaf(1)
    env = json.dumps(entry["envelope"], sort_keys=True, separators=(",", ":")).encode()
    assert leaf_bytes(parse_envelope(env), parse_time(entry["received"])) == b64(entry["leaf"])

    note = c.get("/v1/checkpoint").text
    authority = season.authority
    cp, _ = open_checkpoint(
        note, [NoteVerifier(authority.log_origin, authority.log_key)], origin=authority.log_origin
    )
    assert cp.size == 5  # the exam's policy, then the package's four
    for index in range(5):
        leaf = b64(c.get(f"/v1/entries/{index}").json()["leaf"])
        proof = c.get("/v1/proofs/inclusion", params={"index": index, "size": 5}).json()
        assert proof["tree_size"] == 5
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf), index, 5, [b64(h) for h in proof["proof"]], cp.root
        )
    old_root = merkle.MemoryTree()
    for index in range(2):
        old_root.append(season.log().leaf(index))
    cons = c.get("/v1/proofs/consistency", params={"old": 2, "new": 5}).json()
    merkle.verify_consistency(2, 5, old_root.root(), cp.root, [b64(h) for h in cons["proof"]])


def test_batch_judges_each_envelope_alone(season: Season) -> None:
    c = client(season)
    c.headers.update(as_person(c, season, "auditor-chu"))
    seal = seal_event(season)
    post_env(c, seal)  # already in the log before the batch
    dispatch = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    off_route = seal_event(season, "PK-9")
    stranger = Envelope(
        off_route.payload_type,
        off_route.payload,
        (Signature(STRANGER.key_id, STRANGER.sign(b"x")),),
    )
    batch = [
        seal.to_json_obj(),  # 0: duplicate
        dispatch.to_json_obj(),  # 1: appended
        "not an envelope",  # 2: format
        stranger.to_json_obj(),  # 3: signed by nobody known
        dispatch.to_json_obj(),  # 4: duplicate of 1 within the batch
    ]
    r = c.post("/v1/events", content=json.dumps(batch))
    assert r.status_code == 201
    body = r.json()
    accepted = {a["position"]: (a["status"], a["index"]) for a in body["accepted"]}
    assert accepted == {0: (200, 1), 1: (201, 2), 4: (200, 2)}
    refused = {x["position"]: (x["status"], x["error"]) for x in body["refused"]}
    assert refused[2] == (400, "format")
    assert refused[3][0] in (403, 422) and refused[3][1] in ("unknown_signer", "threshold")
    assert people_entries(season) == 2

    # Nothing new in a batch: 200.
    r = c.post("/v1/events", content=json.dumps([seal.to_json_obj()]))
    assert r.status_code == 200
    assert r.json()["accepted"][0]["duplicate"] is True


def _wrong_type(season: Season) -> bytes:
    env = seal_event(season)
    return sign_envelope("text/plain", env.payload, [season.keys["print-qian"].signing]).to_bytes()


def _forged(season: Season) -> bytes:
    """The printer's key id on a signature made by a stranger's key."""
    env = seal_event(season)
    forged = Signature(season.keys["print-qian"].signing.key_id, STRANGER.sign(env.signed_bytes()))
    return Envelope(env.payload_type, env.payload, (forged,)).to_bytes()


def _stranger(season: Season) -> bytes:
    env = seal_event(season)
    return sign_envelope(env.payload_type, env.payload, [STRANGER]).to_bytes()


def _off_route(season: Season) -> bytes:
    season.submit(seal_event(season))
    season.submit(transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun"))
    return transfer_event(season, Kind.HANDOVER, "PK-1", "courier-sun", "custodian-wu").to_bytes()


def _recused(season: Season) -> bytes:
    season.submit(seal_event(season))
    return transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-he").to_bytes()


def _missing_receiver(season: Season) -> bytes:
    season.submit(seal_event(season))
    env = transfer_event(
        season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun", signers=["print-qian"]
    )
    return env.to_bytes()


def _wrong_prev(season: Season) -> bytes:
    season.submit(seal_event(season))
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": ["S-001", "S-002"]},
        prevs={"PK-1": "0" * 64},
    )
    return env.to_bytes()


def _unsealed(season: Season) -> bytes:
    return transfer_event(season, Kind.DISPATCH, "PK-7", "print-qian", "courier-sun").to_bytes()


def _revoked(season: Season) -> bytes:
    season.submit(seal_event(season))
    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=season.keys["courier-sun"].signing.key_id,
        reason=RevocationReason.KEY_COMPROMISE,
        effective_at=season.now - timedelta(minutes=1),
        now=season.now,
    )
    return transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun").to_bytes()


def _bad_payload(season: Season) -> bytes:
    env = sign_envelope(
        "application/vnd.custody.event.v1+json",
        canonical_json({"type": "custody.event.v1", "kind": "teleport"}),
        [season.keys["print-qian"].signing],
    )
    return env.to_bytes()


REFUSALS: list[tuple[str, Callable[[Season], bytes], int, str]] = [
    ("bad-json", lambda s: b'{"payload": ', 400, "format"),
    ("not-utf8", lambda s: b"\xff\xfe{}", 400, "format"),
    ("json-number", lambda s: b"42", 400, "format"),
    ("empty-list", lambda s: b"[]", 400, "format"),
    (
        "envelope-extra-field",
        lambda s: b'{"payload":"","payloadType":"x","signatures":[],"x":1}',
        400,
        "format",
    ),
    ("wrong-payload-type", _wrong_type, 400, "format"),
    ("unknown-event-kind", _bad_payload, 400, "format"),
    ("forged-signature", _forged, 422, "signature"),
    ("stranger-signature", _stranger, 422, "unknown_signer"),
    ("off-route-receiver", _off_route, 403, "route"),
    ("recused-receiver", _recused, 403, "recused"),
    ("receiver-did-not-sign", _missing_receiver, 422, "threshold"),
    ("wrong-previous-event", _wrong_prev, 409, "chain"),
    ("unsealed-package", _unsealed, 409, "chain"),
    ("revoked-key-via-cli-meanwhile", _revoked, 422, "revoked"),
]


@pytest.mark.parametrize(
    ("make", "status", "code"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_event_refusals_map_to_status_and_code(
    season: Season, make: Callable[[Season], bytes], status: int, code: str
) -> None:
    c = client(season)
    body = make(season)
    size = people_entries(season)
    r = c.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]) == (status, code), r.json()
    assert set(r.json()) <= {"error", "message", "hint", "message_zh", "hint_zh"}
    assert r.json()["message"]
    assert r.json()["message_zh"]  # no Accept-Language: the Chinese comes too
    assert people_entries(season) == size  # nothing of the submitter's appended


def test_read_only_service_refuses_appends_with_503_and_still_reads(season: Season) -> None:
    season.submit(seal_event(season))
    c = client(season, writable=False)
    r = c.post("/v1/events", content=seal_event(season, "PK-2").to_bytes())
    assert (r.status_code, r.json()["error"]) == (503, "read_only")
    assert r.json()["hint"]
    # a read-only replica checks the sessions the writer issued (public system key)
    c.headers.update(as_person(client(season), season, "auditor-chu"))
    assert c.get("/v1/packages/PK-1").status_code == 200
    assert c.get("/v1/checkpoint").status_code == 200
    assert season.log().size() == 2


def test_oversized_bodies_are_refused_413(season: Season) -> None:
    c = client(season)
    r = c.post("/v1/events", content=b"[" + b" " * (17 << 20) + b"]")
    assert (r.status_code, r.json()["error"]) == (413, "too_large")
    r = c.post("/v1/labels/verify", content=b"C" * 20000)
    assert (r.status_code, r.json()["error"]) == (413, "too_large")
    many = json.dumps([seal_event(season).to_json_obj()] * 1001)
    r = c.post("/v1/events", content=many)
    assert (r.status_code, r.json()["error"]) == (413, "too_large")


# -- reading refusals ----------------------------------------------------------------------

READ_REFUSALS = [
    ("unknown-package", "/v1/packages/PK-404", 404, "not_found"),
    ("package-id-control-char", "/v1/packages/PK%00", 422, "invalid_request"),
    ("unknown-entry", "/v1/entries/5", 404, "not_found"),
    ("entry-not-an-integer", "/v1/entries/one", 422, "invalid_request"),
    ("entry-negative", "/v1/entries/-1", 422, "invalid_request"),
    ("entry-beyond-int64", f"/v1/entries/{1 << 64}", 422, "invalid_request"),
    ("inclusion-index-out-of-tree", "/v1/proofs/inclusion?index=3&size=2", 400, "usage"),
    ("inclusion-size-beyond-log", "/v1/proofs/inclusion?index=0&size=99", 400, "usage"),
    ("inclusion-missing-size", "/v1/proofs/inclusion?index=0", 422, "invalid_request"),
    ("consistency-backwards", "/v1/proofs/consistency?old=2&new=1", 400, "usage"),
    ("consistency-beyond-log", "/v1/proofs/consistency?old=1&new=50", 400, "usage"),
    ("consistency-zero", "/v1/proofs/consistency?old=0&new=2", 422, "invalid_request"),
    ("no-such-route", "/v2/anything", 404, "not_found"),
]


@pytest.mark.parametrize(
    ("path", "status", "code"), [r[1:] for r in READ_REFUSALS], ids=[r[0] for r in READ_REFUSALS]
)
def test_read_refusals(season: Season, path: str, status: int, code: str) -> None:
    c = client(season)
    c.headers.update(as_person(c, season, "auditor-chu"))
    post_env(c, seal_event(season))
    post_env(c, seal_event(season, "PK-2"))
    r = c.get(path)
    assert (r.status_code, r.json()["error"]) == (status, code), r.json()


def test_wrong_method_is_405_in_our_shape(season: Season) -> None:
    r = client(season).delete("/v1/checkpoint")
    assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")


# -- labels --------------------------------------------------------------------------------


def test_label_text_verifies_to_its_manifest(season: Season) -> None:
    text = good_label(season)
    r = client(season).post("/v1/labels/verify", content=text)
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True
    assert body["manifest"]["package_id"] == "SX27-INT-0001"
    assert body["sealed_by"]["subject"] == "print-qian"
    assert "label" not in body


FORMAT = {(400, "format")}

LABEL_REFUSALS: list[tuple[str, Callable[[Season], str | bytes], set[tuple[int, str]]]] = [
    ("stranger-resigned", stranger_label, {(422, "unknown_signer")}),
    ("forged-under-printer-kid", forged_label, {(422, "signature")}),
    ("not-a-label", lambda s: "hello", FORMAT),
    ("future-version", lambda s: "CP2:ABC", FORMAT),
    ("binary", lambda s: b"\xff\x00\x01", FORMAT),
    ("empty", lambda s: b"", FORMAT),
    # A changed character breaks the zlib stream (format) or, uncompressed, the signature.
    ("flipped-character", lambda s: _flip(good_label(s)), FORMAT | {(422, "signature")}),
]


def _flip(text: str) -> str:
    """Change one Base45 character in the middle."""
    i = len(text) // 2
    return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]


@pytest.mark.parametrize(
    ("make", "expected"), [r[1:] for r in LABEL_REFUSALS], ids=[r[0] for r in LABEL_REFUSALS]
)
def test_label_refusals(
    season: Season, make: Callable[[Season], str | bytes], expected: set[tuple[int, str]]
) -> None:
    r = client(season).post("/v1/labels/verify", content=make(season))
    assert (r.status_code, r.json()["error"]) in expected, r.json()


def test_label_photo_scans_and_verifies(season: Season) -> None:
    text = good_label(season)
    r = client(season).post(
        "/v1/labels/scan", content=label_png(season, text), headers={"content-type": "image/png"}
    )
    assert r.status_code == 200, r.json()
    assert r.json()["label"] == text
    assert r.json()["manifest"]["copy_count"] == 30


SCAN_REFUSALS: list[tuple[str, Callable[[Season], bytes], int, str]] = [
    ("tampered-label", lambda s: label_png(s, stranger_label(s)), 422, "unknown_signer"),
    ("no-code-in-view", lambda s: blank_png(), 400, "scan"),
    ("not-an-image", lambda s: b"GIF89a but not really", 400, "format"),
    ("empty-body", lambda s: b"", 400, "format"),
]


@pytest.mark.parametrize(
    ("make", "status", "code"), [r[1:] for r in SCAN_REFUSALS], ids=[r[0] for r in SCAN_REFUSALS]
)
def test_scan_refusals(
    season: Season, make: Callable[[Season], bytes], status: int, code: str
) -> None:
    r = client(season).post("/v1/labels/scan", content=make(season))
    assert (r.status_code, r.json()["error"]) == (status, code), r.json()


# -- web page and schema -------------------------------------------------------------------


def test_scan_page_and_script_are_served_locally_under_a_strict_policy(season: Season) -> None:
    c = client(season)
    page = c.get("/scan")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert 'src="/scan.js"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    script = c.get("/scan.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/v1/labels/scan" in script.text
    assert "innerHTML" not in script.text
    assert "https://" not in script.text
    assert c.get("/scan.css").status_code == 200


def test_openapi_documents_every_route(season: Season) -> None:
    schema = client(season).get("/openapi.json").json()
    paths = schema["paths"]
    for path, method in [
        ("/healthz", "get"),
        ("/livez", "get"),
        ("/readyz", "get"),
        ("/v1/trust-bundle", "get"),
        ("/v1/checkpoint", "get"),
        ("/v1/events", "post"),
        ("/v1/entries/{index}", "get"),
        ("/v1/proofs/inclusion", "get"),
        ("/v1/proofs/consistency", "get"),
        ("/v1/packages/{package_id}", "get"),
        ("/v1/labels/verify", "post"),
        ("/v1/labels/scan", "post"),
    ]:
        assert method in paths[path], path
    assert "requestBody" in paths["/v1/events"]["post"]
    assert "/scan" not in paths


def test_an_id_the_path_pattern_admits_but_the_id_rule_refuses_is_422(season: Season) -> None:
    """U+31350 is a letter to the route's pattern (newer Unicode) but not to the id rule:
    schemathesis found it answered an undocumented 400; it answers as every bad path parameter."""
    c = client(season)
    headers = as_person(c, season, "secrecy-chen")
    for path in ("/v1/packages/%F0%B1%8D%90", "/v1/packages/%F0%B1%8D%90/timeline"):
        r = c.get(path, headers=headers)
        assert (r.status_code, r.json()["error"]) == (422, "invalid_request"), r.text
        assert r.json()["message_zh"]
