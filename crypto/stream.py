"""Encrypted papers: libsodium secretstream (XChaCha20-Poly1305) in fixed-size chunks.

File layout (docs/formats.md, "Encrypted paper"):
  magic ``custody-paper/v1\\n`` | u32 big-endian header length | header (canonical JSON:
  alg, chunk_size, classification, paper_id, version) | 24-byte secretstream header | chunks.
Every chunk is ``chunk_size`` plaintext bytes (the last one fewer, possibly zero) plus 17 bytes
of secretstream overhead; its associated data is SHA-256 of everything before the first chunk.

Rules:
- The header binds paper id, version and classification: it is associated data of every chunk,
  so a header copied from another paper or version makes every chunk fail to authenticate.
- Order, truncation and appending are caught by secretstream itself: chunks carry an implicit
  counter, the last one (and only the last) carries TAG_FINAL, and nothing may follow it.
- The commitment of a paper is SHA-256 of the whole encrypted file; whoever holds the file can
  check it without any key. Decryption checks it too.
- Nothing unauthenticated reaches an output: to a stream, a first pass authenticates every
  chunk (spooling the ciphertext, which is not secret, to an anonymous temp file so it cannot
  change between passes) and only the second pass emits; ``decrypt_into`` writes as it goes
  into a sink private to the caller, who keeps it only when it returns (file placement, a
  temp file linked into place, is the caller's: ``custody.paper_service.decrypt_to_path``).
- Memory is constant in the file size: a few chunks in flight (hashing runs in a helper thread,
  one bounded queue).
- Every authentication failure is the detail-free ``DecryptionError``; malformed framing before
  the first chunk is a ``FormatError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import queue
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import nacl.bindings as sodium
import nacl.exceptions

from crypto.encoding import Fields, canonical_json, parse_json_object
from crypto.errors import N_, DecryptionError, FormatError, StorageError

MAGIC = b"custody-paper/v1\n"
ALG = "secretstream-xchacha20poly1305"
DEFAULT_CHUNK = 1 << 20
MIN_CHUNK = 1 << 10
MAX_CHUNK = 1 << 24
MAX_HEADER = 4096
KEY_BYTES = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
SS_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
OVERHEAD = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_QUEUE_DEPTH = 4

Progress = Callable[[int], None]


def _no_progress(_n: int) -> None:
    return None


@dataclass(frozen=True)
class StreamHeader:
    """The public, bound header of an encrypted paper."""

    paper_id: str
    version: int
    classification: str
    chunk_size: int = DEFAULT_CHUNK

    def __post_init__(self) -> None:
        if not MIN_CHUNK <= self.chunk_size <= MAX_CHUNK:
            raise FormatError(
                N_("chunk size must be {min_chunk}..{max_chunk} bytes"),
                min_chunk=MIN_CHUNK,
                max_chunk=MAX_CHUNK,
            )
        if self.version < 1:
            raise FormatError(N_("a paper version is a positive integer"))
        if not self.paper_id or not self.classification:
            raise FormatError(N_("a paper needs an id and a classification"))

    def json_bytes(self) -> bytes:
        return canonical_json(
            {
                "alg": ALG,
                "chunk_size": self.chunk_size,
                "classification": self.classification,
                "paper_id": self.paper_id,
                "version": self.version,
            }
        )

    def preamble(self) -> bytes:
        body = self.json_bytes()
        if len(body) > MAX_HEADER:
            raise FormatError(
                N_("encrypted paper header is larger than {max_header} bytes"),
                max_header=MAX_HEADER,
            )
        return MAGIC + struct.pack(">I", len(body)) + body

    def same_paper(self, other: StreamHeader) -> bool:
        return (self.paper_id, self.version, self.classification) == (
            other.paper_id,
            other.version,
            other.classification,
        )


def _associated_data(preamble: bytes, ss_header: bytes) -> bytes:
    return hashlib.sha256(preamble + ss_header).digest()


class _Hasher:
    """SHA-256 (and optionally a file write) in a helper thread, fed through a bounded queue.

    hashlib and libsodium both release the GIL on large buffers, so hashing overlaps with the
    AEAD on a second core; the queue bound keeps memory flat.
    """

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self._hash = hashlib.sha256()
        self._sink = sink
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue
            try:
                self._hash.update(item)
                if self._sink is not None:
                    self._sink.write(item)
            except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread)
                self._error = e

    def feed(self, data: bytes) -> None:
        self._queue.put(data)

    def finish(self) -> str:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            if isinstance(self._error, OSError):
                raise StorageError(
                    N_("cannot write: {strerror}"), strerror=self._error.strerror
                ) from self._error
            raise self._error
        return self._hash.hexdigest()


def _read_full(src: BinaryIO, n: int) -> bytes:
    """Read exactly n bytes unless the stream ends first (pipes return short reads)."""
    data = src.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = src.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


@dataclass(frozen=True)
class Encrypted:
    header: StreamHeader
    plaintext_bytes: int
    ciphertext_bytes: int
    commitment: str


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    key: bytes,
    header: StreamHeader,
    *,
    progress: Progress = _no_progress,
) -> Encrypted:
    """Encrypt ``src`` into ``dst``; returns sizes and the commitment (SHA-256 of dst's bytes)."""
    if len(key) != KEY_BYTES:
        raise DecryptionError(N_("a paper data key is 32 bytes"))
    preamble = header.preamble()
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    ss_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    ad = _associated_data(preamble, ss_header)
    hasher = _Hasher(dst)
    try:
        hasher.feed(preamble + ss_header)
        written = len(preamble) + len(ss_header)
        plain_total = 0
        chunk = _read_full(src, header.chunk_size)
        while True:
            # Read one chunk ahead: the last chunk is the one followed by end of input.
            full = len(chunk) == header.chunk_size
            following = _read_full(src, header.chunk_size) if full else b""
            tag = TAG_FINAL if not following else TAG_MESSAGE
            sealed = sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, ad, tag)
            hasher.feed(sealed)
            written += len(sealed)
            plain_total += len(chunk)
            progress(len(chunk))
            if tag == TAG_FINAL:
                break
            chunk = following
    finally:
        commitment = hasher.finish()
    return Encrypted(header, plain_total, written, commitment)


def read_header(src: BinaryIO) -> tuple[StreamHeader, bytes, bytes]:
    """Parse the unverified preamble: (header, preamble bytes, secretstream header)."""
    magic = _read_full(src, len(MAGIC))
    if magic != MAGIC:
        raise FormatError(N_("not an encrypted custody paper (bad magic)"))
    raw_len = _read_full(src, 4)
    if len(raw_len) != 4:
        raise FormatError(N_("encrypted paper ends inside its header"))
    (length,) = struct.unpack(">I", raw_len)
    if length > MAX_HEADER:
        raise FormatError(
            N_("encrypted paper header claims {length} bytes (max {max_header})"),
            length=length,
            max_header=MAX_HEADER,
        )
    body = _read_full(src, length)
    if len(body) != length:
        raise FormatError(N_("encrypted paper ends inside its header"))
    what = "encrypted paper header"
    f = Fields(parse_json_object(body, what=what), what=what)
    f.expect("alg", ALG)
    unverified = StreamHeader(
        paper_id=f.text("paper_id"),
        version=f.integer("version"),
        classification=f.text("classification"),
        chunk_size=f.integer("chunk_size"),
    )
    if unverified.json_bytes() != body:
        raise FormatError(N_("encrypted paper header is not in canonical form"))
    ss_header = _read_full(src, SS_HEADER_BYTES)
    if len(ss_header) != SS_HEADER_BYTES:
        raise FormatError(N_("encrypted paper ends before its stream header"))
    return unverified, magic + raw_len + body, ss_header


def check_framing(data: bytes, expect: StreamHeader) -> None:
    """What anyone without the key can check of an encrypted paper made elsewhere: the
    preamble is exactly ``expect``'s (paper, version, classification, chunk size) and the
    length after the stream header splits into full chunks and one final chunk. The chunks'
    authentication needs the data key; the decrypting person checks it (``decrypt_into``)."""
    unverified, preamble, _ss = read_header(io.BytesIO(data))
    if unverified.json_bytes() != expect.json_bytes():
        raise FormatError(
            N_("the encrypted paper's header is not the one the proposal names"),
            hint=N_("paper id, version, classification and chunk size must be the proposal's"),
        )
    rest = len(data) - len(preamble) - SS_HEADER_BYTES
    if rest < OVERHEAD or (rest - OVERHEAD) % (expect.chunk_size + OVERHEAD) > expect.chunk_size:
        raise FormatError(
            N_("the encrypted paper's length does not fit its chunk size"),
        )


def _chunks(src: BinaryIO, key: bytes, expect: StreamHeader, hasher: _Hasher) -> Iterator[bytes]:
    """Yield authenticated plaintext chunks; raise DecryptionError on any fault.

    A caller must not let a chunk escape before the generator ends normally: the final-tag and
    commitment checks happen after the last chunk.
    """
    if len(key) != KEY_BYTES:
        raise DecryptionError()
    unverified, preamble, ss_header = read_header(src)
    if not unverified.same_paper(expect):
        # A header from another paper or an older version: bound, so it could never verify.
        raise DecryptionError()
    hasher.feed(preamble + ss_header)
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, ss_header, key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
        raise DecryptionError() from e
    ad = _associated_data(preamble, ss_header)
    block = unverified.chunk_size + OVERHEAD
    while True:
        sealed = _read_full(src, block)
        if len(sealed) < OVERHEAD:
            raise DecryptionError()  # truncated: the stream ended before a final chunk
        hasher.feed(sealed)
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed, ad)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
            raise DecryptionError() from e
        if tag == TAG_FINAL:
            if src.read(1):
                raise DecryptionError()  # bytes appended after the final chunk
            yield plain
            return
        if tag != TAG_MESSAGE or len(sealed) != block:
            raise DecryptionError()  # a short chunk that is not the last one
        yield plain


def _check_commitment(actual: str, commitment: str | None) -> None:
    if commitment is not None and actual != commitment:
        raise DecryptionError()


def verify_stream(
    src: BinaryIO,
    key: bytes,
    expect: StreamHeader,
    *,
    commitment: str | None = None,
    spool: BinaryIO | None = None,
    progress: Progress = _no_progress,
) -> str:
    """Authenticate every chunk and emit nothing; optionally copy the ciphertext to ``spool``."""
    hasher = _Hasher(spool)
    try:
        for plain in _chunks(src, key, expect, hasher):
            progress(len(plain))
    finally:
        actual = hasher.finish()
    _check_commitment(actual, commitment)
    return actual


def decrypt_into(
    src: BinaryIO,
    key: bytes,
    expect: StreamHeader,
    sink: BinaryIO,
    *,
    commitment: str | None = None,
    progress: Progress = _no_progress,
) -> int:
    """One pass into ``sink``, which must be private to the caller: plaintext is written as
    each chunk authenticates, so on any failure what was written is unauthenticated and the
    caller discards it (``custody.paper_service.decrypt_to_path`` writes a private temp file
    and links it into place only when this returns). Returns the plaintext length."""
    total = 0
    hasher = _Hasher()
    try:
        for plain in _chunks(src, key, expect, hasher):
            sink.write(plain)
            total += len(plain)
            progress(len(plain))
    finally:
        actual = hasher.finish()
    _check_commitment(actual, commitment)
    return total


def decrypt_to_writer(
    src: BinaryIO,
    key: bytes,
    expect: StreamHeader,
    out: BinaryIO,
    *,
    commitment: str | None = None,
    progress: Progress = _no_progress,
) -> int:
    """Two passes: authenticate all (spooling ciphertext privately), then emit."""
    with tempfile.TemporaryFile(prefix="custody-ct-") as spool:
        verify_stream(src, key, expect, commitment=commitment, spool=spool)
        spool.seek(0)
        total = 0
        hasher = _Hasher()
        try:
            for plain in _chunks(spool, key, expect, hasher):
                out.write(plain)
                total += len(plain)
                progress(len(plain))
        finally:
            hasher.finish()
    with contextlib.suppress(AttributeError, ValueError):
        out.flush()
    return total


def decrypt_bytes(data: bytes, key: bytes, expect: StreamHeader) -> bytes:
    """Small papers in memory (tests, the structured-paper preview); all or nothing."""
    hasher = _Hasher()
    try:
        parts = list(_chunks(io.BytesIO(data), key, expect, hasher))
    finally:
        hasher.finish()
    return b"".join(parts)
