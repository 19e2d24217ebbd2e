"""Ed25519 through our wrappers: RFC 8032 / djb sign.input, Wycheproof, weak-key refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crypto.signing import SigningKey, VerifyKey, check_ed25519_public_key, key_id
from custody.errors import SignatureError, WeakKeyError


def _sign_input(vectors: Path) -> list[tuple[bytes, bytes, bytes, bytes]]:
    cases = []
    for line in (vectors / "rfc8032" / "ed25519-sign.input").read_text().splitlines():
        sk_pk, pk, msg, sig_msg, _ = line.split(":")
        cases.append(
            (
                bytes.fromhex(sk_pk)[:32],
                bytes.fromhex(pk),
                bytes.fromhex(msg),
                bytes.fromhex(sig_msg)[:64],
            )
        )
    return cases


def test_rfc8032_sign_input_all_lines(vectors: Path) -> None:
    cases = _sign_input(vectors)
    assert len(cases) == 1024
    for seed, pk, msg, sig in cases:
        key = SigningKey(seed)
        assert key.verify_key.raw == pk
        assert key.sign(msg) == sig
        key.verify_key.verify(msg, sig)
        if msg:
            tampered = bytes([msg[0] ^ 1]) + msg[1:]
            assert not key.verify_key.is_valid(tampered, sig)


def _wycheproof(vectors: Path) -> list[tuple[str, bytes, bytes, bytes, str]]:
    data = json.loads((vectors / "wycheproof" / "ed25519_test.json").read_text())
    cases = []
    for group in data["testGroups"]:
        pk = bytes.fromhex(group["publicKey"]["pk"])
        for t in group["tests"]:
            cases.append(
                (
                    f"tc{t['tcId']}",
                    pk,
                    bytes.fromhex(t["msg"]),
                    bytes.fromhex(t["sig"]),
                    t["result"],
                )
            )
    return cases


def test_wycheproof_ed25519_every_case(vectors: Path) -> None:
    cases = _wycheproof(vectors)
    assert len(cases) >= 150
    outcomes = {"valid": 0, "invalid": 0}
    for tc, pk, msg, sig, result in cases:
        try:
            accepted = VerifyKey(pk).is_valid(msg, sig)
        except WeakKeyError:
            accepted = False
        if result == "valid":
            assert accepted, tc
            outcomes["valid"] += 1
        elif result == "invalid":
            assert not accepted, tc
            outcomes["invalid"] += 1
    assert outcomes["valid"] > 0 and outcomes["invalid"] > 0


# The eight small-order points in canonical encoding, plus non-canonical encodings of some.
P = 2**255 - 19
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4 (x=0 sign)
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
]
NON_CANONICAL = [
    (P + 1).to_bytes(32, "little").hex(),  # y = 1 + p (identity, unreduced)
    (2**255 - 1).to_bytes(32, "little").hex(),  # y = 2^255 - 1 >= p
    "0100000000000000000000000000000000000000000000000000000000000080",  # y=1 with sign bit: -0
]


@pytest.mark.parametrize("hexkey", SMALL_ORDER + NON_CANONICAL, ids=lambda h: h[:8] + h[-4:])
def test_weak_public_keys_refused(hexkey: str) -> None:
    with pytest.raises(WeakKeyError):
        check_ed25519_public_key(bytes.fromhex(hexkey))
    with pytest.raises(WeakKeyError):
        VerifyKey(bytes.fromhex(hexkey))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_wrong_length_public_key_refused(length: int) -> None:
    with pytest.raises(WeakKeyError):
        VerifyKey(b"\x09" * length)


def test_key_id_is_documented_hash() -> None:
    import hashlib

    key = SigningKey(bytes(range(32)))
    expected = hashlib.sha256(b"ed25519:" + key.verify_key.raw).hexdigest()
    assert key.key_id == expected == key_id("ed25519", key.verify_key.raw)


def test_context_separation() -> None:
    key = SigningKey.generate()
    sig = key.sign_context("handover", b"m")
    key.verify_key.verify_context("handover", b"m", sig)
    with pytest.raises(SignatureError):
        key.verify_key.verify_context("destroy", b"m", sig)
    with pytest.raises(SignatureError):
        key.verify_key.verify(b"m", sig)


def test_private_key_never_in_repr() -> None:
    key = SigningKey.generate()
    assert key.seed().hex() not in repr(key)
