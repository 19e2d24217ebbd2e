"""Sealed packages in the custody log: the body of the ``seal`` event, and where a sealed
label disagrees with it (``label_disagreements``, for ``custody verify``).

The manifest value (``Manifest``, ``RouteStep``, ``Classification``) and the sealing rule
(``check_sealer``) live in ``labels.manifest``, below ``custody``, because the label codec
builds and checks them; they are re-exported here so custody code keeps importing them from here.
"""

from __future__ import annotations

import hashlib

from crypto.encoding import format_time
from crypto.vocabulary import MAX_ID, Classification
from labels.manifest import (
    COMMITMENT_SIZE,
    MAX_COPIES,
    MAX_PLACE,
    MAX_ROUTE,
    MAX_SEALS,
    SEALING_ROLES,
    Manifest,
    RouteStep,
    check_sealer,
    epoch,
    from_epoch,
)

__all__ = [
    "COMMITMENT_SIZE",
    "MAX_COPIES",
    "MAX_ID",
    "MAX_PLACE",
    "MAX_ROUTE",
    "MAX_SEALS",
    "SEALING_ROLES",
    "Classification",
    "Manifest",
    "RouteStep",
    "check_sealer",
    "epoch",
    "from_epoch",
    "label_disagreements",
    "seal_event_body",
]


def seal_event_body(
    manifest: Manifest, sealer: str, label: str, *, handover_witness: bool
) -> dict[str, object]:
    """The body of the log's ``seal`` event for a sealed package (see docs/formats.md).

    The route in the log names the holders *after* the sealer; a manifest's route may start
    with the sealer's own step (where the package is sealed), which is dropped here. The
    label's SHA-256 binds the printed QR to the event. ``handover_witness`` is the exam's
    policy (``exams.json``): whether every dispatch and handover needs a supervising witness.
    """
    steps = list(manifest.route)
    if steps and steps[0].person == sealer:
        steps = steps[1:]
    return {
        "exam": manifest.exam_id,
        "session": manifest.session,
        "position": manifest.position,
        "paper": manifest.paper_id,
        "paper_commitment": manifest.paper_commitment.hex(),
        "copies": manifest.copy_count,
        "seals": list(manifest.seal_serials),
        "window": {"start": format_time(manifest.opens_at), "end": format_time(manifest.closes_at)},
        "route": [s.person for s in steps],
        "places": [s.place for s in steps],
        "destination": {"site": manifest.site, "room": manifest.room},
        "classification": manifest.classification.slug,  # one spelling: top-secret
        "handover_witness": handover_witness,
        "label_sha256": hashlib.sha256(label.encode("ascii")).hexdigest(),
    }


def label_disagreements(
    manifest: Manifest, label: str, sealer: str, body: dict[str, object]
) -> list[str]:
    """The fields of a ``seal`` event's body that differ from what the sealed label says.

    Only fields the body holds are compared (``seal_event_body`` writes them all; an event
    made by hand may hold fewer): a ``label_sha256`` binds the exact label text, the others
    bind the manifest's facts. An empty list means they agree.
    """
    witness = body.get("handover_witness")
    expected = seal_event_body(manifest, sealer, label, handover_witness=witness is True)
    found = dict(body)
    level = found.get("classification")
    if isinstance(level, str):
        # Seal events written before the one spelling said "top_secret": the same level.
        found["classification"] = level.replace("_", "-")
    return sorted(key for key, value in expected.items() if key in found and found[key] != value)
