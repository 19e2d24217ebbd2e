"""One step of a package's life as a statement ready to sign: who signs, what it says.

``draft_step`` is pure: (step kind, the package's current state, the people named, what was
observed, the time) -> the unsigned ``Event`` and the people who must sign it, in order. The
command line fills in what a person would otherwise copy by hand: the previous event's full
statement id, the releaser (the current holder), the payload type, the authority.

Rules (the same as ``custody.rules``, checked here only so a step that cannot succeed is
refused before anyone types a passphrase; the log judges again on submission):
- A destroyed package takes no step (``ClosedError``); a step that cannot follow the package's
  status is a ``ChainError`` naming both.
- A transfer (dispatch, handover, receive, return) is released by the current holder: a
  ``--from`` naming anyone else is a ``ChainError``. The receiver is always named.
- A dispatch or handover of a package whose exam asks for a supervising witness needs one;
  naming a witness the exam does not ask for is refused too (the statement would carry a
  signature no slot asks for).
- Receipt into storage needs a second custodian; opening, distribution and recovery need the
  chief examiner and the supervisor; destruction needs the officer and a witness.
- Distribution and recovery carry the copies counted (``--count``); elsewhere a count is
  recorded as observed (body ``count``), not judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from custody.errors import N_, ChainError, ClosedError, MixedPackagesError, Phrase, UsageError
from custody.events import Event, Kind, check_place
from custody.rules import ALLOWED_FROM, PackageState, Status

# The steps a person takes with a command, each with its Chinese and English name.
STEP_NAMES: Mapping[Kind, tuple[str, str]] = {
    Kind.DISPATCH: ("发出", "dispatch"),
    Kind.HANDOVER: ("交接", "handover"),
    Kind.RECEIVE: ("接收入库", "receive into storage"),
    Kind.INSPECT: ("查验", "inspect"),
    Kind.PATROL: ("巡查", "patrol"),
    Kind.CHECKIN: ("途中报平安", "check-in"),
    Kind.OPEN: ("启封", "open"),
    Kind.DISTRIBUTE: ("分发", "distribute"),
    Kind.RECOVER: ("回收", "recover"),
    Kind.RETURN: ("交回", "return"),
    Kind.DESTROY: ("销毁", "destroy"),
    Kind.FREEZE: ("冻结", "freeze"),
    Kind.RELEASE: ("解冻", "release"),
}
STEP_KINDS = tuple(STEP_NAMES)
# Every event's name, for timelines: the steps' and the others'.
EVENT_NAMES: Mapping[Kind, tuple[str, str]] = {
    Kind.SEAL: ("封装", "seal"),
    **STEP_NAMES,
    Kind.COMPROMISE: ("认定泄密", "compromise"),
    Kind.REROUTE: ("改道", "reroute"),
    Kind.ACTIVATE_BACKUP: ("启用备用卷", "activate backup"),
    Kind.CORRECTION: ("更正", "correction"),
    Kind.INCIDENT: ("异常事件", "incident"),
    Kind.LEAK_REPORT: ("泄密举报", "leak report"),
    Kind.PAPER_ACT: ("试卷操作", "paper act"),
}
STATUS_NAMES: Mapping[str, str] = {
    "sealed": "已封装",
    "in_transit": "在途",
    "stored": "已入库",
    "opened": "已启封",
    "distributed": "已分发",
    "recovered": "已回收",
    "returned": "已交回",
    "destroyed": "已销毁",
}
_TRANSFERS = (Kind.DISPATCH, Kind.HANDOVER, Kind.RECEIVE, Kind.RETURN)
_SEALS_KINDS = (*_TRANSFERS, Kind.INSPECT, Kind.PATROL, Kind.CHECKIN, Kind.OPEN)
# Steps taken by the chief examiner and the supervisor together.
_EXAMINER_KINDS = (Kind.OPEN, Kind.DISTRIBUTE, Kind.RECOVER)


@dataclass(frozen=True)
class Signer:
    """One signature the statement needs: the slot and the person who fills it."""

    slot: str
    person: str


@dataclass(frozen=True)
class Draft:
    """An unsigned step: the event, and who signs it, in the order they are asked."""

    event: Event
    signers: tuple[Signer, ...]

    @property
    def people(self) -> tuple[str, ...]:
        """Each person once, in the order they are asked (one signature fills their slots)."""
        seen: list[str] = []
        for s in self.signers:
            if s.person not in seen:
                seen.append(s.person)
        return tuple(seen)


def step_name(kind: Kind | str) -> str:
    """``交接 handover``: an event's name in Chinese and English."""
    try:
        zh, en = EVENT_NAMES[Kind(kind)]
    except (KeyError, ValueError):
        return str(kind)
    return f"{zh} {en}"


def status_name(status: str) -> str:
    """``在途 in_transit``: a package status in Chinese and English."""
    zh = STATUS_NAMES.get(status)
    return f"{zh} {status}" if zh else status


def _need(people: Mapping[str, str | None], option: str, what: str) -> str:
    person = people.get(option)
    if not person:
        raise UsageError(N_("--{option}: name {what}"), option=option, what=what)
    return person


def _check_status(kind: Kind, state: PackageState) -> None:
    if state.status == Status.DESTROYED:
        raise ClosedError(
            N_("package {package} was destroyed; its chain is closed"), package=state.package_id
        )
    allowed = ALLOWED_FROM.get(kind)
    if allowed is not None and state.status not in allowed:
        raise ChainError(
            N_("package {package} is {status}: a {step} follows only {allowed}"),
            package=state.package_id,
            status=state.status.value,
            step=kind.value,
            allowed=", ".join(sorted(s.value for s in allowed)),
        )


def _releaser(people: Mapping[str, str | None], state: PackageState) -> str:
    named = people.get("from")
    if named and named != state.holder:
        raise ChainError(
            N_("package {package} is held by {holder}, not {named}: only its holder releases it"),
            package=state.package_id,
            holder=state.holder,
            named=named,
        )
    return state.holder


def _slots(kind: Kind, state: PackageState, people: Mapping[str, str | None]) -> list[Signer]:
    if kind in _TRANSFERS:
        slots = [
            Signer("releaser", _releaser(people, state)),
            Signer("receiver", _need(people, "to", Phrase("who receives the package"))),
        ]
        if kind == Kind.RECEIVE:
            slots.append(
                Signer("custodian2", _need(people, "second", Phrase("the second custodian")))
            )
        elif kind in (Kind.DISPATCH, Kind.HANDOVER):
            witness = people.get("witness")
            if state.handover_witness and not witness:
                raise UsageError(
                    N_(
                        "the exam of package {package} asks for a supervising witness at every "
                        "handover: --witness PERSON"
                    ),
                    package=state.package_id,
                )
            if witness and not state.handover_witness:
                raise UsageError(
                    N_(
                        "the exam of package {package} asks for no witness at a handover: "
                        "drop --witness"
                    ),
                    package=state.package_id,
                )
            if witness:
                slots.append(Signer("witness", witness))
        return slots
    if kind in (Kind.INSPECT, Kind.PATROL):
        return [Signer("inspector", _need(people, "by", Phrase("who inspects")))]
    if kind == Kind.CHECKIN:
        named = people.get("by")
        if named and named != state.holder:
            raise ChainError(
                N_("package {package} is carried by {holder}, not {named}: the escort checks in"),
                package=state.package_id,
                holder=state.holder,
                named=named,
            )
        return [Signer("escort", state.holder)]
    if kind in _EXAMINER_KINDS:
        return [
            Signer("examiner", _need(people, "examiner", Phrase("the chief examiner"))),
            Signer("supervisor", _need(people, "supervisor", Phrase("the supervisor"))),
        ]
    if kind == Kind.DESTROY:
        return [
            Signer("officer", _need(people, "officer", Phrase("the destruction officer"))),
            Signer("witness", _need(people, "witness", Phrase("the witness to the destruction"))),
        ]
    if kind in (Kind.FREEZE, Kind.RELEASE):
        return [Signer("officer", _need(people, "by", Phrase("the secrecy officer")))]
    raise UsageError(N_("{kind} is not a step a person takes with a command"), kind=kind)


def _body(
    kind: Kind,
    state: PackageState,
    *,
    seals: Sequence[str],
    count: int | None,
    method: str | None,
    reason_sealed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if kind in (Kind.FREEZE, Kind.RELEASE):
        if reason_sealed is None:
            raise UsageError(N_("--reason: say why (it is sealed to the secrecy officers)"))
        body["reason_sealed"] = dict(reason_sealed)
    if seals:
        if kind not in _SEALS_KINDS:
            raise UsageError(N_("--seals: a {step} records no seal serials"), step=kind.value)
        body["seals"] = list(seals)
    if count is not None and count < 0:
        raise UsageError(N_("--count: a number of copies, 0 or more"))
    if kind in (Kind.DISTRIBUTE, Kind.RECOVER):
        if count is None:
            raise UsageError(
                N_("--count: how many copies were {done}"),
                done=Phrase("handed out") if kind == Kind.DISTRIBUTE else Phrase("recovered"),
            )
        body["copies"] = count
    elif kind == Kind.DESTROY:
        body["method"] = method or "shredding"
        if count is not None:
            body["copies"] = {state.package_id: count}
    elif count is not None:
        body["count"] = count
    return body


def draft_step(
    kind: Kind,
    state: PackageState | Sequence[PackageState],
    *,
    authority: str,
    at: datetime,
    people: Mapping[str, str | None],
    place: str | None = None,
    seals: Sequence[str] = (),
    count: int | None = None,
    method: str | None = None,
    reason_sealed: Mapping[str, Any] | None = None,
) -> Draft:
    """The unsigned statement of one step, chained to each package's latest event.

    ``people`` maps the command's options (``from``, ``to``, ``witness``, ``second``, ``by``,
    ``examiner``, ``supervisor``, ``officer``) to person ids; ``place`` defaults to where the
    (first) package was last recorded. Only a destruction names several packages (one
    certificate); they must need the same signers (``MixedPackagesError``). A freeze or a
    release carries its reason sealed (``reason_sealed``: ``SealedNote.as_json()``), never
    in clear."""
    states = [state] if isinstance(state, PackageState) else list(state)
    if kind not in STEP_NAMES:
        raise UsageError(N_("{kind} is not a step a person takes with a command"), kind=kind)
    if not states:
        raise UsageError(N_("name a package"))
    if len(states) > 1 and kind != Kind.DESTROY:
        raise UsageError(
            N_("a {step} names one package (the seals seen are each package's own)"),
            step=kind.value,
        )
    if len({s.package_id for s in states}) != len(states):
        raise UsageError(N_("a package is named twice"))
    if len(states) > 1 and count is not None:
        raise UsageError(N_("--count: for one package at a time"))
    first = states[0]
    slots: list[Signer] = []
    for one in states:
        _check_status(kind, one)
        theirs = _slots(kind, one, people)
        if slots and theirs != slots:
            raise MixedPackagesError(
                N_("packages {a} and {b} need different signers: take them one at a time"),
                a=first.package_id,
                b=one.package_id,
            )
        slots = theirs
    event = Event(
        kind=kind,
        authority=authority,
        time=at,
        place=check_place(place) if place else first.last_place,
        packages={s.package_id: s.last_event for s in states},
        actors={s.slot: s.person for s in slots},
        body=_body(
            kind, first, seals=seals, count=count, method=method, reason_sealed=reason_sealed
        ),
    )
    return Draft(event, tuple(slots))


def draft_leak_report(
    *,
    authority: str,
    at: datetime,
    reporter: str,
    packages: Sequence[str],
    paper: str | None,
    text_sealed: Mapping[str, Any],
    place: str = "",
) -> Draft:
    """A person's leak report: names no package's chain (``packages`` is ``{}``), names the
    packages and the paper it is about in its body, and carries the reporter's words sealed
    (``text_sealed``) to the secrecy officers."""
    if not packages and not paper:
        raise UsageError(N_("name the package(s) or the paper the leak is about"))
    if len(set(packages)) != len(packages):
        raise UsageError(N_("a package is named twice"))
    body: dict[str, Any] = {"packages": list(packages), "text_sealed": dict(text_sealed)}
    if paper:
        body["paper"] = paper
    event = Event(
        kind=Kind.LEAK_REPORT,
        authority=authority,
        time=at,
        place=check_place(place),
        packages={},
        actors={"reporter": reporter},
        body=body,
    )
    return Draft(event, (Signer("reporter", reporter),))


def split_serials(values: Sequence[str]) -> tuple[str, ...]:
    """``--seals S1,S2 --seals S3`` -> (S1, S2, S3): commas or repeats, blanks dropped."""
    return tuple(s.strip() for v in values for s in v.split(",") if s.strip())


def passphrase_variable(subject: str) -> str:
    """The environment variable holding one person's passphrase: ``CUSTODY_PASSPHRASE_`` and
    the person id in capitals, every character other than an ASCII letter or digit as ``_``
    (``courier-sun`` -> ``CUSTODY_PASSPHRASE_COURIER_SUN``)."""
    tail = "".join(c if c.isascii() and c.isalnum() else "_" for c in subject.upper())
    return f"CUSTODY_PASSPHRASE_{tail}"
