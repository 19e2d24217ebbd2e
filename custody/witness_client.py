"""The log's side of live witnessing: send the latest checkpoint to each witness over HTTP
(c2sp.org/tlog-witness) and keep the cosignatures it returns.

Rules:
- Each witness of the home's witness policy that names a ``url`` is sent the latest checkpoint
  with a consistency proof from the size it last cosigned (the largest size the log holds its
  cosignature for; 0 at first). A witness that already cosigned the latest size is not asked.
- 200: the cosignature lines are verified under the witness's key and stored
  (``CustodyLog.add_cosignatures``). 409: the witness holds another size (its body): the request
  is made once more from that size. 422: the witness says the proof does not lead from the
  checkpoint it cosigned; its body carries that checkpoint, and if it is one this log's key
  signed and it is inconsistent with the log's, the incident desk opens a critical ``log_fork``
  incident. Anything else (or no answer) is reported and retried at the next round.
- A 409 naming a size *larger* than the log's latest means the witness cosigned a checkpoint
  of this log the database does not hold: the log asks the witness for it (``GET /latest``),
  keeps it in the signed-checkpoint file when this log's key signed it (so nothing more is
  signed over a database that lost its tail), and reports ``ahead``.
- The log counts as published at a size when its witness policy's quorum cosigned it
  (``published``); ``published_checkpoint`` is the largest such checkpoint.
- The witnesses' copies (docs/adr/0012): ``witness_copies`` asks each live witness for the
  latest checkpoint of this log it cosigned, verified under the log key and the witness's key;
  ``check_witness_copies`` refuses (``LogStateError``) a database behind or inconsistent with
  any of them, or with the cosignatures it stores itself. A witness that does not answer is
  reported, not a refusal.
- ``WitnessSender`` (in ``custody serve``) brings every live witness up to the latest
  checkpoint continually, with a back-off per witness that failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from crypto import merkle
from crypto.note import NoteVerifier, parse_checkpoint, parse_note
from custody.errors import N_, CustodyError, LogStateError, NotFoundError
from custody.incidents.model import WatchedLog
from custody.log import CustodyLog
from custody.store import log_reads
from custody.store.guard import RECOVER, SignedHead, SignedHeadFile, open_signed
from custody.witness import format_add_checkpoint
from custody.witnesses import WitnessPolicy, count_cosignatures


@dataclass(frozen=True)
class WitnessOutcome:
    witness: str
    status: str  # cosigned | current | conflict | ahead | fork | failed
    size: int
    detail: str = ""
    incident: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "witness": self.witness,
            "status": self.status,
            "size": self.size,
            "detail": self.detail,
            "incident": self.incident,
        }


def _cosigned_size(log: CustodyLog, name: str) -> int:
    for size in sorted({int(s) for s in _sizes(log)}, reverse=True):
        if any(line.startswith(f"— {name} ") for line in log.cosignature_lines(size)):
            return size
    return 0


def _sizes(log: CustodyLog) -> list[int]:
    return [parse_checkpoint(parse_note(n).text).size for n in log.checkpoints()[-64:]]


def _request(log: CustodyLog, old: int, size: int, note: str) -> bytes:
    proof = log.consistency_proof(old, size) if 0 < old < size else []
    return format_add_checkpoint(old, proof, note)


def send_to_witnesses(
    log: CustodyLog,
    policy: WitnessPolicy,
    now: datetime,
    *,
    timeout: float = 5.0,
    only: frozenset[str] | None = None,
    head_file: SignedHeadFile | None = None,
) -> list[WitnessOutcome]:
    """One round: every live witness (of ``only``, if given) is brought up to the latest
    checkpoint (rules above). ``head_file`` keeps a checkpoint a witness holds beyond the
    database's (``ahead``)."""
    try:
        note = log.latest_checkpoint()
    except NotFoundError:
        return []
    size = parse_checkpoint(parse_note(note).text).size
    outcomes = []
    for witness in policy.witnesses:
        url = policy.url(witness.name)
        if url is None or (only is not None and witness.name not in only):
            continue
        old = _cosigned_size(log, witness.name)
        if old == size:
            outcomes.append(WitnessOutcome(witness.name, "current", size))
            continue
        outcome = _ask(log, policy, witness.name, url, old, size, note, now, timeout)
        if outcome.status == "ahead":
            outcome = _keep_ahead(log, policy, outcome, url, head_file, timeout)
        outcomes.append(outcome)
    return outcomes


def _keep_ahead(
    log: CustodyLog,
    policy: WitnessPolicy,
    outcome: WitnessOutcome,
    url: str,
    head_file: SignedHeadFile | None,
    timeout: float,
) -> WitnessOutcome:
    """A witness holds a larger size than the database: fetch its copy and keep it outside the
    database, so that the guard refuses to sign over a database that lost its tail."""
    copy = _fetch_copy(log, policy, outcome.witness, url, timeout)
    if copy.head is None or head_file is None:
        return WitnessOutcome(outcome.witness, "ahead", outcome.size, outcome.detail + copy.detail)
    try:
        head_file.record(copy.head.note)
    except CustodyError as e:
        return WitnessOutcome(outcome.witness, "ahead", outcome.size, f"{copy.detail}; {e.message}")
    return WitnessOutcome(
        outcome.witness,
        "ahead",
        outcome.size,
        f"{outcome.detail}; kept its copy {copy.head.describe()} in {head_file.path}: "
        "the log signs nothing more until the database is restored",
    )


def _ask(
    log: CustodyLog,
    policy: WitnessPolicy,
    name: str,
    url: str,
    old: int,
    size: int,
    note: str,
    now: datetime,
    timeout: float,
) -> WitnessOutcome:
    for _ in range(2):  # once more after a 409 names the witness's size
        try:
            r = httpx.post(
                f"{url}/add-checkpoint", content=_request(log, old, size, note), timeout=timeout
            )
        except httpx.HTTPError as e:
            return WitnessOutcome(name, "failed", size, f"{type(e).__name__}: {e}")
        if r.status_code == 200:
            try:
                log.add_cosignatures(r.text, policy, now=now, size=size)
            except CustodyError as e:
                return WitnessOutcome(name, "failed", size, f"bad cosignature: {e.message}")
            return WitnessOutcome(name, "cosigned", size)
        if r.status_code == 409 and r.text.strip().isdigit():
            theirs = int(r.text.strip())
            if theirs > size:
                return WitnessOutcome(
                    name,
                    "ahead",
                    size,
                    f"the witness cosigned size {theirs} of this log; the database holds {size}",
                )
            if theirs == old:
                return WitnessOutcome(
                    name, "conflict", size, f"the witness holds size {theirs}, the log {size}"
                )
            old = theirs
            continue
        if r.status_code == 422:
            return _fork(log, name, size, note, r.text, now)
        return WitnessOutcome(name, "failed", size, f"HTTP {r.status_code}: {r.text[:200]}")
    return WitnessOutcome(name, "conflict", size, "the witness answered 409 twice")


def _fork(
    log: CustodyLog, name: str, size: int, note: str, body: str, now: datetime
) -> WitnessOutcome:
    """The witness refused the proof: check the checkpoint it holds against the log's own."""
    evidence = body.split("\n\n", 1)[1] if "\n\n" in body else ""
    if not evidence or not isinstance(log, WatchedLog):
        return WitnessOutcome(name, "failed", size, f"HTTP 422: {body[:200]}")
    try:
        theirs = parse_checkpoint(parse_note(evidence).text).size
        proof = log.consistency_proof(theirs, size) if 0 < theirs < size else []
        incident = log.report_checkpoints(evidence, note, proof, now)
    except CustodyError as e:
        return WitnessOutcome(name, "failed", size, f"HTTP 422, evidence refused: {e.message}")
    if incident is None:
        return WitnessOutcome(name, "failed", size, "HTTP 422, but the checkpoints agree")
    return WitnessOutcome(
        name, "fork", size, f"the witness holds another history: {incident.id}", incident.id
    )


def published(log: CustodyLog, policy: WitnessPolicy, size: int | None = None) -> bool:
    """Whether the checkpoint of ``size`` (default: the latest) met the witness quorum."""
    try:
        note = log.cosigned_checkpoint(size)
    except NotFoundError:
        return False
    parsed = parse_note(note)
    checkpoint = parse_checkpoint(parsed.text)
    return count_cosignatures(policy, checkpoint, parsed.signatures).ok


def published_checkpoint(log: CustodyLog, policy: WitnessPolicy) -> str | None:
    """The largest checkpoint whose stored cosignatures meet the witness policy (k of n), with
    them; None while none does."""
    for size in log_reads.sizes_cosigned_by(log.engine, policy.quorum):
        try:
            note = log.cosigned_checkpoint(size)
        except NotFoundError:
            continue
        parsed = parse_note(note)
        if count_cosignatures(policy, parse_checkpoint(parsed.text), parsed.signatures).ok:
            return note
    return None


# -- the witnesses' copies: a third copy of the last signed checkpoint --------------------------


@dataclass(frozen=True)
class WitnessCopy:
    """What one witness holds of this log: its latest cosigned checkpoint (verified under the
    log key and the witness's key), or None with why."""

    witness: str
    head: SignedHead | None
    detail: str
    reached: bool = True

    def as_dict(self) -> dict[str, object]:
        return {
            "witness": self.witness,
            "reached": self.reached,
            "checkpoint": self.head.describe() if self.head else None,
            "detail": self.detail,
        }


def _log_verifier(log: CustodyLog) -> NoteVerifier:
    authority = log.trust.authority
    return NoteVerifier(authority.log_origin, authority.log_key)


def _fetch_copy(
    log: CustodyLog, policy: WitnessPolicy, name: str, url: str, timeout: float
) -> WitnessCopy:
    try:
        r = httpx.get(f"{url}/latest", params={"origin": log.origin}, timeout=timeout)
    except httpx.HTTPError as e:
        return WitnessCopy(name, None, f"not reached: {type(e).__name__}", reached=False)
    if r.status_code == 404:
        return WitnessCopy(name, None, "has cosigned nothing of this log")
    if r.status_code != 200:
        return WitnessCopy(name, None, f"answered HTTP {r.status_code}", reached=False)
    try:
        head = open_signed(r.text, _log_verifier(log), log.origin, what=f"witness {name}'s copy")
        parsed = parse_note(r.text)
        count = count_cosignatures(policy, parse_checkpoint(parsed.text), parsed.signatures)
    except CustodyError as e:
        return WitnessCopy(name, None, f"sent a copy that does not verify: {e.message}", False)
    if name not in count.valid:
        return WitnessCopy(name, None, "sent a copy without its own valid cosignature", False)
    return WitnessCopy(name, head, f"cosigned {head.describe()}")


def witness_copies(
    log: CustodyLog, policy: WitnessPolicy, *, timeout: float = 5.0
) -> list[WitnessCopy]:
    """Each live witness's latest cosigned checkpoint of this log (``GET /latest``)."""
    copies = []
    for witness in policy.witnesses:
        url = policy.url(witness.name)
        if url is not None:
            copies.append(_fetch_copy(log, policy, witness.name, url, timeout))
    return copies


def check_witness_copies(
    log: CustodyLog, copies: list[WitnessCopy], head_file: SignedHeadFile | None = None
) -> None:
    """Refuse (``LogStateError``) a database behind, or inconsistent with, a checkpoint a
    witness cosigned or a cosignature the database stores. A copy ahead of the database is kept
    in ``head_file`` first (forward only), so every writer of this host refuses too."""
    size = log.size()
    stored = log_reads.largest_cosigned_size(log.engine)
    if stored is not None and stored > size:
        raise LogStateError(
            N_(
                "the database stores a witness cosignature on size {stored}, but holds only "
                "{size} entries: the database lost acknowledged entries"
            ),
            hint=RECOVER,
            stored=int(stored),
            size=size,
        )
    for copy in copies:
        head = copy.head
        if head is None or head.size == 0:
            continue
        if head.size > size:
            if head_file is not None:
                head_file.record(head.note)
            raise LogStateError(
                N_(
                    "witness {witness} cosigned this log's checkpoint {checkpoint}, but the "
                    "database holds only {size} entries: the database lost acknowledged "
                    "entries (or the log key signed a history this database never held)"
                ),
                hint=RECOVER,
                witness=copy.witness,
                checkpoint=head.describe(),
                size=size,
            )
        mine = parse_checkpoint(parse_note(log.latest_checkpoint()).text)
        try:
            proof = log.consistency_proof(head.size, size) if head.size < size else []
            merkle.verify_consistency(head.size, size, head.root, mine.root, proof)
        except CustodyError as e:
            raise LogStateError(
                N_(
                    "witness {witness} cosigned this log's checkpoint {checkpoint}, which the "
                    "database's tree of size {size} does not extend: it holds a different history"
                ),
                hint=RECOVER,
                witness=copy.witness,
                checkpoint=head.describe(),
                size=size,
            ) from e


@dataclass
class WitnessSender:
    """Brings the live witnesses up to the latest checkpoint continually (``custody serve``).

    Every ``every`` seconds each witness is sent the latest checkpoint unless it already
    cosigned it; a witness that failed is retried after a back-off that doubles from ``every``
    up to ``max_backoff`` seconds, and is then sent the latest checkpoint with the consistency
    proof from the size it last cosigned (so one that was down gets what it missed).
    """

    log: CustodyLog
    policy: Callable[[], WitnessPolicy | None]
    clock: Callable[[], datetime]
    head_file: SignedHeadFile | None = None
    every: float = 2.0
    max_backoff: float = 30.0
    timeout: float = 5.0
    on_outcomes: Callable[[list[WitnessOutcome]], None] | None = None
    _failures: dict[str, int] = field(default_factory=dict)
    _next_try: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def round(self) -> list[WitnessOutcome]:
        policy = self.policy()
        if policy is None or not policy.urls:
            return []
        now = time.monotonic()
        due = frozenset(w for w, _ in policy.urls if self._next_try.get(w, 0.0) <= now)
        if not due:
            return []
        outcomes = send_to_witnesses(
            self.log,
            policy,
            self.clock(),
            timeout=self.timeout,
            only=due,
            head_file=self.head_file,
        )
        for o in outcomes:
            if o.status in ("cosigned", "current"):
                self._failures.pop(o.witness, None)
                self._next_try.pop(o.witness, None)
            else:
                n = self._failures.get(o.witness, 0) + 1
                self._failures[o.witness] = n
                delay = min(self.every * 2 ** (n - 1), self.max_backoff)
                self._next_try[o.witness] = time.monotonic() + delay
        return outcomes

    def backoff(self) -> dict[str, float]:
        """Seconds until each failing witness is tried again."""
        now = time.monotonic()
        return {w: round(max(0.0, t - now), 1) for w, t in self._next_try.items()}

    def run(self) -> None:
        """Rounds until ``stop``; a failed round is reported through ``on_outcomes`` only."""
        while not self._stop.is_set():
            try:
                outcomes = self.round()
            except CustodyError as e:
                outcomes = [WitnessOutcome("-", "failed", 0, f"{e.code}: {e.message}")]
            if outcomes and self.on_outcomes is not None:
                self.on_outcomes(outcomes)
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
