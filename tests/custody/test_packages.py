"""The seal event's body against its label: one spelling of the secrecy level, old events too."""

from __future__ import annotations

from custody.packages import label_disagreements, seal_event_body
from tests.conftest import T0
from tests.labels.fixtures import typical_manifest

LABEL = "HC1:EXAMPLE"


def test_seal_body_spells_the_level_one_way() -> None:
    body = seal_event_body(typical_manifest(T0), "print-qian", LABEL, handover_witness=False)
    assert body["classification"] == "top-secret"
    assert label_disagreements(typical_manifest(T0), LABEL, "print-qian", body) == []


def test_seal_events_written_with_the_old_spelling_still_agree() -> None:
    body = seal_event_body(typical_manifest(T0), "print-qian", LABEL, handover_witness=False)
    old = {**body, "classification": "top_secret"}
    assert label_disagreements(typical_manifest(T0), LABEL, "print-qian", old) == []
    other = {**body, "classification": "secret"}
    assert label_disagreements(typical_manifest(T0), LABEL, "print-qian", other) == [
        "classification"
    ]
