"""Custody events: the signed statements every movement and act of a package is made of.

An event is a DSSE envelope (payload type ``application/vnd.custody.event.v1+json``) whose
payload is canonical JSON naming its kind, time, place, the packages it moves with the hash of
each package's previous event, the people it claims for each signer slot, and a kind-specific
body. ``parse_event`` is the one place event payload bytes become an ``Event``.

Rules:
- The statement id is SHA-256 of the payload bytes; a package's chain links events by it.
- The Merkle leaf is the envelope's canonical bytes (signatures included), so an edited
  signature breaks the log as surely as an edited payload.
- Corrections never edit: a ``correction`` event names the statement it corrects.
- Package ids follow the one id rule (``crypto.vocabulary``), and no string anywhere in an
  event holds U+0000: what the log stores must fit its columns on every engine (PostgreSQL text
  cannot hold NUL), so such an event is a format refusal, never a storage fault.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import orjson

from crypto.dsse import Envelope, parse_envelope, sign_envelope
from crypto.encoding import Fields, canonical_json, format_time, parse_json_object
from crypto.signing import SigningKey
from crypto.vocabulary import MAX_ID, check_id
from custody.errors import N_, FormatError

EVENT_TYPE = "application/vnd.custody.event.v1+json"
MAX_PACKAGES_PER_EVENT = 1000
_STATEMENT_ID = re.compile(r"^[0-9a-f]{64}$")
MAX_PACKAGE_ID = MAX_ID  # within the width of the log's package_id columns (128)


class Kind(StrEnum):
    SEAL = "seal"
    DISPATCH = "dispatch"
    HANDOVER = "handover"
    RECEIVE = "receive"
    INSPECT = "inspect"
    PATROL = "patrol"
    CHECKIN = "checkin"
    OPEN = "open"
    DISTRIBUTE = "distribute"
    RECOVER = "recover"
    RETURN = "return"
    DESTROY = "destroy"
    FREEZE = "freeze"
    RELEASE = "release"
    COMPROMISE = "compromise"
    REROUTE = "reroute"
    ACTIVATE_BACKUP = "activate_backup"
    CORRECTION = "correction"
    INCIDENT = "incident"
    LEAK_REPORT = "leak_report"
    PAPER_ACT = "paper_act"
    EXAM_POLICY = "exam_policy"


def statement_id(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class Event:
    """A parsed event payload. Signatures are judged separately (keys.statements)."""

    kind: Kind
    authority: str
    time: datetime
    place: str
    packages: Mapping[str, str | None]
    actors: Mapping[str, str]
    body: Mapping[str, Any]
    corrects: str | None = None
    id: str = field(default="", compare=False)

    def payload(self) -> bytes:
        return canonical_json(
            {
                "type": "custody.event.v1",
                "kind": self.kind.value,
                "authority": self.authority,
                "time": format_time(self.time),
                "place": self.place,
                "packages": dict(self.packages),
                "actors": dict(self.actors),
                "body": dict(self.body),
                "corrects": self.corrects,
            }
        )

    @property
    def package_ids(self) -> tuple[str, ...]:
        return tuple(self.packages)

    def sign(self, keys: list[SigningKey]) -> Envelope:
        return sign_envelope(EVENT_TYPE, self.payload(), keys)


def _string_map(value: object, *, what: str, nullable: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(N_("{what} must be an object"), what=what)
    for k, v in value.items():
        ok = isinstance(v, str) or (nullable and v is None)
        if not ok:
            raise FormatError(N_("{what}[{k!r}] must be a string"), what=what, k=k)
    return dict(value)


def _refuse_nul(payload: bytes) -> None:
    """No U+0000 in any key or string. Strict JSON has no raw control characters, so a NUL
    can only arrive as the escape ``\\u0000``; refusing that byte sequence (even where it
    is an escaped backslash followed by "u0000") is cheap and errs on the strict side."""
    if b"\\u0000" in payload:
        raise FormatError(N_("event: a string holds U+0000 (NUL), which is not allowed"))


# A number token with a fraction or an exponent (in canonical JSON a number follows ':', ',' or
# '['); may also match inside a string, which only sends that payload down the exact path.
_FLOAT_TOKEN = re.compile(rb"[:,\[]-?[0-9]+[.eE]")


def _fast_canonical(payload: bytes) -> dict[str, Any] | None:
    """The payload's object if orjson re-encodes it to exactly these bytes, else None.

    orjson (C) parses and sorts about four times faster than the json module. Its output is the
    canonical form of docs/formats.md (keys sorted by code point, no whitespace, UTF-8, the same
    string escapes) except for numbers with a fraction or exponent, which it writes differently
    (1e16, not 1e+16): payloads holding one take the exact path. Anything orjson reads
    differently (a duplicate key keeps its last value, an integer beyond 64 bits becomes a
    float) no longer re-encodes to the same bytes, so it too takes the exact path, which
    refuses it with the same errors as before."""
    if _FLOAT_TOKEN.search(payload):
        return None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) != payload:
        return None
    return obj


MAX_PLACE = 200
# C0 and C1 controls, and the bidirectional overrides that make a line read otherwise than it is.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def check_place(place: str) -> str:
    """An event's ``place``: one line of plain text (it is shown in terminals, pages and
    reports), at most ``MAX_PLACE`` characters; empty is allowed."""
    if len(place) > MAX_PLACE:
        raise FormatError(
            N_("event.place holds at most {max_place} characters"), max_place=MAX_PLACE
        )
    found = _CONTROL.search(place)
    if found is not None:
        raise FormatError(
            N_("event.place holds a control character (U+{code}): a place is one line of text"),
            code=f"{ord(found.group()):04X}",
        )
    return place


def parse_event(payload: bytes) -> Event:
    """Parse verified (or about to be verified) payload bytes into an Event."""
    what = "event"
    _refuse_nul(payload)
    obj = _fast_canonical(payload)
    if obj is None:
        obj = parse_json_object(payload, what=what)
        try:
            canonical = canonical_json(obj)
        except ValueError as e:  # NaN or Infinity: not JSON numbers
            raise FormatError(N_("event: NaN and Infinity are not JSON numbers")) from e
        if canonical != payload:
            raise FormatError(
                N_(
                    "event: the payload is not canonical JSON (keys sorted, no "
                    "whitespace, UTF-8, as docs/formats.md says)"
                )
            )
    f = Fields(obj, what=what)
    f.expect("type", "custody.event.v1")
    extra = set(f.obj) - {
        "type",
        "kind",
        "authority",
        "time",
        "place",
        "packages",
        "actors",
        "body",
        "corrects",
    }
    if extra:
        raise FormatError(N_("event: unexpected field(s) {extra}"), extra=", ".join(sorted(extra)))
    try:
        kind = Kind(f.text("kind"))
    except ValueError as e:
        raise FormatError(N_("event: unknown kind {kind!r}"), kind=f.obj.get("kind")) from e
    packages = _string_map(f.obj.get("packages"), what="event.packages", nullable=True)
    if len(packages) > MAX_PACKAGES_PER_EVENT:
        raise FormatError(
            N_("event names more than {max_packages_per_event} packages"),
            max_packages_per_event=MAX_PACKAGES_PER_EVENT,
        )
    corrects = f.opt_text("corrects")
    if corrects is not None and not _STATEMENT_ID.match(corrects):
        raise FormatError(N_("event.corrects must be a statement id (64 lowercase hex digits)"))
    for package_id in packages:
        check_id(package_id, "event.packages: package id")
    body = f.obj.get("body")
    if not isinstance(body, dict):
        raise FormatError(N_("event.body must be an object"))
    return Event(
        kind=kind,
        authority=f.text("authority"),
        time=f.time("time"),
        place=check_place(f.text("place")),
        packages=MappingProxyType(packages),
        actors=MappingProxyType(
            _string_map(f.obj.get("actors"), what="event.actors", nullable=False)
        ),
        body=MappingProxyType(body),
        corrects=corrects,
        id=statement_id(payload),
    )


ENTRY_TYPE = "custody.entry.v1"


@dataclass(frozen=True)
class Entry:
    """One leaf of the log: the event's envelope and when the log received it (its clock)."""

    envelope: Envelope
    received: datetime


def leaf_bytes(env: Envelope, received: datetime) -> bytes:
    """The Merkle leaf of an accepted event: canonical JSON of the envelope (its own canonical
    bytes) and the log's receive time, so the checkpoint commits to when each event arrived."""
    return leaf_bytes_at(env, format_time(received))


_LEAF_TAIL = b'","type":"' + ENTRY_TYPE.encode() + b'"}'


def leaf_bytes_at(env: Envelope, received: str) -> bytes:
    """``leaf_bytes`` with the receive time already written (``format_time``): a batch's
    events share one."""
    head = b'{"envelope":'
    return b"".join((head, env.to_bytes(), b',"received":"', received.encode(), _LEAF_TAIL))


def parse_leaf(leaf: bytes) -> Entry:
    """A log leaf (an export line, an entry) back to its envelope and receive time; only the
    exact canonical bytes ``leaf_bytes`` writes are accepted."""
    what = "log entry"
    try:
        obj = orjson.loads(leaf)  # exactness is checked below: the bytes are rebuilt
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict):
        obj = parse_json_object(leaf, what=what)  # refuses with the exact reason
    f = Fields(obj, what=what)
    f.expect("type", ENTRY_TYPE)
    if set(f.obj) != {"envelope", "received", "type"}:
        raise FormatError(N_("{what}: fields must be exactly envelope, received, type"), what=what)
    env = parse_envelope(f.obj["envelope"], what=f"{what} envelope")
    received = f.time("received")
    if leaf_bytes(env, received) != leaf:
        raise FormatError(N_("{what}: not in canonical form"), what=what)
    return Entry(env, received)
