"""One vocabulary: the same id rule, secrecy levels and windows in every parser."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crypto.encoding import utc
from crypto.errors import FormatError
from crypto.vocabulary import MAX_ID, Classification, Window, check_id, is_id
from custody.events import Event, Kind, parse_event
from tests.labels.fixtures import typical_manifest

IDS = [
    ("SX27-P01-M-A", True),
    ("面试01", True),
    ("包裹_一.2", True),
    ("a" * MAX_ID, True),
    ("a" * (MAX_ID + 1), False),
    ("", False),
    ("PK 1", False),
    ("PK\t1", False),
    ("PK\x00", False),
    ("EVIL[/bold]", False),
    ("a/b", False),
    ("x\u202e", False),  # a right-to-left override is not a letter
]


@pytest.mark.parametrize(("value", "ok"), IDS, ids=[repr(v)[:20] for v, _ in IDS])
def test_one_id_rule(value: str, ok: bool) -> None:
    assert is_id(value) is ok
    if ok:
        assert check_id(value, "id") == value
    else:
        with pytest.raises(FormatError):
            check_id(value, "id")


@pytest.mark.parametrize(("value", "ok"), IDS, ids=[repr(v)[:20] for v, _ in IDS])
def test_the_same_rule_in_manifests_and_events(value: str, ok: bool) -> None:
    def manifest() -> object:
        return typical_manifest(utc(2027, 3, 1), package_id=value, paper_id=value)

    event = Event(
        kind=Kind.SEAL,
        authority="a",
        time=utc(2027, 3, 1),
        place="",
        packages={value: None},
        actors={},
        body={},
    )
    if ok:
        manifest()
        assert parse_event(event.payload()).package_ids == (value,)
    else:
        with pytest.raises(FormatError):
            manifest()
        with pytest.raises(FormatError):
            parse_event(event.payload())


def test_one_spelling_per_secrecy_level() -> None:
    assert [c.slug for c in Classification] == ["secret", "confidential", "top-secret"]
    assert [int(c) for c in Classification] == [1, 2, 3]
    assert Classification.from_slug("top-secret") is Classification.TOP_SECRET
    with pytest.raises(FormatError):
        Classification.from_slug("top_secret")


def test_windows() -> None:
    start = utc(2027, 3, 1, 9)
    w = Window(start, start + timedelta(hours=2))
    assert w.contains(start) and w.contains(w.end) and not w.contains(w.end + timedelta(seconds=1))
    with pytest.raises(FormatError):
        Window(start, start)
