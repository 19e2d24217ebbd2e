"""Free text a person writes onto the log, sealed to the secrecy officers (issue 12, point 4).

A person's words (why a package is frozen, what a leak report says, why a paper was opened by
break-glass) may hold names, phone numbers and what someone saw: they never go on the log in
clear. Every such text has the shape of an incident act's note (``acts.SealedNote``: the
boxes, one per secrecy officer's X25519 key, and the SHA-256 of the salted plaintext), under
the field's name with ``_sealed`` appended:

- a person's ``leak_report`` event: body ``text`` -> ``text_sealed``;
- a person's ``freeze``, ``release`` and ``correction`` events: body ``reason`` ->
  ``reason_sealed`` (a ``freeze`` the system makes keeps its ``reason``: the detection's
  code, written by the service, not by a person);
- a paper's break-glass opening and backup activation acts: ``reason`` -> ``reason_sealed``.

Rules (plain functions over values; the rules of custody and of papers call them):
- ``refuse_clear`` : a non-empty text in clear is a ``FormatError`` naming the field and
  telling to seal it; ``sealed_field`` parses ``<field>_sealed`` (null, or a well-formed
  ``SealedNote``: else ``FormatError``).
- ``check_recipients``: every box is sealed to a certificate with the role
  ``secrecy_officer`` whose subject is the box's ``to``, and at least one of them stands at the
  statement's time: else ``RoleError``.
- ``seal_text``: what the commands call: seal to every secrecy officer standing at ``at``;
  none standing is a ``ConflictError`` (nothing is signed, nothing recorded).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from custody.errors import N_, ConflictError, CustodyError, FormatError, RoleError
from custody.events import Kind
from custody.incidents.acts import Recipient, SealedNote, parse_sealed_note, seal_note
from keys.model import Role
from keys.trust import TrustStore

# The free-text field of a person's custody event, by kind (the sealed one adds ``_sealed``).
EVENT_TEXT_FIELDS: Mapping[Kind, str] = {
    Kind.LEAK_REPORT: "text",
    Kind.FREEZE: "reason",
    Kind.RELEASE: "reason",
    Kind.CORRECTION: "reason",
}
# The free-text field of a paper act, by the act's ``type``.
PAPER_TEXT_FIELDS: Mapping[str, str] = {
    "custody.paper-opening.v1": "reason",  # break-glass only (a normal opening has none)
    "custody.paper-backup-activation.v1": "reason",
}


def sealed_name(field: str) -> str:
    return f"{field}_sealed"


def officer_recipients(trust: TrustStore, at: datetime) -> list[Recipient]:
    """Whom a person's free text is sealed to: every secrecy officer whose key stands at
    ``at``, by their X25519 key, in a stable order."""
    out = []
    for c in trust.certificates.values():
        if Role.SECRECY_OFFICER not in c.roles:
            continue
        try:
            trust.standing_at(c.key_id, at)
        except CustodyError:
            continue
        out.append(Recipient(c.subject, c.encryption_key_id, c.encryption_key))
    return sorted(out, key=lambda r: (r.subject, r.key_id))


def seal_text(
    text: str, trust: TrustStore, at: datetime, *, field: str, seed: bytes | None = None
) -> SealedNote | None:
    """``text`` sealed to the secrecy officers standing at ``at`` (None for an empty text).
    No officer standing: ``ConflictError`` (the text is not written in clear instead)."""
    if not text.strip():
        return None
    officers = officer_recipients(trust, at)
    if not officers:
        raise ConflictError(
            N_(
                "no secrecy officer in good standing to seal the {field} to: "
                "nothing signed, nothing recorded"
            ),
            hint=N_("enrol a secrecy officer (custody keys enrol --role secrecy_officer)"),
            field=field,
        )
    return seal_note(text, officers, seed=seed)


def refuse_clear(obj: Mapping[str, Any], field: str, *, what: str) -> None:
    """A non-empty ``field`` in clear would put a person's words on the public log."""
    value = obj.get(field)
    if value is None or value == "":
        return
    raise FormatError(
        N_(
            "{what}: {field} in clear would put a person's words on the public log; "
            "seal it to the secrecy officers ({sealed})"
        ),
        hint=N_("the custody commands that make this statement seal it for you"),
        what=what,
        field=field,
        sealed=sealed_name(field),
    )


def sealed_field(obj: Mapping[str, Any], field: str, *, what: str) -> SealedNote | None:
    """``<field>_sealed`` of a statement: None (no text), or the boxes and the SHA-256; a text
    in clear or a malformed box is a ``FormatError``."""
    refuse_clear(obj, field, what=what)
    return parse_sealed_note(obj.get(sealed_name(field)), what=f"{what}: {sealed_name(field)}")


def check_recipients(
    sealed: SealedNote | None, trust: TrustStore, at: datetime, *, what: str
) -> None:
    """The boxes go to secrecy officers only, and one at least stands at ``at``."""
    if sealed is None:
        return
    officers = {
        c.encryption_key_id: c
        for c in trust.certificates.values()
        if Role.SECRECY_OFFICER in c.roles
    }
    for box in sealed.sealed:
        cert = officers.get(box.key)
        if cert is None or cert.subject != box.to:
            raise RoleError(
                N_(
                    "{what} is sealed to {to} ({key}), who is not a secrecy officer: "
                    "a person's words are sealed to secrecy officers only"
                ),
                what=what,
                to=box.to,
                key=box.key[:16],
            )
    standing = {r.key_id for r in officer_recipients(trust, at)}
    if not standing & {b.key for b in sealed.sealed}:
        raise RoleError(
            N_("{what} is sealed to no secrecy officer in good standing: no one could read it"),
            hint=N_("seal it again with the trust the service holds now"),
            what=what,
        )


def event_text(kind: Kind | str) -> str | None:
    """The free-text field a person's event of this kind may carry (sealed), if any."""
    try:
        return EVENT_TEXT_FIELDS.get(Kind(kind))
    except ValueError:
        return None


def check_event_text(
    kind: Kind | str, body: Mapping[str, Any], trust: TrustStore, at: datetime
) -> SealedNote | None:
    """A person's event: its free text sealed, to secrecy officers (``format``, ``role``)."""
    field = event_text(kind)
    if field is None:
        return None
    what = f"{kind} event: body"
    sealed = sealed_field(body, field, what=what)
    check_recipients(sealed, trust, at, what=f"the {field} of this {kind} event")
    return sealed


def check_paper_act_text(
    act_type: object, payload: Mapping[str, Any], trust: TrustStore, at: datetime
) -> SealedNote | None:
    """A paper act: its ``reason`` sealed, to secrecy officers (``format``, ``role``)."""
    field = PAPER_TEXT_FIELDS.get(str(act_type))
    if field is None:
        return None
    what = f"paper act {act_type}"
    sealed = sealed_field(payload, field, what=what)
    check_recipients(sealed, trust, at, what=f"the {field} of this paper act")
    return sealed


__all__ = [
    "EVENT_TEXT_FIELDS",
    "PAPER_TEXT_FIELDS",
    "check_event_text",
    "check_paper_act_text",
    "check_recipients",
    "event_text",
    "officer_recipients",
    "refuse_clear",
    "seal_text",
    "sealed_field",
    "sealed_name",
]
