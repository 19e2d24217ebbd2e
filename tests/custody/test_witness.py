"""The witness: honest growth is cosigned, forks and rollbacks are caught, size 0 per the traps."""

from __future__ import annotations

import pytest

from crypto.merkle import EMPTY_ROOT, MemoryTree
from crypto.note import (
    Checkpoint,
    NoteVerifier,
    parse_note,
    sign_checkpoint,
    verify_cosignature,
    verify_note,
)
from crypto.signing import SigningKey
from custody.errors import (
    CustodyError,
    FormatError,
    LogConsistencyError,
    NotFoundError,
    SignatureError,
    UnknownSignerError,
)
from custody.witness import (
    Cosigner,
    WitnessConflictError,
    WitnessState,
    check_checkpoint_consistency,
    format_add_checkpoint,
    parse_add_checkpoint,
    witness_add_checkpoint,
    witness_cosign,
)

ORIGIN = "authority-a.example/log"
LOG_KEY = SigningKey(b"\x01" * 32)
LOG = NoteVerifier(ORIGIN, LOG_KEY.verify_key)
WITNESS = Cosigner("authority-b.example/witness", SigningKey(b"\x02" * 32))
T = 1_800_000_000


class Log:
    """A log operator simulated in memory; tests may make it lie."""

    def __init__(self, entries: list[bytes]) -> None:
        self.tree = MemoryTree()
        self.tree.extend(entries)

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        size = self.tree.size if size is None else size
        return Checkpoint(ORIGIN, size, self.tree.root(size))

    def signed(self, size: int | None = None) -> str:
        return sign_checkpoint(self.checkpoint(size), ORIGIN, LOG_KEY)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        return self.tree.consistency_proof(old, self.tree.size if new is None else new)


def entries(prefix: str, count: int, start: int = 0) -> list[bytes]:
    return [f"{prefix}{i}".encode() for i in range(start, start + count)]


def test_honest_growth_is_cosigned() -> None:
    log = Log(entries("e", 5))
    state, line = witness_cosign(WitnessState(), LOG, log.signed(), [], WITNESS, T)
    assert verify_cosignature(log.checkpoint(), line, WITNESS.verifier()) == T
    for grow in (1, 7, 40):
        old = log.tree.size
        log.tree.extend(entries("e", grow, old))
        state, line = witness_cosign(state, LOG, log.signed(), log.proof(old), WITNESS, T + old)
        assert verify_cosignature(log.checkpoint(), line, WITNESS.verifier()) == T + old
        record = state.latest(ORIGIN)
        assert record is not None
        assert record.checkpoint == log.checkpoint()
    # The client's view: the log's note plus the witness's line verifies with both keys.
    note = verify_note(parse_note(log.signed() + line), [LOG, WITNESS.verifier()])
    assert {s.name for s in note.verified} == {ORIGIN, WITNESS.name}


def test_same_checkpoint_again_is_cosigned_again() -> None:
    log = Log(entries("e", 9))
    state, _ = witness_cosign(WitnessState(), LOG, log.signed(), [], WITNESS, T)
    state2, _ = witness_cosign(state, LOG, log.signed(), [], WITNESS, T + 1)
    assert state2 == state


def test_forked_log_is_detected() -> None:
    # The operator shows party 1 (this witness) one history and party 2 another that
    # shares the first 5 entries only.
    honest = Log(entries("e", 10))
    forked = Log(entries("e", 5) + entries("forged", 7))
    state, _ = witness_cosign(WitnessState(), LOG, honest.signed(), [], WITNESS, T)
    # Growing the forked history from 10 to 12 with its own (valid for it) proof fails.
    with pytest.raises(LogConsistencyError):
        witness_cosign(state, LOG, forked.signed(), forked.proof(10), WITNESS, T + 1)
    # Same size, other root: the two signed checkpoints are themselves the evidence.
    with pytest.raises(LogConsistencyError):
        witness_cosign(state, LOG, forked.signed(10), [], WITNESS, T + 1)
    # The honest proof against the forked root fails too: no proof reconciles them.
    honest.tree.extend(entries("e", 2, 10))
    with pytest.raises(LogConsistencyError):
        witness_cosign(state, LOG, forked.signed(), honest.proof(10), WITNESS, T + 1)
    # An auditor holding the two checkpoints reaches the same verdict.
    with pytest.raises(LogConsistencyError):
        check_checkpoint_consistency(honest.checkpoint(10), forked.checkpoint(12), forked.proof(10))


def test_fork_on_a_witness_that_saw_the_other_branch_first() -> None:
    a = Log(entries("e", 8))
    b = Log(entries("e", 3) + entries("other", 5))
    state_1, _ = witness_cosign(WitnessState(), LOG, a.signed(), [], WITNESS, T)
    state_2, _ = witness_cosign(WitnessState(), LOG, b.signed(), [], WITNESS, T)
    a.tree.extend(entries("e", 4, 8))
    b.tree.extend(entries("other", 4, 8))
    witness_cosign(state_1, LOG, a.signed(), a.proof(8), WITNESS, T + 1)
    witness_cosign(state_2, LOG, b.signed(), b.proof(8), WITNESS, T + 1)
    # Gossip: each witness is shown the other branch.
    with pytest.raises(LogConsistencyError):
        witness_cosign(state_1, LOG, b.signed(), b.proof(8), WITNESS, T + 2)
    with pytest.raises(LogConsistencyError):
        witness_cosign(state_2, LOG, a.signed(), a.proof(8), WITNESS, T + 2)


def test_rollback_is_refused() -> None:
    log = Log(entries("e", 20))
    state, _ = witness_cosign(WitnessState(), LOG, log.signed(), [], WITNESS, T)
    with pytest.raises(WitnessConflictError) as caught:
        witness_cosign(state, LOG, log.signed(12), [], WITNESS, T + 1)
    assert caught.value.latest_size == 20


def test_wrong_old_size_is_a_conflict_naming_the_latest_size() -> None:
    log = Log(entries("e", 20))
    state, _ = witness_cosign(WitnessState(), LOG, log.signed(10), [], WITNESS, T)
    with pytest.raises(WitnessConflictError) as caught:
        witness_cosign(state, LOG, log.signed(), log.proof(15), WITNESS, T, old_size=15)
    assert caught.value.latest_size == 10
    with pytest.raises(FormatError):
        witness_cosign(state, LOG, log.signed(), log.proof(10), WITNESS, T, old_size=21)


def test_size_zero_per_the_traps() -> None:
    log = Log(entries("e", 6))
    # Nothing cosigned yet: any non-empty "proof from 0" is refused, not trusted.
    with pytest.raises(LogConsistencyError):
        witness_cosign(WitnessState(), LOG, log.signed(), log.proof(3), WITNESS, T)
    # An empty tree with a non-empty root is a lie.
    lie = sign_checkpoint(Checkpoint(ORIGIN, 0, log.tree.root()), ORIGIN, LOG_KEY)
    with pytest.raises(LogConsistencyError):
        witness_cosign(WitnessState(), LOG, lie, [], WITNESS, T)
    # An honest empty checkpoint, then growth from it with an empty proof.
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), ORIGIN, LOG_KEY)
    state, _ = witness_cosign(WitnessState(), LOG, empty, [], WITNESS, T)
    with pytest.raises(LogConsistencyError):
        witness_cosign(state, LOG, log.signed(), [EMPTY_ROOT], WITNESS, T)
    state, _ = witness_cosign(state, LOG, log.signed(), [], WITNESS, T)
    assert state.latest(ORIGIN) is not None


OTHER_KEY = SigningKey(b"\x03" * 32)


def _bad_requests() -> list[tuple[str, str, type[CustodyError]]]:
    log = Log(entries("e", 4))
    good = log.signed()
    other_origin = sign_checkpoint(
        Checkpoint("someone-else/log", 4, log.tree.root()), ORIGIN, LOG_KEY
    )
    flipped = good.replace(ORIGIN + "\n4", ORIGIN + "\n5")
    return [
        (
            "signed-by-unknown-key",
            sign_checkpoint(log.checkpoint(), ORIGIN, OTHER_KEY),
            UnknownSignerError,
        ),
        ("log-signature-fails", flipped, SignatureError),
        ("other-origin", other_origin, NotFoundError),
        ("not-a-note", "garbage", FormatError),
    ]


@pytest.mark.parametrize(
    ("note", "error"),
    [c[1:] for c in _bad_requests()],
    ids=[c[0] for c in _bad_requests()],
)
def test_bad_checkpoints_refused(note: str, error: type[CustodyError]) -> None:
    with pytest.raises(error):
        witness_cosign(WitnessState(), LOG, note, [], WITNESS, T)


def test_unknown_extra_signatures_are_ignored() -> None:
    log = Log(entries("e", 4))
    extra = sign_checkpoint(log.checkpoint(), "stranger", OTHER_KEY).split("\n\n")[1]
    state, _ = witness_cosign(WitnessState(), LOG, log.signed() + extra, [], WITNESS, T)
    assert state.latest(ORIGIN) is not None


def test_state_is_per_origin_and_immutable() -> None:
    log = Log(entries("e", 4))
    state = WitnessState()
    new_state, _ = witness_cosign(state, LOG, log.signed(), [], WITNESS, T)
    assert state.latest(ORIGIN) is None
    other_key = SigningKey(b"\x04" * 32)
    other = NoteVerifier("b.example/log", other_key.verify_key)
    cp = Checkpoint("b.example/log", 4, log.tree.root())
    both, _ = witness_cosign(
        new_state, other, sign_checkpoint(cp, "b.example/log", other_key), [], WITNESS, T
    )
    assert [r.checkpoint.origin for r in both.records] == [
        "authority-a.example/log",
        "b.example/log",
    ]


def test_add_checkpoint_body_round_trip() -> None:
    log = Log(entries("e", 10))
    state, _ = witness_cosign(WitnessState(), LOG, log.signed(7), [], WITNESS, T)
    body = format_add_checkpoint(7, log.proof(7), log.signed())
    request = parse_add_checkpoint(body)
    assert (request.old_size, list(request.proof)) == (7, log.proof(7))
    state, line = witness_add_checkpoint(state, LOG, body, WITNESS, T)
    assert verify_cosignature(log.checkpoint(), line, WITNESS.verifier()) == T
    with pytest.raises(LogConsistencyError):
        witness_add_checkpoint(
            WitnessState(), LOG, format_add_checkpoint(0, log.proof(7), log.signed()), WITNESS, T
        )


@pytest.mark.parametrize(
    "body",
    [
        b"old 07\n\nx",
        b"old 7\nAAAA\n\nx",
        b"7\n\nx",
        b"old 7\nx",
        b"old 7\n" + b"\n".join([b"A" * 43 + b"="] * 64) + b"\n\nx",
        b"old \xff\n\nx",
    ],
    ids=["leading-zero", "short-hash", "no-old", "no-blank-line", "64-proof-lines", "bad-utf8"],
)
def test_bad_add_checkpoint_bodies(body: bytes) -> None:
    with pytest.raises(FormatError):
        parse_add_checkpoint(body)
