"""The QR payload codec: the one parser of untrusted label text (pure; no I/O, no clock).

Format (``docs/formats.md``, "Package labels"): ``"CP1:" || Base45(X)`` where X is either a
tagged COSE_Sign1 (RFC 9052, first byte 0xD2) or zlib(COSE_Sign1) (first byte 0x78), whichever
is shorter. The COSE protected header is ``{1: -8 (EdDSA), 4: kid}`` with kid the first 8 bytes
of the sealer's key id; the payload is deterministic CBOR (RFC 8949 section 4.2.1) of a map with
small integer keys.

Rules:
- Sizes are capped before any work: label text <= 1600 characters, inflated COSE <= 2048 bytes
  (a decompression bomb stops at the cap), CBOR nesting depth <= 4.
- Every structure is checked exactly: tag 18, four elements, protected header exactly
  ``{1: -8, 4: 8-byte kid}``, empty unprotected header, payload re-encodes byte for byte
  (non-deterministic CBOR, duplicate keys, unknown keys, tags, floats are refused).
- Untrusted values are named ``unverified_...`` until the signature has verified; the manifest's
  consistency rules are applied only then, so a valid signature over inconsistent fields is a
  refusal of its own (still ``FormatError``).
- The signer is resolved only through the trust store; several certified keys sharing a kid
  prefix are each tried, so a kid collision cannot substitute a key.
- Every failure is a ``CustodyError``: format problems raise ``FormatError`` chained ``from e``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import base45
import cbor2

from crypto.errors import N_, FormatError, SignatureError, UnknownSignerError
from crypto.signing import SigningKey
from crypto.vocabulary import Classification
from keys.model import Certificate
from keys.trust import TrustStore
from labels.manifest import (
    Manifest,
    RouteStep,
    check_sealer,
    epoch,
    from_epoch,
)

PREFIX = "CP1:"
COSE_SIGN1_TAG = 18
ALG_EDDSA = -8
HDR_ALG = 1
HDR_KID = 4
KID_SIZE = 8
MAX_TEXT = 1600
MAX_COSE = 2048
MAX_DEPTH = 4
_ZLIB_FIRST = 0x78
_COSE_FIRST = 0xD2  # major type 6 (tag), value 18

# CBOR map keys of the manifest (docs/formats.md lists them with their types).
K_PACKAGE, K_EXAM, K_SESSION, K_POSITION, K_PAPER = 1, 2, 3, 4, 5
K_COMMITMENT, K_COPIES, K_BAG, K_SEALS, K_DEST = 6, 7, 8, 9, 10
K_WINDOW, K_ROUTE, K_CLASS, K_ISSUED, K_EXPIRES = 11, 12, 13, 14, 15
_KEYS = frozenset(range(1, 16))


def manifest_to_cbor(m: Manifest) -> bytes:
    """Deterministic CBOR of a manifest (RFC 8949 core deterministic encoding)."""
    body: dict[int, Any] = {
        K_PACKAGE: m.package_id,
        K_EXAM: m.exam_id,
        K_SESSION: m.session,
        K_POSITION: m.position,
        K_PAPER: m.paper_id,
        K_COMMITMENT: m.paper_commitment,
        K_COPIES: m.copy_count,
        K_BAG: m.bag_size,
        K_SEALS: list(m.seal_serials),
        K_DEST: [m.site, m.room],
        K_WINDOW: [epoch(m.opens_at), epoch(m.closes_at)],
        K_ROUTE: [[s.person, s.place] for s in m.route],
        K_CLASS: int(m.classification),
        K_ISSUED: epoch(m.issued_at),
        K_EXPIRES: epoch(m.expires_at),
    }
    return cbor2.dumps(body, canonical=True)


def protected_header(kid: bytes) -> bytes:
    return cbor2.dumps({HDR_ALG: ALG_EDDSA, HDR_KID: kid}, canonical=True)


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 section 4.4: ``["Signature1", protected, external_aad = h'', payload]``."""
    return cbor2.dumps(["Signature1", protected, b"", payload], canonical=True)


def kid_of(key_id: str) -> bytes:
    return bytes.fromhex(key_id)[:KID_SIZE]


def encode_cose(payload: bytes, key: SigningKey) -> bytes:
    protected = protected_header(kid_of(key.key_id))
    signature = key.sign(sig_structure(protected, payload))
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))


def wrap_text(cose: bytes) -> str:
    """Base45 under the prefix; zlib only when it makes the label shorter."""
    packed = zlib.compress(cose, 9)
    body = packed if len(packed) < len(cose) else cose
    encoded: bytes = base45.b45encode(body)
    return PREFIX + encoded.decode("ascii")


def seal_manifest(manifest: Manifest, key: SigningKey) -> str:
    """Sign a manifest and return the label text (what the QR code carries)."""
    return wrap_text(encode_cose(manifest_to_cbor(manifest), key))


# --- decoding untrusted text -------------------------------------------------------------


@dataclass(frozen=True)
class UnverifiedLabel:
    """A structurally valid COSE_Sign1 whose signature has NOT been checked."""

    kid: bytes
    protected: bytes
    payload: bytes
    signature: bytes
    fields: Mapping[int, Any]
    compressed: bool

    def signed_bytes(self) -> bytes:
        return sig_structure(self.protected, self.payload)


def unwrap_text(unverified_text: str | bytes) -> tuple[bytes, bool]:
    """Prefix, Base45 and (optional) bounded zlib: returns (COSE bytes, was compressed)."""
    if isinstance(unverified_text, bytes):
        try:
            unverified_text = unverified_text.decode("ascii")
        except UnicodeDecodeError as e:
            raise FormatError(N_("label: not a custody label (non-ASCII content)")) from e
    text = unverified_text.strip()
    if len(text) > MAX_TEXT:
        raise FormatError(
            N_("label: {n_text} characters, more than the {max_text} allowed"),
            n_text=len(text),
            max_text=MAX_TEXT,
        )
    if not text.startswith(PREFIX):
        head, sep, _ = text.partition(":")
        if sep and head.startswith("CP") and len(head) <= 6:
            raise FormatError(
                N_("label: version {head!r} is not supported (this reader knows CP1)"), head=head
            )
        raise FormatError(
            N_("label: not a custody package label (expected prefix {prefix!r})"), prefix=PREFIX
        )
    try:
        raw = base45.b45decode(text[len(PREFIX) :])
    except (ValueError, TypeError) as e:
        raise FormatError(N_("label: the text after the prefix is not valid Base45")) from e
    if not raw:
        raise FormatError(N_("label: empty payload"))
    if raw[0] == _ZLIB_FIRST:
        inflater = zlib.decompressobj()
        try:
            cose = inflater.decompress(raw, MAX_COSE)
        except zlib.error as e:
            raise FormatError(N_("label: the compressed payload is corrupt or truncated")) from e
        if inflater.unconsumed_tail:
            raise FormatError(
                N_("label: the payload inflates beyond {max_cose} bytes; refused"),
                max_cose=MAX_COSE,
            )
        if not inflater.eof or inflater.unused_data:
            raise FormatError(
                N_("label: the compressed payload is truncated or has trailing bytes")
            )
        if _padding_set(raw, cose):
            raise FormatError(
                N_(
                    "label: the compressed payload's last byte has bits set after its end: "
                    "not the one writing of this label"
                )
            )
        return cose, True
    if raw[0] != _COSE_FIRST:
        raise FormatError(N_("label: the payload is neither COSE_Sign1 nor zlib-compressed"))
    return raw, False


def _padding_set(stream: bytes, inflated: bytes) -> bool:
    """Whether the deflate data of the zlib ``stream`` (already inflated to ``inflated``, its
    checksum checked) has a bit set after the final block's end, in its last byte. Such bits
    change nothing that is inflated, so without this check one label would have several
    texts (a changed character of the QR code's text still verifying). Deflate fills a byte
    from its lowest bit up, so the padding is the byte's highest bits: the highest set bit
    decides. Cleared, if the stream inflates to the same bytes and ends at the same place, it
    is padding; else it carries data, and so does every bit below it. One inflate at most."""
    deflated = stream[2:-4]  # after the 2-byte header, before the Adler-32 checksum
    if not deflated or not deflated[-1]:
        return False
    last = deflated[-1]
    top = 1 << (last.bit_length() - 1)
    inflater = zlib.decompressobj(-15)  # raw deflate: the checksum is not at issue here
    try:
        again = inflater.decompress(deflated[:-1] + bytes([last ^ top]), MAX_COSE)
    except zlib.error:
        return False
    return again == inflated and inflater.eof and not inflater.unused_data


def _loads(data: bytes, what: str) -> Any:
    try:
        decoder_value = cbor2.loads(
            data, max_depth=MAX_DEPTH, allow_indefinite=False, allow_duplicate_keys=False
        )
    except (
        cbor2.CBORDecodeError,
        ValueError,
        TypeError,
        OverflowError,
        MemoryError,
        RecursionError,
        LookupError,
    ) as e:
        raise FormatError(
            N_("label: {what} is not valid CBOR (or nests too deeply)"), what=what
        ) from e
    return decoder_value


def parse_label(unverified_text: str | bytes) -> UnverifiedLabel:
    """Parse label text into its COSE parts and manifest fields, checking structure only."""
    cose, compressed = unwrap_text(unverified_text)
    outer = _loads(cose, "COSE_Sign1")
    if not isinstance(outer, cbor2.CBORTag) or outer.tag != COSE_SIGN1_TAG:
        raise FormatError(N_("label: not a tagged COSE_Sign1 (tag 18)"))
    parts = outer.value  # cbor2 6 decodes inside a tag as immutable (tuple, frozendict)
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise FormatError(N_("label: COSE_Sign1 must be an array of 4 elements"))
    protected, unprotected, payload, signature = parts
    if not all(isinstance(p, bytes) for p in (protected, payload, signature)):
        raise FormatError(N_("label: COSE_Sign1 protected, payload and signature must be bstr"))
    if not isinstance(unprotected, Mapping) or len(unprotected) != 0:
        raise FormatError(N_("label: the unprotected header must be empty"))
    if len(signature) != 64:
        raise FormatError(N_("label: an EdDSA signature is 64 bytes"))
    header = _loads(protected, "protected header")
    if (
        not isinstance(header, dict)
        or set(header) != {HDR_ALG, HDR_KID}
        or header[HDR_ALG] != ALG_EDDSA
        or not isinstance(header[HDR_KID], bytes)
        or len(header[HDR_KID]) != KID_SIZE
    ):
        raise FormatError(
            N_("label: protected header must be exactly {{1: -8 (EdDSA), 4: {kid_size}-byte kid}}"),
            kid_size=KID_SIZE,
        )
    if protected != protected_header(header[HDR_KID]):
        raise FormatError(N_("label: protected header is not deterministically encoded"))
    fields = _loads(payload, "manifest")
    if not isinstance(fields, dict):
        raise FormatError(N_("label: the manifest must be a CBOR map"))
    if set(fields) != _KEYS:
        unknown = sorted(map(str, set(fields) - _KEYS))
        missing = sorted(map(str, _KEYS - set(fields)))
        raise FormatError(
            N_("label: manifest keys wrong (unknown {unknown}, missing {missing})"),
            unknown=unknown,
            missing=missing,
        )
    try:
        canonical = cbor2.dumps(fields, canonical=True)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as e:
        raise FormatError(N_("label: manifest holds a value of an unsupported type")) from e
    if canonical != payload:
        raise FormatError(N_("label: manifest is not deterministically encoded CBOR"))
    return UnverifiedLabel(header[HDR_KID], protected, payload, signature, fields, compressed)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise FormatError(N_("manifest: {what} must be a text string"), what=what)
    return value


def _uint(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= 2**40:
        raise FormatError(N_("manifest: {what} must be an unsigned integer"), what=what)
    return value


def _array(value: Any, what: str, size: int | None = None) -> list[Any]:
    if not isinstance(value, list) or (size is not None and len(value) != size):
        if size is not None:
            raise FormatError(
                N_("manifest: {what} must be an array of {size}"), what=what, size=size
            )
        raise FormatError(N_("manifest: {what} must be an array"), what=what)
    return value


def manifest_from_fields(fields: Mapping[int, Any]) -> Manifest:
    """Build the domain value; the manifest's own rules run in its constructor."""
    dest = _array(fields[K_DEST], "destination", 2)
    window = _array(fields[K_WINDOW], "window", 2)
    route = [_array(s, "route step", 2) for s in _array(fields[K_ROUTE], "route")]
    commitment = fields[K_COMMITMENT]
    if not isinstance(commitment, bytes):
        raise FormatError(N_("manifest: paper commitment must be a byte string"))
    try:
        classification = Classification(_uint(fields[K_CLASS], "classification"))
    except ValueError as e:
        raise FormatError(
            N_("manifest: unknown classification {classification!r}"),
            classification=fields[K_CLASS],
        ) from e
    return Manifest(
        package_id=_text(fields[K_PACKAGE], "package id"),
        exam_id=_text(fields[K_EXAM], "exam id"),
        session=_text(fields[K_SESSION], "session"),
        position=_text(fields[K_POSITION], "position"),
        paper_id=_text(fields[K_PAPER], "paper id"),
        paper_commitment=commitment,
        copy_count=_uint(fields[K_COPIES], "copy count"),
        bag_size=_uint(fields[K_BAG], "bag size"),
        seal_serials=tuple(
            _text(s, "seal serial") for s in _array(fields[K_SEALS], "seal serials")
        ),
        site=_text(dest[0], "destination site"),
        room=_text(dest[1], "destination room"),
        opens_at=from_epoch(_uint(window[0], "window start")),
        closes_at=from_epoch(_uint(window[1], "window end")),
        route=tuple(RouteStep(_text(p, "route person"), _text(q, "route place")) for p, q in route),
        classification=classification,
        issued_at=from_epoch(_uint(fields[K_ISSUED], "issued-at")),
        expires_at=from_epoch(_uint(fields[K_EXPIRES], "expiry")),
    )


@dataclass(frozen=True)
class VerifiedLabel:
    """A manifest whose signature, sealer and validity were checked, and against what."""

    manifest: Manifest
    certificate: Certificate
    authority_id: str
    checked_at: datetime
    compressed: bool

    @property
    def key_id(self) -> str:
        return self.certificate.key_id

    def report(self) -> dict[str, object]:
        return {
            "ok": True,
            "manifest": self.manifest.facts(),
            "sealed_by": {
                "subject": self.certificate.subject,
                "name": self.certificate.name,
                "roles": sorted(self.certificate.roles),
                "key_id": self.key_id,
            },
            "authority_id": self.authority_id,
            "checked_at": self.checked_at.isoformat().replace("+00:00", "Z"),
        }


# The key ids each kid may name, for the trust store last asked about: a province's trust holds
# thousands of certificates, and a scan per label would work out every one's kid. A reloaded
# trust store is a new object, so the index is rebuilt once per reload.
_KID_INDEX: tuple[TrustStore | None, int, Mapping[bytes, tuple[str, ...]]] = (None, 0, {})


def _keys_of_kid(trust: TrustStore, kid: bytes) -> tuple[str, ...]:
    global _KID_INDEX  # noqa: PLW0603 (one tuple replaced whole: safe across threads)
    held, count, index = _KID_INDEX
    if held is not trust or count != len(trust.certificates):
        grouped: dict[bytes, list[str]] = {}
        for key_id in trust.certificates:  # in the trust store's order, as before
            grouped.setdefault(kid_of(key_id), []).append(key_id)
        index = {k: tuple(ids) for k, ids in grouped.items()}
        _KID_INDEX = (trust, len(trust.certificates), index)
    return index.get(kid, ())


def verify_label(
    unverified_text: str | bytes, trust: TrustStore, *, now: datetime
) -> VerifiedLabel:
    """Parse, verify the signature against the trust store, apply every rule; or raise."""
    unverified = parse_label(unverified_text)
    candidates = _keys_of_kid(trust, unverified.kid)
    if not candidates:
        raise UnknownSignerError(
            N_("label signed by key {kid}…, which no certificate of this authority binds"),
            kid=unverified.kid.hex(),
        )
    message = unverified.signed_bytes()
    signer = next(
        (k for k in candidates if trust.signing_keys[k].is_valid(message, unverified.signature)),
        None,
    )
    if signer is None:
        raise SignatureError(
            N_(
                "label signature does not verify under key {kid}…: the label "
                "was altered or signed by another key"
            ),
            kid=unverified.kid.hex(),
        )
    try:
        manifest = manifest_from_fields(unverified.fields)
    except FormatError as e:
        raise FormatError(
            N_("label carries a valid signature over an inconsistent manifest: {error}"), error=e
        ) from e
    cert = check_sealer(trust, signer, manifest, now=now)
    manifest.check_current(now)
    return VerifiedLabel(manifest, cert, trust.authority.id, now, unverified.compressed)
