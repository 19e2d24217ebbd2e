"""The incident policy: severities, the escalation ladder, what a detection contains, which act
may follow which status, and who may sign it.

Pure: values in, values (or one of our errors) out. Nothing here reads the clock, opens a file
or touches the database; the desk (``desk.py``) gathers the facts, asks these functions and
writes what they decide.

Rules:
- Severity: low < medium < high < critical. An incident's severity is the highest severity of
  the detections it holds.
- Containment, for trusted detections only (an unsigned public report contains nothing by
  itself):
  - high and above freezes the detection's package (if it is live and not frozen yet) and
    blocks its suspect keys until a secrecy officer's signed ``unblock`` act;
  - critical also marks every live package carrying the paper compromised and offers the
    paper's backup (``Policy.backups``).
- Escalation: each level of the ladder has an acknowledgement deadline; an incident still open
  past it climbs one level per deadline passed; at the top it stays and its deadline renews.
  The levels climbed to are notified, and every level up to the incident's (plus the ``all``
  recipients) hears of every other change.
- Status: open -> acknowledged -> contained -> resolved. ``acknowledge`` only from open;
  ``contain`` and ``resolve`` from any status but resolved (an incident may be contained or
  resolved without an acknowledgement); ``unblock`` from any status, resolved included, and
  leaves the status as it is.
- Roles: ``acknowledge`` needs a role that the incident's level, or a level above it, names;
  ``contain``, ``resolve`` and ``unblock`` need a secrecy officer.
- Actors: an act is received within five minutes of its date and names this authority; it is
  not dated before the incident opened; a suspect of the incident (anyone holding a key the
  incident names as suspect or blocked) may not act on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from crypto.dsse import Envelope
from crypto.encoding import format_time
from custody.errors import N_, ClockError, ConflictError, FormatError, RoleError
from custody.incidents.acts import Act, ActKind, Recipient
from custody.rules import DEFAULT_CLOCK, PackageState, Status
from custody.sealed_text import check_recipients, officer_recipients
from keys.model import Certificate, Role
from keys.statements import require, verify_statement
from keys.trust import TrustStore

MAX_ACT_SKEW = DEFAULT_CLOCK.skew  # one skew for every statement the service receives


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CONTAINED = "contained"
    RESOLVED = "resolved"


# As people read them (reports and notices show the Chinese, then the code).
SEVERITY_NAMES: Mapping[str, str] = {"low": "低", "medium": "中", "high": "高", "critical": "严重"}
STATUS_NAMES: Mapping[str, str] = {
    "open": "待确认",
    "acknowledged": "已确认",
    "contained": "已控制",
    "resolved": "已解决",
}
# The parts of an incident's ``containment`` object.
CONTAINMENT_NAMES: Mapping[str, str] = {
    "frozen": "已冻结试卷袋",
    "compromised": "已认定泄密",
    "blocked_keys": "已封锁密钥",
    "backup": "已启用备用卷",
    "unblocked_keys": "已解封密钥",
}


# -- the ladder, places, recipients: the policy a home configures (``config.py``) -------------


@dataclass(frozen=True)
class Place:
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Level:
    """One rung of the escalation ladder."""

    name: str
    title: str
    ack_within: timedelta
    ack_roles: frozenset[Role]


DEFAULT_LADDER = (
    Level(
        "custodian",
        "custodian on site",
        timedelta(minutes=15),
        frozenset({Role.CUSTODIAN, Role.SECRECY_OFFICER}),
    ),
    Level(
        "municipal", "municipal officer", timedelta(minutes=30), frozenset({Role.SECRECY_OFFICER})
    ),
    Level(
        "provincial",
        "provincial secrecy officer",
        timedelta(minutes=60),
        frozenset({Role.SECRECY_OFFICER}),
    ),
)


@dataclass(frozen=True)
class Target:
    """A notification recipient: a webhook URL or an e-mail address."""

    name: str
    channel: str  # "webhook" | "email"
    address: str


@dataclass(frozen=True)
class Policy:
    """Limits, places, ladder and recipients. Defaults follow the national exam rules."""

    places: Mapping[str, Place] = field(default_factory=dict)
    max_speed_kmh: float = 120.0
    # Distances under this are one site (GPS noise, two buildings of one exam site).
    same_site_km: float = 2.0
    # Dwell limit per status (None: no limit). In transit: the handover or receipt is due.
    dwell: Mapping[Status, timedelta] = field(
        default_factory=lambda: {
            Status.IN_TRANSIT: timedelta(hours=6),
            Status.RECOVERED: timedelta(hours=2),
        }
    )
    checkin_every: timedelta = timedelta(minutes=60)
    patrol_every: timedelta = timedelta(minutes=30)
    # After the window closes, an opened package must be recovered within this grace.
    recovery_grace: timedelta = timedelta(hours=1)
    ladder: tuple[Level, ...] = DEFAULT_LADDER
    # Level name -> recipients notified while the incident is at that level (and above).
    recipients: Mapping[str, tuple[Target, ...]] = field(default_factory=dict)
    # Paper -> its backup paper (offered when a paper is compromised).
    backups: Mapping[str, str] = field(default_factory=dict)


def level_at(ladder: Sequence[Level], level: int) -> Level:
    """The rung an incident at ``level`` stands on (past the top: the top)."""
    return ladder[min(level, len(ladder) - 1)]


def due_escalation(
    level: int, deadline: datetime, now: datetime, ladder: Sequence[Level]
) -> tuple[int, datetime] | None:
    """The (level, new deadline) an unacknowledged incident climbs to at ``now``, if any.

    One step per deadline passed: an incident left alone for two deadlines climbs two levels
    (a sweep that ran late catches up). At the top it stays, and its deadline renews.
    """
    if now <= deadline:
        return None
    while now > deadline:
        level = min(level + 1, len(ladder) - 1)
        deadline = deadline + ladder[level].ack_within
    return level, deadline


def escalation_levels(old: int, new: int) -> range:
    """The levels told of an escalation from ``old`` to ``new`` (at the top, the top again)."""
    return range(min(old + 1, new), new + 1)


def recipients(policy: Policy, level: int, levels: Iterable[int] | None = None) -> list[Target]:
    """Who hears of a change: the recipients of ``levels`` (default: every level up to the
    incident's ``level``) and the ``all`` recipients, each name once, in that order."""
    ladder = policy.ladder
    top = min(level, len(ladder) - 1)
    targets: dict[str, Target] = {}
    for lv in [ladder[i] for i in (levels if levels is not None else range(top + 1))]:
        for t in policy.recipients.get(lv.name, ()):
            targets.setdefault(t.name, t)
    for t in policy.recipients.get("all", ()):
        targets.setdefault(t.name, t)
    return list(targets.values())


# -- the incident ----------------------------------------------------------------------------


def new_incident_id(count: int) -> str:
    """The id of the incident opened after ``count`` others: ``INC-00001``..."""
    return f"INC-{count + 1:05d}"


@dataclass(frozen=True)
class Incident:
    id: str
    kind: str
    severity: Severity
    status: IncidentStatus
    subject: str
    package_id: str | None
    paper: str | None
    opened_at: datetime
    updated_at: datetime
    level: int
    ack_deadline: datetime | None
    detail: str
    scope: Mapping[str, Any]
    evidence: tuple[Mapping[str, Any], ...]
    containment: Mapping[str, Any]  # ``Containment.as_json()``
    statements: tuple[str, ...]

    @property
    def detail_zh(self) -> str:
        """The detail in Chinese, as the detection that opened the incident wrote it (its
        evidence entry's ``detail_zh``); the English ``detail`` for an incident opened before
        details were written in both languages."""
        first = self.evidence[0] if self.evidence else {}
        words = first.get("detail_zh")
        return words if isinstance(words, str) and words else self.detail

    def as_dict(self, ladder: Sequence[Level] = DEFAULT_LADDER) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "status": self.status,
            "subject": self.subject,
            "package": self.package_id,
            "paper": self.paper,
            "opened_at": format_time(self.opened_at),
            "updated_at": format_time(self.updated_at),
            "level": self.level,
            "level_name": level_at(ladder, self.level).name,
            "ack_deadline": format_time(self.ack_deadline) if self.ack_deadline else None,
            "detail": self.detail,
            "detail_zh": self.detail_zh,
            "scope": dict(self.scope),
            "evidence": [dict(e) for e in self.evidence],
            "containment": dict(self.containment),
            "statements": list(self.statements),
        }


def joined_severity(current: Severity, detected: Severity) -> Severity:
    """An incident's severity once a detection joins it: the higher of the two."""
    return max(current, detected, key=lambda s: s.rank)


# -- containment -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Containment:
    """What an incident has contained so far (its ``containment`` object, lists sorted)."""

    frozen: tuple[str, ...] = ()
    compromised: tuple[str, ...] = ()
    blocked_keys: tuple[str, ...] = ()
    backup: str | None = None
    # Absent (None) until the first ``unblock`` act: the stored object has no such key before.
    unblocked_keys: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Containment:
        unblocked = obj.get("unblocked_keys")
        return cls(
            frozen=tuple(obj["frozen"]),
            compromised=tuple(obj["compromised"]),
            blocked_keys=tuple(obj["blocked_keys"]),
            backup=obj["backup"],
            unblocked_keys=tuple(unblocked) if unblocked is not None else None,
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "frozen": list(self.frozen),
            "compromised": list(self.compromised),
            "blocked_keys": list(self.blocked_keys),
            "backup": self.backup,
        }
        if self.unblocked_keys is not None:
            out["unblocked_keys"] = list(self.unblocked_keys)
        return out

    def with_unblocked(self, key: str) -> Containment:
        return replace(self, unblocked_keys=_union(self.unblocked_keys or (), [key]))


def freezes(severity: Severity, trusted: bool) -> bool:
    """High and above, when trusted: freeze the package, block the suspect keys."""
    return trusted and severity.rank >= Severity.HIGH.rank


def compromises(severity: Severity, trusted: bool) -> bool:
    """Critical, when trusted: the paper is compromised, its backup offered."""
    return trusted and severity == Severity.CRITICAL


@dataclass(frozen=True)
class ContainmentDecision:
    """What one detection contains now, and the incident's containment afterwards."""

    freeze: tuple[str, ...]  # live packages not frozen yet: one ``freeze`` statement
    compromise: tuple[str, ...]  # live packages not marked yet: ``compromise`` statements
    block: tuple[str, ...]  # suspect keys to block (a key blocked already stays as it is)
    containment: Containment


def decide_containment(
    *,
    severity: Severity,
    trusted: bool,
    package_id: str | None,
    paper: str | None,
    suspect_keys: Iterable[str],
    carrying: Sequence[str],
    states: Mapping[str, PackageState],
    backups: Mapping[str, str],
    current: Containment,
) -> ContainmentDecision:
    """Containment for a detection joining (or opening) an incident.

    Args:
        severity: the incident's severity with this detection (``joined_severity``).
        trusted: False for unsigned reports, which contain nothing by themselves.
        package_id: the detection's package, if any.
        paper: the paper concerned (the detection's, else its package's), if any.
        suspect_keys: the keys the detection names as suspect.
        carrying: every package carrying ``paper``.
        states: package states for ``package_id`` and ``carrying`` (a package with no state
            is not live).
        backups: paper -> backup paper.
        current: the incident's containment so far (empty for a new incident).
    """
    freeze: list[str] = []
    flag: list[str] = []
    block: tuple[str, ...] = ()
    contained = current
    if freezes(severity, trusted):
        freeze = _live([package_id] if package_id else [], states, unless="frozen")
        block = tuple(sorted(set(suspect_keys)))
        contained = replace(
            contained,
            frozen=_union(contained.frozen, freeze),
            blocked_keys=_union(contained.blocked_keys, block),
        )
    if compromises(severity, trusted) and paper:
        flag = _live(carrying, states, unless="compromised")
        contained = replace(
            contained,
            compromised=_union(contained.compromised, _live(carrying, states)),
            backup=backups.get(paper),
        )
    return ContainmentDecision(tuple(freeze), tuple(flag), block, contained)


def _live(
    package_ids: Iterable[str], states: Mapping[str, PackageState], unless: str | None = None
) -> list[str]:
    """Packages not destroyed (and not already frozen/compromised, if asked)."""
    return sorted(
        pid
        for pid in set(package_ids)
        if (s := states.get(pid)) is not None
        and s.status != Status.DESTROYED
        and not (unless and getattr(s, unless))
    )


def _union(have: Iterable[str], more: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(have) | set(more)))


# -- people's acts ---------------------------------------------------------------------------


def check_receipt(act: Act, *, authority: str, now: datetime) -> None:
    """An act names this authority and is received within ``MAX_ACT_SKEW`` of its date."""
    if act.authority != authority:
        raise FormatError(N_("incident act names another authority"))
    if act.time > now + MAX_ACT_SKEW:
        raise ClockError(
            N_("incident act is dated in the future ({time})"), time=format_time(act.time)
        )
    if act.time < now - MAX_ACT_SKEW:
        raise ClockError(
            N_(
                "incident act is dated {time}, more than {max_act_skew} "
                "before the service received it ({now})"
            ),
            time=format_time(act.time),
            max_act_skew=MAX_ACT_SKEW,
            now=format_time(now),
        )


def next_status(status: IncidentStatus, act: str, *, incident: str) -> IncidentStatus:
    """The status an act leaves an incident in, or ``ConflictError`` if it may not follow."""
    if status == IncidentStatus.RESOLVED and act != ActKind.UNBLOCK:
        raise ConflictError(N_("incident {incident} is already resolved"), incident=incident)
    if act == ActKind.ACKNOWLEDGE:
        if status != IncidentStatus.OPEN:
            raise ConflictError(
                N_("incident {incident} is already {status}"), incident=incident, status=status
            )
        return IncidentStatus.ACKNOWLEDGED
    after: dict[str, IncidentStatus] = {
        ActKind.CONTAIN: IncidentStatus.CONTAINED,
        ActKind.RESOLVE: IncidentStatus.RESOLVED,
    }
    return after.get(act, status)  # unblock leaves the status as it is


def act_roles(act: str, level: int, ladder: Sequence[Level]) -> frozenset[Role]:
    """The roles that may sign ``act`` on an incident at ``level``."""
    if act == ActKind.ACKNOWLEDGE:
        roles: set[Role] = set()
        for lv in ladder[min(level, len(ladder) - 1) :]:
            roles |= lv.ack_roles
        return frozenset(roles)
    return frozenset({Role.SECRECY_OFFICER})


def may_act(role: Role, act: str, level: int, ladder: Sequence[Level] = DEFAULT_LADDER) -> bool:
    return role in act_roles(act, level, ladder)


def suspects(incident: Incident, trust: TrustStore) -> set[str]:
    """The people an incident suspects: holders of the keys it blocked or names as suspect."""
    keys = set(incident.containment.get("blocked_keys", []))
    for entry in incident.evidence:
        keys |= set(entry.get("suspect_keys", []))
    return {trust.certificates[k].subject for k in keys if k in trust.certificates}


@dataclass(frozen=True)
class CheckedAct:
    """An act the policy allows: the status it leaves, and the certificates that signed it."""

    status: IncidentStatus
    signers: tuple[Certificate, ...]


def check_act(
    act: Act, env: Envelope, incident: Incident, trust: TrustStore, ladder: Sequence[Level]
) -> CheckedAct:
    """May this person take this act on this incident now? (Whether a key that signed it is
    still blocked is the desk's to ask the store, after this.)

    Raises, in this order: ``ConflictError`` (the act may not follow the status), ``RoleError``
    (not signed by the person with a role the act needs at the incident's level),
    ``ClockError`` (dated before the incident opened), ``RoleError`` (a suspect acting).
    """
    status = next_status(incident.status, act.act, incident=act.incident)
    roles = act_roles(act.act, incident.level, ladder)
    try:
        check = verify_statement(
            env, trust, [require("actor", *roles, person=act.person)], at=act.time
        )
    except RoleError as e:
        raise RoleError(
            N_("{person} may not {act} incident {incident} at level {name}: {error}"),
            person=act.person,
            act=act.act,
            incident=act.incident,
            name=level_at(ladder, incident.level).name,
            error=e,
        ) from e
    if act.time < incident.opened_at:
        raise ClockError(
            N_("the {act} act is dated {time}, before incident {incident} opened ({opened_at})"),
            act=act.act,
            time=format_time(act.time),
            incident=act.incident,
            opened_at=format_time(incident.opened_at),
        )
    if act.person in suspects(incident, trust):
        raise RoleError(
            N_(
                "{person} is a suspect in incident {incident} and may not act"
                " on it: another secrecy officer decides"
            ),
            person=act.person,
            incident=act.incident,
        )
    check_note(act, trust)
    return CheckedAct(status, check.signers)


def note_recipients(trust: TrustStore, at: datetime) -> list[Recipient]:
    """Whom a person's free text (an act's note, a public report) is sealed to: every
    secrecy officer whose key stands at ``at``, by their X25519 key."""
    return officer_recipients(trust, at)


def check_note(act: Act, trust: TrustStore) -> None:
    """An act's sealed note goes to secrecy officers only, and to one standing at the act's
    time at least: ``RoleError`` names a box sealed to anyone else, or none readable."""
    check_recipients(act.note_sealed, trust, act.time, what=f"the note of this {act.act} act")


__all__ = [
    "CONTAINMENT_NAMES",
    "DEFAULT_LADDER",
    "MAX_ACT_SKEW",
    "SEVERITY_NAMES",
    "STATUS_NAMES",
    "CheckedAct",
    "Containment",
    "ContainmentDecision",
    "Incident",
    "IncidentStatus",
    "Level",
    "Place",
    "Policy",
    "Severity",
    "Target",
    "act_roles",
    "check_act",
    "check_note",
    "check_receipt",
    "compromises",
    "decide_containment",
    "due_escalation",
    "escalation_levels",
    "freezes",
    "joined_severity",
    "level_at",
    "may_act",
    "new_incident_id",
    "next_status",
    "note_recipients",
    "recipients",
    "suspects",
]
