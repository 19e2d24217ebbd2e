"""People's acts on an incident: the signed statement a person sends to acknowledge, contain,
resolve an incident or lift the block on a key (pure: values in, bytes or an error out).

Format (payload type ``application/vnd.custody.incident-act.v1+json``, canonical JSON in a DSSE
envelope signed by the acting person)::

    {"type": "custody.incident-act.v1", "authority": ..., "incident": "INC-00001",
     "act": "acknowledge" | "contain" | "resolve" | "unblock", "person": ..., "time": RFC 3339,
     "note": "...", "key": key id (unblock) | null}

Rules:
- ``parse_act`` is the one parser of an act's payload: another payload type, an unknown act or
  a note longer than 4000 characters is a ``FormatError``.
- Who may sign which act, and from which status, is the policy's (``policy.py``), not the
  format's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from crypto.dsse import Envelope, sign_envelope
from crypto.encoding import Fields, canonical_json, format_time, parse_json_object
from crypto.signing import SigningKey
from custody.errors import FormatError

ACT_TYPE = "application/vnd.custody.incident-act.v1+json"
MAX_NOTE_CHARS = 4000


class ActKind(StrEnum):
    """The acts a person may sign on an incident."""

    ACKNOWLEDGE = "acknowledge"
    CONTAIN = "contain"
    RESOLVE = "resolve"
    UNBLOCK = "unblock"  # lifts the block on one key (``Act.key``)


ACTS = tuple(a.value for a in ActKind)
# Each act as people read it (reports and notices show the Chinese, then the code).
ACT_NAMES: Mapping[str, str] = {
    "acknowledge": "确认",
    "contain": "控制",
    "resolve": "解决",
    "unblock": "解除封锁",
}


@dataclass(frozen=True)
class Act:
    authority: str
    incident: str
    act: str  # an ``ActKind`` value
    person: str
    time: datetime
    note: str = ""
    key: str | None = None  # the key an ``unblock`` act lifts

    def payload(self) -> bytes:
        return canonical_json(
            {
                "type": "custody.incident-act.v1",
                "authority": self.authority,
                "incident": self.incident,
                "act": self.act,
                "person": self.person,
                "time": format_time(self.time),
                "note": self.note,
                "key": self.key,
            }
        )

    def sign(self, key: SigningKey) -> Envelope:
        return sign_envelope(ACT_TYPE, self.payload(), [key])


def parse_act(env: Envelope) -> Act:
    """The act an envelope carries (its signatures are the policy's to check)."""
    if env.payload_type != ACT_TYPE:
        raise FormatError(f"not an incident act: payload type {env.payload_type!r}")
    f = Fields(parse_json_object(env.payload, what="incident act"), what="incident act")
    f.expect("type", "custody.incident-act.v1")
    act = f.text("act")
    if act not in ACTS:
        raise FormatError(f"incident act: unknown act {act!r} (known: {', '.join(ACTS)})")
    note = f.obj.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise FormatError("incident act: note must be a string of at most 4000 characters")
    return Act(
        authority=f.text("authority"),
        incident=f.text("incident"),
        act=act,
        person=f.text("person"),
        time=f.time("time"),
        note=note,
        key=f.opt_text("key"),
    )


__all__ = ["ACTS", "ACT_NAMES", "ACT_TYPE", "Act", "ActKind", "parse_act"]
