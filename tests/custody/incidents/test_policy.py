"""The incident policy as tables, with no database: severity x trust -> containment; status x
act -> the next status or the refusal; level x role -> who may acknowledge."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crypto.encoding import utc
from custody.errors import ClockError, ConflictError, CustodyError, FormatError
from custody.incidents.acts import Act, ActKind
from custody.incidents.policy import (
    DEFAULT_LADDER,
    Containment,
    IncidentStatus,
    Level,
    Severity,
    act_roles,
    check_receipt,
    decide_containment,
    due_escalation,
    escalation_levels,
    joined_severity,
    level_at,
    may_act,
    new_incident_id,
    next_status,
)
from custody.rules import PackageState, Status
from keys.model import Role

T0 = utc(2027, 3, 1, 8, 0)

# -- containment: severity x trusted -> what is frozen, compromised, blocked, offered ---------


def _state(pid: str, status: Status = Status.IN_TRANSIT, **flags: bool) -> PackageState:
    return PackageState(
        package_id=pid,
        exam="SX-2027-INT",
        position="P-01",
        paper="PAPER-A",
        copies=30,
        seals=("S-001",),
        window_start=T0 + timedelta(hours=4),
        window_end=T0 + timedelta(hours=6),
        route=("courier-sun", "custodian-zhou"),
        handover_witness=False,
        status=status,
        holder="courier-sun",
        route_pos=0,
        last_event="0" * 64,
        last_time=T0,
        last_place="",
        **flags,
    )


# PK-1 is the detection's package; PK-2 carries the same paper; PK-3 carried it, destroyed.
STATES = {
    "PK-1": _state("PK-1"),
    "PK-2": _state("PK-2", Status.STORED),
    "PK-3": _state("PK-3", Status.DESTROYED),
}
CARRYING = ["PK-1", "PK-2", "PK-3"]
BACKUPS = {"PAPER-A": "PAPER-A-BACKUP"}
SUSPECT = "ab" * 32

NOTHING = ((), (), (), Containment())
FREEZE = (("PK-1",), (), (SUSPECT,), Containment(frozen=("PK-1",), blocked_keys=(SUSPECT,)))
FREEZE_AND_COMPROMISE = (
    ("PK-1",),
    ("PK-1", "PK-2"),
    (SUSPECT,),
    Containment(
        frozen=("PK-1",),
        compromised=("PK-1", "PK-2"),
        blocked_keys=(SUSPECT,),
        backup="PAPER-A-BACKUP",
    ),
)

CONTAINMENT_TABLE = [
    (Severity.LOW, True, NOTHING),
    (Severity.MEDIUM, True, NOTHING),
    (Severity.HIGH, True, FREEZE),
    (Severity.CRITICAL, True, FREEZE_AND_COMPROMISE),
    # An unsigned report contains nothing by itself, whatever its severity.
    (Severity.LOW, False, NOTHING),
    (Severity.MEDIUM, False, NOTHING),
    (Severity.HIGH, False, NOTHING),
    (Severity.CRITICAL, False, NOTHING),
]


@pytest.mark.parametrize(
    ("severity", "trusted", "expected"),
    CONTAINMENT_TABLE,
    ids=[f"{s.value}-{'trusted' if t else 'untrusted'}" for s, t, _ in CONTAINMENT_TABLE],
)
def test_containment_by_severity_and_trust(
    severity: Severity,
    trusted: bool,
    expected: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], Containment],
) -> None:
    decision = decide_containment(
        severity=severity,
        trusted=trusted,
        package_id="PK-1",
        paper="PAPER-A",
        suspect_keys=(SUSPECT, SUSPECT),
        carrying=CARRYING,
        states=STATES,
        backups=BACKUPS,
        current=Containment(),
    )
    freeze, compromise, block, containment = expected
    assert decision.freeze == freeze
    assert decision.compromise == compromise
    assert decision.block == block
    assert decision.containment == containment


def test_containment_does_not_repeat_what_is_done() -> None:
    """A package frozen or marked already gets no second statement; the record keeps it."""
    states = {**STATES, "PK-1": _state("PK-1", frozen=True, compromised=True)}
    current = Containment(frozen=("PK-1",), compromised=("PK-1",), blocked_keys=("cd" * 32,))
    decision = decide_containment(
        severity=Severity.CRITICAL,
        trusted=True,
        package_id="PK-1",
        paper="PAPER-A",
        suspect_keys=(SUSPECT,),
        carrying=CARRYING,
        states=states,
        backups={},
        current=current,
    )
    assert (decision.freeze, decision.compromise) == ((), ("PK-2",))
    assert decision.containment == Containment(
        frozen=("PK-1",),
        compromised=("PK-1", "PK-2"),
        blocked_keys=tuple(sorted(("cd" * 32, SUSPECT))),
        backup=None,
    )


def test_no_package_no_paper_contains_keys_only() -> None:
    decision = decide_containment(
        severity=Severity.CRITICAL,
        trusted=True,
        package_id=None,
        paper=None,
        suspect_keys=(SUSPECT,),
        carrying=[],
        states={},
        backups=BACKUPS,
        current=Containment(),
    )
    assert (decision.freeze, decision.compromise, decision.block) == ((), (), (SUSPECT,))
    assert decision.containment.backup is None


@pytest.mark.parametrize(
    "stored",
    [
        {"frozen": [], "compromised": [], "blocked_keys": [], "backup": None},
        {
            "frozen": ["PK-1"],
            "compromised": ["PK-1", "PK-2"],
            "blocked_keys": ["ab"],
            "backup": "B",
            "unblocked_keys": ["ab"],
        },
    ],
    ids=["new", "after-an-unblock"],
)
def test_containment_record_round_trips(stored: dict[str, object]) -> None:
    assert Containment.from_json(stored).as_json() == stored


def test_unblocked_keys_appear_with_the_first_unblock() -> None:
    c = Containment(blocked_keys=("k2", "k1"))
    assert "unblocked_keys" not in c.as_json()
    assert c.with_unblocked("k2").with_unblocked("k1").with_unblocked("k2").as_json()[
        "unblocked_keys"
    ] == ["k1", "k2"]


@pytest.mark.parametrize(
    ("current", "detected", "joined"),
    [
        (Severity.MEDIUM, Severity.HIGH, Severity.HIGH),
        (Severity.CRITICAL, Severity.LOW, Severity.CRITICAL),
        (Severity.HIGH, Severity.HIGH, Severity.HIGH),
    ],
)
def test_an_incident_takes_the_highest_severity(
    current: Severity, detected: Severity, joined: Severity
) -> None:
    assert joined_severity(current, detected) == joined


# -- status x act -> the next status, or the refusal ------------------------------------------

S = IncidentStatus
A = ActKind
TRANSITIONS: list[tuple[IncidentStatus, ActKind, IncidentStatus | type[CustodyError]]] = [
    (S.OPEN, A.ACKNOWLEDGE, S.ACKNOWLEDGED),
    (S.OPEN, A.CONTAIN, S.CONTAINED),
    (S.OPEN, A.RESOLVE, S.RESOLVED),
    (S.OPEN, A.UNBLOCK, S.OPEN),
    (S.ACKNOWLEDGED, A.ACKNOWLEDGE, ConflictError),
    (S.ACKNOWLEDGED, A.CONTAIN, S.CONTAINED),
    (S.ACKNOWLEDGED, A.RESOLVE, S.RESOLVED),
    (S.ACKNOWLEDGED, A.UNBLOCK, S.ACKNOWLEDGED),
    (S.CONTAINED, A.ACKNOWLEDGE, ConflictError),
    (S.CONTAINED, A.CONTAIN, S.CONTAINED),
    (S.CONTAINED, A.RESOLVE, S.RESOLVED),
    (S.CONTAINED, A.UNBLOCK, S.CONTAINED),
    (S.RESOLVED, A.ACKNOWLEDGE, ConflictError),
    (S.RESOLVED, A.CONTAIN, ConflictError),
    (S.RESOLVED, A.RESOLVE, ConflictError),
    (S.RESOLVED, A.UNBLOCK, S.RESOLVED),  # a block may be lifted after the incident closes
]


@pytest.mark.parametrize(
    ("status", "act", "expected"),
    TRANSITIONS,
    ids=[f"{s.value}-{a.value}" for s, a, _ in TRANSITIONS],
)
def test_status_transitions(
    status: IncidentStatus, act: ActKind, expected: IncidentStatus | type[CustodyError]
) -> None:
    if isinstance(expected, IncidentStatus):
        assert next_status(status, act.value, incident="INC-00001") == expected
    else:
        with pytest.raises(expected):
            next_status(status, act.value, incident="INC-00001")


def test_statuses_keep_their_stored_values() -> None:
    assert [s.value for s in IncidentStatus] == ["open", "acknowledged", "contained", "resolved"]
    assert IncidentStatus.OPEN == "open"


# -- level x role -> may acknowledge; the other acts are the secrecy officer's -----------------

ACK_TABLE = [
    (0, Role.CUSTODIAN, True),
    (0, Role.SECRECY_OFFICER, True),
    (0, Role.COURIER, False),
    (0, Role.AUDITOR, False),
    (1, Role.CUSTODIAN, False),
    (1, Role.SECRECY_OFFICER, True),
    (2, Role.CUSTODIAN, False),
    (2, Role.SECRECY_OFFICER, True),
    (7, Role.SECRECY_OFFICER, True),  # past the top: the top's roles
    (7, Role.CUSTODIAN, False),
]


@pytest.mark.parametrize(
    ("level", "role", "allowed"),
    ACK_TABLE,
    ids=[f"level{lv}-{r.value}" for lv, r, _ in ACK_TABLE],
)
def test_who_may_acknowledge_at_each_level(level: int, role: Role, allowed: bool) -> None:
    assert may_act(role, ActKind.ACKNOWLEDGE, level) is allowed


@pytest.mark.parametrize("act", [A.CONTAIN, A.RESOLVE, A.UNBLOCK], ids=lambda a: a.value)
@pytest.mark.parametrize("level", [0, 1, 2])
def test_only_a_secrecy_officer_contains_resolves_unblocks(act: ActKind, level: int) -> None:
    assert act_roles(act, level, DEFAULT_LADDER) == {Role.SECRECY_OFFICER}


def test_a_lower_rung_that_names_a_role_does_not_help_above_it() -> None:
    ladder = (
        Level("site", "site", timedelta(minutes=5), frozenset({Role.AUDITOR})),
        Level("city", "city", timedelta(minutes=5), frozenset({Role.CUSTODIAN})),
    )
    assert act_roles(ActKind.ACKNOWLEDGE, 0, ladder) == {Role.AUDITOR, Role.CUSTODIAN}
    assert act_roles(ActKind.ACKNOWLEDGE, 1, ladder) == {Role.CUSTODIAN}


# -- the ladder --------------------------------------------------------------------------------

LADDER_TABLE = [
    # minutes after opening, level reached, deadline (minutes after opening)
    (14, None),
    (15, None),
    (16, (1, 45)),
    (46, (2, 105)),  # a sweep that ran late climbs two rungs at once
    (200, (2, 225)),  # at the top the deadline renews
]


@pytest.mark.parametrize(("minutes", "due"), LADDER_TABLE, ids=[str(m) for m, _ in LADDER_TABLE])
def test_escalation_from_the_first_rung(minutes: int, due: tuple[int, int] | None) -> None:
    deadline = T0 + DEFAULT_LADDER[0].ack_within
    got = due_escalation(0, deadline, T0 + timedelta(minutes=minutes), DEFAULT_LADDER)
    assert got == (None if due is None else (due[0], T0 + timedelta(minutes=due[1])))


@pytest.mark.parametrize(
    ("old", "new", "told"),
    [(0, 1, [1]), (0, 2, [1, 2]), (2, 2, [2])],
    ids=["one-rung", "two-rungs", "top-renewed"],
)
def test_escalation_tells_the_levels_climbed_to(old: int, new: int, told: list[int]) -> None:
    assert list(escalation_levels(old, new)) == told


def test_levels_and_ids() -> None:
    assert level_at(DEFAULT_LADDER, 9) == DEFAULT_LADDER[-1]
    assert new_incident_id(0) == "INC-00001"
    assert new_incident_id(41) == "INC-00042"


# -- receipt of an act: this authority, within five minutes of its date ------------------------

RECEIPT_TABLE: list[tuple[str, timedelta, type[CustodyError] | None]] = [
    ("auth-1", timedelta(0), None),
    ("auth-1", timedelta(minutes=5), None),
    ("auth-1", timedelta(minutes=-5), None),
    ("auth-1", timedelta(minutes=6), ClockError),  # dated in the future
    ("auth-1", timedelta(minutes=-6), ClockError),  # stale
    ("auth-2", timedelta(0), FormatError),  # another authority's
]


@pytest.mark.parametrize(
    ("authority", "skew", "refusal"),
    RECEIPT_TABLE,
    ids=["now", "5min-ahead", "5min-late", "future", "stale", "other-authority"],
)
def test_receipt_of_an_act(
    authority: str, skew: timedelta, refusal: type[CustodyError] | None
) -> None:
    act = Act(authority, "INC-00001", "acknowledge", "secrecy-chen", T0 + skew)
    if refusal is None:
        check_receipt(act, authority="auth-1", now=T0)
    else:
        with pytest.raises(refusal):
            check_receipt(act, authority="auth-1", now=T0)
