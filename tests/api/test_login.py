"""Login without passwords through the real app: challenge, signed statement, session token;
replay, expiry, revocation and forgery refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from crypto.dsse import Envelope, Signature
from crypto.encoding import parse_time
from custody import identity
from custody.demo import Season
from custody.sessions import LOGIN_TYPE, Challenge, login_payload, sign_login
from keys.model import RevocationReason
from tests.api.helpers import STRANGER, client, login_token, seal_event
from tests.conftest import PASS

JSON = {"content-type": "application/json"}


def _challenge(c: TestClient) -> Challenge:
    got = c.post("/v1/login/challenge").json()
    return Challenge(got["challenge"], got["origin"], parse_time(got["expires_at"]))


def _login(c: TestClient, statement: Envelope) -> tuple[int, dict[str, object]]:
    r = c.post("/v1/login", content=statement.to_bytes(), headers=JSON)
    return r.status_code, r.json()


def _read(c: TestClient, token: str) -> tuple[int, str]:
    r = c.get("/v1/proofs/consistency?old=1&new=1", headers={"authorization": f"Bearer {token}"})
    return r.status_code, r.json().get("error", "")


@pytest.fixture
def c(season: Season) -> TestClient:
    season.submit(seal_event(season))
    return client(season)


def test_login_names_the_key_the_person_and_their_roles(season: Season, c: TestClient) -> None:
    status, body = _login(c, sign_login(_challenge(c), season.keys["courier-sun"].signing))
    assert status == 200
    assert body["subject"] == "courier-sun"
    assert body["roles"] == ["courier"]
    assert body["key_id"] == season.keys["courier-sun"].signing.key_id
    assert str(body["token"]).startswith("v4.public.")
    assert _read(c, str(body["token"])) == (200, "")


def test_a_challenge_is_single_use(season: Season, c: TestClient) -> None:
    statement = sign_login(_challenge(c), season.keys["courier-sun"].signing)
    assert _login(c, statement)[0] == 200
    status, body = _login(c, statement)  # replayed
    assert (status, body["error"]) == (401, "login_failed")


def test_a_challenge_expires(season: Season, c: TestClient) -> None:
    statement = sign_login(_challenge(c), season.keys["courier-sun"].signing)
    season.tick(3)  # the challenge lives 2 minutes
    status, body = _login(c, statement)
    assert (status, body["error"]) == (401, "login_failed")


def _statement(challenge: Challenge, key_id: str, origin: str, sigs: list[Signature]) -> Envelope:
    return Envelope(LOGIN_TYPE, login_payload(challenge.nonce, origin, key_id), tuple(sigs))


BAD = ["other-origin", "no-hint", "two-signatures", "forged-by-stranger", "unknown-key"]


@pytest.mark.parametrize("case", BAD)
def test_bad_login_statements_are_refused(season: Season, c: TestClient, case: str) -> None:
    ch = _challenge(c)
    sun = season.keys["courier-sun"].signing
    kid = sun.key_id
    origin = ch.origin
    if case == "other-origin":
        origin = "https://phish.example"
    env = _statement(ch, kid if case != "unknown-key" else STRANGER.key_id, origin, [])
    signer = STRANGER if case in ("forged-by-stranger", "unknown-key") else sun
    sig = Signature(
        "" if case == "no-hint" else (STRANGER.key_id if case == "unknown-key" else kid),
        signer.sign(env.signed_bytes()),
    )
    sigs = [sig, sig] if case == "two-signatures" else [sig]
    status, body = _login(c, Envelope(env.payload_type, env.payload, tuple(sigs)))
    assert (status, body["error"]) == (401, "login_failed")
    # the challenge was not spent by a refused statement: the right one still logs in
    assert _login(c, sign_login(ch, sun))[0] == 200


def test_a_session_expires_at_the_services_clock(season: Season, c: TestClient) -> None:
    token = login_token(c, season, "auditor-chu")
    season.tick(14)
    assert _read(c, token) == (200, "")
    season.tick(2)  # 16 minutes: the session lived 15
    assert _read(c, token) == (401, "login_required")


@pytest.mark.parametrize(
    "reason", [RevocationReason.KEY_COMPROMISE, RevocationReason.LEFT_POST], ids=str
)
def test_revoking_the_key_ends_the_session_at_once(
    season: Season, c: TestClient, reason: RevocationReason
) -> None:
    token = login_token(c, season, "auditor-chu")
    assert _read(c, token) == (200, "")
    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=season.keys["auditor-chu"].signing.key_id,
        reason=reason,
        effective_at=season.now,
        now=season.now,
    )
    assert _read(c, token) == (401, "login_required")
    status, body = _login(c, sign_login(_challenge(c), season.keys["auditor-chu"].signing))
    assert (status, body["error"]) == (401, "login_failed")


def test_the_certificates_expiry_ends_the_session(season: Season, c: TestClient) -> None:
    token = login_token(c, season, "auditor-chu")
    cert = season.trust().certificate(season.keys["auditor-chu"].signing.key_id)
    season.now = cert.not_after + timedelta(seconds=1)
    assert _read(c, token) == (401, "login_required")


@pytest.mark.parametrize("header", ["Bearer ", "Basic abc", "Bearer v4.public.AAAA", "Bearer x"])
def test_a_bad_authorization_header_is_401_never_anonymous(c: TestClient, header: str) -> None:
    r = c.get("/v1/proofs/consistency?old=1&new=1", headers={"authorization": header})
    assert (r.status_code, r.json()["error"]) == (401, "login_required")


def test_a_tampered_token_is_refused(season: Season, c: TestClient) -> None:
    token = login_token(c, season, "courier-sun")
    head, body = token[:20], token[20:]
    flipped = head + ("A" if body[0] != "A" else "B") + body[1:]
    assert _read(c, flipped) == (401, "login_required")


def test_a_read_only_replica_checks_sessions_but_issues_none(season: Season, c: TestClient) -> None:
    token = login_token(c, season, "auditor-chu")
    replica = client(season, writable=False)
    assert _read(replica, token) == (200, "")
    status, body = _login(
        replica, sign_login(_challenge(replica), season.keys["auditor-chu"].signing)
    )
    assert (status, body["error"]) == (401, "login_failed")


def test_login_refuses_a_form_post(season: Season, c: TestClient) -> None:
    statement = sign_login(_challenge(c), season.keys["courier-sun"].signing)
    r = c.post("/v1/login", content=statement.to_bytes(), headers={"content-type": "text/plain"})
    assert (r.status_code, r.json()["error"]) == (415, "unsupported_media_type")
