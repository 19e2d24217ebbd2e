"""DSSE envelopes (secure-systems-lab/dsse v1.0.2) carrying several signatures.

Rules:
- Signatures are over PAE(payloadType, payload); the payload type is the domain separation.
- ``parse_envelope`` is the one place that turns untrusted bytes into an envelope; it refuses
  anything malformed with ``FormatError``.
- A DSSE ``keyid`` is a hint only: it never makes a signature count. ``verify_signatures``
  reports the *distinct keys* that verified (never a signature count). An empty hint is tried
  against the candidates; a non-empty hint must name the key that verifies, otherwise the
  signature is unmatched (so no byte of an envelope can change unnoticed).
- Two signatures that verify under the same key are refused (``DuplicateSignatureError``).
- Verification returns the payload bytes it checked; callers parse those bytes, never the
  envelope again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from json.encoder import encode_basestring_ascii

from crypto.encoding import Fields, b64encode, parse_json_object
from crypto.errors import N_, DuplicateSignatureError, FormatError
from crypto.signing import SigningKey, VerifyKey

MAX_ENVELOPE_BYTES = 1 << 20
MAX_SIGNATURES = 16
# A signature whose key id hint matches no candidate is tried against at most this many keys,
# so a flood of unhinted signatures cannot make the verifier try every certified key.
MAX_UNHINTED_CANDIDATES = 32


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_json_obj(self) -> dict[str, object]:
        return {
            "payload": b64encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [{"keyid": s.keyid, "sig": b64encode(s.sig)} for s in self.signatures],
        }

    @cached_property
    def _canonical(self) -> bytes:
        # The bytes json.dumps(to_json_obj(), sort_keys=True, separators=(",", ":")) writes
        # (keys payload < payloadType < signatures, keyid < sig; ASCII escapes), built
        # directly: an envelope's bytes are the log leaf's, written once per append and read
        # again by the signature workers.
        sigs = ",".join(
            f'{{"keyid":{encode_basestring_ascii(s.keyid)},"sig":"{b64encode(s.sig)}"}}'
            for s in self.signatures
        )
        return (
            f'{{"payload":"{b64encode(self.payload)}",'
            f'"payloadType":{encode_basestring_ascii(self.payload_type)},'
            f'"signatures":[{sigs}]}}'
        ).encode("ascii")

    def to_bytes(self) -> bytes:
        return self._canonical

    def signed_bytes(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def with_signature(self, key: SigningKey) -> Envelope:
        """Add one more signature over the same payload (a countersignature)."""
        sig = Signature(key.key_id, key.sign(self.signed_bytes()))
        return Envelope(self.payload_type, self.payload, (*self.signatures, sig))


def sign_envelope(payload_type: str, payload: bytes, keys: Iterable[SigningKey]) -> Envelope:
    env = Envelope(payload_type, payload, ())
    for key in keys:
        env = env.with_signature(key)
    return env


def parse_envelope(data: bytes | str | Mapping[str, object], *, what: str = "envelope") -> Envelope:
    """Parse an untrusted DSSE envelope (JSON bytes or an already-decoded object)."""
    if isinstance(data, bytes | str):
        if len(data) > MAX_ENVELOPE_BYTES:
            raise FormatError(
                N_("{what} is larger than {max_envelope_bytes} bytes"),
                what=what,
                max_envelope_bytes=MAX_ENVELOPE_BYTES,
            )
        obj = parse_json_object(data, what=what)
    elif isinstance(data, Mapping):
        obj = dict(data)
    else:
        raise FormatError(N_("{what} must be a JSON object"), what=what)
    f = Fields(obj, what=what)
    extra = set(obj) - {"payload", "payloadType", "signatures"}
    if extra:
        raise FormatError(
            N_("{what}: unexpected field(s) {extra}"), what=what, extra=", ".join(sorted(extra))
        )
    payload_type = f.text("payloadType")
    payload = f.blob("payload")
    raw_sigs = f.items("signatures")
    if not raw_sigs:
        raise FormatError(N_("{what} carries no signature"), what=what)
    if len(raw_sigs) > MAX_SIGNATURES:
        raise FormatError(
            N_("{what} carries more than {max_signatures} signatures"),
            what=what,
            max_signatures=MAX_SIGNATURES,
        )
    sigs = []
    for i, raw in enumerate(raw_sigs):
        if not isinstance(raw, dict):
            raise FormatError(N_("{what}: signature {i} must be an object"), what=what, i=i)
        sf = Fields(raw, what=f"{what}: signature {i}")
        if set(raw) - {"keyid", "sig"}:
            raise FormatError(N_("{what}: signature {i} has unexpected field(s)"), what=what, i=i)
        keyid = sf.opt_text("keyid") or ""
        sig = sf.blob("sig")
        if len(sig) != 64:
            raise FormatError(
                N_("{what}: signature {i} is {n_sig} bytes, an Ed25519 one is 64"),
                what=what,
                i=i,
                n_sig=len(sig),
            )
        sigs.append(Signature(keyid, sig))
    return Envelope(payload_type, payload, tuple(sigs))


@dataclass(frozen=True)
class SignatureCheck:
    """Which candidate keys signed an envelope, and which signatures matched none."""

    payload_type: str
    payload: bytes
    signed_by: frozenset[str]
    unmatched: tuple[int, ...]


def verify_signatures(env: Envelope, candidates: Mapping[str, VerifyKey]) -> SignatureCheck:
    """Check every signature against the candidate keys (keyid -> key).

    Raises:
        DuplicateSignatureError: two signatures verify under one key.
    """
    signed_by, unmatched = signers_of(
        env.payload_type, env.payload, [(s.keyid, s.sig) for s in env.signatures], candidates
    )
    return SignatureCheck(env.payload_type, env.payload, signed_by, unmatched)


def signers_of(
    payload_type: str,
    payload: bytes,
    signatures: Sequence[tuple[str, bytes]],
    candidates: Mapping[str, VerifyKey],
) -> tuple[frozenset[str], tuple[int, ...]]:
    """``verify_signatures`` over an envelope's parts ((key id hint, signature) pairs): the
    keys that signed and the indexes of the signatures that matched none."""
    message = pae(payload_type, payload)
    signed_by: set[str] = set()
    unmatched: list[int] = []
    for index, (keyid, sig) in enumerate(signatures):
        matched = None
        if keyid:
            hinted = candidates.get(keyid)
            if hinted is not None and hinted.is_valid(message, sig):
                matched = hinted
        elif len(candidates) <= MAX_UNHINTED_CANDIDATES:
            for key in candidates.values():
                if key.is_valid(message, sig):
                    matched = key
                    break
        if matched is None:
            unmatched.append(index)
            continue
        if matched.key_id in signed_by:
            raise DuplicateSignatureError(
                N_("key {key_id} signed this {payload_type} more than once"),
                key_id=matched.key_id[:16],
                payload_type=payload_type,
            )
        signed_by.add(matched.key_id)
    return frozenset(signed_by), tuple(unmatched)
