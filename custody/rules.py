"""The rules of custody: which event may follow which, who must sign it, and what it finds.

``apply_event`` is a pure function: (package states, verified event, trust) -> new states and
findings, or a refusal. The server runs it before appending; ``custody verify`` runs the same
function over an export, so the rules an auditor checks are the rules the server enforced.

Rules enforced:
- Chain: every event names, for each package it touches, the id of that package's previous
  event (``null`` only for ``seal``); times never go backwards within a package.
- State machine: sealed -> in_transit <-> stored -> opened -> distributed -> recovered ->
  returned -> destroyed (unopened packages may be destroyed from stored/returned). Anything after
  destruction is refused (``ClosedError``).
- Signers per kind (``requirements``): handover = releaser (the current holder) AND receiver
  (the next planned holder) [+ supervising witness where the package's policy asks]; storage
  receipt = releaser + two custodians; open/distribute/recover = chief examiner + supervisor;
  destroy = destruction officer + witness; incident acts = a secrecy officer; a leak report =
  any enrolled person.
- Every package named is judged by its own state and policy: the signer slots (holder,
  receiver, witness policy) must be the same for all of them, or the event is refused
  (``MixedPackagesError``); a signer recused for any package's exam, position or package is
  refused for the whole event; route, state and containment are checked package by package.
- Route: the receiver of a transfer must be the next person on the planned route, unless a
  secrecy officer's ``reroute`` changed it (``RouteError``).
- Time: the log's receive time decides, never the statement's own ``time`` (a claim). A
  statement dated more than ``skew`` after it was received is refused; one dated more than
  ``skew`` before it is refused too, unless its kind may be captured offline (handover,
  inspect, check-in, patrol) and it arrived within ``max_lag``: then it is accepted and marked
  late (a ``late`` finding) (``ClockError``). A key revoked for compromise is refused for
  every statement received after the revocation was issued, whatever time it claims.
- Window: opening only inside the package's opening window, judged on the receive time
  (``WindowError``).
- Inspection: a courier inspects only a package they hold or are on the route of.
- Containment: a frozen package accepts only a move into secure custody (a custodian or a
  secrecy officer receiving it), inspection, release or destruction (``FrozenError``).
- Findings (the event is a true record and is accepted, but it is an anomaly): observed seal
  serials differ from the manifest; copies recovered differ from copies distributed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from crypto.dsse import SignatureCheck, parse_envelope, verify_signatures
from crypto.encoding import Fields, distinct_prefixes, format_time, parse_json_object, parse_time
from crypto.vocabulary import Window
from custody.errors import (
    N_,
    ChainError,
    ClockError,
    ClosedError,
    CustodyError,
    ExamPolicyError,
    FormatError,
    FrozenError,
    MixedPackagesError,
    Phrase,
    RoleError,
    RouteError,
    Said,
    SignatureError,
    ThresholdError,
    WindowError,
    Words,
)
from custody.events import Event, Kind
from custody.exams import ExamPolicy, exam_policy_from_body
from custody.sealed_text import check_event_text, check_paper_act_text
from keys.model import Role
from keys.statements import (
    SignerRequirement,
    StatementCheck,
    check_statement,
    most_specific,
    require,
)
from keys.trust import TrustStore


class Status(StrEnum):
    SEALED = "sealed"
    IN_TRANSIT = "in_transit"
    STORED = "stored"
    OPENED = "opened"
    DISTRIBUTED = "distributed"
    RECOVERED = "recovered"
    RETURNED = "returned"
    DESTROYED = "destroyed"


@dataclass(frozen=True)
class PackageState:
    package_id: str
    exam: str
    position: str
    paper: str
    copies: int
    seals: tuple[str, ...]
    window_start: datetime
    window_end: datetime
    route: tuple[str, ...]
    handover_witness: bool
    status: Status
    holder: str
    route_pos: int
    last_event: str
    last_time: datetime
    last_place: str
    frozen: bool = False
    compromised: bool = False
    distributed: int = 0
    recovered: int = 0

    @property
    def next_holder(self) -> str | None:
        nxt = self.route_pos + 1
        return self.route[nxt] if nxt < len(self.route) else None

    @property
    def scope(self) -> tuple[str, ...]:
        return (f"exam:{self.exam}", f"position:{self.position}", f"package:{self.package_id}")


@dataclass(frozen=True)
class Finding:
    """An anomaly in an accepted event; the incident system turns it into an incident."""

    kind: str
    package_id: str
    detail: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


FINDING_WORDS: Mapping[str, str] = {
    "seal_mismatch": N_(
        "seal serials seen at {at} differ from the manifest (missing {missing}, unexpected "
        "{unexpected})"
    ),
    "count_mismatch": N_("{recovered} copies recovered of {distributed} distributed"),
    "late": N_("{at} captured offline at {time} and received {lag} later"),
}


def finding_said(kind: str, evidence: Mapping[str, Any], stored: str = "") -> Said:
    """A finding's sentence from its kind and evidence, in any language (``Said``); a kind
    this version does not word, or evidence it cannot fill, keeps the stored English text."""
    template = FINDING_WORDS.get(kind)
    if template is None:
        return Said(stored)
    params: dict[str, object] = {k: v for k, v in evidence.items() if isinstance(v, str | int)}
    if kind == "seal_mismatch":
        expected = [str(s) for s in evidence.get("expected", [])]
        observed = [str(s) for s in evidence.get("observed", [])]
        params["missing"] = ", ".join(sorted(set(expected) - set(observed))) or "-"
        params["unexpected"] = ", ".join(sorted(set(observed) - set(expected))) or "-"
    try:
        template.format_map(params)
    except (KeyError, IndexError, ValueError):
        return Said(stored)  # evidence written before this version worded the kind
    return Said(template, params)


@dataclass(frozen=True)
class Outcome:
    states: Mapping[str, PackageState]
    findings: tuple[Finding, ...]
    check: StatementCheck | None
    exam: ExamPolicy | None = None  # what an ``exam_policy`` statement puts in force


HOLDER_ROLES = (
    Role.PROPOSER,
    Role.PRINTER,
    Role.COURIER,
    Role.CUSTODIAN,
    Role.CHIEF_EXAMINER,
    Role.SECRECY_OFFICER,
)
WITNESS_ROLES = (Role.SUPERVISOR, Role.SECRECY_OFFICER, Role.AUDITOR)
TRANSFERS = {Kind.DISPATCH, Kind.HANDOVER, Kind.RECEIVE, Kind.RETURN}
# Where each kind may happen (the package's status before it).
ALLOWED_FROM: dict[Kind, frozenset[Status]] = {
    Kind.DISPATCH: frozenset({Status.SEALED}),
    Kind.HANDOVER: frozenset({Status.IN_TRANSIT, Status.STORED}),
    Kind.RECEIVE: frozenset({Status.IN_TRANSIT, Status.SEALED}),
    Kind.INSPECT: frozenset({Status.SEALED, Status.IN_TRANSIT, Status.STORED, Status.RETURNED}),
    Kind.PATROL: frozenset({Status.STORED, Status.RETURNED}),
    Kind.CHECKIN: frozenset({Status.IN_TRANSIT}),
    Kind.OPEN: frozenset({Status.STORED}),
    Kind.DISTRIBUTE: frozenset({Status.OPENED}),
    Kind.RECOVER: frozenset({Status.DISTRIBUTED}),
    Kind.RETURN: frozenset({Status.RECOVERED, Status.OPENED}),
    Kind.DESTROY: frozenset({Status.STORED, Status.RETURNED, Status.RECOVERED}),
}
ALLOWED_WHEN_FROZEN = {
    Kind.HANDOVER,
    Kind.RECEIVE,
    Kind.INSPECT,
    Kind.PATROL,
    Kind.RELEASE,
    Kind.DESTROY,
    Kind.COMPROMISE,
    Kind.REROUTE,
    Kind.CORRECTION,
    Kind.INCIDENT,
    Kind.FREEZE,
}
SECURE_CUSTODY_ROLES = frozenset({Role.CUSTODIAN, Role.SECRECY_OFFICER})
# Statements the system signs with the authority's system key (incidents, containment).
SYSTEM_KINDS = {Kind.INCIDENT, Kind.FREEZE, Kind.COMPROMISE, Kind.PAPER_ACT, Kind.EXAM_POLICY}
# Statements that may name no package (an incident about a key, a leak reported by the public,
# a paper act).
PACKAGELESS_KINDS = {Kind.INCIDENT, Kind.LEAK_REPORT, Kind.PAPER_ACT, Kind.EXAM_POLICY}
# What a ``paper_act`` statement embeds: the people's signed act, by the act's kind.
PAPER_ACT_TYPES: Mapping[str, str] = {
    "proposal": "application/vnd.custody.paper-proposal.v1+json",
    "print": "application/vnd.custody.paper-print.v1+json",
    "opening": "application/vnd.custody.paper-opening.v1+json",
    "break_glass": "application/vnd.custody.paper-opening.v1+json",
    "backup_activation": "application/vnd.custody.paper-backup-activation.v1+json",
    "destruction": "application/vnd.custody.paper-destruction.v1+json",
}
OFFICER_KINDS = {Kind.FREEZE, Kind.RELEASE, Kind.COMPROMISE, Kind.REROUTE, Kind.ACTIVATE_BACKUP}


@dataclass(frozen=True)
class ClockRules:
    """How far a statement's own time may stray from the log's receive time."""

    skew: timedelta = timedelta(minutes=5)
    max_lag: timedelta = timedelta(hours=24)
    offline_kinds: frozenset[Kind] = frozenset(
        {Kind.HANDOVER, Kind.INSPECT, Kind.CHECKIN, Kind.PATROL}
    )


DEFAULT_CLOCK = ClockRules()


def judge_time(event: Event, received: datetime, rules: ClockRules = DEFAULT_CLOCK) -> bool:
    """Raise ``ClockError`` if the event's time is not acceptable at ``received``; return
    whether it is late (captured offline and synced later, within the lag)."""
    if event.time > received + rules.skew:
        raise ClockError(
            N_(
                "{kind} statement is dated {time}, after the log received it "
                "({received}); the log's clock decides, and it allows {skew} "
                "of skew"
            ),
            kind=event.kind,
            time=format_time(event.time),
            received=format_time(received),
            skew=_minutes(rules.skew),
        )
    if event.time >= received - rules.skew:
        return False
    if event.kind in rules.offline_kinds and received - event.time <= rules.max_lag:
        return True
    allowed = (
        Said(N_("{lag} for offline capture"), {"lag": _minutes(rules.max_lag)})
        if event.kind in rules.offline_kinds
        else Said(
            N_("{skew} (a {kind} is made online)"),
            {"skew": _minutes(rules.skew), "kind": event.kind.value},
        )
    )
    raise ClockError(
        N_(
            "{kind} statement is dated {time}, too long before the log "
            "received it ({received}); at most {allowed}"
        ),
        kind=event.kind,
        time=format_time(event.time),
        received=format_time(received),
        allowed=allowed,
    )


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"


def _actor(event: Event, slot: str) -> str:
    """The person an event names for a slot. A slot the kind (or a package's policy) needs
    but ``actors`` does not name is a missing signer (``threshold``), like a named one who did
    not sign: the event is well-formed, it lacks a signer (docs/formats.md, "Signer slots")."""
    person = event.actors.get(slot)
    if not person:
        raise ThresholdError(
            N_("missing signer: {kind} needs a {slot}, and actors names none"),
            kind=event.kind,
            slot=Phrase(slot),
        )
    return person


def requirements(event: Event, state: PackageState | None) -> list[SignerRequirement]:
    """The signer slots an event of this kind needs, given the package's state."""
    k = event.kind
    if k == Kind.SEAL:
        return [require("sealer", Role.PROPOSER, Role.PRINTER, person=_actor(event, "sealer"))]
    if k in TRANSFERS:
        assert state is not None
        reqs = [
            require("releaser", *HOLDER_ROLES, person=state.holder),
            require("receiver", *HOLDER_ROLES, person=_actor(event, "receiver")),
        ]
        if k == Kind.RECEIVE:
            reqs.append(require("custodian2", Role.CUSTODIAN, person=_actor(event, "custodian2")))
        elif state.handover_witness and k in {Kind.HANDOVER, Kind.DISPATCH}:
            reqs.append(require("witness", Role.SUPERVISOR, person=_actor(event, "witness")))
        return reqs
    if k in {Kind.INSPECT, Kind.PATROL}:
        roles = (Role.CUSTODIAN, Role.SECRECY_OFFICER, Role.SUPERVISOR, Role.COURIER)
        return [require("inspector", *roles, person=_actor(event, "inspector"))]
    if k == Kind.CHECKIN:
        assert state is not None
        return [require("escort", Role.COURIER, person=state.holder)]
    if k in {Kind.OPEN, Kind.DISTRIBUTE, Kind.RECOVER}:
        return [
            require("examiner", Role.CHIEF_EXAMINER, person=_actor(event, "examiner")),
            require("supervisor", Role.SUPERVISOR, person=_actor(event, "supervisor")),
        ]
    if k == Kind.DESTROY:
        return [
            require("officer", Role.DESTRUCTION_OFFICER, person=_actor(event, "officer")),
            require("witness", *WITNESS_ROLES, person=_actor(event, "witness")),
        ]
    if k == Kind.LEAK_REPORT:
        # The rules let anyone report a leak: every enrolled person, whatever their role.
        return [require("reporter", *Role, person=_actor(event, "reporter"))]
    if k == Kind.INCIDENT:
        raise RoleError(N_("incident statements are made by the system (its key) alone"))
    if k in OFFICER_KINDS or k == Kind.CORRECTION:
        return [require("officer", Role.SECRECY_OFFICER, person=_actor(event, "officer"))]
    raise FormatError(N_("{k} events are not accepted from people"), k=k)


def _seals(body: Mapping[str, Any], *, what: str) -> tuple[str, ...]:
    seals = body.get("seals")
    if not isinstance(seals, list) or not all(isinstance(s, str) for s in seals):
        raise FormatError(N_("{what}: body.seals must be a list of seal serials"), what=what)
    return tuple(seals)


def _count(body: Mapping[str, Any], key: str, *, what: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(
            N_("{what}: body.{key} must be a non-negative integer"), what=what, key=key
        )
    return value


def _sealed_state(event: Event) -> PackageState:
    b = event.body
    what = "seal event"
    (package_id,) = event.packages
    route = b.get("route")
    if not isinstance(route, list) or not route or not all(isinstance(p, str) for p in route):
        raise FormatError(
            N_("{what}: body.route must be a non-empty list of person ids"), what=what
        )
    window = b.get("window")
    if not isinstance(window, dict):
        raise FormatError(N_("{what}: body.window must be an object with start and end"), what=what)
    start = parse_time(window.get("start"), what=f"{what}: window.start")
    end = parse_time(window.get("end"), what=f"{what}: window.end")
    try:
        Window(start, end)
    except FormatError as e:
        raise FormatError(N_("{what}: {error}"), what=what, error=e) from e
    seals = _seals(b, what=what)
    if not seals or len(set(seals)) != len(seals):
        raise FormatError(N_("{what}: seal serials must be present and distinct"), what=what)
    copies = _count(b, "copies", what=what)
    if copies == 0:
        raise FormatError(N_("{what}: a package holds at least one copy"), what=what)
    for key in ("exam", "position", "paper"):
        if not isinstance(b.get(key), str) or not b.get(key):
            raise FormatError(
                N_("{what}: body.{key} must be a non-empty string"), what=what, key=key
            )
    return PackageState(
        package_id=package_id,
        exam=str(b["exam"]),
        position=str(b["position"]),
        paper=str(b["paper"]),
        copies=copies,
        seals=seals,
        window_start=start,
        window_end=end,
        route=tuple(route),
        handover_witness=bool(b.get("handover_witness", False)),
        status=Status.SEALED,
        holder=event.actors["sealer"],
        route_pos=-1,
        last_event=event.id,
        last_time=event.time,
        last_place=event.place,
    )


OPENED_STATUSES = frozenset({Status.OPENED, Status.DISTRIBUTED, Status.RECOVERED, Status.RETURNED})


def _seal_finding(event: Event, state: PackageState) -> Finding | None:
    # Seals are checked until the package is opened; after that they are broken by design.
    if "seals" not in event.body or state.status in OPENED_STATUSES:
        return None
    given = event.body["seals"]
    if type(given) is list and tuple(given) == state.seals:  # as sealed (the usual case)
        return None
    observed = _seals(event.body, what=f"{event.kind} event")
    if set(observed) == set(state.seals) and len(observed) == len(state.seals):
        return None
    evidence = {
        "expected": list(state.seals),
        "observed": list(observed),
        "event": event.id,
        "at": event.kind.value,
    }
    return Finding(
        "seal_mismatch", state.package_id, finding_said("seal_mismatch", evidence).english, evidence
    )


def joint_requirements(
    event: Event, states: Sequence[PackageState]
) -> tuple[list[SignerRequirement], tuple[str, ...]]:
    """The signer slots and the recusal scope of an event over every package it names.

    Each package is judged by its own policy: the slots its state asks for must be the same
    for every package (same people, same roles, same witness policy), else the event is
    refused; the scope is the union of the packages' scopes, so a signer recused for any one
    of them is refused for the whole statement."""
    if len(states) == 1:  # the usual case: that package's slots and scope
        return requirements(event, states[0]), states[0].scope
    asked: list[list[SignerRequirement] | ThresholdError] = []
    for state in states:
        try:
            asked.append(requirements(event, state))
        except ThresholdError as e:  # a slot this package needs is not named in the actors
            asked.append(e)
    first = asked[0]
    for state, theirs in zip(states[1:], asked[1:], strict=True):
        same = (isinstance(first, ThresholdError) and isinstance(theirs, ThresholdError)) or (
            not isinstance(first, ThresholdError)
            and not isinstance(theirs, ThresholdError)
            and set(theirs) == set(first)
        )
        if not same:
            raise MixedPackagesError(
                N_(
                    "packages {package_id} and {package_id2} need different "
                    "signers for a {kind} ({first} / {theirs}): submit them as "
                    "separate statements"
                ),
                package_id=states[0].package_id,
                package_id2=state.package_id,
                kind=event.kind,
                first=_describe(first),
                theirs=_describe(theirs),
            )
    if isinstance(first, ThresholdError):
        raise first
    scope: list[str] = []
    for state in states:
        scope.extend(t for t in state.scope if t not in scope)
    return first, tuple(scope)


def _describe(reqs: list[SignerRequirement] | ThresholdError) -> str:
    """A package's signer slots (or why it has none) for a message: ``Words``, in the
    reader's language where shown."""
    if isinstance(reqs, ThresholdError):
        return Words.listed([reqs], "")
    return Words.listed((r.describe() for r in reqs), ", ")


def check_signers(
    event: Event,
    env_check: SignatureCheck,
    trust: TrustStore,
    states: Sequence[PackageState],
    envelope: Any,
    received: datetime | None = None,
) -> StatementCheck | None:
    """Judge the signatures (already verified by key) against the kind's slots, for every
    package the event names (``states``: empty for a seal or a packageless statement).

    A statement the system makes on its own (``actors.system``) must be signed by the
    authority's system key alone and be of a kind the system may make; it has no people's
    slots, so it returns ``None``.
    """
    if "system" in event.actors:
        system_id = trust.authority.system_key.key_id
        if event.kind not in SYSTEM_KINDS:
            raise RoleError(N_("the system does not make {kind} statements"), kind=event.kind)
        if event.actors["system"] != trust.authority.id:
            raise FormatError(N_("a system statement names its authority as actors.system"))
        if env_check.signed_by != {system_id} or env_check.unmatched:
            raise SignatureError(
                N_("a system statement is signed by the authority's system key alone")
            )
        return None
    if states:
        reqs, scope = joint_requirements(event, states)
    else:
        reqs, scope = requirements(event, None), _seal_scope(event)
    check = check_statement(
        envelope, trust, reqs, at=event.time, scope=scope, sigcheck=env_check, received=received
    )
    problem = most_specific(check.problems)
    if problem is not None:
        raise problem
    return check


def _seal_scope(event: Event) -> tuple[str, ...]:
    b = event.body
    return (
        f"exam:{b.get('exam')}",
        f"position:{b.get('position')}",
        *(f"package:{p}" for p in event.packages),
    )


def transition(
    event: Event,
    states: Mapping[str, PackageState | None],
    check: StatementCheck | None,
    received: datetime | None = None,
) -> Outcome:
    """The state-machine step for an event whose signatures are already judged.

    ``received`` (the log's receive time) judges windows; without it (a verifier following a
    refused event) the event's own time is used."""
    at = received if received is not None else event.time
    new: dict[str, PackageState] = {}
    findings: list[Finding] = []
    if not event.packages:
        raise FormatError(N_("{kind} event names no package"), kind=event.kind)
    if event.kind == Kind.CORRECTION and not event.corrects:
        raise FormatError(N_("a correction names the statement it corrects (field 'corrects')"))
    for package_id, prev in event.packages.items():
        state = states.get(package_id)
        if event.kind == Kind.SEAL:
            if len(event.packages) != 1:
                raise FormatError(N_("a seal event seals exactly one package"))
            if state is not None:
                raise ChainError(
                    N_("package {package_id} is already sealed"), package_id=package_id
                )
            if prev is not None:
                raise ChainError(N_("a seal event starts a chain: its previous event must be null"))
            new[package_id] = _sealed_state(event)
            continue
        if state is None:
            raise ChainError(N_("package {package_id} was never sealed"), package_id=package_id)
        if state.status == Status.DESTROYED:
            raise ClosedError(
                N_("package {package_id} was destroyed; its chain is closed"), package_id=package_id
            )
        if prev != state.last_event:
            named, last = distinct_prefixes(str(prev), state.last_event)
            raise ChainError(
                N_(
                    "package {package_id}: event names previous {named}, but the "
                    "chain's last event is {last}"
                ),
                package_id=package_id,
                named=named,
                last=last,
            )
        if event.time < state.last_time:
            raise ChainError(
                N_(
                    "package {package_id}: event time {time} is before the "
                    "previous event ({last_time})"
                ),
                package_id=package_id,
                time=format_time(event.time),
                last_time=format_time(state.last_time),
            )
        changes, found = _step(event, state, check, at)
        # One copy per event: the step's changes and the chain's new head together.
        new[package_id] = _with(
            state, changes, last_event=event.id, last_time=event.time, last_place=event.place
        )
        findings.extend(found)
    return Outcome(new, tuple(findings), check)


_STATE_FIELDS = frozenset(f.name for f in fields(PackageState))


def _with(state: PackageState, changes: Mapping[str, Any], **head: Any) -> PackageState:
    """``dataclasses.replace(state, **changes, **head)`` at a fraction of its cost (the replay
    of a season makes one per event): a copy of the frozen state's fields, some changed."""
    assert _STATE_FIELDS.issuperset(changes)
    assert _STATE_FIELDS.issuperset(head)
    new = object.__new__(PackageState)
    values = new.__dict__
    values.update(state.__dict__)
    values.update(changes)
    values.update(head)
    return new


_TRANSFER_STATUS = {Kind.RECEIVE: Status.STORED, Kind.RETURN: Status.RETURNED}


def _step(
    event: Event, state: PackageState, check: StatementCheck | None, at: datetime
) -> tuple[dict[str, Any], list[Finding]]:
    k = event.kind
    findings: list[Finding] = []
    if state.frozen and k not in ALLOWED_WHEN_FROZEN:
        raise FrozenError(
            N_("package {package_id} is frozen: only a move into secure custody is accepted"),
            package_id=state.package_id,
        )
    allowed = ALLOWED_FROM.get(k)
    if allowed is not None and state.status not in allowed:
        raise ChainError(
            N_("a {k} event cannot follow status {status} (package {package_id})"),
            k=k,
            status=state.status,
            package_id=state.package_id,
        )
    seal = _seal_finding(event, state)
    if seal is not None:
        findings.append(seal)

    if k in TRANSFERS:
        receiver = event.actors["receiver"]
        if check is not None and state.holder != check.filled["releaser"].subject:
            raise ChainError(
                N_("package {package_id} is held by {holder}, who must release it"),
                package_id=state.package_id,
                holder=state.holder,
            )
        if state.frozen:
            roles = check.filled["receiver"].roles if check is not None else SECURE_CUSTODY_ROLES
            if not roles & SECURE_CUSTODY_ROLES:
                raise FrozenError(
                    N_(
                        "package {package_id} is frozen: it may only go to a "
                        "custodian or a secrecy officer"
                    ),
                    package_id=state.package_id,
                )
            pos = state.route_pos
        elif k == Kind.RETURN:
            pos = state.route_pos
        elif receiver != state.next_holder:
            planned = state.next_holder or "nobody (route complete)"
            raise RouteError(
                N_("package {package_id}: {receiver} is not the planned next holder ({planned})"),
                package_id=state.package_id,
                receiver=receiver,
                planned=planned,
            )
        else:
            pos = state.route_pos + 1
        if (
            k == Kind.RETURN
            and check is not None
            and Role.CUSTODIAN not in check.filled["receiver"].roles
        ):
            raise RouteError(
                N_("package {package_id} is returned only to a custodian"),
                package_id=state.package_id,
            )
        status = _TRANSFER_STATUS.get(k, Status.IN_TRANSIT)
        return {"holder": receiver, "route_pos": pos, "status": status}, findings
    if k == Kind.OPEN:
        if not Window(state.window_start, state.window_end).contains(at):
            raise WindowError(
                N_(
                    "package {package_id} may be opened only between "
                    "{window_start} and {window_end} (received {at}, by the log's"
                    " clock)"
                ),
                package_id=state.package_id,
                window_start=format_time(state.window_start),
                window_end=format_time(state.window_end),
                at=format_time(at),
            )
        return {"status": Status.OPENED, "holder": event.actors["examiner"]}, findings
    if k == Kind.DISTRIBUTE:
        copies = _count(event.body, "copies", what=Phrase("distribute event"))
        if copies > state.copies:
            raise FormatError(
                N_("distribute: {copies} copies, the package holds {copies2}"),
                copies=copies,
                copies2=state.copies,
            )
        return {"status": Status.DISTRIBUTED, "distributed": copies}, findings
    if k == Kind.RECOVER:
        copies = _count(event.body, "copies", what=Phrase("recover event"))
        if copies != state.distributed:
            counted = {"distributed": state.distributed, "recovered": copies, "event": event.id}
            findings.append(
                Finding(
                    "count_mismatch",
                    state.package_id,
                    finding_said("count_mismatch", counted).english,
                    counted,
                )
            )
        return {"status": Status.RECOVERED, "recovered": copies}, findings
    if k == Kind.DESTROY:
        return {"status": Status.DESTROYED, "holder": ""}, findings
    if k == Kind.FREEZE:
        return {"frozen": True}, findings
    if k == Kind.RELEASE:
        return {"frozen": False}, findings
    if k == Kind.COMPROMISE:
        return {"compromised": True}, findings
    if k == Kind.REROUTE:
        route = event.body.get("route")
        if not isinstance(route, list) or not all(isinstance(p, str) for p in route):
            raise FormatError(N_("reroute: body.route must be a list of person ids"))
        return {"route": (*state.route[: state.route_pos + 1], *route)}, findings
    if k in {Kind.INSPECT, Kind.PATROL} and check is not None:
        inspector = check.filled["inspector"]
        if inspector.roles <= {Role.COURIER} and not (
            inspector.subject == state.holder or inspector.subject in state.route
        ):
            raise RoleError(
                N_(
                    "{subject} is a courier with no part in package {package_id}:"
                    " a courier inspects only a package they hold or carry on its"
                    " route"
                ),
                subject=inspector.subject,
                package_id=state.package_id,
            )
    # inspect, patrol, checkin, correction, incident, activate_backup: no change of custody.
    return {}, findings


def apply_event(
    event: Event,
    env_check: SignatureCheck,
    envelope: Any,
    states: Mapping[str, PackageState | None],
    trust: TrustStore,
    *,
    received: datetime,
    exams: Mapping[str, ExamPolicy],
    clock: ClockRules = DEFAULT_CLOCK,
) -> Outcome:
    """Judge time, signers and the state machine at the log's receive time ``received``,
    seals against their exam's policy on the log (``exams``, by exam id); raises the specific
    refusal."""
    if event.authority != trust.authority.id:
        raise FormatError(N_("event names another authority"))
    late = judge_time(event, received, clock)
    if not event.package_ids:
        if event.kind not in PACKAGELESS_KINDS:
            raise FormatError(N_("{kind} event names no package"), kind=event.kind)
        check = check_signers(event, env_check, trust, (), envelope, received)
        if check is not None:  # a person's words are sealed, never in clear
            check_event_text(event.kind, event.body, trust, event.time)
        if event.kind == Kind.PAPER_ACT:
            check_paper_act(event, trust, received, exams)
        if event.kind == Kind.EXAM_POLICY:
            return Outcome({}, (), check, exam=exam_policy_from_body(event.body))
        return Outcome({}, (), check)
    if event.kind == Kind.SEAL:
        check_exam_policy(event, exams)
    known: list[PackageState] = []
    for package_id in event.package_ids:
        state = states.get(package_id)
        if state is None:
            if event.kind != Kind.SEAL:
                raise ChainError(N_("package {package_id} was never sealed"), package_id=package_id)
            continue
        if state.status == Status.DESTROYED:
            raise ClosedError(
                N_("package {package_id} was destroyed; its chain is closed"), package_id=package_id
            )
        known.append(state)
    check = check_signers(event, env_check, trust, known, envelope, received)
    if check is not None:  # a person's words are sealed, never in clear
        check_event_text(event.kind, event.body, trust, event.time)
    outcome = transition(event, states, check, received)
    if not late:
        return outcome
    lag = received - event.time
    evidence = {
        "event": event.id,
        "time": format_time(event.time),
        "received": format_time(received),
        "at": event.kind.value,
        "lag": _minutes(lag),
    }
    said = finding_said("late", evidence).english
    marks = tuple(Finding("late", pid, said, evidence) for pid in event.package_ids)
    return replace(outcome, findings=(*outcome.findings, *marks))


def check_exam_policy(event: Event, exams: Mapping[str, ExamPolicy]) -> None:
    """A seal follows its exam's policy as the log holds it (the latest ``exam_policy``
    statement for that exam): the exam has one, and the seal's ``handover_witness`` is the
    policy's. The policy fixes who must witness every dispatch and handover of the package."""
    exam = event.body.get("exam")
    if not isinstance(exam, str) or not exam:
        raise FormatError(N_("seal event: body.exam must be a non-empty string"))
    policy = exams.get(exam)
    if policy is None:
        raise ExamPolicyError(
            N_("exam {exam} has no policy on the log: its packages cannot be sealed yet"),
            hint=N_("publish the exam's policy first (custody exam publish)"),
            exam=exam,
        )
    witness = event.body.get("handover_witness")
    if witness is not policy.handover_witness:
        raise ExamPolicyError(
            N_(
                "seal says handover_witness={witness}, but exam {exam}'s policy on the log "
                "needs a supervising witness for its handovers (handover_witness={policy})"
            )
            if policy.handover_witness
            else N_(
                "seal says handover_witness={witness}, but exam {exam}'s policy on the log "
                "does not need a supervising witness for its handovers (handover_witness={policy})"
            ),
            witness=json.dumps(witness),
            exam=exam,
            policy=json.dumps(policy.handover_witness),
        )


def check_paper_act(
    event: Event, trust: TrustStore, received: datetime, exams: Mapping[str, ExamPolicy]
) -> None:
    """A ``paper_act`` statement (the system's record of a paper act, appended before anything
    is decrypted) embeds the people's signed act: its type fits the act's kind, it names the
    paper the statement names, every signature verifies under a key certified and standing at
    the act's time (and not revoked for compromise when received), and it is dated within the
    skew of the receive time (a paper act is made online, at the service).

    A ``purge`` (the ciphertext of a destroyed paper deleted) is the system's own act under
    the exam's policy: it embeds no people's act, and is accepted only once the log's clock is
    past the retention date of the exam's policy on the log."""
    body = event.body
    if body.get("act_kind") == "purge":
        check_purge(event, received, exams)
        return
    act_kind, paper = body.get("act_kind"), body.get("paper")
    if act_kind not in PAPER_ACT_TYPES or not isinstance(paper, str) or not paper:
        raise FormatError(N_("paper_act: body.act_kind must be a known act and body.paper a ref"))
    act = parse_envelope(body.get("act"), what="paper_act body.act")  # type: ignore[arg-type]
    if act.payload_type != PAPER_ACT_TYPES[str(act_kind)]:
        raise FormatError(
            N_("paper_act: a {act_kind} act has payload type {payload_type!r}"),
            act_kind=act_kind,
            payload_type=act.payload_type,
        )
    f = Fields(parse_json_object(act.payload, what=Phrase("paper act")), what=Phrase("paper act"))
    subject = f.sub("paper") if "paper" in f.obj else f  # a proposal names itself
    named = f"{subject.text('paper_id')}@v{subject.integer('version')}"
    if named != paper:
        raise FormatError(
            N_("paper_act: the embedded act is about {named!r}, not {paper!r}"),
            named=named,
            paper=paper,
        )
    at = f.time("at") if "at" in f.obj else f.time("proposed_at")
    if abs(at - received) > DEFAULT_CLOCK.skew:
        raise ClockError(
            N_("paper {act_kind} act dated {at}, received {received}"),
            act_kind=act_kind,
            at=format_time(at),
            received=format_time(received),
        )
    sigcheck = verify_signatures(act, trust.signing_keys)
    if not sigcheck.signed_by or sigcheck.unmatched:
        raise SignatureError(
            N_("paper_act: the embedded {act_kind} act's signatures do not verify"),
            act_kind=act_kind,
        )
    for kid in sorted(sigcheck.signed_by):
        trust.standing_at(kid, at, received=received)
    check_paper_act_text(f.obj.get("type"), f.obj, trust, at)  # a reason sealed, not in clear


def check_purge(event: Event, received: datetime, exams: Mapping[str, ExamPolicy]) -> None:
    body = event.body
    what = "paper_act (purge)"
    if set(body) != {"act_kind", "paper", "exam", "commitment"}:
        raise FormatError(
            N_("{what}: body holds act_kind, paper, exam and commitment, no more"), what=what
        )
    paper, exam, commitment = body.get("paper"), body.get("exam"), body.get("commitment")
    if not all(isinstance(v, str) and v for v in (paper, exam, commitment)):
        raise FormatError(N_("{what}: paper, exam and commitment are non-empty strings"), what=what)
    policy = exams.get(str(exam))
    if policy is None:
        raise ExamPolicyError(
            N_("exam {exam} has no policy on the log: nothing of it is purged"), exam=exam
        )
    if received < policy.retention_until:
        raise WindowError(
            N_(
                "exam {exam}'s records are kept until {retention_until} (its "
                "policy on the log); it is now {received}"
            ),
            exam=exam,
            retention_until=format_time(policy.retention_until),
            received=format_time(received),
        )


def resync(event: Event, states: dict[str, PackageState | None]) -> None:
    """After reporting a refused event, follow it anyway so later events are judged on their own.

    Used by verifiers only: the event's chain links are taken as the current ones and its
    signers are not judged again; any rule it still breaks has already been reported.
    """
    prevs = {
        pid: (s.last_event if (s := states.get(pid)) is not None else None)
        for pid in event.packages
    }
    try:
        outcome = transition(replace(event, packages=prevs), states, None)
    except CustodyError:
        return
    states.update(outcome.states)
