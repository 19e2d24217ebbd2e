"""POST /v1/cosignatures and the checkpoint routes that serve the cosignatures the log holds."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from crypto.note import parse_checkpoint, parse_note
from custody.demo import Season
from custody.events import Kind
from tests.api.helpers import client, seal_event, transfer_event
from tests.custody.witness_helpers import WITNESSES, cosign_latest, write_policy

W1, W2, W3 = WITNESSES


def post(c: TestClient, text: str, **params: int) -> tuple[int, dict[str, object]]:
    r = c.post(
        "/v1/cosignatures",
        content=text.encode(),
        params=params,
        headers={"content-type": "text/plain"},
    )
    return r.status_code, r.json()


def test_a_witness_cosignature_is_stored_then_served(season: Season) -> None:
    write_policy(season.home.path, 2)
    c = client(season)
    assert c.post("/v1/events", content=seal_event(season).to_bytes()).status_code == 201
    note = c.get("/v1/checkpoint").text
    line1, line2 = cosign_latest(season, W1), cosign_latest(season, W2)

    status, body = post(c, line1)
    assert status == 201
    assert body["cosignatures"] == [
        {
            "size": 2,  # the exam's policy, the seal
            "witness": W1.name,
            "cosigned_at": int(season.now.timestamp()),
            "line": line1,
            "duplicate": False,
        }
    ]
    assert post(c, line1)[0] == 200  # a duplicate
    status, body = post(c, note + line1 + line2)  # the cosigned note: W2 is new
    assert status == 201
    assert [(a["witness"], a["duplicate"]) for a in body["cosignatures"]] == [  # type: ignore[union-attr, index]
        (W1.name, True),
        (W2.name, False),
    ]
    served = c.get("/v1/checkpoint").text
    assert served == note + line1 + line2
    assert [s.name for s in parse_note(served).signatures][1:] == [W1.name, W2.name]

    # The log grows: the latest checkpoint has none yet, size 2 keeps its cosignatures.
    env = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    assert c.post("/v1/events", content=env.to_bytes()).status_code == 201
    assert parse_note(c.get("/v1/checkpoint").text).signatures[1:] == ()
    assert c.get("/v1/checkpoint/2").text == served
    assert parse_checkpoint(parse_note(c.get("/v1/checkpoint/3").text).text).size == 3
    status, _ = post(c, line1.replace("\n", ""), size=2)  # lines alone, for size 2
    assert status == 200


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("forged", 422, "signature"),
        ("unknown-witness", 422, "unknown_signer"),
        ("wrong-size", 404, "not_found"),
        ("garbage", 400, "format"),
        ("not-utf8", 400, "format"),
        ("another-checkpoint", 409, "conflict"),
        ("too-large", 413, "too_large"),
        ("no-policy", 404, "not_found"),
    ],
)
def test_bad_cosignatures_are_refused_with_stable_codes(
    season: Season, case: str, status: int, code: str
) -> None:
    if case != "no-policy":
        write_policy(season.home.path, 1, WITNESSES[:2])
    c = client(season)
    assert c.post("/v1/events", content=seal_event(season).to_bytes()).status_code == 201
    note = c.get("/v1/checkpoint").text
    line = cosign_latest(season, W1)
    root = note.split("\n")[2]
    sig = parse_note(note + line).signatures[1]
    other = parse_note(note + cosign_latest(season, W2)).signatures[1]
    bodies: dict[str, bytes] = {
        "forged": type(sig)(W1.name, sig.key_hash, other.signature).line().encode(),
        "unknown-witness": cosign_latest(season, W3).encode(),
        "wrong-size": line.encode(),
        "garbage": b"hello",
        "not-utf8": b"\xff\xfe",
        "another-checkpoint": (note.replace(root, "A" * 43 + "=", 1) + line).encode(),
        "too-large": b"x" * (64 * 1024 + 1),
        "no-policy": line.encode(),
    }
    params = {"size": 5} if case == "wrong-size" else {}
    r = c.post("/v1/cosignatures", content=bodies[case], params=params)
    assert (r.status_code, r.json()["error"]) == (status, code), r.json()
    assert c.get("/v1/checkpoint").text == note


def test_read_only_service_stores_no_cosignature(season: Season) -> None:
    write_policy(season.home.path, 1)
    c = client(season)
    assert c.post("/v1/events", content=seal_event(season).to_bytes()).status_code == 201
    r = client(season, writable=False).post("/v1/cosignatures", content=cosign_latest(season, W1))
    assert (r.status_code, r.json()["error"]) == (503, "read_only")
    assert c.get("/v1/checkpoint/0").status_code == 404
    assert c.get("/v1/checkpoint/-1").status_code == 422


def test_the_witness_policy_is_served_for_pages_to_check_cosignatures(season: Season) -> None:
    c = client(season)
    r = c.get("/v1/witnesses")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    assert str(season.home.path) not in r.text  # no server path in the answer
    write_policy(season.home.path, 2)
    got = c.get("/v1/witnesses").json()
    assert got["quorum"] == 2
    assert [(w["name"], w["vkey"]) for w in got["witnesses"]] == [
        (w.name, w.verifier().vkey()) for w in WITNESSES
    ]
