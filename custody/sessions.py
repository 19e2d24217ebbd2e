"""Login without passwords: a challenge signed by a person's enrolled key buys a short session.

Flow (docs/formats.md "Login"):
1. ``issue_challenge``: a random nonce, stored with its expiry (default 2 minutes).
2. The person signs a login statement (a DSSE envelope of ``LOGIN_TYPE``: the challenge, the
   service's origin and their key id) with their enrolled Ed25519 key, the key id as hint.
3. ``login``: the statement is verified (one signature, hinted, by the key it names; the key in
   good standing now; the origin is this service's), the challenge is spent (single use: the
   row flips from unused to used in one UPDATE, so two processes cannot both spend it), and a
   PASETO v4.public token is signed with the authority's system key (docs/adr/0006).
4. ``principal_of``: every request's token is opened, its expiry judged at the service's clock,
   and its key's standing re-checked against the current trust store: a revocation or the
   certificate's expiry ends the session at once, whatever the token's own expiry says.

Mutating requests (events, cosignatures) never use a session: their own signatures are the
authentication.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crypto.dsse import Envelope
from crypto.encoding import Fields, canonical_json, format_time, parse_json_object, parse_time
from crypto.errors import CustodyError
from crypto.signing import SigningKey, VerifyKey
from crypto.tokens import TokenSigner, TokenVerifier
from custody.access import Principal
from custody.errors import N_, FormatError, LoginError, LoginRequiredError, Phrase
from custody.store.challenges import add_challenge, spend_challenge
from custody.store.handles import Database
from keys.trust import TrustStore

LOGIN_TYPE = "application/vnd.custody.login.v1+json"
CHALLENGE_TTL = timedelta(minutes=2)
SESSION_TTL = timedelta(minutes=15)
OPENED_CACHE = 10_000  # verified tokens kept per process
TOKEN_TYPE = "custody.session.v1"  # noqa: S105 - a claim type, not a secret


@dataclass(frozen=True)
class Challenge:
    nonce: str
    origin: str
    expires_at: datetime

    def as_dict(self) -> dict[str, str]:
        return {
            "challenge": self.nonce,
            "origin": self.origin,
            "expires_at": format_time(self.expires_at),
            "payload_type": LOGIN_TYPE,
        }


def login_payload(challenge: str, origin: str, key_id: str) -> bytes:
    """What a person signs to log in (the client side of ``login``)."""
    return canonical_json(
        {"type": "custody.login.v1", "challenge": challenge, "origin": origin, "key_id": key_id}
    )


def sign_login(challenge: Challenge, key: SigningKey) -> Envelope:
    """A login statement for ``challenge`` signed by ``key`` (clients and tests)."""
    env = Envelope(LOGIN_TYPE, login_payload(challenge.nonce, challenge.origin, key.key_id), ())
    return env.with_signature(key)


def issue_challenge(
    engine: Database, origin: str, now: datetime, ttl: timedelta = CHALLENGE_TTL
) -> Challenge:
    """A fresh challenge, stored unused; expired ones are swept on the way."""
    nonce = secrets.token_urlsafe(32)
    expires = now + ttl
    add_challenge(engine, nonce, expires, now)
    return Challenge(nonce, origin, expires)


def _spend(engine: Database, nonce: str, now: datetime) -> None:
    if not spend_challenge(engine, nonce, now):
        raise LoginError(
            N_("the login challenge is unknown, expired or already used"),
            hint=N_("ask for a new challenge (POST /v1/login/challenge) and sign it at once"),
        )


class Sessions:
    """Issues and checks session tokens for one authority's service.

    ``signer`` is the authority's system key (a writer); a reader (no key) still checks the
    tokens a writer issued, with the public system key from the authority statement."""

    def __init__(
        self, trust: TrustStore, signer: SigningKey | None, *, ttl: timedelta = SESSION_TTL
    ) -> None:
        authority = trust.authority
        self.audience = authority.log_origin
        self.ttl = ttl
        self._signer = TokenSigner(signer, self.audience) if signer is not None else None
        self._verifier = TokenVerifier(authority.system_key, self.audience)
        # Tokens whose signature verified (bytes -> claims; the same bytes verify the same way
        # every time). Expiry and the key's standing are still judged on every request.
        self._opened: dict[str, dict[str, Any]] = {}

    @property
    def can_issue(self) -> bool:
        return self._signer is not None

    def login(
        self,
        engine: Database,
        statement: Envelope,
        trust: TrustStore,
        *,
        origin: str,
        now: datetime,
    ) -> tuple[str, Principal, datetime]:
        """Verify a signed login statement, spend its challenge, and issue a token."""
        if statement.payload_type != LOGIN_TYPE:
            raise FormatError(
                N_("login: payload type {payload_type!r}, not {login_type}"),
                payload_type=statement.payload_type,
                login_type=LOGIN_TYPE,
            )
        f = Fields(parse_json_object(statement.payload, what=Phrase("login")), what=Phrase("login"))
        f.expect("type", "custody.login.v1")
        key_id, nonce, claimed_origin = f.text("key_id"), f.text("challenge"), f.text("origin")
        if len(statement.signatures) != 1 or statement.signatures[0].keyid != key_id:
            raise LoginError(N_("a login statement carries one signature, hinted by its key id"))
        if claimed_origin != origin:
            raise LoginError(
                N_(
                    "the login statement names origin {claimed_origin!r}, not "
                    "this service's {origin!r}"
                ),
                claimed_origin=claimed_origin,
                origin=origin,
            )
        try:
            cert = trust.standing_at(key_id, now, received=now)
        except CustodyError as e:
            raise LoginError(N_("this key may not log in: {error}"), error=e) from e
        key: VerifyKey = cert.signing_key
        if not key.is_valid(statement.signed_bytes(), statement.signatures[0].sig):
            raise LoginError(N_("the login statement's signature does not verify under its key"))
        _spend(engine, nonce, now)
        if self._signer is None:
            raise LoginError(
                N_("this service was started without the system key: it cannot issue sessions"),
                hint=N_("log in at the service that holds the system key"),
            )
        expires = min(now + self.ttl, cert.not_after)
        claims = {
            "type": TOKEN_TYPE,
            "iss": trust.authority.id,
            "sub": cert.subject,
            "kid": cert.key_id,
            "roles": sorted(r.value for r in cert.roles),
            "iat": format_time(now),
            "exp": format_time(expires),
            "jti": secrets.token_urlsafe(16),
        }
        return self._signer.sign(claims), Principal.of(cert), expires

    def principal_of(self, token: str, trust: TrustStore, now: datetime) -> Principal:
        """The person a token names, if it verifies, is not expired and the key still stands."""
        claims = self._opened.get(token)
        if claims is None:
            claims = self._verifier.open(token)
            if len(self._opened) >= OPENED_CACHE:
                self._opened.clear()
            self._opened[token] = claims
        try:
            f = Fields(claims, what=Phrase("session token"))
            f.expect("type", TOKEN_TYPE)
            expires = parse_time(f.text("exp"), what=Phrase("session token exp"))
            kid, subject = f.text("kid"), f.text("sub")
        except FormatError as e:  # pragma: no cover - only our own signer makes tokens
            raise LoginRequiredError(N_("the session token's claims are malformed")) from e
        if now >= expires:
            raise LoginRequiredError(
                N_("the session expired at {expires}"),
                hint=N_("log in again"),
                expires=format_time(expires),
            )
        try:
            cert = trust.standing_at(kid, now, received=now)
        except CustodyError as e:
            raise LoginRequiredError(
                N_("the session's key no longer stands: {error}"), error=e
            ) from e
        if cert.subject != subject:  # pragma: no cover - a certificate's key names one person
            raise LoginRequiredError(N_("the session token names another person than its key"))
        return Principal.of(cert)


__all__ = [
    "CHALLENGE_TTL",
    "LOGIN_TYPE",
    "SESSION_TTL",
    "Challenge",
    "Sessions",
    "issue_challenge",
    "login_payload",
    "sign_login",
]
