"""Session tokens: PASETO v4.public (Ed25519), through pyseto (docs/adr/0006).

Rules:
- A token is ``v4.public.<payload+signature>.<footer>``: the payload is canonical JSON claims,
  the footer names the signing key id, and the implicit assertion (signed, not carried) binds
  the token to one audience (the service's log origin), so a token for one authority's
  service is refused by another's.
- Opening a token checks the signature only; the claims (expiry, the key's standing) are
  judged by the caller at its own clock, as everything else here takes time as an argument.
- Every failure is ``LoginRequiredError`` (a token that does not verify, or is not a token):
  the caller learns nothing more than "log in again".
"""

from __future__ import annotations

from typing import Any

import pyseto
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pyseto import Key

from crypto.encoding import canonical_json, parse_json_object
from crypto.errors import N_, FormatError, LoginRequiredError, Phrase
from crypto.signing import SigningKey, VerifyKey

PREFIX = "v4.public."
MAX_TOKEN = 4096  # characters; a session token with a few roles is well under 1 KiB


def _private(key: SigningKey) -> Any:
    pem = Ed25519PrivateKey.from_private_bytes(key.seed()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Key.new(version=4, purpose="public", key=pem)


def _public(key: VerifyKey) -> Any:
    pem = Ed25519PublicKey.from_public_bytes(key.raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Key.new(version=4, purpose="public", key=pem)


class TokenSigner:
    """Signs session tokens with one Ed25519 key (the pyseto key is built once)."""

    def __init__(self, key: SigningKey, audience: str) -> None:
        self._key = _private(key)
        self.key_id = key.key_id
        self.audience = audience

    def sign(self, claims: dict[str, Any]) -> str:
        footer = canonical_json({"kid": self.key_id})
        token = pyseto.encode(
            self._key,
            payload=canonical_json(claims),
            footer=footer,
            implicit_assertion=self.audience.encode(),
        )
        return token.decode("ascii")


class TokenVerifier:
    """Opens session tokens signed by one key for one audience."""

    def __init__(self, key: VerifyKey, audience: str) -> None:
        self._key = _public(key)
        self.key_id = key.key_id
        self.audience = audience

    def open(self, token: str) -> dict[str, Any]:
        """The token's claims, once its signature verified; ``LoginRequiredError`` otherwise."""
        if not token.startswith(PREFIX) or len(token) > MAX_TOKEN or not token.isascii():
            raise LoginRequiredError(
                N_("the session token is not a v4.public token of this service")
            )
        try:
            decoded = pyseto.decode(self._key, token, implicit_assertion=self.audience.encode())
        except Exception as e:
            raise LoginRequiredError(N_("the session token does not verify: log in again")) from e
        payload = decoded.payload
        try:
            if not isinstance(payload, bytes):  # pragma: no cover - no deserializer was given
                raise FormatError(N_("session token claims are not bytes"))
            return parse_json_object(payload, what=Phrase("session token"))
        except FormatError as e:  # pragma: no cover - only our own signer makes tokens
            raise LoginRequiredError(N_("the session token holds no claims")) from e


__all__ = ["TokenSigner", "TokenVerifier"]
