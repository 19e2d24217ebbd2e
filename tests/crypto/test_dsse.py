"""DSSE: PAE against the protocol vector, parsing refusals, distinct-key counting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.dsse import Envelope, Signature, pae, parse_envelope, sign_envelope, verify_signatures
from crypto.signing import SigningKey
from custody.errors import CustodyError, DuplicateSignatureError, FormatError


def test_pae_and_signature_of_protocol_vector(vectors: Path) -> None:
    v = json.loads((vectors / "dsse" / "dsse_protocol_v1.0.2_test_vector.json").read_text())
    body = v["serialized_body_utf8"].encode()
    assert pae(v["payload_type"], body) == v["pae_utf8"].encode()
    env = parse_envelope(json.dumps(v["envelope"]).encode())
    assert env.payload == body and env.payload_type == v["payload_type"]
    # The vector's key is ECDSA P-256; check its signature over *our* PAE bytes.
    public = ec.EllipticCurvePublicNumbers(int(v["key"]["x"]), int(v["key"]["y"]), ec.SECP256R1())
    raw = env.signatures[0].sig
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.public_key().verify(der, env.signed_bytes(), ec.ECDSA(hashes.SHA256()))


BAD_ENVELOPES = {
    "not json": b"{",
    "array": b"[]",
    "no signatures": b'{"payload":"","payloadType":"t","signatures":[]}',
    "bad base64": b'{"payload":"***","payloadType":"t","signatures":[{"sig":"AA=="}]}',
    "short sig": b'{"payload":"","payloadType":"t","signatures":[{"sig":"AA=="}]}',
    "extra field": b'{"payload":"","payloadType":"t","signatures":[],"x":1}',
    "duplicate key": b'{"payload":"","payload":"","payloadType":"t","signatures":[]}',
    "type not string": b'{"payload":"","payloadType":1,"signatures":[]}',
    "signature not object": b'{"payload":"","payloadType":"t","signatures":[1]}',
}


@pytest.mark.parametrize("data", BAD_ENVELOPES.values(), ids=BAD_ENVELOPES.keys())
def test_malformed_envelopes_refused(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_envelope(data)


def test_counts_distinct_keys_and_hint_is_only_a_hint() -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    keys = {a.key_id: a.verify_key, b.key_id: b.verify_key}
    env = sign_envelope("t", b"x", [a, b])
    # Without hints, signatures are attributed to the keys that made them.
    bare = Envelope(
        env.payload_type, env.payload, tuple(Signature("", s.sig) for s in env.signatures)
    )
    assert verify_signatures(bare, keys).signed_by == {a.key_id, b.key_id}
    # A hint naming another key never makes a signature count.
    swapped = Envelope(
        env.payload_type,
        env.payload,
        (Signature(b.key_id, env.signatures[0].sig), Signature(a.key_id, env.signatures[1].sig)),
    )
    check = verify_signatures(swapped, keys)
    assert check.signed_by == frozenset() and check.unmatched == (0, 1)


def test_non_canonical_base64_refused() -> None:
    a = SigningKey.generate()
    env = sign_envelope("t", b"x", [a])
    text = env.to_bytes().decode()
    good = '"payload":"eA=="'
    assert good in text
    with pytest.raises(FormatError):
        parse_envelope(text.replace(good, '"payload":"eB=="'))


def test_same_key_twice_refused() -> None:
    a = SigningKey.generate()
    env = sign_envelope("t", b"x", [a, a])
    with pytest.raises(DuplicateSignatureError):
        verify_signatures(env, {a.key_id: a.verify_key})


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_parser_raises_only_format_errors(data: bytes) -> None:
    try:
        parse_envelope(data)
    except CustodyError as e:
        assert isinstance(e, FormatError)


def test_round_trip() -> None:
    a = SigningKey.generate()
    env = sign_envelope("application/x", "载荷".encode(), [a])
    assert parse_envelope(env.to_bytes()) == env
