"""Signature checks on several worker processes (custody/parallel.py) judge every log leaf and
every envelope exactly as one process does, in order: good ones with who signed them, and the
ones that are not custody events, not canonical, forged or signed twice by one key refused."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path

import pytest

from crypto import merkle
from crypto.dsse import Envelope, parse_envelope, sign_envelope
from custody.audit import (
    BLOCK,
    export_bundle,
    load_trust_document,
    read_bundle,
    stream_blocks,
    stream_lines,
    verify_log,
)
from custody.demo import Season, seal_events
from custody.errors import CustodyError, DuplicateSignatureError, FormatError
from custody.events import leaf_bytes, leaf_bytes_at, parse_leaf
from custody.parallel import (
    WORKER_NICENESS,
    Leaf,
    LineBlocks,
    SignaturePool,
    Signers,
    leaf_envelope,
    ramp,
    signature_check,
    split_block,
)
from custody.store.leaves import envelope_parts


def judged(items: list[Leaf] | list[Signers]) -> list[object]:
    """Comparable outcomes: a refusal by its class and message (errors compare by identity)."""
    out: list[object] = []
    for item in items:
        if isinstance(item, CustodyError):
            out.append((type(item), item.message))
        elif isinstance(item[-1], CustodyError):
            out.append((item[0], type(item[-1]), item[-1].message))
        else:
            out.append(item)
    return out


def log_leaves(season: Season, count: int) -> list[bytes]:
    log = season.log()
    for line in seal_events(season, [f"PK-{n}" for n in range(count)]):
        log.submit(parse_envelope(line), now=season.now)
    return [leaf for _, leaf in log.entries()]


def doctored(season: Season, good: bytes) -> dict[str, bytes]:
    """Leaves no honest log holds, each built from a real one."""
    entry = parse_leaf(good)
    env, received = entry.envelope, entry.received
    other = parse_leaf(log_leaves(season, 0)[0]).envelope
    forged = Envelope(env.payload_type, env.payload, (other.signatures[0], *env.signatures[1:]))
    twice = Envelope(env.payload_type, env.payload, (env.signatures[0], env.signatures[0]))
    key = season.keys["print-qian"].signing
    not_event = sign_envelope("application/x-other", b"{}", [key])
    return {
        "forged": leaf_bytes(forged, received),
        "twice": leaf_bytes(twice, received),
        "not-an-event": leaf_bytes(not_event, received),
        "not-canonical": good.replace(b'{"envelope":', b'{ "envelope":', 1),
        "not-json": b"not a leaf at all",
    }


def test_two_workers_judge_leaves_as_one_process_does(season: Season) -> None:
    leaves = log_leaves(season, 9)
    bad = doctored(season, leaves[-1])
    lines = [*leaves[:4], *bad.values(), *leaves[4:]]
    keys = season.log().trust.signing_keys
    with SignaturePool(keys, 1) as alone:
        one = list(alone.leaves(lines))
    with SignaturePool(keys, 2) as pool:
        two = list(pool.leaves(lines, chunk=2))  # more chunks than the window of 6 in flight
    assert judged(two) == judged(one)
    assert [item[0] for item in two] == [merkle.leaf_hash(line) for line in lines]

    outcome = dict(zip(bad, two[4 : 4 + len(bad)], strict=True))
    assert isinstance(outcome["not-an-event"][1], FormatError)
    assert "payload type" in outcome["not-an-event"][1].message
    assert isinstance(outcome["not-canonical"][1], FormatError)
    assert isinstance(outcome["not-json"][1], FormatError)
    assert isinstance(outcome["twice"][1], DuplicateSignatureError)
    forged = outcome["forged"]
    assert len(forged) == 5 and forged[4] == (0,)  # the forged signature matches no key

    good = two[0]
    assert len(good) == 5
    _, parts, received, signed, unmatched = good
    assert isinstance(received, datetime) and signed and unmatched == ()
    assert leaf_envelope(parts) == parse_leaf(lines[0]).envelope


def test_two_workers_name_an_envelope_s_signers_as_one_process_does(season: Season) -> None:
    leaves = log_leaves(season, 5)
    bad = doctored(season, leaves[-1])
    envelopes = [parse_leaf(leaf).envelope for leaf in leaves]
    envelopes += [parse_leaf(bad["forged"]).envelope, parse_leaf(bad["twice"]).envelope]
    keys = season.log().trust.signing_keys
    with SignaturePool(keys, 1) as alone:
        one = [a[0] for _, _, wait in alone.signer_chunks(envelopes, 3) for a in wait()]
    pool = SignaturePool(keys, 2)
    try:
        # answers come back chunk by chunk, in order, each with the extra the workers computed
        received = "2027-03-01T08:00:00Z"
        chunks = pool.signer_chunks(envelopes, 3, stored=envelope_parts, received=received)
        bounds = [(start, end) for start, end, _ in chunks]
        assert bounds == ramp(len(envelopes), 3)
        assert [start for start, _ in bounds] == [0] + [end for _, end in bounds[:-1]]
        answers = [a for _, _, wait in chunks for a in wait()]
        two = [s for s, _, _ in answers]
        assert [a[1] for a in answers[:-1]] == [envelope_parts(e) for e in envelopes[:-1]]
        assert [a[2] for a in answers[:-1]] == [
            merkle.leaf_hash(leaf_bytes_at(e, received)) for e in envelopes[:-1]
        ]
        assert answers[-1][1:] == (None, None)  # nothing more for an envelope that was refused
    finally:
        pool.close()
        pool.close()  # closing twice is harmless
    assert judged(two) == judged(one)
    assert isinstance(two[-1], DuplicateSignatureError)
    forged = two[-2]
    assert not isinstance(forged, CustodyError) and forged[1] == (0,)
    first = two[0]
    assert not isinstance(first, CustodyError)
    check = signature_check(envelopes[0], first)
    assert check.payload == envelopes[0].payload and check.signed_by == frozenset(first[0])


@pytest.mark.parametrize("workers", [0, -3])
def test_fewer_than_one_worker_means_this_process(season: Season, workers: int) -> None:
    leaves = log_leaves(season, 2)
    with SignaturePool(season.log().trust.signing_keys, workers) as pool:
        assert pool.workers == 1
        assert [item[0] for item in pool.leaves(leaves)] == [merkle.leaf_hash(x) for x in leaves]


@pytest.mark.skipif(not hasattr(os, "nice"), reason="process priorities are a Unix feature")
def test_workers_run_below_the_process_that_waits_on_them() -> None:
    """The writer (or the replay) is the one every event waits on: its workers yield to it."""
    with SignaturePool({}, 2) as pool:
        assert pool._pool is not None
        theirs = {pool._pool.submit(os.nice, 0).result() for _ in range(4)}
    assert theirs == {min(19, os.nice(0) + WORKER_NICENESS)}
    assert WORKER_NICENESS > 0


def test_blocks_of_lines_give_the_lines_the_file_gives(tmp_path: Path) -> None:
    """``stream_blocks`` cuts only at newlines, keeps every byte (a line longer than a
    block, empty lines, a carriage return, no final newline) and feeds the digest all of it."""
    long = b"x" * (3 * BLOCK + 17)
    for data in (
        b"",
        b"a\n",
        b"a\nb",
        b"\n\n",
        b"a\r\nb\n\nc",
        long,
        long + b"\n" + long,
        b"a\n" + long + b"\nb\n",
        b"y" * (BLOCK - 1) + b"\n" + b"z" * BLOCK,
    ):
        path = tmp_path / "events.jsonl"
        path.write_bytes(data)
        digest = hashlib.sha256()
        blocks = list(stream_blocks(path, digest.update))
        assert all(blocks) and all(b.endswith(b"\n") for b in blocks[:-1])
        assert b"".join(blocks) == data
        assert digest.digest() == hashlib.sha256(data).digest()
        with path.open("rb") as fh:
            lines = [line.rstrip(b"\n") for line in fh]
        assert [line for block in blocks for line in split_block(block)] == lines


def test_leaves_in_blocks_are_judged_as_one_by_one(season: Season) -> None:
    leaves = log_leaves(season, 7)
    bad = doctored(season, leaves[-1])
    lines = [*leaves[:3], *bad.values(), b"", *leaves[3:]]
    blocks = [b"\n".join(lines[:4]) + b"\n", b"\n".join(lines[4:9]) + b"\n", b"\n".join(lines[9:])]
    keys = season.log().trust.signing_keys
    with SignaturePool(keys, 1) as alone:
        one = list(alone.leaves(lines))
        by_block = [leaf for block in alone.leaf_blocks(blocks) for leaf in block]
    with SignaturePool(keys, 2) as pool:
        two = [leaf for block in pool.leaf_blocks(blocks * 3) for leaf in block]
    assert judged(by_block) == judged(one)
    assert judged(two) == judged(one) * 3


def test_a_bundle_read_in_blocks_verifies_as_read_line_by_line(
    season: Season, tmp_path: Path
) -> None:
    log = season.log()
    for line in seal_events(season, [f"PK-{n}" for n in range(5)]):
        log.submit(parse_envelope(line), now=season.now)
    folder = tmp_path / "export"
    export_bundle(log, folder)
    events = folder / "events.jsonl"
    data = events.read_bytes().splitlines(keepends=True)
    # an event damaged, one missing: the same problems either way
    events.write_bytes(data[0] + data[1].replace(b'"PK-', b'"PX-') + b"".join(data[3:]))
    trust_doc, note = read_bundle(folder)
    trust = load_trust_document(trust_doc, pinned_root_id=None)
    heard: list[tuple[int, int]] = []
    for workers in (1, 2):
        by_line = verify_log(trust, note, stream_lines(events), workers=workers)
        by_block = verify_log(
            trust,
            note,
            LineBlocks(stream_blocks(events)),
            workers=workers,
            progress=lambda n, size: heard.append((n, size)),
        )
        assert by_block.as_dict() == by_line.as_dict()
        assert not by_block.ok and by_block.checked == len(data) - 1
        assert heard[-1] == (len(data) - 1, len(data))
