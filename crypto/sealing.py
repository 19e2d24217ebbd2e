"""Secrets at rest: passphrase sealing (Argon2id + XChaCha20-Poly1305) and X25519 sealed boxes.

Rules:
- A passphrase-sealed blob records its KDF parameters and salt beside the ciphertext; the
  caller's associated data (the file's public header) is bound by the AEAD, so changing a
  parameter or a public field makes opening fail.
- Every failure to open is the same detail-free ``DecryptionError``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.pwhash
import nacl.utils

from crypto.errors import DecryptionError

KDF_ALG = "argon2id13"
AEAD_ALG = "xchacha20poly1305-ietf"
# libsodium's "interactive" Argon2id profile: 2 passes over 64 MiB.
DEFAULT_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
DEFAULT_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
MIN_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MIN
MIN_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MIN
MAX_MEMLIMIT = 1 << 30


@dataclass(frozen=True)
class KdfParams:
    opslimit: int
    memlimit: int
    salt: bytes

    @classmethod
    def fresh(cls, opslimit: int = DEFAULT_OPSLIMIT, memlimit: int = DEFAULT_MEMLIMIT) -> KdfParams:
        return cls(opslimit, memlimit, nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES))

    def derive(self, passphrase: str) -> bytes:
        if not (
            MIN_OPSLIMIT <= self.opslimit <= 16 and MIN_MEMLIMIT <= self.memlimit <= MAX_MEMLIMIT
        ):
            raise DecryptionError("key file KDF parameters are out of the accepted range")
        if len(self.salt) != nacl.pwhash.argon2id.SALTBYTES:
            raise DecryptionError("key file KDF salt has the wrong length")
        return nacl.pwhash.argon2id.kdf(
            32,
            passphrase.encode("utf-8"),
            self.salt,
            opslimit=self.opslimit,
            memlimit=self.memlimit,
        )


def new_nonce() -> bytes:
    """A random 24-byte XChaCha20 nonce (random nonces are safe at this size)."""
    return nacl.utils.random(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key)


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, aad, nonce, key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
        raise DecryptionError() from e


def derive_key(seed: bytes, info: bytes) -> bytes:
    """A 32-byte key for one purpose (``info``) from a secret seed (HKDF-SHA256, RFC 5869)."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - only where used
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(seed)


def seal_to(
    recipient_public: bytes, plaintext: bytes, *, ephemeral_seed: bytes | None = None
) -> bytes:
    """Anonymous X25519 sealed box (libsodium crypto_box_seal).

    ``ephemeral_seed`` (32 bytes) makes the box reproducible, for published test vectors and
    documentation examples only: the same format (ephemeral public key, then ``crypto_box``
    under the nonce BLAKE2b-192(ephemeral pk || recipient pk)), opened by ``open_sealed``;
    a seed used twice for two plaintexts to one recipient would break the box's secrecy."""
    if ephemeral_seed is None:
        return nacl.public.SealedBox(nacl.public.PublicKey(recipient_public)).encrypt(plaintext)
    epk, esk = sodium.crypto_box_seed_keypair(ephemeral_seed)
    nonce = hashlib.blake2b(epk + recipient_public, digest_size=24).digest()
    return epk + sodium.crypto_box(plaintext, nonce, recipient_public, esk)


def open_sealed(recipient: nacl.public.PrivateKey, sealed: bytes) -> bytes:
    try:
        return nacl.public.SealedBox(recipient).decrypt(sealed)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
        raise DecryptionError() from e
