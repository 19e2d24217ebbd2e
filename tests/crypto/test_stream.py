"""The encrypted-paper stream: round trips, every tampering refused, nothing unverified emitted."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.sealing import aead_decrypt, aead_encrypt
from crypto.stream import (
    MAGIC,
    OVERHEAD,
    SS_HEADER_BYTES,
    StreamHeader,
    decrypt_bytes,
    decrypt_to_writer,
    encrypt_stream,
    verify_stream,
)
from custody.errors import ConflictError, DecryptionError, FormatError
from custody.paper_service import decrypt_to_path  # file placement, over crypto.stream

CHUNK = 1024
KEY = bytes(range(32))
HEADER = StreamHeader("SX-INT-A", 2, "top-secret", CHUNK)


def encrypt(plain: bytes, key: bytes = KEY, header: StreamHeader = HEADER) -> tuple[bytes, str]:
    out = io.BytesIO()
    enc = encrypt_stream(io.BytesIO(plain), out, key, header)
    return out.getvalue(), enc.commitment


def split(blob: bytes) -> tuple[bytes, list[bytes]]:
    """(preamble incl. stream header, chunks)."""
    (hlen,) = struct.unpack(">I", blob[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4 + hlen + SS_HEADER_BYTES
    body = blob[start:]
    step = CHUNK + OVERHEAD
    return blob[:start], [body[i : i + step] for i in range(0, len(body), step)]


def refuse_everywhere(
    blob: bytes, tmp_path: Path, key: bytes = KEY, commitment: str | None = None
) -> type[Exception]:
    """Every decryption path refuses, and none of them emitted a byte."""
    errors = []
    sink = io.BytesIO()
    with pytest.raises((DecryptionError, FormatError)) as e1:
        decrypt_to_writer(io.BytesIO(blob), key, HEADER, sink, commitment=commitment)
    assert sink.getvalue() == b""
    errors.append(e1.type)
    out = tmp_path / "out.pdf"
    with pytest.raises((DecryptionError, FormatError)) as e2:
        decrypt_to_path(io.BytesIO(blob), key, HEADER, out, commitment=commitment)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the temp file is gone too
    errors.append(e2.type)
    if commitment is None:
        with pytest.raises((DecryptionError, FormatError)):
            decrypt_bytes(blob, key, HEADER)
    assert errors[0] is errors[1]
    return errors[0]


PLAIN = os.urandom(5 * CHUNK + 100)  # six chunks, the last one short


def _flip_chunk(blob: bytes) -> bytes:
    pre, chunks = split(blob)
    bad = bytearray(chunks[2])
    bad[10] ^= 0x01
    chunks[2] = bytes(bad)
    return pre + b"".join(chunks)


def _flip_tag(blob: bytes) -> bytes:
    return blob[:-1] + bytes([blob[-1] ^ 0x80])


def _truncate_last_chunk(blob: bytes) -> bytes:
    pre, chunks = split(blob)
    return pre + b"".join(chunks[:-1])


def _truncate_mid_chunk(blob: bytes) -> bytes:
    return blob[:-50]


def _reorder(blob: bytes) -> bytes:
    pre, chunks = split(blob)
    chunks[1], chunks[2] = chunks[2], chunks[1]
    return pre + b"".join(chunks)


def _append_chunk(blob: bytes) -> bytes:
    pre, chunks = split(blob)
    return pre + b"".join(chunks) + chunks[0]


def _append_byte(blob: bytes) -> bytes:
    return blob + b"\x00"


def _drop_first_chunk(blob: bytes) -> bytes:
    pre, chunks = split(blob)
    return pre + b"".join(chunks[1:])


def _other_version_header(blob: bytes) -> bytes:
    other = StreamHeader("SX-INT-A", 1, "top-secret", CHUNK)
    _, chunks = split(blob)
    pre, _ = split(encrypt(PLAIN, KEY, other)[0])
    return pre + b"".join(chunks)


def _relabel_classification(blob: bytes) -> bytes:
    return blob.replace(b'"top-secret"', b'"secret\\u002d"', 1)


TAMPER: list[tuple[str, Callable[[bytes], bytes], type[Exception]]] = [
    ("flipped-chunk-byte", _flip_chunk, DecryptionError),
    ("flipped-final-tag", _flip_tag, DecryptionError),
    ("truncated-final-chunk", _truncate_last_chunk, DecryptionError),
    ("truncated-mid-chunk", _truncate_mid_chunk, DecryptionError),
    ("reordered-chunks", _reorder, DecryptionError),
    ("appended-chunk", _append_chunk, DecryptionError),
    ("appended-byte", _append_byte, DecryptionError),
    ("dropped-first-chunk", _drop_first_chunk, DecryptionError),
    ("header-of-older-version", _other_version_header, DecryptionError),
    ("header-not-canonical", _relabel_classification, FormatError),
    ("bad-magic", lambda b: b"X" + b[1:], FormatError),
    ("empty", lambda b: b"", FormatError),
]


@pytest.mark.parametrize(
    ("tamper", "expected"), [(t, e) for _, t, e in TAMPER], ids=[name for name, _, _ in TAMPER]
)
def test_tampering_is_refused_and_nothing_is_emitted(
    tamper: Callable[[bytes], bytes], expected: type[Exception], tmp_path: Path
) -> None:
    blob, _ = encrypt(PLAIN)
    assert refuse_everywhere(tamper(blob), tmp_path) is expected


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    blob, _ = encrypt(PLAIN)
    assert refuse_everywhere(blob, tmp_path, key=bytes(32)) is DecryptionError


def test_commitment_mismatch_is_refused(tmp_path: Path) -> None:
    blob, _ = encrypt(PLAIN)
    assert refuse_everywhere(blob, tmp_path, commitment="0" * 64) is DecryptionError


def test_header_of_another_paper_is_refused(tmp_path: Path) -> None:
    blob, _ = encrypt(PLAIN, header=StreamHeader("SX-INT-B", 2, "top-secret", CHUNK))
    assert refuse_everywhere(blob, tmp_path) is DecryptionError


def test_output_file_is_never_replaced(tmp_path: Path) -> None:
    blob, _ = encrypt(PLAIN)
    out = tmp_path / "paper.pdf"
    out.write_bytes(b"mine")
    with pytest.raises(ConflictError):
        decrypt_to_path(io.BytesIO(blob), KEY, HEADER, out)
    assert out.read_bytes() == b"mine"


def test_round_trip_to_file_and_stream(tmp_path: Path) -> None:
    blob, commitment = encrypt(PLAIN)
    assert commitment == hashlib.sha256(blob).hexdigest()
    out = tmp_path / "paper.pdf"
    assert decrypt_to_path(io.BytesIO(blob), KEY, HEADER, out, commitment=commitment) == len(PLAIN)
    assert out.read_bytes() == PLAIN
    assert (out.stat().st_mode & 0o777) == 0o600
    sink = io.BytesIO()
    decrypt_to_writer(io.BytesIO(blob), KEY, HEADER, sink, commitment=commitment)
    assert sink.getvalue() == PLAIN
    assert verify_stream(io.BytesIO(blob), KEY, HEADER) == commitment


def test_header_is_public_and_bound() -> None:
    blob, _ = encrypt(b"x")
    (hlen,) = struct.unpack(">I", blob[len(MAGIC) : len(MAGIC) + 4])
    header = json.loads(blob[len(MAGIC) + 4 : len(MAGIC) + 4 + hlen])
    assert header == {
        "alg": "secretstream-xchacha20poly1305",
        "chunk_size": CHUNK,
        "classification": "top-secret",
        "paper_id": "SX-INT-A",
        "version": 2,
    }
    # one final chunk of 1 byte: header + 24-byte stream header + (1 + 17)
    assert len(blob) == len(MAGIC) + 4 + hlen + 24 + 1 + OVERHEAD


@settings(max_examples=40, deadline=None)
@given(plain=st.binary(max_size=4 * CHUNK + 3), extra_chunks=st.integers(0, 2))
def test_round_trip_any_length(plain: bytes, extra_chunks: int) -> None:
    plain = plain + b"\x5a" * (CHUNK * extra_chunks)  # exact multiples of the chunk size too
    blob, _ = encrypt(plain)
    assert decrypt_bytes(blob, KEY, HEADER) == plain


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_changed_byte_is_refused(data: st.DataObject) -> None:
    blob, _ = encrypt(PLAIN[: 2 * CHUNK + 7])
    index = data.draw(st.integers(0, len(blob) - 1))
    delta = data.draw(st.integers(1, 255))
    bad = bytearray(blob)
    bad[index] ^= delta
    sink = io.BytesIO()
    with pytest.raises((DecryptionError, FormatError)):
        decrypt_to_writer(io.BytesIO(bytes(bad)), KEY, HEADER, sink)
    assert sink.getvalue() == b""


@settings(max_examples=60, deadline=None)
@given(junk=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_our_errors(junk: bytes) -> None:
    with pytest.raises((DecryptionError, FormatError)):
        decrypt_bytes(MAGIC + junk, KEY, HEADER)


# --- the AEAD wrapper of crypto/sealing.py against Wycheproof --------------------------------


def test_wycheproof_xchacha20_poly1305(vectors: Path) -> None:
    doc = json.loads((vectors / "wycheproof" / "xchacha20_poly1305_test.json").read_text())
    checked = 0
    for group in doc["testGroups"]:
        for case in group["tests"]:
            key, nonce = bytes.fromhex(case["key"]), bytes.fromhex(case["iv"])
            aad, msg = bytes.fromhex(case["aad"]), bytes.fromhex(case["msg"])
            sealed = bytes.fromhex(case["ct"]) + bytes.fromhex(case["tag"])
            if len(key) != 32 or len(nonce) != 24:
                with pytest.raises((DecryptionError, ValueError, TypeError)):
                    aead_decrypt(key, nonce, sealed, aad)
                continue
            if case["result"] == "valid":
                assert aead_encrypt(key, nonce, msg, aad) == sealed, case["tcId"]
                assert aead_decrypt(key, nonce, sealed, aad) == msg, case["tcId"]
            else:
                with pytest.raises(DecryptionError):
                    aead_decrypt(key, nonce, sealed, aad)
            checked += 1
    assert checked > 100
