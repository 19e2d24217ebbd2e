"""A receipt (``custody-receipt/v1``, docs/formats.md "Receipt"), pure: bytes in, values or
our errors out.

Rules:
- ``parse_receipt`` reads outside bytes into an ``UnverifiedReceipt`` or raises
  ``FormatError``: a JSON object, ``format`` is ``custody-receipt/v1``, ``checkpoint`` a text,
  ``inclusion_proof`` a list of base64 texts (each must be a 32-byte hash: checked with the
  proof), ``index`` an integer, ``received`` a
  time. Nothing in it is believed yet.
- ``verify_receipt``: the checkpoint is a signed note by the log key with the log's origin
  (``unknown_signer`` / ``signature`` / ``format``); size and root come from that checkpoint,
  never from the receipt's ``tree_size``; the inclusion proof must lead from the leaf of the
  envelope at ``received`` to that root (``log_consistency`` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crypto import merkle
from crypto.dsse import Envelope
from crypto.encoding import Fields, b64decode, parse_json_object
from crypto.note import Checkpoint, NoteVerifier, open_checkpoint
from custody.events import leaf_bytes

RECEIPT_FORMAT = "custody-receipt/v1"


@dataclass(frozen=True)
class UnverifiedReceipt:
    """A receipt's fields as read, before the checkpoint's signature and the proof are checked."""

    index: int
    received: datetime
    checkpoint: str
    inclusion_proof: tuple[bytes, ...]


def parse_receipt(data: bytes) -> UnverifiedReceipt:
    """A receipt file's bytes, read (module rules)."""
    f = Fields(parse_json_object(data, what="receipt"), what="receipt")
    f.expect("format", RECEIPT_FORMAT)
    checkpoint = f.text("checkpoint")
    proof = tuple(b64decode(h, what="receipt proof") for h in f.texts("inclusion_proof"))
    return UnverifiedReceipt(f.integer("index"), f.time("received"), checkpoint, proof)


def verify_receipt(
    unverified: UnverifiedReceipt, envelope: Envelope, verifier: NoteVerifier
) -> Checkpoint:
    """The checkpoint the event is included in (module rules), or one of our errors."""
    checkpoint, _note = open_checkpoint(unverified.checkpoint, [verifier], origin=verifier.name)
    merkle.verify_inclusion(
        merkle.leaf_hash(leaf_bytes(envelope, unverified.received)),
        unverified.index,
        checkpoint.size,
        list(unverified.inclusion_proof),
        checkpoint.root,
    )
    return checkpoint
