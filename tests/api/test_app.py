"""The HTTP API over a real season: every route, every refusal mapped to its status, no 500."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import MAX_BODY, Settings, create_app
from crypto import merkle
from crypto.encoding import b64decode
from crypto.note import NoteVerifier, open_checkpoint
from crypto.signing import SigningKey
from custody.demo import Season
from custody.events import Kind
from tests.conftest import PASS
from tests.custody.test_log import SEALS, seal


@pytest.fixture
def client(season: Season) -> TestClient:
    seal(season)
    app = create_app(Settings(home=season.home.path, log_passphrase=PASS, clock=lambda: season.now))
    return TestClient(app, raise_server_exceptions=False)


def dispatch(season: Season, to: str = "courier-sun") -> bytes:
    return season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": to},
        signers=["print-qian", to],
        body={"seals": SEALS},
    ).to_bytes()


def test_submit_receipt_proof_and_package(client: TestClient, season: Season) -> None:
    assert client.get("/healthz").json() == {"ok": True, "size": 1, "writable": True}
    body = dispatch(season)
    r = client.post("/v1/events", content=body)
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert receipt["index"] == 1
    again = client.post("/v1/events", content=body)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True

    note = client.get("/v1/checkpoint").text
    authority = season.trust().authority
    checkpoint, _ = open_checkpoint(note, [NoteVerifier(authority.log_origin, authority.log_key)])
    proof = [
        b64decode(h)
        for h in client.get("/v1/proofs/inclusion", params={"index": 1}).json()["proof"]
    ]
    leaf = merkle.leaf_hash(client.get("/v1/entries/1").content)
    merkle.verify_inclusion(leaf, 1, checkpoint.size, proof, checkpoint.root)
    assert client.get("/v1/proofs/consistency", params={"old": 1}).status_code == 200

    pkg = client.get("/v1/packages/PK-1").json()
    assert pkg["state"]["holder"] == "courier-sun"
    assert pkg["history"] == [0, 1]
    assert json.loads(client.get("/v1/trust").content)["authority"]


def only_first_signature(body: bytes) -> bytes:
    env = json.loads(body)
    env["signatures"] = env["signatures"][:1]
    return json.dumps(env).encode()


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda s: b"{not json", 400, "format"),
        (
            lambda s: (
                b'{"payload":"","payloadType":"x","signatures":[{"keyid":"","sig":"'
                + b"A" * 86
                + b'=="}]}'
            ),
            400,
            "format",
        ),
        (lambda s: dispatch(s, to="courier-li"), 403, "route"),
        (lambda s: only_first_signature(dispatch(s)), 422, "threshold"),
        (
            lambda s: (
                s.event(
                    Kind.DISPATCH,
                    ["PK-1"],
                    actors={"releaser": "print-qian", "receiver": "courier-sun"},
                    signers=["print-qian", "courier-sun"],
                    body={"seals": SEALS},
                )
                .with_signature(SigningKey.generate())
                .to_bytes()
            ),
            422,
            "unknown_signer",
        ),
        (
            lambda s: s.event(
                Kind.DISPATCH,
                ["PK-9"],
                actors={"releaser": "print-qian", "receiver": "courier-sun"},
                signers=["print-qian", "courier-sun"],
                body={"seals": SEALS},
            ).to_bytes(),
            409,
            "chain",
        ),
    ],
    ids=[
        "bad-json",
        "not-an-event",
        "off-route",
        "receiver-missing",
        "stranger-signature",
        "unknown-package",
    ],
)
def test_refusals_map_to_statuses(
    client: TestClient, season: Season, make: object, status: int, code: str
) -> None:
    r = client.post("/v1/events", content=make(season))  # type: ignore[operator]
    assert r.status_code == status, r.text + repr(make)
    assert r.json()["error"] == code, r.json()
    assert client.get("/healthz").json()["size"] == 1  # nothing stored


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/entries/7", 404),
        ("/v1/entries/-1", 400),
        ("/v1/entries/abc", 400),
        ("/v1/proofs/inclusion?index=5", 400),
        ("/v1/proofs/consistency?old=0", 400),
        ("/v1/packages/nope", 404),
        ("/v1/incidents/INC-404", 404),
    ],
)
def test_bad_reads(client: TestClient, path: str, status: int) -> None:
    r = client.get(path)
    assert r.status_code == status, r.text
    assert "error" in r.json()


def test_batch_and_read_only_and_size_limit(client: TestClient, season: Season) -> None:
    batch = [json.loads(dispatch(season)), json.loads(dispatch(season, to="courier-li"))]
    r = client.post("/v1/events", content=json.dumps(batch))
    assert r.status_code == 200
    out = r.json()
    assert [a["index"] for a in out["accepted"]] == [1]
    # Judged after the first: the package's holder is now courier-sun, who did not sign it.
    assert out["refused"][0]["error"] == "threshold"
    assert client.post("/v1/events", content=b"x" * (MAX_BODY + 1)).status_code == 413
    read_only = TestClient(
        create_app(Settings(home=season.home.path)), raise_server_exceptions=False
    )
    r = read_only.post("/v1/events", content=dispatch(season))
    assert r.status_code == 503
    assert r.json()["error"] == "storage"


def test_label_verify(client: TestClient, season: Season) -> None:
    r = client.post("/v1/labels/verify", content=b"CP1:NOT-BASE45!")
    assert r.status_code == 400
    assert r.json()["error"] == "format"
    r = client.post("/v1/labels/verify", content="标签".encode())
    assert r.status_code == 400


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=600), st.sampled_from(["/v1/events", "/v1/labels/verify"]))
def test_no_input_produces_a_500(client: TestClient, body: bytes, path: str) -> None:
    r = client.post(path, content=body)
    assert r.status_code < 500 or r.status_code == 503, (body, r.text)
