"""Ed25519 signing keys, verification keys and key ids (RFC 8032, via libsodium).

Rules:
- A key id is the lowercase hex SHA-256 of ``"<alg>:" || raw public key`` (alg ``ed25519`` or
  ``x25519``); it names a key and carries no authority by itself.
- A public key offered for enrolment or verification must be a canonical encoding of a point in
  the prime-order subgroup: small-order and non-canonical encodings are refused (OpenSSL accepts
  some of them; libsodium's ``crypto_core_ed25519_is_valid_point`` does the check).
- Every signature this product makes is over a domain-separated message: DSSE's PAE (the
  payload type), COSE's Sig_structure, or a signed note's text. ``sign_context`` gives the
  same separation to anything else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.signing

from crypto.errors import N_, SignatureError, WeakKeyError

ED25519 = "ed25519"
X25519 = "x25519"


def key_id(alg: str, raw_public_key: bytes) -> str:
    """The documented key id: hex(SHA-256(alg || ":" || raw public key))."""
    return hashlib.sha256(alg.encode("ascii") + b":" + raw_public_key).hexdigest()


def context_message(context: str, message: bytes) -> bytes:
    """Domain separation for raw signatures: ``"custody/v1/" || context || 0x00 || message``."""
    return b"custody/v1/" + context.encode("ascii") + b"\x00" + message


def check_ed25519_public_key(raw: bytes) -> None:
    """Refuse anything but a canonical, prime-order Ed25519 point encoding."""
    if len(raw) != 32:
        raise WeakKeyError(N_("an Ed25519 public key is 32 bytes, not {n_raw}"), n_raw=len(raw))
    if not sodium.crypto_core_ed25519_is_valid_point(raw):
        raise WeakKeyError(
            N_("Ed25519 public key refused: small-order, non-canonical or not on the curve")
        )


def check_x25519_public_key(raw: bytes) -> None:
    """Refuse an X25519 public key of low order (every shared secret with it is zero)."""
    if len(raw) != 32:
        raise WeakKeyError(N_("an X25519 public key is 32 bytes, not {n_raw}"), n_raw=len(raw))
    probe = nacl.public.PrivateKey.generate()
    try:
        # libsodium refuses a result of all zeros, which is what a low-order point gives.
        sodium.crypto_scalarmult(bytes(probe), raw)
    except (nacl.exceptions.RuntimeError, RuntimeError) as e:
        raise WeakKeyError(N_("X25519 public key refused: it has low order")) from e


@dataclass(frozen=True)
class VerifyKey:
    """An Ed25519 public key that passed the canonical, prime-order check."""

    raw: bytes
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        check_ed25519_public_key(self.raw)
        object.__setattr__(self, "key_id", key_id(ED25519, self.raw))

    def is_valid(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            sodium.crypto_sign_open(signature + message, self.raw)
        except nacl.exceptions.BadSignatureError:
            return False
        return True

    def verify(self, message: bytes, signature: bytes) -> None:
        if not self.is_valid(message, signature):
            raise SignatureError(
                N_("signature by key {key_id} does not verify"), key_id=self.key_id[:16]
            )

    def verify_context(self, context: str, message: bytes, signature: bytes) -> None:
        self.verify(context_message(context, message), signature)


class SigningKey:
    """An Ed25519 private key. Never printed, never logged."""

    __slots__ = ("_key", "verify_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.verify_key = VerifyKey(bytes(self._key.verify_key))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def key_id(self) -> str:
        return self.verify_key.key_id

    def seed(self) -> bytes:
        return bytes(self._key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def sign_context(self, context: str, message: bytes) -> bytes:
        return self.sign(context_message(context, message))

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id[:16]}…)"


class EncryptionKey:
    """An X25519 private key (for data keys and shares sealed to a person)."""

    __slots__ = ("_key", "public_raw")

    def __init__(self, secret: bytes) -> None:
        self._key = nacl.public.PrivateKey(secret)
        self.public_raw = bytes(self._key.public_key)

    @classmethod
    def generate(cls) -> EncryptionKey:
        return cls(bytes(nacl.public.PrivateKey.generate()))

    @property
    def key_id(self) -> str:
        return key_id(X25519, self.public_raw)

    def secret(self) -> bytes:
        return bytes(self._key)

    def private_key(self) -> nacl.public.PrivateKey:
        return self._key

    def __repr__(self) -> str:
        return f"EncryptionKey(key_id={self.key_id[:16]}…)"
