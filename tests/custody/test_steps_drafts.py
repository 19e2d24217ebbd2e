"""Drafting a step (custody/steps.py, ``draft_step``): who must sign each kind of step, what its
body records, and every refusal before anyone is asked to sign, by error class (the messages
are the catalogue's business)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from custody.demo import Season
from custody.errors import ChainError, ClosedError, CustodyError, UsageError
from custody.events import Kind
from custody.rules import PackageState, Status
from custody.steps import Draft, draft_step, split_serials, status_name, step_name
from tests.conftest import T0
from tests.custody.test_log import seal

AT_PLACE = "XA-01"


@pytest.fixture
def sealed(season: Season) -> PackageState:
    seal(season, "PK-1")
    return season.log().package_state("PK-1")


def draft(
    kind: Kind,
    state: PackageState | list[PackageState],
    *,
    people: Mapping[str, str | None],
    place: str | None = None,
    seals: Sequence[str] = (),
    count: int | None = None,
    method: str | None = None,
) -> Draft:
    return draft_step(
        kind,
        state,
        authority="auth",
        at=T0,
        people=people,
        place=place,
        seals=seals,
        count=count,
        method=method,
    )


def at(state: PackageState, status: Status, holder: str = "custodian-zhou") -> PackageState:
    return replace(state, status=status, holder=holder)


def test_each_step_names_the_signers_it_needs(sealed: PackageState) -> None:
    dispatch = draft(Kind.DISPATCH, sealed, people={"to": "courier-sun"}, seals=["S1", "S2"])
    assert [(s.slot, s.person) for s in dispatch.signers] == [
        ("releaser", sealed.holder),
        ("receiver", "courier-sun"),
    ]
    assert dispatch.event.packages == {"PK-1": sealed.last_event}
    assert dispatch.event.body == {"seals": ["S1", "S2"]}
    assert dispatch.event.place == sealed.last_place  # where it was last recorded by default

    moving = at(sealed, Status.IN_TRANSIT, "courier-sun")
    received = draft(
        Kind.RECEIVE,
        moving,
        people={"to": "custodian-zhou", "second": "custodian-wu"},
        place=AT_PLACE,
    )
    assert [s.slot for s in received.signers] == ["releaser", "receiver", "custodian2"]
    assert received.event.place == AT_PLACE
    checkin = draft(Kind.CHECKIN, moving, people={"by": "courier-sun"}, count=3)
    assert [(s.slot, s.person) for s in checkin.signers] == [("escort", "courier-sun")]
    assert checkin.event.body == {"count": 3}

    stored = at(sealed, Status.STORED)
    patrol = draft(Kind.PATROL, stored, people={"by": "auditor-chu"})
    assert [(s.slot, s.person) for s in patrol.signers] == [("inspector", "auditor-chu")]
    opened = draft(
        Kind.OPEN, stored, people={"examiner": "examiner-zheng", "supervisor": "supervisor-wang"}
    )
    assert [s.slot for s in opened.signers] == ["examiner", "supervisor"]
    handed = draft(
        Kind.DISTRIBUTE,
        at(sealed, Status.OPENED),
        people={"examiner": "examiner-zheng", "supervisor": "examiner-zheng"},
        count=30,
    )
    assert handed.event.body == {"copies": 30}
    assert handed.people == ("examiner-zheng",)  # one signature fills both slots


def test_a_destruction_certificate_may_name_several_packages(sealed: PackageState) -> None:
    a = at(sealed, Status.STORED)
    b = replace(a, package_id="PK-2", last_event="e" * 64)
    officers = {"officer": "destroy-feng", "witness": "secrecy-chen"}
    both = draft(Kind.DESTROY, [a, b], people=officers)
    assert set(both.event.packages) == {"PK-1", "PK-2"}
    assert both.event.body == {"method": "shredding"}
    one = draft(Kind.DESTROY, a, people=officers, count=30, method="pulping")
    assert one.event.body == {"method": "pulping", "copies": {"PK-1": 30}}
    with pytest.raises(UsageError):
        draft(Kind.DESTROY, [a, b], people=officers, count=30)  # one package at a time
    with pytest.raises(UsageError):
        draft(Kind.DESTROY, [a, a], people=officers)  # named twice
    with pytest.raises(UsageError):
        draft(Kind.INSPECT, [a, b], people={"by": "auditor-chu"})  # only a destruction
    with pytest.raises(UsageError):
        draft(Kind.DESTROY, [], people=officers)
    with pytest.raises(UsageError):
        draft(Kind.DESTROY, a, people={"officer": "destroy-feng"})  # no witness


@pytest.mark.parametrize(
    ("kind", "status", "people", "extra", "error"),
    [
        (Kind.DISPATCH, Status.SEALED, {}, {}, UsageError),  # nobody receives it
        (Kind.RECEIVE, Status.IN_TRANSIT, {"to": "custodian-zhou"}, {}, UsageError),
        (Kind.INSPECT, Status.STORED, {}, {}, UsageError),
        (Kind.OPEN, Status.STORED, {"examiner": "examiner-zheng"}, {}, UsageError),
        (Kind.DISTRIBUTE, Status.OPENED, {"examiner": "x", "supervisor": "y"}, {}, UsageError),
        (Kind.DISPATCH, Status.SEALED, {"to": "courier-sun"}, {"count": -1}, UsageError),
        (Kind.OPEN, Status.STORED, {"examiner": "x", "supervisor": "y"}, {"seals": ["S1"]}, None),
        (Kind.DISTRIBUTE, Status.OPENED, {"examiner": "x", "supervisor": "y"},
         {"seals": ["S1"], "count": 1}, UsageError),
        (Kind.SEAL, Status.SEALED, {}, {}, UsageError),  # not a step a person takes
        (Kind.CHECKIN, Status.IN_TRANSIT, {"by": "courier-li"}, {}, ChainError),  # not its escort
        (Kind.HANDOVER, Status.STORED, {"to": "custodian-wu", "from": "courier-li"}, {},
         ChainError),  # only its holder releases it
        (Kind.OPEN, Status.SEALED, {"examiner": "x", "supervisor": "y"}, {}, ChainError),
        (Kind.INSPECT, Status.DESTROYED, {"by": "auditor-chu"}, {}, ClosedError),
    ],
    ids=[
        "no-receiver", "no-second-custodian", "no-inspector", "no-supervisor", "no-count",
        "negative-count", "open-records-seals", "distribute-records-no-seals", "seal",
        "checkin-not-escort", "release-not-holder", "open-while-sealed", "destroyed",
    ],
)  # fmt: skip
def test_refused_before_anyone_signs(
    sealed: PackageState,
    kind: Kind,
    status: Status,
    people: dict[str, str],
    extra: dict[str, Any],
    error: type[CustodyError] | None,
) -> None:
    state = at(sealed, status, "courier-sun")
    if error is None:
        assert draft(kind, state, people=people, **extra).event.body == {"seals": ["S1"]}
        return
    with pytest.raises(error):
        draft(kind, state, people=people, **extra)


def test_a_handover_witness_is_named_exactly_when_the_exam_asks(sealed: PackageState) -> None:
    moving = at(sealed, Status.IN_TRANSIT, "courier-sun")
    asks = replace(moving, handover_witness=True)
    handed = draft(Kind.HANDOVER, asks, people={"to": "courier-li", "witness": "supervisor-wang"})
    assert [s.slot for s in handed.signers] == ["releaser", "receiver", "witness"]
    with pytest.raises(UsageError):
        draft(Kind.HANDOVER, asks, people={"to": "courier-li"})
    with pytest.raises(UsageError):
        draft(Kind.HANDOVER, moving, people={"to": "courier-li", "witness": "supervisor-wang"})


def test_names_and_serials() -> None:
    assert split_serials(["S1, S2", "S3", " ", "S4,,"]) == ("S1", "S2", "S3", "S4")
    assert step_name(Kind.HANDOVER).endswith("handover") and step_name("no-such-kind") == (
        "no-such-kind"
    )
    assert status_name("in_transit").endswith("in_transit") and status_name("odd") == "odd"
