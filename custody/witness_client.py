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
- The log counts as published at a size when its witness policy's quorum cosigned it
  (``published``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx

from crypto.note import parse_checkpoint, parse_note
from custody.errors import CustodyError, NotFoundError
from custody.incidents.model import WatchedLog
from custody.log import CustodyLog
from custody.witness import format_add_checkpoint
from custody.witnesses import WitnessPolicy, count_cosignatures


@dataclass(frozen=True)
class WitnessOutcome:
    witness: str
    status: str  # cosigned | current | conflict | fork | failed
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
    log: CustodyLog, policy: WitnessPolicy, now: datetime, *, timeout: float = 5.0
) -> list[WitnessOutcome]:
    """One round: every live witness is brought up to the latest checkpoint (rules above)."""
    try:
        note = log.latest_checkpoint()
    except NotFoundError:
        return []
    size = parse_checkpoint(parse_note(note).text).size
    outcomes = []
    for witness in policy.witnesses:
        url = policy.url(witness.name)
        if url is None:
            continue
        old = _cosigned_size(log, witness.name)
        if old == size:
            outcomes.append(WitnessOutcome(witness.name, "current", size))
            continue
        outcomes.append(_ask(log, policy, witness.name, url, old, size, note, now, timeout))
    return outcomes


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
            if theirs > size or theirs == old:
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
