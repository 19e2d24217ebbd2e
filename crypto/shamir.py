"""Shamir secret sharing over GF(2^8), byte by byte (the field of AES, polynomial 0x11B).

Why our own module: neither pynacl nor pyca/cryptography offers secret sharing, and the PyPI
candidates either fix the secret size (pycryptodome's ``Crypto.Protocol.SecretSharing`` shares
16-byte secrets over GF(2^128)) or a mnemonic format (SLIP-39's ``shamir-mnemonic``). The
scheme is small enough to review in one sitting; see docs/adr/0003-papers-encryption.md.

Rules:
- A secret of any length is shared byte-wise: one random polynomial of degree ``k - 1`` per
  byte, its constant term the secret byte; share ``x`` (1..255) holds ``f(x)`` for each byte.
- Coefficients come from the operating system's CSPRNG (``secrets``); the leading coefficient
  may be zero, as in every standard description (it leaks nothing: the other ``k - 1``
  coefficients stay uniform).
- Combining needs ``k`` shares with distinct non-zero ``x`` and equal lengths; fewer shares
  reconstruct a value that is independent of the secret (that is the scheme's guarantee, not
  an error we can detect: callers authenticate the result, e.g. by AEAD decryption).
- Field arithmetic avoids table lookups indexed by secret bytes and branches on them
  (multiplication by masking), to keep timing independent of the secret as far as Python
  allows.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from crypto.errors import N_, FormatError, ThresholdError

MAX_SHARES = 255


def gf_mul(a: int, b: int) -> int:
    """Multiply in GF(2^8) mod x^8 + x^4 + x^3 + x + 1 without secret-dependent branches."""
    product = 0
    for _ in range(8):
        product ^= a & -(b & 1)
        carry = -((a >> 7) & 1)
        a = ((a << 1) ^ (0x1B & carry)) & 0xFF
        b >>= 1
    return product & 0xFF


def gf_inv(a: int) -> int:
    """Inverse by a^254 (Fermat); a must be non-zero (x coordinates are public and non-zero)."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^8)")
    result = 1
    base = a
    exponent = 254
    while exponent:
        if exponent & 1:
            result = gf_mul(result, base)
        base = gf_mul(base, base)
        exponent >>= 1
    return result


@dataclass(frozen=True)
class Share:
    x: int
    y: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.x <= MAX_SHARES:
            raise FormatError(
                N_("a share's x coordinate is 1..{max_shares}, not {x}"),
                max_shares=MAX_SHARES,
                x=self.x,
            )


def _eval(coefficients: Sequence[int], x: int) -> int:
    """Horner's rule; coefficients[0] is the constant term."""
    acc = 0
    for c in reversed(coefficients):
        acc = gf_mul(acc, x) ^ c
    return acc


def split(secret: bytes, threshold: int, count: int) -> list[Share]:
    """Split ``secret`` into ``count`` shares, any ``threshold`` of which rebuild it."""
    if not 1 <= threshold <= count <= MAX_SHARES:
        raise ThresholdError(
            N_("need 1 <= threshold ({threshold}) <= shares ({count}) <= {max_shares}"),
            threshold=threshold,
            count=count,
            max_shares=MAX_SHARES,
        )
    if not secret:
        raise FormatError(N_("cannot share an empty secret"))
    ys = [bytearray(len(secret)) for _ in range(count)]
    for i, byte in enumerate(secret):
        coefficients = [byte] + [secrets.randbelow(256) for _ in range(threshold - 1)]
        for j in range(count):
            ys[j][i] = _eval(coefficients, j + 1)
    return [Share(j + 1, bytes(ys[j])) for j in range(count)]


def combine(shares: Sequence[Share]) -> bytes:
    """Lagrange interpolation at x = 0 over the given shares (all of them are used)."""
    if not shares:
        raise ThresholdError(N_("no shares to combine"))
    xs = [s.x for s in shares]
    if len(set(xs)) != len(xs):
        raise FormatError(N_("two shares carry the same x coordinate"))
    length = len(shares[0].y)
    if any(len(s.y) != length for s in shares):
        raise FormatError(N_("shares of one secret must have equal lengths"))
    # Lagrange basis at 0: l_j = prod_{m != j} x_m / (x_m - x_j); subtraction is XOR.
    basis = []
    for j, xj in enumerate(xs):
        num, den = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                num = gf_mul(num, xm)
                den = gf_mul(den, xm ^ xj)
        basis.append(gf_mul(num, gf_inv(den)))
    out = bytearray(length)
    for i in range(length):
        acc = 0
        for j, share in enumerate(shares):
            acc ^= gf_mul(share.y[i], basis[j])
        out[i] = acc
    return bytes(out)
