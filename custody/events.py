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

import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeGuard

import orjson

from crypto.dsse import MAX_SIGNATURES, Envelope, Signature, parse_envelope, sign_envelope
from crypto.encoding import Fields, canonical_json, format_time, parse_json_object, parse_time
from crypto.signing import SigningKey
from crypto.vocabulary import MAX_ID, check_id, is_id
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


_EVENT_FIELDS = frozenset(
    {"type", "kind", "authority", "time", "place", "packages", "actors", "body", "corrects"}
)
_KINDS = {k.value: k for k in Kind}


def _strings(value: object, nullable: bool) -> TypeGuard[dict[str, Any]]:
    return type(value) is dict and all(
        type(v) is str or (nullable and v is None) for v in value.values()
    )


def _fast_event(obj: dict[str, Any], payload: bytes) -> Event | None:
    """The event of an already canonical payload's object when every field is as the general
    path below wants it, else None (that path then names what is wrong)."""
    kind, packages, actors, body = (
        obj.get("kind"),
        obj.get("packages"),
        obj.get("actors"),
        obj.get("body"),
    )
    authority, place, corrects = obj.get("authority"), obj.get("place"), obj.get("corrects")
    if (
        obj.get("type") != "custody.event.v1"
        or not _EVENT_FIELDS.issuperset(obj)
        or type(kind) is not str
        or kind not in _KINDS
        or type(authority) is not str
        or type(place) is not str
        or len(place) > MAX_PLACE
        or _CONTROL.search(place) is not None
        or type(body) is not dict
        or not _strings(packages, True)
        or not _strings(actors, False)
        or len(packages) > MAX_PACKAGES_PER_EVENT
        or not (corrects is None or (type(corrects) is str and _STATEMENT_ID.match(corrects)))
        or not all(map(is_id, packages))
    ):
        return None
    try:
        time = parse_time(obj.get("time"), what="event: field 'time'")
    except FormatError:
        return None
    # Event(...) without the frozen dataclass's __init__ (one object.__setattr__ per field,
    # a third of the cost of this whole reading): the same fields in the instance's __dict__.
    event = object.__new__(Event)
    fields = event.__dict__
    fields["kind"] = _KINDS[kind]
    fields["authority"] = authority
    fields["time"] = time
    fields["place"] = place
    fields["packages"] = MappingProxyType(packages)
    fields["actors"] = MappingProxyType(actors)
    fields["body"] = MappingProxyType(body)
    fields["corrects"] = corrects
    fields["id"] = statement_id(payload)
    return event


assert not hasattr(Event, "__post_init__")  # _fast_event builds it field by field


def parse_event(payload: bytes) -> Event:
    """Parse verified (or about to be verified) payload bytes into an Event."""
    _refuse_nul(payload)
    obj = _fast_canonical(payload)
    if obj is not None:
        fast = _fast_event(obj, payload)
        if fast is not None:
            return fast
    return _parse_event_fields(payload, obj)


def _parse_event_fields(payload: bytes, obj: dict[str, Any] | None) -> Event:
    """``parse_event`` field by field (``obj``: the payload's object if orjson read it as
    canonical): the reference, and the exact refusal."""
    what = "event"
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


# A leaf exactly as ``leaf_bytes`` writes it when its key id hints and payload type need no
# JSON escape (every leaf this product writes): the fixed head, the payload's base64, then one
# match fixes the rest of the structure; each base64 field and the time must be the canonical
# writing of what it decodes to.
_LEAF_HEAD = b'{"envelope":{"payload":"'
_TEXT = rb"[ !#-\[\]-~]*"
_SIG = rb'\{"keyid":"' + _TEXT + rb'","sig":"[A-Za-z0-9+/]{86}=="\}'
_LEAF_TAIL_RE = re.compile(
    rb'","payloadType":"(' + _TEXT + rb')","signatures":\[(' + _SIG + rb"(?:," + _SIG + rb")*)\]\},"
    rb'"received":"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})Z",'
    rb'"type":"custody\.entry\.v1"\}'
)
_SIG_RE = re.compile(rb'\{"keyid":"(' + _TEXT + rb')","sig":"([A-Za-z0-9+/]{86}==)"\}')
_last_received: tuple[bytes, datetime] = (b"", datetime.min)


def _canonical_b64(text: bytes) -> bytes | None:
    """The bytes ``text`` encodes if it is their one canonical base64 writing (the strict
    decoder refuses anything outside the alphabet, a quote or a backslash included)."""
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        return None
    return raw if binascii.b2a_base64(raw, newline=False) == text else None


# A leaf's envelope as parts (payload type, payload, (key id hint, signature) pairs) and its
# receive time: what a verifier needs of it, without building the objects.
LeafParts = tuple[str, bytes, tuple[tuple[str, bytes], ...], datetime]


def leaf_parts(leaf: bytes) -> LeafParts:
    """``parse_leaf`` as parts."""
    fast = _fast_leaf_parts(leaf)
    if fast is not None:
        return fast
    entry = _parse_leaf_exact(leaf)
    env = entry.envelope
    sigs = tuple((s.keyid, s.sig) for s in env.signatures)
    return env.payload_type, env.payload, sigs, entry.received


def _fast_leaf(leaf: bytes) -> Entry | None:
    parts = _fast_leaf_parts(leaf)
    if parts is None:
        return None
    payload_type, payload, sigs, received = parts
    envelope = Envelope(payload_type, payload, tuple([Signature(k, s) for k, s in sigs]))
    return Entry(envelope, received)


def _fast_leaf_parts(leaf: bytes) -> LeafParts | None:
    """The parts if ``leaf`` is exactly what ``leaf_bytes`` writes for them, else None (the
    exact path then accepts it or names what is wrong). Every byte is accounted for: the
    head and the match fix the structure, and each value is the canonical writing of what it
    decodes to, so what this returns is what the exact path would."""
    global _last_received  # noqa: PLW0603 (consecutive leaves of a batch share a time)
    start = len(_LEAF_HEAD)
    end = leaf.find(b'"', start)
    if not leaf.startswith(_LEAF_HEAD) or end < 0:
        return None
    m = _LEAF_TAIL_RE.fullmatch(leaf, end)
    payload = _canonical_b64(leaf[start:end])
    if m is None or payload is None:
        return None
    payload_type, sigs_text, received = m.groups()
    sigs = []
    for keyid, sig_b64 in _SIG_RE.findall(sigs_text):
        sig = _canonical_b64(sig_b64)
        if sig is None:
            return None
        sigs.append((keyid.decode("ascii"), sig))
    if len(sigs) > MAX_SIGNATURES:
        return None
    if _last_received[0] == received:
        when = _last_received[1]
    else:
        if received < b"1000":  # format_time writes a year before 1000 in fewer digits
            return None
        try:  # the match fixed the shape parse_time checks; this is its date check
            when = datetime.fromisoformat(received.decode("ascii") + "Z")  # UTC, as parse_time
        except ValueError:
            return None
        _last_received = (received, when)
    return payload_type.decode("ascii"), payload, tuple(sigs), when


def parse_leaf(leaf: bytes) -> Entry:
    """A log leaf (an export line, an entry) back to its envelope and receive time; only the
    exact canonical bytes ``leaf_bytes`` writes are accepted."""
    fast = _fast_leaf(leaf)
    return fast if fast is not None else _parse_leaf_exact(leaf)


def _parse_leaf_exact(leaf: bytes) -> Entry:
    """``parse_leaf`` by the general JSON path: the reference, and the exact refusal."""
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
