"""The incident desk stands behind `custody serve`: refusals through the API open incidents,
blocked keys are refused at the API, and the desk's clock work runs inside the service."""

from __future__ import annotations

import time
from datetime import timedelta

from fastapi.testclient import TestClient

from api.app import Settings, create_app
from custody.demo import Season
from custody.events import Kind
from custody.incidents.model import blocked_keys, list_incidents
from tests.api.helpers import client, people_entries, seal_event, transfer_event
from tests.conftest import PASS


def _post(c: TestClient, body: bytes) -> tuple[int, str]:
    r = c.post("/v1/events", content=body, headers={"content-type": "application/json"})
    return r.status_code, r.json().get("error", "")


def test_off_route_handover_through_the_api_opens_an_incident_and_blocks_the_key(
    season: Season,
) -> None:
    c = client(season)
    assert _post(c, seal_event(season).to_bytes())[0] == 201
    dispatch = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    assert _post(c, dispatch.to_bytes())[0] == 201
    # courier-sun hands the package to a custodian who is not next on the route
    off = transfer_event(season, Kind.HANDOVER, "PK-1", "courier-sun", "custodian-wu")
    before = people_entries(season)
    assert _post(c, off.to_bytes()) == (403, "route")
    assert people_entries(season) == before
    incidents = list_incidents(season.home.engine)
    assert [i.kind for i in incidents] == ["off_route"]
    assert incidents[0].package_id == "PK-1"
    # containment: the package is frozen, and the suspect keys are blocked at the API's gate
    planned = transfer_event(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-li")
    assert _post(c, planned.to_bytes()) == (423, "frozen")
    blocked = {row["key_id"] for row in blocked_keys(season.home.engine)}
    assert season.keys["custodian-wu"].signing.key_id in blocked
    assert _post(c, seal_event(season, "PK-2").to_bytes())[0] == 201
    other = transfer_event(season, Kind.DISPATCH, "PK-2", "print-qian", "custodian-wu")
    assert _post(c, other.to_bytes()) == (403, "blocked_key")
    assert people_entries(season) == before + 1


def test_a_desk_round_in_the_service_finds_an_overdue_handover(season: Season) -> None:
    c = client(season)
    assert _post(c, seal_event(season).to_bytes())[0] == 201
    dispatch = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    assert _post(c, dispatch.to_bytes())[0] == 201
    backend = c.app.state.backend  # type: ignore[attr-defined]
    touched, _ = backend.desk_round()
    assert touched == []  # nothing is late yet
    season.now += timedelta(hours=14)  # the service's clock moves on; nobody runs a sweep
    touched, report = backend.desk_round()
    kinds = {i.kind for i in list_incidents(season.home.engine)}
    assert touched and {"overdue", "missed_checkin"} & kinds
    assert report is not None


def test_the_desk_loop_runs_on_its_own_while_the_service_is_up(season: Season) -> None:
    with client(season) as c:  # no lifespan: no loop
        assert _post(c, seal_event(season).to_bytes())[0] == 201
        dispatch = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
        assert _post(c, dispatch.to_bytes())[0] == 201
    season.now += timedelta(hours=14)
    settings = Settings(
        home=season.home.path, log_passphrase=PASS, clock=lambda: season.now, desk_every=0.05
    )
    with TestClient(create_app(settings)):  # lifespan starts the desk loop
        deadline = time.monotonic() + 20
        while not list_incidents(season.home.engine) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert list_incidents(season.home.engine), "the service's desk loop opened no incident"


def test_a_read_only_service_runs_no_desk(season: Season) -> None:
    backend = client(season, writable=False).app.state.backend  # type: ignore[attr-defined]
    assert backend.desk_round() == ([], None)
