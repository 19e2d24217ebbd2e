"""The exam policy parser (exams.json): good input, a table of bad input, arbitrary bytes."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.encoding import utc
from custody.errors import FormatError, NotFoundError
from custody.exams import ExamPolicy, exams_from_json

GOOD = {
    "exams": {
        "SX-2027-INT": {"handover_witness": True, "retention_until": "2028-03-01T00:00:00Z"},
        "SX-2027-WRI": {"handover_witness": False, "retention_until": "2027-12-31T16:00:00Z"},
    }
}


def test_parses_each_exam() -> None:
    policies = exams_from_json(json.dumps(GOOD).encode(), source="/h/exams.json")
    assert policies.of("SX-2027-INT") == ExamPolicy("SX-2027-INT", True, utc(2028, 3, 1))
    assert policies.of("SX-2027-WRI").handover_witness is False
    with pytest.raises(NotFoundError):
        policies.of("SX-2026-INT")


def test_empty_file_names_no_exam() -> None:
    assert exams_from_json(b'{"exams": {}}').exams == {}


def entry(**fields: object) -> bytes:
    """One exam's entry with fields replaced (``...``: left out)."""
    base: dict[str, object] = {"handover_witness": True, "retention_until": "2028-03-01T00:00:00Z"}
    base.update(fields)
    kept = {k: v for k, v in base.items() if v is not ...}
    return json.dumps({"exams": {"SX-2027-INT": kept}}).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"exams": []}',
        b'{"exam": {}}',
        b'{"exams": {}, "version": 1}',
        b'{"exams": {"SX": 1}}',
        b'{"exams": {"": {"handover_witness": true, "retention_until": "2028-03-01T00:00:00Z"}}}',
        b'{"exams": {"SX": {}, "SX": {}}}',
        entry(handover_witness=...),
        entry(handover_witness=1),
        entry(handover_witness=None),
        entry(retention_until=...),
        entry(retention_until="2028-03-01"),
        entry(retention_until="2028-02-30T00:00:00Z"),
        entry(retention_until=1830297600),
        entry(retain_until="2028-03-01T00:00:00Z"),
    ],
    ids=[
        "empty", "list", "exams a list", "misspelt top field", "unknown top field",
        "entry not an object", "empty exam id", "duplicate exam id", "no witness",
        "witness an int", "witness null", "no retention", "retention a date",
        "retention not a day", "retention a number", "unknown field",
    ],
)  # fmt: skip
def test_refuses_bad_input(data: bytes) -> None:
    with pytest.raises(FormatError):
        exams_from_json(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_format_errors(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        exams_from_json(data)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                         max_size=3),
                    max_leaves=10))  # fmt: skip
def test_arbitrary_json_raises_only_format_errors(value: object) -> None:
    with contextlib.suppress(FormatError):
        exams_from_json(json.dumps({"exams": {"X": value}}).encode())
