"""The pure state machine (rules.ALLOWED_FROM and transition), as a table, with no database:
every kind from every status is accepted exactly where the table allows it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crypto.encoding import utc
from custody.errors import ChainError
from custody.events import Event, Kind
from custody.rules import ALLOWED_FROM, PackageState, Status, transition

NOW = utc(2027, 3, 1, 9)
ACTORS = {
    "receiver": "courier-li",
    "custodian2": "custodian-wu",
    "inspector": "custodian-zhou",
    "escort": "courier-sun",
    "examiner": "examiner-zheng",
    "supervisor": "supervisor-wang",
    "officer": "destroy-feng",
    "witness": "supervisor-wang",
}
BODY = {"copies": 30, "seals": ["S-1"]}


def _state(status: Status) -> PackageState:
    return PackageState(
        package_id="PK-1",
        exam="SX-2027-INT",
        position="P-01",
        paper="PAPER-A",
        copies=30,
        seals=("S-1",),
        window_start=NOW - timedelta(hours=1),
        window_end=NOW + timedelta(hours=1),
        route=("courier-sun", "courier-li", "custodian-zhou"),
        handover_witness=False,
        status=status,
        holder="courier-sun",
        route_pos=0,
        last_event="0" * 64,
        last_time=NOW - timedelta(minutes=5),
        last_place="",
        distributed=30,
    )


CASES = [(k, s) for k in ALLOWED_FROM for s in Status if s is not Status.DESTROYED]


@pytest.mark.parametrize(("kind", "status"), CASES, ids=[f"{k}-from-{s}" for k, s in CASES])
def test_each_kind_from_each_status(kind: Kind, status: Status) -> None:
    event = Event(
        kind=kind,
        authority="a",
        time=NOW,
        place="",
        packages={"PK-1": "0" * 64},
        actors=ACTORS,
        body=BODY,
    )
    states = {"PK-1": _state(status)}
    if status in ALLOWED_FROM[kind]:
        outcome = transition(event, states, None, NOW)
        assert outcome.states["PK-1"].last_event == event.id
    else:
        with pytest.raises(ChainError):
            transition(event, states, None, NOW)


def test_nothing_follows_destruction() -> None:
    from custody.errors import ClosedError

    for kind in ALLOWED_FROM:
        event = Event(kind, "a", NOW, "", {"PK-1": "0" * 64}, ACTORS, BODY)
        with pytest.raises(ClosedError):
            transition(event, {"PK-1": _state(Status.DESTROYED)}, None, NOW)


@pytest.mark.parametrize(
    ("kind", "after"),
    [
        (Kind.DISPATCH, Status.IN_TRANSIT),
        (Kind.HANDOVER, Status.IN_TRANSIT),
        (Kind.RECEIVE, Status.STORED),
        (Kind.OPEN, Status.OPENED),
        (Kind.DISTRIBUTE, Status.DISTRIBUTED),
        (Kind.RECOVER, Status.RECOVERED),
        (Kind.RETURN, Status.RETURNED),
        (Kind.DESTROY, Status.DESTROYED),
    ],
)
def test_where_each_kind_leads(kind: Kind, after: Status) -> None:
    start = next(iter(sorted(ALLOWED_FROM[kind])))
    event = Event(kind, "a", NOW, "", {"PK-1": "0" * 64}, ACTORS, BODY)
    assert transition(event, {"PK-1": _state(start)}, None, NOW).states["PK-1"].status is after
