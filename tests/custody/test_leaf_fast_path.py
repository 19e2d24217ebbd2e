"""The fast reading of a log leaf (custody/events.py ``_fast_leaf``) accepts only what the
general JSON path accepts, with the same result: every real leaf takes it, and every damaged
leaf either is refused by both or read alike (the exact path then gives the refusal)."""

from __future__ import annotations

import base64
from datetime import timedelta

from crypto.dsse import Envelope, Signature, parse_envelope, sign_envelope
from crypto.encoding import utc
from custody.demo import Season, seal_events
from custody.errors import CustodyError
from custody.events import (
    EVENT_TYPE,
    Entry,
    _fast_leaf,
    _parse_leaf_exact,
    leaf_bytes,
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
    # an empty payload and the largest padding
    for payload in (b"", b"a", b"abc"):
        e = Envelope(EVENT_TYPE, payload, (Signature("k", bytes(64)),))
        one = leaf_bytes(e, season.now)
        assert agree(one) == Entry(e, season.now)
    assert base64.b64encode(b"a") == b"YQ=="
