"""How a log entry's envelope is stored: in its parts, in binary, the leaf rebuilt on read (an
edge).

The Merkle leaf (docs/formats.md, "Log entry") is the canonical JSON of the envelope and the
receive time. ``leaf_bytes`` is deterministic, so the row need not hold that JSON: it holds the
envelope's parts (each signature's key id as 32 bytes and its 64 signature bytes, the payload,
deflated against a fixed dictionary when that is shorter) and ``received_at`` holds the time.
The leaf is rebuilt by the same ``leaf_bytes_at`` that built it at the append, so a stored leaf
rebuilds to exactly the bytes whose hash is in the tree (``custody verify`` and the start check
compare the two anyway).

Stored forms (the column's first byte says which):
- ``0x01`` parts, payload raw; ``0x02`` parts, payload deflated (raw deflate, the dictionary
  ``_ZDICT_1`` below, which never changes: another dictionary would be another first byte).
  After it: the number of signatures, then per signature 32 bytes of key id and 64 of
  signature, then the payload.
- anything else: the leaf's own bytes (rows written before migration 0009 that did not fit the
  parts, and envelopes outside them: a payload type other than the event's, a key id that is
  not 64 lowercase hex digits, a signature count beyond one byte).
A row whose parts do not add up comes back as it is stored, so whoever reads it finds a leaf
that does not parse and does not hash to its node, as with any altered row.
"""

from __future__ import annotations

import zlib

from crypto.dsse import Envelope, Signature
from custody.events import EVENT_TYPE, leaf_bytes_at

PARTS_RAW = 0x01
PARTS_DEFLATED = 0x02
_KEY = 32
_SIG = 64
_HEX = frozenset("0123456789abcdef")

# Fixed forever for PARTS_DEFLATED: the event payload's keys and common values (canonical JSON,
# docs/formats.md "Event"), the most common last, where deflate finds them cheapest.
_ZDICT_1 = (
    b'"body":{"act_kind":"purge","commitment":"","paper":"","classification":"top-secret",'
    b'"copies":30,"destination":{"room":"","site":""},"exam":"","handover_witness":true,'
    b'"label_sha256":"","paper_commitment":"","places":[],"position":"","route":[],'
    b'"session":"AM","window":{"end":"","start":""}},"retention_until":"'
    b'"kind":"seal","kind":"receive","kind":"inspect","kind":"patrol","kind":"checkin",'
    b'"kind":"open","kind":"distribute","kind":"recover","kind":"return","kind":"destroy",'
    b'"kind":"dispatch","custodian2":"","examiner":"","supervisor":"","inspector":"",'
    b'"officer":"","witness":"","escort":"","sealer":"","system":"",'
    b'{"actors":{"receiver":"","releaser":""},"authority":"","body":{"seals":["S1","S2"]},'
    b'"corrects":null,"kind":"handover","packages":{"":""},"place":"","time":"2027-03-01T08:00:00Z",'
    b'"type":"custody.event.v1"}'
)
_WBITS = -10  # raw deflate, a 1 KiB window: payload and dictionary are small
_LEVEL = 6
_MEMLEVEL = 4  # a small hash table: set up in a few microseconds, as good on a payload this size


# A compressor with the dictionary already loaded, copied for each payload: loading the
# dictionary hashes all of it, a fifth of the cost of deflating a payload; a copy of the loaded
# state deflates to the same bytes.
_PRIMED = zlib.compressobj(
    _LEVEL, zlib.DEFLATED, _WBITS, _MEMLEVEL, zlib.Z_DEFAULT_STRATEGY, _ZDICT_1
)


def _deflate(payload: bytes) -> bytes:
    c = _PRIMED.copy()
    return c.compress(payload) + c.flush()


def _inflate(data: bytes) -> bytes | None:
    d = zlib.decompressobj(_WBITS, _ZDICT_1)
    try:
        out = d.decompress(data) + d.flush()
    except zlib.error:
        return None
    return out if d.eof and not d.unused_data else None


def envelope_parts(env: Envelope) -> bytes | None:
    """The stored form of ``env`` in parts, or ``None`` when it does not fit them (then the
    leaf's own bytes are stored)."""
    # Bytes concatenated, no list or tuple: this runs for every appended event, and objects the
    # garbage collector tracks would make its collections come sooner.
    count = len(env.signatures)
    if env.payload_type != EVENT_TYPE or not 0 < count < 256:
        return None
    sigs = b""
    for s in env.signatures:
        keyid = s.keyid
        if len(keyid) != 2 * _KEY or not _HEX.issuperset(keyid) or len(s.sig) != _SIG:
            return None
        sigs += bytes.fromhex(keyid) + s.sig
    deflated = _deflate(env.payload)
    if len(deflated) < len(env.payload):
        return bytes((PARTS_DEFLATED, count)) + sigs + deflated
    return bytes((PARTS_RAW, count)) + sigs + env.payload


def stored_envelope(env: Envelope, leaf: bytes) -> bytes:
    """What the entry row keeps for ``env`` whose leaf is ``leaf``: its parts, or the leaf."""
    parts = envelope_parts(env)
    return leaf if parts is None else parts


def envelope_from_parts(stored: bytes) -> Envelope | None:
    """The envelope a stored row in parts holds (``None``: not parts, or parts that do not
    add up)."""
    if len(stored) < 2 or stored[0] not in (PARTS_RAW, PARTS_DEFLATED):
        return None
    count = stored[1]
    start = 2 + count * (_KEY + _SIG)
    if count == 0 or len(stored) < start:
        return None
    sigs = []
    for i in range(2, start, _KEY + _SIG):
        sigs.append(Signature(stored[i : i + _KEY].hex(), stored[i + _KEY : i + _KEY + _SIG]))
    payload = stored[start:]
    if stored[0] == PARTS_DEFLATED:
        inflated = _inflate(payload)
        if inflated is None:
            return None
        payload = inflated
    return Envelope(EVENT_TYPE, payload, tuple(sigs))


def leaf_of(stored: bytes, received_at: str) -> bytes:
    """The leaf bytes of an entry row: rebuilt from its parts and receive time, or the row's
    own bytes when it holds the leaf (or is not readable as parts)."""
    stored = bytes(stored)
    env = envelope_from_parts(stored)
    return stored if env is None else leaf_bytes_at(env, received_at)
