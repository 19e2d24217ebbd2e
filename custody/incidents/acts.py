"""People's acts on an incident: the signed statement a person sends to acknowledge, contain,
resolve an incident or lift the block on a key (values in, bytes or an error out).

Format (payload type ``application/vnd.custody.incident-act.v1+json``, canonical JSON in a DSSE
envelope signed by the acting person)::

    {"type": "custody.incident-act.v1", "authority": ..., "incident": "INC-00001",
     "act": "acknowledge" | "contain" | "resolve" | "unblock", "person": ..., "time": RFC 3339,
     "note_sealed": null | {"sha256": hex, "sealed": [{"to": person, "key": X25519 key id,
                                                       "box": base64 sealed box}, ...]},
     "key": key id (unblock) | null}

Rules:
- The note a person writes is free text (names, phone numbers, what they saw): it never goes
  on the log in clear. The signer seals ``{"note": text, "salt": 16 random bytes}`` (canonical
  JSON) to each secrecy officer's X25519 key; the act carries the boxes and the plaintext's
  SHA-256 (the salt keeps a short note from being guessed from its hash). The person's
  signature covers the boxes and the hash, so an auditor checks it without reading the note;
  a secrecy officer opens their box (``open_note``) and checks it against the hash.
- ``parse_act`` is the one parser of an act's payload: another payload type, an unknown act,
  a note in clear (``note`` other than empty), or a malformed ``note_sealed`` is a
  ``FormatError``. A note holds at most 4000 characters.
- Who may sign which act, and from which status, and to whom a note may be sealed, is the
  policy's (``policy.py``), not the format's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import nacl.utils

from crypto.dsse import Envelope, sign_envelope
from crypto.encoding import (
    Fields,
    b64decode,
    b64encode,
    canonical_json,
    format_time,
    parse_json_object,
)
from crypto.sealing import open_sealed, seal_to
from crypto.signing import EncryptionKey, SigningKey
from custody.errors import N_, DecryptionError, FormatError, Phrase

ACT_TYPE = "application/vnd.custody.incident-act.v1+json"
MAX_NOTE_CHARS = 4000
MAX_BOXES = 64  # secrecy officers a note is sealed to, at most
MAX_BOX_CHARS = 24_000  # base64 of a 4000-character note (UTF-8) with its salt and seal
SALT_BYTES = 16
_HEX64 = re.compile(r"[0-9a-f]{64}")


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
class SealedBox:
    """One secrecy officer's copy of a sealed note."""

    to: str  # the officer (certificate subject)
    key: str  # the X25519 key id it is sealed to
    box: str  # base64 sealed box

    def as_json(self) -> dict[str, str]:
        return {"to": self.to, "key": self.key, "box": self.box}


@dataclass(frozen=True)
class SealedNote:
    """A note as the act (and so the log) carries it: the boxes and the plaintext's SHA-256."""

    sha256: str
    sealed: tuple[SealedBox, ...]

    def as_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "sealed": [b.as_json() for b in self.sealed]}


@dataclass(frozen=True)
class Recipient:
    """Whom a note is sealed to: an officer's subject, X25519 key id and public key."""

    subject: str
    key_id: str
    public: bytes


def note_plaintext(note: str, salt: bytes) -> bytes:
    """What is sealed of a note: ``{"note": text, "salt": base64}`` as canonical JSON."""
    return canonical_json({"note": note, "salt": b64encode(salt)})


def seal_note(
    note: str, recipients: Iterable[Recipient], *, seed: bytes | None = None
) -> SealedNote | None:
    """Seal ``note`` to each recipient (None for an empty note); ``FormatError`` for a note
    over 4000 characters, no recipient or more than ``MAX_BOXES``. ``seed`` makes the salt
    and the boxes reproducible, for test vectors and documentation examples only."""
    if not note.strip():
        return None
    if len(note) > MAX_NOTE_CHARS:
        raise FormatError(
            N_("a note holds at most {max_note_chars} characters"), max_note_chars=MAX_NOTE_CHARS
        )
    people = sorted(recipients, key=lambda r: (r.subject, r.key_id))
    if not people:
        raise FormatError(N_("a note is sealed to the secrecy officers, and there are none"))
    if len(people) > MAX_BOXES:
        raise FormatError(
            N_("a note is sealed to at most {max_boxes} secrecy officers"), max_boxes=MAX_BOXES
        )

    def derived(*parts: bytes) -> bytes:
        return hashlib.sha256(b"\x00".join([b"custody note seal v1", *parts])).digest()

    salt = nacl.utils.random(SALT_BYTES) if seed is None else derived(seed)[:SALT_BYTES]
    plaintext = note_plaintext(note, salt)
    boxes = tuple(
        SealedBox(
            r.subject,
            r.key_id,
            b64encode(
                seal_to(
                    r.public,
                    plaintext,
                    ephemeral_seed=None if seed is None else derived(seed, r.key_id.encode()),
                )
            ),
        )
        for r in people
    )
    return SealedNote(hashlib.sha256(plaintext).hexdigest(), boxes)


def open_note(note: SealedNote, key_id: str, secret: EncryptionKey) -> str:
    """The text of a sealed note, opened with a secrecy officer's X25519 key:
    ``DecryptionError`` if no box is theirs or it does not open, ``FormatError`` if what opens
    does not hash to the SHA-256 the act (and the log) holds."""
    mine = [b for b in note.sealed if b.key == key_id]
    if not mine:
        raise DecryptionError()
    plaintext = open_sealed(secret.private_key(), b64decode(mine[0].box, what=Phrase("sealed box")))
    if hashlib.sha256(plaintext).hexdigest() != note.sha256:
        raise FormatError(N_("the opened note does not hash to the SHA-256 the log holds"))
    opened = Fields(parse_json_object(plaintext, what="sealed note"), what="sealed note")
    return opened.text("note")


@dataclass(frozen=True)
class Act:
    authority: str
    incident: str
    act: str  # an ``ActKind`` value
    person: str
    time: datetime
    note_sealed: SealedNote | None = None
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
                "note_sealed": None if self.note_sealed is None else self.note_sealed.as_json(),
                "key": self.key,
            }
        )

    def sign(self, key: SigningKey) -> Envelope:
        return sign_envelope(ACT_TYPE, self.payload(), [key])


def parse_sealed_note(value: object, what: str = "incident act: note_sealed") -> SealedNote | None:
    """``note_sealed`` of an act (None: no note); ``what`` names the field in a refusal (the
    same shape seals every free text a person writes onto the log: ``custody.sealed_text``)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise FormatError(N_("{what} must be an object or null"), what=what)
    f = Fields(dict(value), what=what)
    digest = f.text("sha256")
    if not _HEX64.fullmatch(digest):
        raise FormatError(N_("{what}: sha256 must be 64 lowercase hex digits"), what=what)
    items = f.items("sealed")
    if not 1 <= len(items) <= MAX_BOXES:
        raise FormatError(
            N_("{what}: sealed holds 1 to {max_boxes} boxes"), what=what, max_boxes=MAX_BOXES
        )
    boxes = []
    for item in items:
        if not isinstance(item, dict):
            raise FormatError(N_("{what}: each sealed box is an object"), what=what)
        b = Fields(item, what=f"{what}.sealed")
        box = b.text("box")
        if len(box) > MAX_BOX_CHARS:
            raise FormatError(
                N_("{what}: a sealed box holds at most {max_box_chars} characters"),
                what=what,
                max_box_chars=MAX_BOX_CHARS,
            )
        b64decode(box, what=f"{what}: box")
        boxes.append(SealedBox(b.text("to"), b.text("key"), box))
    if len({b.key for b in boxes}) != len(boxes):
        raise FormatError(N_("{what}: one box per key"), what=what)
    return SealedNote(digest, tuple(boxes))


def parse_act(env: Envelope) -> Act:
    """The act an envelope carries (its signatures are the policy's to check)."""
    if env.payload_type != ACT_TYPE:
        raise FormatError(
            N_("not an incident act: payload type {payload_type!r}"), payload_type=env.payload_type
        )
    f = Fields(
        parse_json_object(env.payload, what=Phrase("incident act")), what=Phrase("incident act")
    )
    f.expect("type", "custody.incident-act.v1")
    act = f.text("act")
    if act not in ACTS:
        raise FormatError(
            N_("incident act: unknown act {act!r} (known: {acts})"), act=act, acts=", ".join(ACTS)
        )
    if f.obj.get("note", "") != "":
        raise FormatError(
            N_(
                "incident act: a note in clear would go on the public log; "
                "seal it to the secrecy officers (note_sealed)"
            ),
            hint=N_(
                "`custody incident ack --note` (and contain, resolve, unblock) seals it for you"
            ),
        )
    return Act(
        authority=f.text("authority"),
        incident=f.text("incident"),
        act=act,
        person=f.text("person"),
        time=f.time("time"),
        note_sealed=parse_sealed_note(f.obj.get("note_sealed")),
        key=f.opt_text("key"),
    )


__all__ = [
    "ACTS",
    "ACT_NAMES",
    "ACT_TYPE",
    "Act",
    "ActKind",
    "Recipient",
    "SealedBox",
    "SealedNote",
    "note_plaintext",
    "open_note",
    "parse_act",
    "parse_sealed_note",
    "seal_note",
]
