"""Papers as the proposition page makes them, built here with the project's own primitives
(the browser's output must be indistinguishable), and opened again the way the printing unit
and the log service would: the printer's part of the key with the printer's key, the log's
part with the log's key, ``K = P XOR L``, then ``custody-paper/v1`` decrypted and checked."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

import nacl.utils

from crypto.encoding import b64encode
from crypto.stream import StreamHeader, decrypt_bytes, encrypt_stream
from crypto.vocabulary import Classification
from custody import paper_service
from custody.demo import Season
from custody.incidents.model import WatchedLog
from custody.papers import (
    LOG_SUBJECT,
    PaperPlan,
    PaperRole,
    Slot,
    build_proposal,
    check_people,
    open_log_part,
    open_wrapped_key,
    sign_proposal,
    wrap_keys,
    xor_parts,
)

EXAM = "SX-2027-INT"
OFFICERS = ("examiner-zheng", "supervisor-wang")


def plan_for(season: Season, paper_id: str = "SX-INT-P01-A", **changes: Any) -> PaperPlan:
    start = season.now + timedelta(days=2)
    fields: dict[str, Any] = {
        "paper_id": paper_id,
        "version": 1,
        "classification": Classification.TOP_SECRET,
        "exam": EXAM,
        "position": "P01",
        "role": PaperRole.MAIN,
        "backup_of": None,
        "printer": "print-qian",
        "officers": OFFICERS,
        "threshold": 2,
        "window_start": start,
        "window_end": start + timedelta(hours=3),
        "standby": "secrecy-chen",
        "title": "",
    }
    fields.update(changes)
    return PaperPlan(**fields)


def submission(
    season: Season,
    plaintext: bytes,
    *,
    plan: PaperPlan | None = None,
    log_public: bytes,
    at: datetime | None = None,
    chunk_size: int = 1024,
    proposer: str = "prop-zhao",
) -> dict[str, Any]:
    """The body of ``POST /v1/papers`` as the page sends it."""
    plan = plan or plan_for(season)
    at = at or season.now
    trust = season.trust()
    people = check_people(plan, trust, season.keys["prop-zhao"], at)
    data_key = nacl.utils.random(32)
    out = io.BytesIO()
    header = StreamHeader(plan.paper_id, plan.version, plan.classification.slug, chunk_size)
    enc = encrypt_stream(io.BytesIO(plaintext), out, data_key, header)
    material = wrap_keys(data_key, plan, people, enc.commitment, log_public, nacl.utils.random(32))
    proposal = build_proposal(
        plan,
        people,
        material,
        commitment=enc.commitment,
        ciphertext_bytes=enc.ciphertext_bytes,
        chunk_size=chunk_size,
        at=at,
    )
    envelope = sign_proposal(proposal, season.keys[proposer])
    return {
        "proposal": envelope.to_json_obj(),
        "keys": [
            {"slot": slot.value, "subject": subject, "sealed": b64encode(blob)}
            for (slot, subject), blob in material.sealed.items()
        ],
        "ciphertext": b64encode(out.getvalue()),
    }


def open_as_printer_and_log(season: Season, log: WatchedLog, ref: str) -> bytes:
    """The stored paper decrypted from its printer part and its log part (no act recorded:
    this is the test's own look at the bytes, with both keys in hand)."""
    state = paper_service.load_state(season.home, ref)
    proposal = state.proposal
    printer, blob = state.check_sealed(Slot.PRINTER, "print-qian")
    people_part = open_wrapped_key(season.keys["print-qian"], proposal, printer, blob)
    log_recipient, log_blob = state.check_sealed(Slot.LOG, LOG_SUBJECT)
    log_part = open_log_part(log.escrow, proposal, log_recipient, log_blob)
    data = paper_service.blob_path(season.home, proposal.commitment).read_bytes()
    header = StreamHeader(
        proposal.paper_id, proposal.version, proposal.classification.slug, proposal.chunk_size
    )
    return decrypt_bytes(data, xor_parts(people_part, log_part), header)
