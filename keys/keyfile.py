"""Key files: a person's (or the authority's) private keys, sealed under a passphrase.

Format (JSON, see docs/formats.md "Key file"): a public header (format, label, kdf parameters
and salt, AEAD nonce, public keys) and the ciphertext of the secret keys. The header's canonical
JSON is the AEAD's associated data, so no header byte can change without opening failing.

Rules:
- Writing is atomic (temp file in the same folder, fsync, rename) and never replaces a file.
- Opening with a wrong passphrase, or a file altered in any byte, is one detail-free error and
  leaves the file untouched.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypto.encoding import Fields, b64encode, canonical_json, parse_json_object
from crypto.errors import (
    N_,
    ConflictError,
    FormatError,
    NotFoundError,
    PassphraseError,
    Phrase,
    WeakPassphraseError,
)
from crypto.files import CAP_KEY, read_user_file
from crypto.sealing import AEAD_ALG, KDF_ALG, KdfParams, aead_decrypt, aead_encrypt, new_nonce
from crypto.signing import EncryptionKey, SigningKey

KEYFILE_FORMAT = "custody-keyfile/v1"
MAX_KEYFILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class KeyPair:
    """A signing key and an optional encryption key, in memory only."""

    label: str
    signing: SigningKey
    encryption: EncryptionKey | None

    @classmethod
    def generate(cls, label: str, *, with_encryption: bool = True) -> KeyPair:
        enc = EncryptionKey.generate() if with_encryption else None
        return cls(label, SigningKey.generate(), enc)


def _header(label: str, kdf: KdfParams, nonce: bytes, pair: KeyPair) -> dict[str, Any]:
    public: dict[str, str] = {"ed25519": b64encode(pair.signing.verify_key.raw)}
    if pair.encryption is not None:
        public["x25519"] = b64encode(pair.encryption.public_raw)
    return {
        "format": KEYFILE_FORMAT,
        "label": label,
        "kdf": {
            "alg": KDF_ALG,
            "opslimit": kdf.opslimit,
            "memlimit": kdf.memlimit,
            "salt": b64encode(kdf.salt),
        },
        "aead": {"alg": AEAD_ALG, "nonce": b64encode(nonce)},
        "public": public,
    }


MIN_PASSPHRASE_CHARS = 12


def seal_keypair(pair: KeyPair, passphrase: str, *, kdf: KdfParams | None = None) -> bytes:
    if not passphrase:
        raise PassphraseError(N_("an empty passphrase cannot seal a key file"))
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise WeakPassphraseError(
            N_(
                "a passphrase that seals a key has at least "
                "{min_passphrase_chars} characters (this one has "
                "{n_passphrase})"
            ),
            hint=N_("use several words, e.g. four unrelated words with spaces"),
            min_passphrase_chars=MIN_PASSPHRASE_CHARS,
            n_passphrase=len(passphrase),
        )
    kdf = kdf or KdfParams.fresh()
    secret = {"ed25519_seed": b64encode(pair.signing.seed())}
    if pair.encryption is not None:
        secret["x25519_secret"] = b64encode(pair.encryption.secret())
    key = kdf.derive(passphrase)
    nonce = new_nonce()
    header = _header(pair.label, kdf, nonce, pair)
    ciphertext = aead_encrypt(key, nonce, canonical_json(secret), canonical_json(header))
    return canonical_json({**header, "ciphertext": b64encode(ciphertext)}) + b"\n"


@dataclass(frozen=True)
class UnverifiedKeyFile:
    header: dict[str, Any]
    kdf: KdfParams
    nonce: bytes
    ciphertext: bytes
    label: str


def parse_keyfile(data: bytes) -> UnverifiedKeyFile:
    if len(data) > MAX_KEYFILE_BYTES:
        raise FormatError(N_("key file is too large to be a key file"))
    obj = parse_json_object(data, what=Phrase("key file"))
    f = Fields(obj, what=Phrase("key file"))
    f.expect("format", KEYFILE_FORMAT)
    kdf_f = f.sub("kdf")
    kdf_f.expect("alg", KDF_ALG)
    aead_f = f.sub("aead")
    aead_f.expect("alg", AEAD_ALG)
    f.sub("public")
    header = {k: v for k, v in obj.items() if k != "ciphertext"}
    return UnverifiedKeyFile(
        header=header,
        kdf=KdfParams(kdf_f.integer("opslimit"), kdf_f.integer("memlimit"), kdf_f.blob("salt")),
        nonce=aead_f.blob("nonce"),
        ciphertext=f.blob("ciphertext"),
        label=f.text("label"),
    )


def open_keypair(data: bytes, passphrase: str) -> KeyPair:
    unverified = parse_keyfile(data)
    try:
        key = unverified.kdf.derive(passphrase)
        aad = canonical_json(unverified.header)
        plain = aead_decrypt(key, unverified.nonce, unverified.ciphertext, aad)
    except Exception as e:
        raise PassphraseError() from e
    secret = Fields(
        parse_json_object(plain, what=Phrase("key file secret")), what=Phrase("key file secret")
    )
    signing = SigningKey(secret.blob("ed25519_seed"))
    enc_raw = secret.obj.get("x25519_secret")
    encryption = EncryptionKey(secret.blob("x25519_secret")) if enc_raw is not None else None
    public = Fields(unverified.header["public"], what=Phrase("key file public keys"))
    if public.blob("ed25519") != signing.verify_key.raw:
        raise FormatError(N_("key file: public key does not match the sealed secret key"))
    return KeyPair(unverified.label, signing, encryption)


def write_new_file(path: Path, data: bytes, *, mode: int = 0o600, replace: bool = False) -> None:
    """Write atomically (temp file, fsync, link or rename); refuse to replace unless asked."""
    if path.exists() and not replace:
        raise ConflictError(N_("{path} already exists; refusing to overwrite it"), path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path appeared meanwhile: never replaces
    except FileExistsError as e:
        raise ConflictError(N_("{path} already exists; refusing to overwrite it"), path=path) from e
    finally:
        Path(tmp).unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_keyfile(path: Path, passphrase: str) -> KeyPair:
    try:
        data = read_user_file(path, what=Phrase("key file"), limit=CAP_KEY, stdin=False)
    except NotFoundError as e:
        raise NotFoundError(N_("no key file at {path}"), path=path) from e
    return open_keypair(data, passphrase)
