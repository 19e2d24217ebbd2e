"""The fast readings of a log leaf and of an event payload (custody/events.py ``_fast_leaf``,
``_fast_event``) accept only what the general paths accept, with the same result: every real
leaf takes it, and every damaged leaf or odd event is refused by both or read alike (the
general path then gives the refusal)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from crypto.dsse import Envelope, Signature, parse_envelope, sign_envelope
from crypto.encoding import canonical_json, utc
from custody.demo import Season, seal_events
from custody.errors import CustodyError
from custody.events import (
    EVENT_TYPE,
    Entry,
    Event,
    _fast_canonical,
    _fast_event,
    _fast_leaf,
    _parse_event_fields,
    _parse_leaf_exact,
    leaf_bytes,
    leaf_parts,
    parse_event,
    parse_leaf,
)


def exact(leaf: bytes) -> Entry | None:
    try:
        return _parse_leaf_exact(leaf)
    except CustodyError:
        return None


def agree(leaf: bytes) -> Entry | None:
    """The fast reading of ``leaf``, checked against the exact one."""
    fast, slow = _fast_leaf(leaf), exact(leaf)
    if fast is not None:
        assert fast == slow, leaf
    assert parse_leaf(leaf) == slow if slow is not None else True
    return fast


def real_leaves(season: Season) -> list[bytes]:
    log = season.log()
    for line in seal_events(season, ["PK-1", "PK-2"]):
        log.submit(parse_envelope(line), now=season.now)
    return [leaf for _, leaf in log.entries()]


def two_signed(season: Season) -> bytes:
    keys = [season.keys[p].signing for p in ("courier-sun", "courier-li")]
    env = sign_envelope(EVENT_TYPE, b'{"a":"b"}', keys)
    return leaf_bytes(env, season.now)


def test_every_real_leaf_takes_the_fast_reading(season: Season) -> None:
    leaves = [*real_leaves(season), two_signed(season)]
    for leaf in leaves:
        fast = agree(leaf)
        assert fast is not None
        assert fast == _parse_leaf_exact(leaf)


def test_a_damaged_leaf_is_read_alike_or_refused_by_both(season: Season) -> None:
    leaf = two_signed(season)
    variants = []
    for i in range(len(leaf)):
        variants.append(leaf[:i] + leaf[i + 1 :])  # a byte dropped
        for c in b'" \\=A0,}{:':
            variants.append(leaf[:i] + bytes([c]) + leaf[i + 1 :])  # a byte changed
    read = [v for v in variants if agree(v) is not None]
    # Some changes are still leaves (another base64 digit, another hint): read alike above.
    # Every quote or backslash put in (or quote dropped) breaks the leaf for both.
    assert 0 < len(read) < len(variants) // 2
    assert not [v for v in read if v.count(b'"') != leaf.count(b'"')]
    assert not [v for v in read if v.count(b"\\") != leaf.count(b"\\")]


def test_non_canonical_values_take_the_exact_path(season: Season) -> None:
    env = Envelope(EVENT_TYPE, b"ab", (Signature("k", bytes(64)),))
    leaf = leaf_bytes(env, season.now)
    assert agree(leaf) is not None
    # base64 with padding bits set decodes to the same bytes: refused by both
    assert b'"YWI="' in leaf
    assert agree(leaf.replace(b'"YWI="', b'"YWJ="')) is None
    # a year before 1000 is written in fewer digits by format_time: refused by both
    early = leaf_bytes(env, season.now).replace(b'"received":"2', b'"received":"0', 1)
    assert agree(early) is None
    assert agree(leaf.replace(b"T08:", b"T25:")) is None  # not a real time
    feb30 = leaf_bytes(env, utc(2027, 2, 28) + timedelta(days=1)).replace(b"-03-01", b"-02-30")
    assert agree(feb30) is None
    # more signatures than an envelope may carry, and none at all
    many = Envelope(EVENT_TYPE, b"ab", tuple(Signature(f"k{n}", bytes(64)) for n in range(17)))
    assert agree(leaf_bytes(many, season.now)) is None
    none = Envelope(EVENT_TYPE, b"ab", ())
    assert agree(leaf_bytes(none, season.now)) is None
    # a key id hint written with a JSON escape: the exact path reads it (the same entry)
    escaped = leaf.replace(b'"keyid":"k"', b'"keyid":"\\u006b"')
    assert _fast_leaf(escaped) is None and exact(escaped) is None  # not canonical
    quoted = Envelope(EVENT_TYPE, b"ab", (Signature('k"q', bytes(64)),))
    odd = leaf_bytes(quoted, season.now)
    assert _fast_leaf(odd) is None
    assert parse_leaf(odd) == Entry(quoted, season.now)
    assert leaf_parts(odd) == (EVENT_TYPE, b"ab", (('k"q', bytes(64)),), season.now)
    assert leaf_parts(leaf) == (EVENT_TYPE, b"ab", (("k", bytes(64)),), season.now)
    # an empty payload and the largest padding
    for payload in (b"", b"a", b"abc"):
        e = Envelope(EVENT_TYPE, payload, (Signature("k", bytes(64)),))
        one = leaf_bytes(e, season.now)
        assert agree(one) == Entry(e, season.now)
    assert base64.b64encode(b"a") == b"YQ=="


# -- events ---------------------------------------------------------------------------------

GOOD_EVENT: dict[str, Any] = {
    "type": "custody.event.v1",
    "kind": "handover",
    "authority": "a" * 64,
    "time": "2027-03-01T08:00:04Z",
    "place": "road",
    "packages": {"PK-1": "b" * 64},
    "actors": {"releaser": "courier-sun", "receiver": "courier-li"},
    "body": {"seals": ["S1", "S2"]},
    "corrects": None,
}

ODD_VALUES: list[object] = [None, 1, 1.5, True, "", "x", [], ["x"], {}, {"k": 1}, {"k": None}]


def event_variants() -> list[dict[str, Any]]:
    out = [dict(GOOD_EVENT)]
    for name in GOOD_EVENT:
        less = dict(GOOD_EVENT)
        del less[name]
        out.append(less)
        for value in ODD_VALUES:
            out.append({**GOOD_EVENT, name: value})
    out += [
        {**GOOD_EVENT, "extra": 1},
        {**GOOD_EVENT, "kind": "seal"},
        {**GOOD_EVENT, "kind": "Handover"},
        {**GOOD_EVENT, "time": "2027-02-30T08:00:04Z"},
        {**GOOD_EVENT, "time": "2027-03-01 08:00:04Z"},
        {**GOOD_EVENT, "corrects": "c" * 64},
        {**GOOD_EVENT, "corrects": "C" * 64},
        {**GOOD_EVENT, "corrects": "c" * 64 + "\n"},
        {**GOOD_EVENT, "packages": {"bad id!": None}},
        {**GOOD_EVENT, "packages": {"P" * 65: None}},
        {**GOOD_EVENT, "packages": {f"P{n}": None for n in range(1000)}},
        {**GOOD_EVENT, "packages": {f"P{n}": None for n in range(1001)}},
        {**GOOD_EVENT, "actors": {"releaser": None}},
        {**GOOD_EVENT, "body": {"n": 10**20}},
        {**GOOD_EVENT, "place": "x" * 200},
        {**GOOD_EVENT, "place": "x" * 201},
        {**GOOD_EVENT, "place": "a\u202eb"},
        {**GOOD_EVENT, "place": "line\nbreak"},
        {**GOOD_EVENT, "place": "考场 3"},
    ]
    return out


def test_an_event_takes_the_fast_reading_only_as_the_field_path_reads_it() -> None:
    fast_read = 0
    for obj in event_variants():
        payload = canonical_json(obj)
        reread = _fast_canonical(payload)
        if reread is None:
            continue  # not canonical for orjson: only the field path reads it
        fast = _fast_event(reread, payload)
        try:
            slow: Event | None = _parse_event_fields(payload, reread)
        except CustodyError:
            slow = None
        if fast is not None:
            fast_read += 1
            assert fast == slow, obj
            assert fast.id == slow.id
        assert parse_event(payload) == slow if slow is not None else True
    assert fast_read >= 5  # the good event, another kind, a correction, 1000 packages...
