"""A seeded sealed box (for vectors and doc examples) is libsodium's crypto_box_seal format:
the ordinary opener opens it, and the same seed gives the same bytes."""

from __future__ import annotations

import nacl.public
import pytest

from crypto.errors import DecryptionError
from crypto.sealing import open_sealed, seal_to


def test_a_seeded_box_is_a_sealed_box() -> None:
    me = nacl.public.PrivateKey.generate()
    public = bytes(me.public_key)
    one = seal_to(public, b"note", ephemeral_seed=b"\x01" * 32)
    assert one == seal_to(public, b"note", ephemeral_seed=b"\x01" * 32)
    assert one != seal_to(public, b"note", ephemeral_seed=b"\x02" * 32)
    assert open_sealed(me, one) == b"note"
    assert nacl.public.SealedBox(me).decrypt(one) == b"note"  # libsodium's own opener
    with pytest.raises(DecryptionError):
        open_sealed(nacl.public.PrivateKey.generate(), one)
    assert seal_to(public, b"note") != seal_to(public, b"note")  # unseeded: fresh each time
