"""C2SP signed notes, transparency-log checkpoints and witness cosignatures.

Specs: c2sp.org/signed-note, c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature (Ed25519 v1).

Rules:
- A signed note is UTF-8 text with no ASCII control character but newline: the note text
  (ending in a newline), a blank line, then one or more lines ``"— " name " " base64(key
  hash (4 bytes) || signature) "\\n"``. The text is separated from the signatures by the LAST
  blank line. Anything else is a ``FormatError``; so is a note with more than
  ``MAX_SIGNATURES`` signature lines (the spec requires accepting at least 16).
- Key names are non-empty, contain no Unicode space and no ``+``. A key hash is
  ``SHA-256(name || 0x0A || type || public key)[:4]``; type 0x01 is a plain Ed25519 note
  signature over the note text, type 0x04 an Ed25519 cosignature/v1 (below).
- Verifying (``verify_note``): a signature whose (name, key hash) matches no configured key is
  ignored, even if it shares the name or the hash (not both) with a known key. A signature by
  a known key MUST verify, else the whole note is refused (``SignatureError``); a known key
  signing twice is refused (``DuplicateSignatureError``); a note with no valid signature from
  a known key is refused (``UnknownSignerError``). The text means nothing before that.
- A checkpoint's text is ``origin "\\n" size "\\n" base64(root) "\\n"`` then optional non-empty
  extension lines. The size is decimal without leading zeros (``0`` for the empty tree) below
  2^64, the root exactly 32 bytes in padded standard base64.
- A cosignature/v1 signs ``"cosignature/v1\\ntime " decimal(t) "\\n" || checkpoint text``; its
  signature bytes are ``key hash || uint64 big-endian t || Ed25519 signature (64)``, and
  ``t`` stays below 2^63. It states that, at time ``t``, the checkpoint is the largest
  consistent tree head the cosigner has seen for that origin.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from crypto.encoding import b64decode, b64encode
from crypto.errors import (
    N_,
    DuplicateSignatureError,
    FormatError,
    Phrase,
    SignatureError,
    UnknownSignerError,
    UsageError,
    WeakKeyError,
)
from crypto.signing import SigningKey, VerifyKey

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20
SIGNATURE_PREFIX = "— "  # EM DASH, SPACE
COSIGNATURE_HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = (1 << 63) - 1

_SIZE_RE = re.compile(r"^(0|[1-9][0-9]{0,19})$")
_HEX8_RE = re.compile(r"^[0-9a-f]{8}$")


# --- names, key hashes, verifiers ---------------------------------------------------------


def _is_space(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Zs"


# Key names already found good: a log checks its own origin at every signing, and a verifier
# every signature line's name; the scan by character is done once per name (bounded).
_GOOD_NAMES: set[str] = set()


def check_key_name(name: str) -> None:
    """Refuse a key name that is empty, or holds a Unicode space, a ``+`` or a control char."""
    if isinstance(name, str) and name in _GOOD_NAMES:
        return
    _scan_key_name(name)
    if len(_GOOD_NAMES) >= 1024:
        _GOOD_NAMES.clear()
    _GOOD_NAMES.add(name)


def _scan_key_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise FormatError(N_("a signed-note key name must be non-empty"))
    if any(_is_space(ch) or ch == "+" or ord(ch) < 0x20 for ch in name):
        raise FormatError(
            N_("signed-note key name {name!r} contains a space, '+' or control char"), name=name
        )
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        # A lone surrogate: bytes that were not UTF-8 (a command-line argument, say).
        raise FormatError(N_("signed-note key name {name!r} is not UTF-8 text"), name=name)


def key_hash(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4]: the 4-byte key ID of a note key."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()[
        :4
    ]


class Verifier(Protocol):
    """A configured note key: signatures whose (name, key hash) match are checked by it."""

    @property
    def name(self) -> str: ...

    @property
    def key_hash(self) -> bytes: ...

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (key hash already stripped) is valid over the note text."""
        ...


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 (type 0x01) signed-note verifier key."""

    name: str
    public_key: VerifyKey
    key_hash: bytes = field(init=False)

    sig_type = SIG_ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name)
        khash = key_hash(self.name, self.sig_type, self.public_key.raw)
        object.__setattr__(self, "key_hash", khash)

    def verify(self, text: bytes, signature: bytes) -> bool:
        return self.public_key.is_valid(text, signature)

    def vkey(self) -> str:
        """``name+hex(key hash)+base64(type || public key)``, the signed-note verifier key."""
        return _vkey(self.name, self.key_hash, self.sig_type, self.public_key.raw)


@dataclass(frozen=True)
class CosignatureVerifier:
    """An Ed25519 cosignature/v1 (type 0x04) verifier key: a witness's public key."""

    name: str
    public_key: VerifyKey
    key_hash: bytes = field(init=False)

    sig_type = SIG_COSIGNATURE_V1

    def __post_init__(self) -> None:
        check_key_name(self.name)
        khash = key_hash(self.name, self.sig_type, self.public_key.raw)
        object.__setattr__(self, "key_hash", khash)

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 8 + 64:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            return False
        return self.public_key.is_valid(cosignature_message(text, timestamp), signature[8:])

    def vkey(self) -> str:
        return _vkey(self.name, self.key_hash, self.sig_type, self.public_key.raw)


def _vkey(name: str, khash: bytes, sig_type: int, raw: bytes) -> str:
    return f"{name}+{khash.hex()}+{b64encode(bytes([sig_type]) + raw)}"


def parse_vkey(text: str) -> NoteVerifier | CosignatureVerifier:
    """Parse a verifier key ``name+hash+base64(type || key)`` (type 0x01 or 0x04)."""
    # The base64 key may itself contain '+': split off the name and hash only.
    parts = text.split("+", 2) if isinstance(text, str) else []
    if len(parts) != 3:
        raise FormatError(N_("a verifier key is name+hash+key"))
    name, hash_hex, key_b64 = parts
    check_key_name(name)
    if not _HEX8_RE.match(hash_hex):
        raise FormatError(N_("a verifier key's hash is 8 lowercase hex digits"))
    key = _b64_canonical(key_b64, "verifier key")
    if len(key) != 33:
        raise FormatError(N_("a verifier key holds a type byte and a 32-byte Ed25519 key"))
    try:
        public = VerifyKey(key[1:])
    except WeakKeyError as e:
        raise FormatError(N_("verifier key {name!r}: {error}"), name=name, error=e) from e
    verifier: NoteVerifier | CosignatureVerifier
    if key[0] == SIG_ED25519:
        verifier = NoteVerifier(name, public)
    elif key[0] == SIG_COSIGNATURE_V1:
        verifier = CosignatureVerifier(name, public)
    else:
        raise FormatError(
            N_("verifier key {name!r} has unsupported signature type {key:#04x}"),
            name=name,
            key=key[0],
        )
    if verifier.key_hash.hex() != hash_hex:
        raise FormatError(
            N_("verifier key {name!r}: the key hash does not match the key"), name=name
        )
    return verifier


def signer_key_string(name: str, key: SigningKey) -> str:
    """Go's ``PRIVATE+KEY+name+hash+base64(0x01 || seed)``. It holds the secret seed: never log
    it or write it in clear; the product stores keys sealed (keys.keyfile)."""
    khash = key_hash(name, SIG_ED25519, key.verify_key.raw)
    return f"PRIVATE+KEY+{name}+{khash.hex()}+{b64encode(bytes([SIG_ED25519]) + key.seed())}"


def parse_signer_key(text: str) -> tuple[str, SigningKey]:
    """Parse Go's signer key string; the hash must match the key it derives."""
    parts = text.split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise FormatError(N_("a signer key is PRIVATE+KEY+name+hash+key"))
    name, hash_hex, key_b64 = parts[2:]
    check_key_name(name)
    key = b64decode(key_b64, what=Phrase("signer key"))
    if len(key) != 33 or key[0] != SIG_ED25519:
        raise FormatError(N_("a signer key holds 0x01 and a 32-byte Ed25519 seed"))
    signing = SigningKey(key[1:])
    if key_hash(name, SIG_ED25519, signing.verify_key.raw).hex() != hash_hex:
        raise FormatError(N_("signer key {name!r}: the key hash does not match the key"), name=name)
    return name, signing


# --- notes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key hash, signature bytes (after the key hash)."""

    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {b64encode(self.key_hash + self.signature)}\n"


@dataclass(frozen=True)
class UnverifiedNote:
    """A parsed note whose text must not be acted on until ``verify_note`` accepts it."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


@dataclass(frozen=True)
class VerifiedNote:
    """A note with at least one valid signature from a configured key."""

    text: str
    verified: tuple[NoteSignature, ...]
    unknown: tuple[NoteSignature, ...]

    def signed_by(self, name: str) -> tuple[NoteSignature, ...]:
        return tuple(s for s in self.verified if s.name == name)


def _b64_canonical(text: str, what: str) -> bytes:
    # Python's decoder ignores the unused low bits of the last character: re-encoding makes
    # sure one value has exactly one spelling, so a note cannot be altered without notice.
    raw = b64decode(text, what=what)
    if b64encode(raw) != text:
        raise FormatError(N_("{what} is not canonical base64"), what=what)
    return raw


def _check_note_chars(text: str, what: str) -> None:
    for ch in text:
        if ord(ch) < 0x20 and ch != "\n":
            raise FormatError(
                N_("{what} contains the control character {ch:#04x}"), what=what, ch=ord(ch)
            )


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise FormatError(N_("a note text must end with a newline"))
    _check_note_chars(text, "note text")


def parse_note(data: bytes | str) -> UnverifiedNote:
    """Parse a signed note's bytes; signatures are not checked here (see ``verify_note``)."""
    if isinstance(data, bytes | bytearray):
        if len(data) > MAX_NOTE_BYTES:
            raise FormatError(
                N_("a signed note is limited to {max_note_bytes} bytes"),
                max_note_bytes=MAX_NOTE_BYTES,
            )
        try:
            unverified = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(N_("a signed note must be valid UTF-8")) from e
    else:
        unverified = data
        if len(unverified.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
            raise FormatError(
                N_("a signed note is limited to {max_note_bytes} bytes"),
                max_note_bytes=MAX_NOTE_BYTES,
            )
        try:
            unverified.encode("utf-8")
        except UnicodeEncodeError as e:
            raise FormatError(N_("a signed note must be valid UTF-8")) from e
    _check_note_chars(unverified, "signed note")
    split = unverified.rfind("\n\n")
    if split < 0:
        raise FormatError(N_("a signed note needs a blank line before its signatures"))
    text, block = unverified[: split + 1], unverified[split + 2 :]
    if not block or not block.endswith("\n"):
        raise FormatError(N_("a signed note must end with signature lines, each ending in newline"))
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(
            N_("a signed note may carry at most {max_signatures} signatures"),
            max_signatures=MAX_SIGNATURES,
        )
    signatures = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(SIGNATURE_PREFIX):
            raise FormatError(
                N_("signature line {number} does not start with an em dash and space"),
                number=number,
            )
        name, sep, sig_b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep:
            raise FormatError(
                N_("signature line {number} has no signature after the key name"), number=number
            )
        try:
            check_key_name(name)
        except FormatError as e:
            raise FormatError(N_("signature line {number}: {error}"), number=number, error=e) from e
        raw = _b64_canonical(sig_b64, f"signature line {number}")
        if len(raw) < 5:
            raise FormatError(
                N_("signature line {number} is too short for a key hash and signature"),
                number=number,
            )
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return UnverifiedNote(text, tuple(signatures))


def verify_note(note: UnverifiedNote, verifiers: Iterable[Verifier]) -> VerifiedNote:
    """Check every signature by a configured key; ignore the others (module rules)."""
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        if (v.name, v.key_hash) in known:
            raise UsageError(
                N_("two verifier keys share the name and key hash of {name!r}"), name=v.name
            )
        known[(v.name, v.key_hash)] = v
    text = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    unknown: list[NoteSignature] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_hash))
        if verifier is None:
            unknown.append(sig)
            continue
        if any((s.name, s.key_hash) == (sig.name, sig.key_hash) for s in verified):
            raise DuplicateSignatureError(
                N_("key {name} ({key_hash}) signed twice"),
                name=sig.name,
                key_hash=sig.key_hash.hex(),
            )
        if not verifier.verify(text, sig.signature):
            raise SignatureError(
                N_("the signature by known key {name} ({key_hash}) does not verify"),
                name=sig.name,
                key_hash=sig.key_hash.hex(),
            )
        verified.append(sig)
    if not verified:
        names = ", ".join(sorted({s.name for s in note.signatures})) or "none"
        raise UnknownSignerError(
            N_("no signature from a trusted key on the note (signed by {names})"), names=names
        )
    return VerifiedNote(note.text, tuple(verified), tuple(unknown))


def signature_line(text: str, name: str, key: SigningKey) -> str:
    """One Ed25519 (type 0x01) signature line over ``text``."""
    _check_text(text)
    check_key_name(name)
    khash = key_hash(name, SIG_ED25519, key.verify_key.raw)
    return NoteSignature(name, khash, key.sign(text.encode("utf-8"))).line()


def sign_note(text: str, name: str, key: SigningKey) -> str:
    """The signed note: ``text``, a blank line, and one Ed25519 signature line."""
    return text + "\n" + signature_line(text, name, key)


# --- checkpoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size, root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise FormatError(N_("a checkpoint origin is one non-empty line"))
        _check_note_chars(self.origin, "checkpoint origin")
        if (
            not isinstance(self.size, int)
            or isinstance(self.size, bool)
            or not 0 <= self.size < 1 << 64
        ):
            raise FormatError(
                N_("a checkpoint size is an integer in [0, 2^64), not {size!r}"), size=self.size
            )
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise FormatError(N_("a checkpoint root is a 32-byte hash"))
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or "\n" in ext:
                raise FormatError(N_("a checkpoint extension is one non-empty line"))
            _check_note_chars(ext, "checkpoint extension")

    def body(self) -> str:
        """The note text: origin, size, base64 root and extension lines, each ending in \\n."""
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    def describe(self) -> str:
        return f"{self.origin}@{self.size} root {b64encode(self.root)}"


def parse_checkpoint(text: str) -> Checkpoint:
    """Strictly parse a checkpoint note text (the part before the blank line)."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise FormatError(N_("a checkpoint text ends with a newline"))
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError(N_("a checkpoint has an origin, a size and a root line"))
    origin, size_text, root_text, *extensions = lines
    if not _SIZE_RE.match(size_text) or int(size_text) >= 1 << 64:
        raise FormatError(
            N_("checkpoint size {size_text!r} is not a decimal without leading zeros"),
            size_text=size_text,
        )
    root = _b64_canonical(root_text, "checkpoint root")
    if len(root) != 32:
        raise FormatError(N_("checkpoint root is {n_root} bytes, not 32"), n_root=len(root))
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, name: str, key: SigningKey) -> str:
    """The log's signed checkpoint note."""
    return sign_note(checkpoint.body(), name, key)


def open_checkpoint(
    data: bytes | str, verifiers: Sequence[Verifier], *, origin: str | None = None
) -> tuple[Checkpoint, VerifiedNote]:
    """Parse, verify and read a signed checkpoint; ``origin`` (if given) must match."""
    note = verify_note(parse_note(data), verifiers)
    checkpoint = parse_checkpoint(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise FormatError(
            N_("checkpoint is for origin {origin!r}, expected {origin2!r}"),
            origin=checkpoint.origin,
            origin2=origin,
        )
    return checkpoint, note


# --- cosignatures ---------------------------------------------------------------------------


def _timestamp(moment: int | datetime) -> int:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise UsageError(N_("naive datetime: pass an aware UTC time"))
        moment = int(moment.timestamp())
    if isinstance(moment, bool) or not 0 <= moment <= MAX_TIMESTAMP:
        raise UsageError(N_("a cosignature time is in [0, 2^63), not {moment!r}"), moment=moment)
    return moment


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """``cosignature/v1\\ntime <t>\\n`` followed by the checkpoint note text."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n".encode("ascii") + text


def cosign(checkpoint: Checkpoint, name: str, key: SigningKey, timestamp: int | datetime) -> str:
    """A cosignature/v1 signature line over ``checkpoint`` at ``timestamp`` (POSIX seconds)."""
    check_key_name(name)
    t = _timestamp(timestamp)
    khash = key_hash(name, SIG_COSIGNATURE_V1, key.verify_key.raw)
    sig = key.sign(cosignature_message(checkpoint.body().encode("utf-8"), t))
    return NoteSignature(name, khash, t.to_bytes(8, "big") + sig).line()


def cosignature_timestamp(signature: NoteSignature) -> int:
    """The POSIX time a cosignature/v1 signature carries."""
    if len(signature.signature) != 72:
        raise FormatError(N_("a cosignature from {name} is not 8 + 64 bytes"), name=signature.name)
    return int.from_bytes(signature.signature[:8], "big")


def verify_cosignature(checkpoint: Checkpoint, line: str, verifier: CosignatureVerifier) -> int:
    """Verify one cosignature line from ``verifier`` over ``checkpoint``; returns its time."""
    note = parse_note(checkpoint.body() + "\n" + line)
    if len(note.signatures) != 1:
        raise FormatError(N_("expected exactly one cosignature line"))
    verified = verify_note(note, [verifier])
    return cosignature_timestamp(verified.verified[0])
