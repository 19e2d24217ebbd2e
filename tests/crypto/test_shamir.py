"""Shamir secret sharing over GF(2^8) (crypto/shamir.py): arithmetic, rebuild, refusals."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import shamir
from crypto.errors import FormatError, ThresholdError


def test_gf_arithmetic() -> None:
    assert shamir.gf_mul(0x57, 0x83) == 0xC1  # FIPS-197 section 4.2 example
    assert shamir.gf_mul(0x57, 0x13) == 0xFE
    for a in range(1, 256):
        assert shamir.gf_mul(a, shamir.gf_inv(a)) == 1
    with pytest.raises(ZeroDivisionError):
        shamir.gf_inv(0)


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=40),
    k=st.integers(1, 5),
    extra=st.integers(0, 3),
    data=st.data(),
)
def test_any_k_shares_rebuild_the_secret(
    secret: bytes, k: int, extra: int, data: st.DataObject
) -> None:
    shares = shamir.split(secret, k, k + extra)
    chosen = data.draw(st.permutations(shares)).__getitem__(slice(0, k))
    assert shamir.combine(chosen) == secret


def test_fewer_than_k_shares_do_not_rebuild() -> None:
    secret = os.urandom(32)
    shares = shamir.split(secret, 3, 5)
    assert shamir.combine(shares[:2]) != secret


@pytest.mark.parametrize(
    ("k", "n"), [(0, 2), (3, 2), (2, 256)], ids=["zero-threshold", "k-above-n", "too-many"]
)
def test_bad_parameters_refused(k: int, n: int) -> None:
    with pytest.raises(ThresholdError):
        shamir.split(b"s", k, n)


def test_duplicate_x_refused() -> None:
    s = shamir.split(b"secret", 2, 3)
    with pytest.raises(FormatError):
        shamir.combine([s[0], s[0]])
