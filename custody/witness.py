"""A transparency-log witness (c2sp.org/tlog-witness semantics), pure: state in, state out.

A witness keeps, per log origin, the latest checkpoint it cosigned. Shown a newer signed
checkpoint with a consistency proof from that one, it checks the proof and cosigns
(c2sp.org/tlog-cosignature v1). Two authorities witnessing each other's logs make a forked
log (two histories shown to two parties) detectable.

Rules (in the order the witness checks them):
- The checkpoint note must carry a valid signature by the log's key; unknown signatures are
  ignored, a bad one by the log key refuses the note (``SignatureError`` /
  ``UnknownSignerError``). Its origin must be the log's origin (``NotFoundError`` otherwise).
- Sizes and roots come only from verified checkpoints (the one stored in the witness's state
  and the one just verified), never from the proof or the request.
- A checkpoint smaller than the one already cosigned is a rollback and is refused; so is a
  request whose ``old`` size is not the size already cosigned. Both raise
  ``WitnessConflictError`` carrying ``latest_size`` so the log can retry with the right proof.
- From size 0 (nothing cosigned yet, or an empty tree) no proof is checked: the proof must be
  empty, and an empty tree's root must be SHA-256(""). A proof from size 0 is refused.
- Otherwise the RFC 9162 consistency proof must lead from the stored root to the new root;
  equal sizes need equal roots. A failure is a ``LogConsistencyError`` naming both
  checkpoints: both are signed by the log, so together they prove it forked.
- The new state records the new checkpoint (and the signed note, as evidence) for its origin;
  the caller must persist it atomically with the size check before releasing the cosignature.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crypto.encoding import b64decode, b64encode
from crypto.merkle import EMPTY_ROOT, verify_consistency
from crypto.note import (
    Checkpoint,
    CosignatureVerifier,
    Verifier,
    cosign,
    parse_checkpoint,
    parse_note,
    verify_note,
)
from crypto.signing import SigningKey
from custody.errors import N_, ConflictError, FormatError, LogConsistencyError, NotFoundError

MAX_PROOF_LINES = 63
_OLD_RE = re.compile(r"^old (0|[1-9][0-9]{0,19})$")


class WitnessConflictError(ConflictError):
    """The request's old size is not the size the witness last cosigned (or would roll back).

    ``latest_size`` is what the log must prove consistency from (tlog-witness's 409 body).
    """

    code = "witness_conflict"

    def __init__(self, message: str, *, latest_size: int, **params: Any) -> None:
        super().__init__(message, latest_size=latest_size, **params)
        self.latest_size = latest_size


@dataclass(frozen=True)
class Cosigner:
    """A witness identity: its key name and Ed25519 key (never printed: see SigningKey)."""

    name: str
    key: SigningKey

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.key.verify_key)


@dataclass(frozen=True)
class WitnessRecord:
    """The latest checkpoint cosigned for one origin, with the signed note it came in."""

    checkpoint: Checkpoint
    note: str


@dataclass(frozen=True)
class WitnessState:
    """Everything a witness remembers: one record per origin, kept sorted by origin."""

    records: tuple[WitnessRecord, ...] = ()

    def latest(self, origin: str) -> WitnessRecord | None:
        for record in self.records:
            if record.checkpoint.origin == origin:
                return record
        return None

    def with_record(self, record: WitnessRecord) -> WitnessState:
        others = [r for r in self.records if r.checkpoint.origin != record.checkpoint.origin]
        return WitnessState(tuple(sorted([*others, record], key=lambda r: r.checkpoint.origin)))


def check_checkpoint_consistency(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Raise ``LogConsistencyError`` naming both checkpoints unless ``new`` extends ``old``.

    Both checkpoints must already be verified; the proof is only a list of hashes.
    """
    if old.origin != new.origin:
        raise FormatError(
            N_("checkpoints of two logs: {origin!r} and {origin2!r}"),
            origin=old.origin,
            origin2=new.origin,
        )
    for checkpoint in (old, new):
        if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
            raise LogConsistencyError(
                N_("checkpoint {describe} claims an empty tree with a non-empty root"),
                describe=checkpoint.describe(),
            )
    if old.size == 0:
        # The empty tree is a prefix of every tree: there is nothing to prove, and a proof
        # offered anyway is refused rather than trusted (the verifier refuses size 0 too).
        if proof:
            raise LogConsistencyError(
                N_(
                    "a consistency proof from size 0 to {describe} proves nothing; it must be empty"
                ),
                describe=new.describe(),
            )
        return
    try:
        verify_consistency(old.size, new.size, old.root, new.root, proof)
    except LogConsistencyError as e:
        raise LogConsistencyError(
            N_(
                "checkpoints {describe} and {describe2} are not consistent "
                "({error}): the log shows two different histories"
            ),
            describe=old.describe(),
            describe2=new.describe(),
            error=e,
        ) from e


def witness_cosign(
    state: WitnessState,
    log_verifier: Verifier,
    new_checkpoint_note: bytes | str,
    consistency_proof: Sequence[bytes],
    witness_key: Cosigner,
    now: datetime | int,
    *,
    old_size: int | None = None,
    origin: str | None = None,
) -> tuple[WitnessState, str]:
    """Check a new signed checkpoint against the state and cosign it (module rules).

    Args:
        old_size: the size the log proves consistency from (tlog-witness's ``old`` line);
            None means "the size you last cosigned".
        origin: the log's origin line; defaults to the log key's name.

    Returns:
        The new state and the cosignature line ``"— <witness> <base64>\\n"``.
    """
    unverified = parse_note(new_checkpoint_note)
    verified = verify_note(unverified, [log_verifier])
    checkpoint = parse_checkpoint(verified.text)
    expected_origin = log_verifier.name if origin is None else origin
    if checkpoint.origin != expected_origin:
        raise NotFoundError(
            N_("this witness does not follow a log with origin {origin!r}"),
            origin=checkpoint.origin,
        )
    if len(consistency_proof) > MAX_PROOF_LINES:
        raise FormatError(
            N_("a consistency proof has at most {max_proof_lines} hashes"),
            max_proof_lines=MAX_PROOF_LINES,
        )

    if old_size is not None and old_size > checkpoint.size:
        raise FormatError(
            N_("old size {old_size} is beyond the checkpoint's size {size}"),
            old_size=old_size,
            size=checkpoint.size,
        )
    record = state.latest(checkpoint.origin)
    latest_size = record.checkpoint.size if record else 0
    if checkpoint.size < latest_size:
        raise WitnessConflictError(
            N_(
                "checkpoint {describe} is behind size {latest_size} already "
                "cosigned; refusing to roll back"
            ),
            latest_size=latest_size,
            describe=checkpoint.describe(),
        )
    if old_size is not None and old_size != latest_size:
        raise WitnessConflictError(
            N_("old size {old_size} is not the size {latest_size} this witness last cosigned"),
            latest_size=latest_size,
            old_size=old_size,
        )
    previous = record.checkpoint if record else Checkpoint(checkpoint.origin, 0, EMPTY_ROOT)
    check_checkpoint_consistency(previous, checkpoint, consistency_proof)

    line = cosign(checkpoint, witness_key.name, witness_key.key, now)
    new_state = state.with_record(WitnessRecord(checkpoint, unverified.to_text()))
    return new_state, line


# --- the add-checkpoint request body (tlog-witness) -----------------------------------------


@dataclass(frozen=True)
class AddCheckpointRequest:
    """An unverified add-checkpoint body: old size, proof hashes, checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint_note: str


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], checkpoint_note: str) -> bytes:
    """``old <size>\\n``, one base64 hash per line, a blank line, the signed checkpoint."""
    lines = [f"old {old_size}\n", *(b64encode(h) + "\n" for h in proof), "\n", checkpoint_note]
    return "".join(lines).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse an add-checkpoint request body; nothing in it is trusted yet."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(N_("an add-checkpoint request must be UTF-8")) from e
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise FormatError(N_("an add-checkpoint request needs a blank line before the checkpoint"))
    lines = head.split("\n")
    match = _OLD_RE.match(lines[0])
    if not match:
        raise FormatError(N_("an add-checkpoint request starts with 'old <size>'"))
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise FormatError(
            N_("a consistency proof has at most {max_proof_lines} lines"),
            max_proof_lines=MAX_PROOF_LINES,
        )
    proof = []
    for number, line in enumerate(lines[1:], start=1):
        h = b64decode(line, what=f"consistency proof line {number}")
        if len(h) != 32:
            raise FormatError(
                N_("consistency proof line {number} is not a 32-byte hash"), number=number
            )
        proof.append(h)
    return AddCheckpointRequest(int(match.group(1)), tuple(proof), note)


def witness_add_checkpoint(
    state: WitnessState,
    log_verifier: Verifier,
    body: bytes,
    witness_key: Cosigner,
    now: datetime | int,
    *,
    origin: str | None = None,
) -> tuple[WitnessState, str]:
    """Handle an add-checkpoint request body end to end (parse, check, cosign)."""
    request = parse_add_checkpoint(body)
    if request.old_size == 0 and request.proof:
        raise LogConsistencyError(N_("a consistency proof from size 0 proves nothing"))
    return witness_cosign(
        state,
        log_verifier,
        request.checkpoint_note,
        request.proof,
        witness_key,
        now,
        old_size=request.old_size,
        origin=origin,
    )
