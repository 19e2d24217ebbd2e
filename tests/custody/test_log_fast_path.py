"""The append path's shortcuts change no outcome: the writer's in-memory package states give way
to another writer's appends; orjson's parse accepts and refuses exactly what the exact canonical
check does; an envelope's cached bytes are its canonical JSON; the signature workers' compact
answers judge as the in-process check does."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import custody.log
from crypto import merkle
from crypto.dsse import Envelope, Signature, sign_envelope
from crypto.encoding import canonical_json
from crypto.note import parse_checkpoint
from custody.demo import EXAM_ID, Season, seal_body, start_season
from custody.errors import (
    ChainError,
    FormatError,
    RevokedError,
    SignatureError,
    ThresholdError,
    UsageError,
)
from custody.events import EVENT_TYPE, Kind, parse_event
from custody.log import PARALLEL_BATCH, PARALLEL_CHUNK, statement_id_of
from custody.parallel import SignaturePool
from custody.service import ServiceSecrets, open_writer
from tests.api.helpers import seal_event
from tests.conftest import PASS, T0, fast_kdf, revoke_now
from tests.custody.test_log import SEALS, seal, transfer


def _handover(season: Season, frm: str, to: str, prev: str | None) -> Envelope:
    return season.event(
        Kind.DISPATCH if frm == "print-qian" else Kind.HANDOVER,
        ["PK-1"],
        actors={"releaser": frm, "receiver": to},
        signers=[frm, to],
        body={"seals": SEALS},
        prevs={"PK-1": prev},
    )


def test_a_second_writer_appending_empties_the_first_ones_states(season: Season) -> None:
    seal(season)
    first = season.log()
    second = open_writer(season.home, ServiceSecrets(log=PASS, system=PASS))
    sealed = first.package_state("PK-1").last_event
    dispatch = _handover(season, "print-qian", "courier-sun", sealed)
    first.submit(dispatch, now=season.now)  # the first writer now holds PK-1's state in memory
    dispatched = first.package_state("PK-1").last_event
    # the second writer moves the package on; the first one's memory of it is now stale
    second.submit(_handover(season, "courier-sun", "courier-li", dispatched), now=season.now)
    moved = second.package_state("PK-1").last_event
    # judged against the stale state this step would be accepted; against the log's, courier-li
    # holds the package and the slots are not filled
    with pytest.raises(ThresholdError):
        first.submit(_handover(season, "courier-sun", "courier-li", dispatched), now=season.now)
    # and the true next step, made from the second writer's state, is accepted by the first
    receipt = first.submit(_handover(season, "courier-li", "custodian-zhou", moved), now=season.now)
    assert receipt.index == first.size() - 1
    assert first.package_state("PK-1").holder == "custodian-zhou"
    second.close()


def test_a_refused_append_keeps_the_states_that_are_on_the_log(season: Season) -> None:
    seal(season)
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    log = season.log()
    before = log.package_state("PK-1")
    with pytest.raises(ChainError):
        log.submit(_handover(season, "courier-sun", "courier-li", "0" * 64), now=season.now)
    transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-li")
    after = log.package_state("PK-1")
    assert after.holder == "courier-li" and after.last_event != before.last_event


def test_the_writer_keeps_the_states_of_a_bounded_number_of_packages(
    season: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its bound, the writer drops the package states (and the incident desk's rows) it
    kept longest; a dropped package's chain goes on from the database, judged as before."""
    monkeypatch.setattr(custody.log, "CACHED_PACKAGES", 4)
    log = season.log()
    packages = [f"PK-{n}" for n in range(10)]
    for pid in packages:
        seal(season, pid)
        assert len(log._states) <= 4 and all(len(rows) <= 4 for rows in log._kept.values())
    assert "PK-0" not in log._states and "PK-9" in log._states
    for pid in packages:
        transfer(season, Kind.DISPATCH, pid, "print-qian", "courier-sun")
        assert len(log._states) <= 4 and all(len(rows) <= 4 for rows in log._kept.values())
    assert "PK-0" not in log._states  # dropped again; read back for the step below
    dispatched = log.package_state("PK-0").last_event
    wrong = season.event(
        Kind.HANDOVER,
        ["PK-0"],
        actors={"releaser": "courier-sun", "receiver": "courier-li"},
        signers=["courier-sun", "courier-li"],
        body={"seals": SEALS},
        prevs={"PK-0": "0" * 64},
    )
    with pytest.raises(ChainError):
        log.submit(wrong, now=season.now)
    transfer(season, Kind.HANDOVER, "PK-0", "courier-sun", "courier-li")
    after = log.package_state("PK-0")
    assert after.holder == "courier-li" and after.last_event != dispatched
    # the desk's rows, dropped and read back, still follow each package's status
    with season.home.engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT package_id, status FROM incident_watch")).all())
    assert rows == {**dict.fromkeys(packages, "in_transit"), "PK-0": "in_transit"}


BASE = {
    "type": "custody.event.v1",
    "kind": "inspect",
    "authority": "A" * 8,
    "time": "2027-03-01T08:00:00Z",
    "place": "库房 3.1",
    "packages": {"PK-1": "a" * 64},
    "actors": {"inspector": "courier-sun"},
    "body": {},
    "corrects": None,
}


def _with_body(body: object) -> dict[str, object]:
    return {**BASE, "body": body}


@pytest.mark.parametrize(
    "payload",
    [
        canonical_json(BASE),
        canonical_json(_with_body({"count": 1.5, "big": 2**70, "exp": 1e16})),
        canonical_json(_with_body({"note": 'line\nbreak \u2028 \x7f é 中 \U0001f600 \\ "'})),
        canonical_json(_with_body({"n": -(2**63), "m": 2**64 - 1, "l": [True, False, None]})),
    ],
    ids=["plain", "floats-and-big-ints", "escapes-and-unicode", "integer-edges"],
)
def test_canonical_payloads_parse_as_the_exact_check_says(payload: bytes) -> None:
    event = parse_event(payload)
    assert event.payload() == payload
    assert dict(event.body) == json.loads(payload)["body"]


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps(BASE).encode(),  # spaces
        canonical_json(BASE).replace(b'"actors"', b'"body":{},"actors"', 1),  # duplicate key
        canonical_json(_with_body({"x": 10**16})).replace(b"10000000000000000", b"1E+16"),
        canonical_json(_with_body({"x": 10**16})).replace(b"10000000000000000", b"1e16"),
        canonical_json(_with_body({"x": "é"})).replace("é".encode(), b"\\u00e9"),  # escaped
        canonical_json(_with_body({"x": 2**70})).replace(b'"x":', b'"x":0.10,"y":'),
        b'{"a":"\\ud800"}',  # a lone surrogate
        b"[1,2]",
    ],
    ids=[
        "whitespace",
        "duplicate-key",
        "exponent-form",
        "exponent-orjson-form",
        "escaped-non-ascii",
        "trailing-zero",
        "lone-surrogate",
        "not-an-object",
    ],
)
def test_non_canonical_payloads_are_refused_as_before(payload: bytes) -> None:
    with pytest.raises(FormatError):
        parse_event(payload)


def test_envelope_bytes_are_its_canonical_json() -> None:
    env = Envelope(
        'odd "type" é',
        b"\x00\xffpayload",
        (Signature("", b"\x01" * 64), Signature('k"é\x01', b"\x02" * 64)),
    )
    expected = json.dumps(env.to_json_obj(), sort_keys=True, separators=(",", ":")).encode()
    assert env.to_bytes() == expected
    assert env.to_bytes() is env.to_bytes()  # built once


def _dispatch(season: Season, pkg: str, prev: str | None = None) -> Envelope:
    """The printer's dispatch of ``pkg`` to courier-sun, signed by both, not submitted."""
    return season.event(
        Kind.DISPATCH,
        [pkg],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
        prevs=None if prev is None else {pkg: prev},
    )


def test_signature_workers_judge_a_batch_as_one_process_does(season: Season) -> None:
    seal(season, "PK-1")
    seal(season, "PK-2")
    prevs = {p: season.prev(p) for p in ("PK-1", "PK-2")}
    good = [_dispatch(season, p, prevs[p]) for p in ("PK-1", "PK-2")]
    # the first countersignature forged (another payload's signature under the right key id)
    forged_sig = sign_envelope(EVENT_TYPE, b"other", [season.keys["print-qian"].signing])
    forged = Envelope(
        good[0].payload_type, good[0].payload, (forged_sig.signatures[0], good[0].signatures[1])
    )
    not_event = Envelope("text/plain", good[1].payload, good[1].signatures)
    size_before = season.log().size()
    log = open_writer(season.home, ServiceSecrets(log=PASS, system=PASS), workers=2)
    try:
        # over the parallel threshold, in several chunks: the forged and the misnamed envelopes
        # sit in a later chunk than the first acceptance, and are refused by their position
        late = PARALLEL_CHUNK + 5
        batch = [good[1]] * late + [forged, not_event] + [good[1]] * PARALLEL_CHUNK + [good[0]]
        result = log.submit_many(batch, now=season.now)
    finally:
        log.close()
    refused = {r.envelope_index: r.error for r in result.rejected}
    assert sorted(refused) == [late, late + 1]
    assert isinstance(refused[late], SignatureError)  # a countersignature that is not one
    assert isinstance(refused[late + 1], FormatError)
    # the new ones first, in order, then the duplicates
    assert [r.statement_id for r in result.receipts[:2]] == [statement_id_of(e) for e in good[::-1]]
    assert [r.duplicate for r in result.receipts] == [False, False] + [True] * (
        late - 1 + PARALLEL_CHUNK
    )
    assert result.receipts[1].index == result.receipts[0].index + 1 == size_before + 1
    # the rows the workers' deflated forms went into read back as the envelopes sent
    reader = season.log()
    assert [reader.entry(r.index) for r in result.receipts[:2]] == good[::-1]


def test_a_large_batch_asks_the_log_once_and_judges_every_chunk(
    season: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signature workers hand a large batch back in chunks; the writer looks up the whole
    batch's statement ids, and its signers' blocks, with the first chunk. A statement already on
    the log in the last chunk is still a duplicate at its own index, and a blocked key's
    statements are refused in the first chunk and in the last."""
    from custody.store import incidents as incident_store
    from custody.store.log_store import LogStore

    seal(season, "PK-1")
    seal(season, "PK-2")
    seal(season, "PK-3")
    reader = season.log()
    on_log, on_log_index = reader.entry(reader.size() - 1), reader.size() - 1  # PK-3's seal
    li = season.keys["courier-li"].signing.key_id
    with reader.engine.begin() as conn:
        incident_store.block_key(conn, li, subject="courier-li", incident_id="IN-T", at=T0)
    to_sun, to_li = (
        season.event(
            Kind.DISPATCH,
            [p],
            actors={"releaser": "print-qian", "receiver": who},
            signers=["print-qian", who],
            body={"seals": SEALS},
            prevs={p: season.prev(p)},
        )
        for p, who in (("PK-1", "courier-sun"), ("PK-2", "courier-li"))
    )
    asked = {"entries": 0, "blocks": 0}
    entries, blocks = LogStore._entries, incident_store.blocks

    def count_entries(self: LogStore, ids: Any) -> Any:
        asked["entries"] += 1
        return entries(self, ids)

    def count_blocks(conn: Any, kids: Any) -> Any:
        asked["blocks"] += 1
        return blocks(conn, kids)

    monkeypatch.setattr(LogStore, "_entries", count_entries)
    monkeypatch.setattr(incident_store, "blocks", count_blocks)
    first, last = 0, 2 * PARALLEL_CHUNK + 2
    batch = [to_li] + [to_sun] * (2 * PARALLEL_CHUNK) + [on_log, to_li]
    log = open_writer(season.home, ServiceSecrets(log=PASS, system=PASS), workers=2)
    try:
        result = log.submit_many(batch, now=season.now)
    finally:
        log.close()
    assert asked["blocks"] == 1
    assert asked["entries"] <= 2  # the batch's, and the desk's own statements' if it makes any
    refused = {r.envelope_index: type(r.error).__name__ for r in result.rejected}
    assert refused == {first: "KeyBlockedError", last: "KeyBlockedError"}
    # the new one first, then the duplicates in order: the batch's own, then the one on the log
    new, *again = result.receipts
    assert (new.statement_id, new.duplicate) == (statement_id_of(to_sun), False)
    assert [r.duplicate for r in again] == [True] * (2 * PARALLEL_CHUNK)
    assert {r.index for r in again[:-1]} == {new.index}
    assert (again[-1].statement_id, again[-1].index) == (statement_id_of(on_log), on_log_index)


@pytest.mark.parametrize("top_level", [10, 1])
@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_proofs_read_in_one_statement_verify_at_every_size(
    engine_name: str,
    top_level: int,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also with the tree's top kept in memory from level 1 up (``custody.log.TOP_LEVEL``):
    read at the first proof, completed as the log grows, the same proofs."""
    monkeypatch.setattr("custody.log.TOP_LEVEL", top_level)
    url = None if engine_name == "sqlite" else request.getfixturevalue("pg_url")
    s = start_season(tmp_path / "s", now=T0, passphrase=PASS, kdf=fast_kdf(), database_url=url)
    log = s.log()
    for n in range(22):  # 22 entries: perfect subtrees and ragged edges
        if n == 7:  # the first proofs, at 8 entries: the top is read then
            log.inclusion_proof(0, log.size())
        log.submit(
            s.event(
                Kind.SEAL,
                [f"PK-{n}"],
                actors={"sealer": "print-qian"},
                signers=["print-qian"],
                body=_seal_body(s),
            ),
            now=s.now,
        )
    size = log.size()
    signed = [parse_checkpoint(note.split("\n\n", 1)[0] + "\n") for note in log.checkpoints()]
    roots = {c.size: c.root for c in signed}
    assert sorted(roots) == list(range(1, size + 1))
    for n in range(1, size + 1):
        for i in range(n):
            proof = log.inclusion_proof(i, n)
            merkle.verify_inclusion(merkle.leaf_hash(log.leaf(i)), i, n, proof, roots[n])
        for m in range(1, n + 1):
            merkle.verify_consistency(m, n, roots[m], roots[n], log.consistency_proof(m, n))
    with pytest.raises(UsageError):
        log.inclusion_proof(0, size + 1)
    with pytest.raises(UsageError):
        log.consistency_proof(1, size + 5)
    if top_level == 1:  # a node of the top, once read, is not read again
        with s.home.engine.begin() as conn:
            conn.execute(text("DELETE FROM tree_node WHERE level = 2 AND idx = 1"))
        proof = log.inclusion_proof(0, size)
        merkle.verify_inclusion(merkle.leaf_hash(log.leaf(0)), 0, size, proof, roots[size])
    s.log().close()


def _seal_body(s: Season) -> dict[str, object]:
    start = s.now + timedelta(hours=4)
    return seal_body(
        exam=EXAM_ID,
        position="P-01",
        paper="PAPER-A",
        copies=30,
        seals=SEALS,
        window=(start, start + timedelta(hours=2)),
        route=["courier-sun"],
    )


def test_a_writer_sets_the_garbage_collector_once(season: Season) -> None:
    import gc

    from custody.service import COLLECTOR_THRESHOLDS

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # CPython's defaults
        open_writer(season.home, ServiceSecrets(log=PASS, system=PASS)).close()
        assert gc.get_threshold() == COLLECTOR_THRESHOLDS
        frozen = gc.get_freeze_count()
        open_writer(season.home, ServiceSecrets(log=PASS, system=PASS)).close()
        assert gc.get_freeze_count() == frozen  # the second writer froze nothing more
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("workers", [2, 1])
def test_batches_streamed_append_in_order_and_a_revocation_between_them_counts(
    season: Season, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """``submit_batches``: one transaction and checkpoint per batch, in order, with no gap; the
    workers check the next batch's signatures while one commits. A revocation made between
    two batches refuses the later one's statements by the revoked key, although its
    signatures were checked (against the old store) before: they are checked again."""
    size = PARALLEL_BATCH + 6
    start_time = season.now

    def at_start(env: Envelope) -> Envelope:  # every statement dated at the service's clock
        season.now = start_time
        return env

    seals = [at_start(seal_event(season, f"PK-{n}")) for n in range(size)]
    dispatches = [
        at_start(
            season.event(
                Kind.DISPATCH,
                [f"PK-{n}"],
                actors={"releaser": "print-qian", "receiver": "courier-sun"},
                signers=["print-qian", "courier-sun"],
                body={"seals": SEALS},
                prevs={f"PK-{n}": statement_id_of(env)},
            )
        )
        for n, env in enumerate(seals)
    ]
    more = [at_start(seal_event(season, f"PK-M{n}")) for n in range(size)]
    dispatched = []
    real = SignaturePool.signer_chunks

    def counted(pool: SignaturePool, envelopes: list[Envelope], *a: Any, **k: Any) -> Any:
        dispatched.append(len(envelopes))
        return real(pool, envelopes, *a, **k)

    monkeypatch.setattr(SignaturePool, "signer_chunks", counted)
    start = season.log().size()
    log = open_writer(season.home, ServiceSecrets(log=PASS, system=PASS), workers=workers)
    try:
        results = log.submit_batches((b, season.now) for b in (seals, dispatches, more))
        first = next(results)
        assert dispatched == ([size, size] if workers > 1 else [])  # the next one under way
        revoke_now(season)
        log.set_trust(season.trust())
        second, third = list(results)
    finally:
        log.close()
    if workers > 1:  # the dispatches checked again, against the store that knows the revocation
        assert dispatched == [size] * 4
    assert [r.index for r in first.receipts] == list(range(start, start + size))
    assert not first.rejected and not second.receipts
    assert len(second.rejected) == size
    assert all(isinstance(r.error, RevokedError) for r in second.rejected)
    assert second.system  # refusals by a compromised key: the desk's own statements
    after = start + size + len(second.system)
    assert [r.index for r in second.system] == list(range(start + size, after))
    assert [r.index for r in third.receipts] == list(range(after, after + size))
    checkpoints = [
        parse_checkpoint(r.receipts[0].checkpoint.split("\n\n")[0] + "\n") for r in (first, third)
    ]
    assert [c.size for c in checkpoints] == [start + size, after + size]


def test_workers_started_before_the_first_batch_are_the_ones_it_uses(season: Season) -> None:
    """``start_workers``: the processes start (and load the keys) before any batch, and the
    first large batch is judged by them, not by new ones."""
    seal(season, "PK-1")
    env = _dispatch(season, "PK-1")
    log = open_writer(season.home, ServiceSecrets(log=PASS, system=PASS), workers=2)
    try:
        log.start_workers()
        pool = log._pool
        assert pool is not None and pool._pool is not None
        started = set(pool._pool._processes)  # type: ignore[attr-defined]
        assert len(started) == 2
        result = log.submit_many([env] * (PARALLEL_CHUNK + 1), now=season.now)
        assert log._pool is pool and set(pool._pool._processes) == started  # type: ignore[attr-defined]
    finally:
        log.close()
    assert not result.rejected
    assert [r.duplicate for r in result.receipts] == [False] + [True] * PARALLEL_CHUNK
