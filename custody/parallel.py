"""Signature checks on every core: parse envelopes and verify their signatures in worker
processes, keeping order. Workers hold public keys only; nothing secret crosses to them.

The workers run at a lower priority than the process that started them (``WORKER_NICENESS``):
that process (the log's single writer applying the rules, or ``custody verify`` replaying them)
is the one every event waits on, so it gets a core whenever it has work, and the workers take
every cycle it leaves. At equal priority the three processes on two cores share them evenly,
the writer falls behind the workers, and they idle at the end of each batch: batched appends
ran 7,540/s at equal priority against 8,200/s with the workers lowered (means of three
interleaved runs, docs/benchmarks.md "session 10").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from crypto import merkle
from crypto.dsse import (
    Envelope,
    Signature,
    SignatureCheck,
    parse_envelope,
    signers_of,
    verify_signatures,
)
from crypto.signing import VerifyKey
from custody.errors import N_, CustodyError, FormatError, Phrase
from custody.events import EVENT_TYPE, leaf_bytes_at, leaf_parts, parse_leaf

if TYPE_CHECKING:  # process pools load multiprocessing: only when workers are asked for
    from concurrent.futures import Future, ProcessPoolExecutor

CHUNK = 1000


@dataclass(frozen=True)
class Checked:
    """An envelope and which keys signed it, or why it could not be read."""

    envelope: Envelope | None
    sigcheck: SignatureCheck | None
    error: CustodyError | None
    received: datetime | None = None  # a log leaf's receive time


def check_line(line: bytes, keys: Mapping[str, VerifyKey], leaf: bool = False) -> Checked:
    """One submitted envelope, or (``leaf``) one log leaf: the envelope and its receive time."""
    try:
        received = None
        if leaf:
            entry = parse_leaf(line.rstrip(b"\n"))
            env, received = entry.envelope, entry.received
        else:
            env = parse_envelope(line.rstrip(b"\n"), what=Phrase("event envelope"))
        if env.payload_type != EVENT_TYPE:
            raise FormatError(
                N_("not a custody event: payload type {payload_type!r}"),
                payload_type=env.payload_type,
            )
        return Checked(env, verify_signatures(env, keys), None, received)
    except CustodyError as e:
        return Checked(None, None, e)


_WORKER_KEYS: dict[str, VerifyKey] = {}


# Added to a worker's nice value (Unix; a lower priority never needs a privilege).
WORKER_NICENESS = 10


def _init_worker(keys: dict[str, bytes]) -> None:
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)
    _WORKER_KEYS.clear()
    _WORKER_KEYS.update({kid: VerifyKey(raw) for kid, raw in keys.items()})


def _ready() -> int:
    return len(_WORKER_KEYS)


def _check_chunk(lines: list[bytes], leaf: bool) -> list[Checked]:
    return [check_line(line, _WORKER_KEYS, leaf) for line in lines]


# An envelope as it crosses to a worker (payload type, payload, (key id hint, signature)...), and
# what comes back: the key ids that verified and the unmatched signatures' indexes, or the
# refusal. Plain tuples pickle in a fraction of the time the dataclasses take.
Parts = tuple[str, bytes, tuple[tuple[str, bytes], ...]]
Signers = tuple[tuple[str, ...], tuple[int, ...]] | CustodyError


def envelope_parts(env: Envelope) -> Parts:
    return env.payload_type, env.payload, tuple((s.keyid, s.sig) for s in env.signatures)


# The form the log stores an envelope in (``custody.store.leaves.envelope_parts``, a module-level
# function: it is sent to the workers by name; storage is not imported here).
Stored = Callable[[Envelope], bytes | None]
# A worker's answer about one envelope: its signers (or the refusal), and for an envelope whose
# signatures could be checked, what the append asked for besides: its stored form, and its
# Merkle leaf hash under the batch's receive time.
Answer = tuple[Signers, bytes | None, bytes | None]


def _signers(
    parts: Parts,
    keys: Mapping[str, VerifyKey],
    stored: Stored | None = None,
    received: str | None = None,
) -> Answer:
    payload_type, payload, sigs = parts
    env = Envelope(payload_type, payload, tuple(Signature(k, s) for k, s in sigs))
    try:
        check = verify_signatures(env, keys)
    except CustodyError as e:
        return e, None, None
    return (
        (tuple(sorted(check.signed_by)), check.unmatched),
        stored(env) if stored else None,
        merkle.leaf_hash(leaf_bytes_at(env, received)) if received is not None else None,
    )


def _signers_each(
    chunk: list[Parts],
    keys: Mapping[str, VerifyKey],
    stored: Stored | None = None,
    received: str | None = None,
) -> list[Answer]:
    return [_signers(parts, keys, stored, received) for parts in chunk]


def _signers_chunk(
    chunk: list[Parts], stored: Stored | None = None, received: str | None = None
) -> list[Answer]:
    return _signers_each(chunk, _WORKER_KEYS, stored, received)


def signature_check(
    env: Envelope, signers: tuple[tuple[str, ...], tuple[int, ...]]
) -> SignatureCheck:
    """A worker's compact answer back to the check of the envelope it was about."""
    return SignatureCheck(env.payload_type, env.payload, frozenset(signers[0]), signers[1])


# A log leaf as a worker hands it back: its Merkle leaf hash, then the envelope's parts, its
# receive time and who signed it, or the refusal (plain tuples: cheap to pickle).
LeafParts = tuple[bytes, Parts, datetime, tuple[str, ...], tuple[int, ...]]
Leaf = LeafParts | tuple[bytes, CustodyError]


# Key id hints and payload types as one object each, so that a chunk of leaves pickles each
# once (pickle refers back to an object it already wrote) and unpickles at a third of the cost.
_SHARED: dict[str, str] = {}


def _shared(text: str) -> str:
    if len(_SHARED) >= 4096:  # the hints a bundle carries: bounded
        _SHARED.clear()
    return _SHARED.setdefault(text, text)


def check_leaf(line: bytes, keys: Mapping[str, VerifyKey]) -> Leaf:
    """One log leaf: hashed, parsed, its signatures verified."""
    leaf = line.rstrip(b"\n")
    digest = merkle.leaf_hash(leaf)
    try:
        payload_type, payload, sigs, received = leaf_parts(leaf)
        if payload_type != EVENT_TYPE:
            raise FormatError(
                N_("not a custody event: payload type {payload_type!r}"),
                payload_type=payload_type,
            )
        signed_by, unmatched = signers_of(payload_type, payload, sigs, keys)
    except CustodyError as e:
        return digest, e
    parts = (_shared(payload_type), payload, tuple([(_shared(k), s) for k, s in sigs]))
    return digest, parts, received, tuple(sorted(signed_by)), unmatched


def _leaf_chunk(lines: list[bytes]) -> list[Leaf]:
    return [check_leaf(line, _WORKER_KEYS) for line in lines]


def split_block(block: bytes) -> list[bytes]:
    """The lines of a block of whole lines, as iterating over the file gives them less their
    newline: a block ending in a newline has no empty line after it."""
    lines = block.split(b"\n")
    if not lines[-1]:
        lines.pop()
    return lines


def _leaf_block(block: bytes) -> list[Leaf]:
    return [check_leaf(line, _WORKER_KEYS) for line in split_block(block)]


@dataclass(frozen=True)
class LineBlocks:
    """Lines handed over in blocks of whole lines (each block ends where a line ends; the
    last may lack its newline): one object per block crosses to a worker, which splits it."""

    blocks: Iterable[bytes]


def leaf_envelope(parts: Parts) -> Envelope:
    """The envelope of a worker's parts, built without the frozen dataclasses' __init__ (one
    object.__setattr__ per field): the replay makes one per event."""
    payload_type, payload, sigs = parts
    signatures = []
    for keyid, sig in sigs:
        signature = object.__new__(Signature)
        fields = signature.__dict__
        fields["keyid"] = keyid
        fields["sig"] = sig
        signatures.append(signature)
    env = object.__new__(Envelope)
    fields = env.__dict__
    fields["payload_type"] = payload_type
    fields["payload"] = payload
    fields["signatures"] = tuple(signatures)
    return env


assert not hasattr(Signature, "__post_init__")
assert not hasattr(Envelope, "__post_init__")


FIRST_CHUNK = 16  # envelopes in the first chunk of a batch (``ramp``)


def ramp(total: int, size: int, first: int = FIRST_CHUNK) -> list[tuple[int, int]]:
    """Where the chunks of ``total`` items start and end: the first ``first`` long, each next
    one twice the one before, up to ``size``. The process waiting for the first answer (the
    one applying the rules, in order) can start after a small chunk instead of a whole one,
    while the workers go on with larger ones."""
    bounds = []
    start, step = 0, min(first, size)
    while start < total:
        end = min(total, start + step)
        bounds.append((start, end))
        start, step = end, min(size, step * 2)
    return bounds


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class SignaturePool:
    """A pool of worker processes verifying envelopes against one set of public keys."""

    def __init__(self, keys: Mapping[str, VerifyKey], workers: int) -> None:
        self.keys = dict(keys)
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            raw = {kid: k.raw for kid, k in self.keys.items()}
            from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415 (fast start)

            self._pool = ProcessPoolExecutor(
                self.workers, initializer=_init_worker, initargs=(raw,)
            )

    def start(self) -> None:
        """Start every worker now and wait until each has its keys (the pool otherwise starts
        them with its first chunk, which then waits for them)."""
        if self._pool is not None:
            for ready in [self._pool.submit(_ready) for _ in range(self.workers)]:
                ready.result()

    def stream(
        self, lines: Iterable[bytes], chunk: int = CHUNK, *, leaves: bool = False
    ) -> Iterator[tuple[bytes, Checked]]:
        """Check lines (envelopes, or log leaves) in order; at most a few chunks per worker
        are in flight."""
        if self._pool is None:
            for line in lines:
                yield line, check_line(line, self.keys, leaves)
            return
        pending: list[tuple[list[bytes], Future[list[Checked]]]] = []
        for part in _chunks(lines, chunk):
            pending.append((part, self._pool.submit(_check_chunk, part, leaves)))
            if len(pending) >= self.workers * 3:
                done, fut = pending.pop(0)
                yield from zip(done, fut.result(), strict=True)
        for done, fut in pending:
            yield from zip(done, fut.result(), strict=True)

    def signer_chunks(
        self,
        envelopes: list[Envelope],
        size: int,
        *,
        stored: Stored | None = None,
        received: str | None = None,
    ) -> list[tuple[int, int, Callable[[], list[Answer]]]]:
        """Verify the signatures of already parsed envelopes on every worker, in chunks of at
        most ``size`` (``ramp``: small first): every chunk is sent at once, and each (where it
        starts and ends, a call waiting for its answers) can be taken in order while the later
        chunks are still being verified. Each answer also carries, if asked,
        ``stored(envelope)`` and the leaf hash of the envelope received at ``received`` (work
        taken off the appending process)."""
        chunks = [
            (i, j, [envelope_parts(env) for env in envelopes[i:j]])
            for i, j in ramp(len(envelopes), size)
        ]
        if self._pool is None:
            return [
                (i, j, partial(_signers_each, parts, self.keys, stored, received))
                for i, j, parts in chunks
            ]
        pool = self._pool
        return [
            (i, j, pool.submit(_signers_chunk, parts, stored, received).result)
            for i, j, parts in chunks
        ]

    def leaves(self, lines: Iterable[bytes], chunk: int = CHUNK) -> Iterator[Leaf]:
        """Hash, parse and verify log leaves in order on every worker (a few chunks per worker
        in flight); what comes back is compact (``Leaf``), so the process replaying the rules
        spends its time on them, not on unpickling."""
        if self._pool is None:
            for line in lines:
                yield check_leaf(line, self.keys)
            return
        pending: list[Future[list[Leaf]]] = []
        for part in _chunks(lines, chunk):
            pending.append(self._pool.submit(_leaf_chunk, part))
            if len(pending) >= self.workers * 3:
                yield from pending.pop(0).result()
        for fut in pending:
            yield from fut.result()

    def leaf_blocks(self, blocks: Iterable[bytes]) -> Iterator[list[Leaf]]:
        """``leaves`` for lines given in blocks (``LineBlocks``): each block's leaves, in
        order, as a list (a few blocks per worker in flight)."""
        if self._pool is None:
            for block in blocks:
                yield [check_leaf(line, self.keys) for line in split_block(block)]
            return
        pending: list[Future[list[Leaf]]] = []
        for block in blocks:
            pending.append(self._pool.submit(_leaf_block, block))
            if len(pending) >= self.workers * 3:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()

    def check_all(self, lines: list[bytes]) -> list[Checked]:
        size = max(1, min(CHUNK, len(lines) // self.workers + 1))
        return [c for _, c in self.stream(lines, chunk=size)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> SignaturePool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
