"""Incident acts by the right people: a suspect cannot clear their own incident, acts are not
backdated before the incident opened, and incident statements come from the system alone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crypto.dsse import sign_envelope
from custody import identity
from custody.demo import Season
from custody.errors import ClockError, KeyBlockedError, RoleError
from custody.events import EVENT_TYPE, Event, Kind
from custody.incidents.acts import Act
from custody.incidents.desk import blocked_keys, get_incident, list_incidents
from keys.keyfile import read_keyfile
from keys.model import Role
from tests.conftest import PASS
from tests.custody.incidents.conftest import desk_log
from tests.custody.test_log import seal, transfer


def _officer_blocked_by_an_incident(season: Season) -> str:
    """A handover to secrecy officer Chen, who is not on the route: refused, incident, and
    Chen's key blocked as the suspect. A second officer, Lin, is enrolled to decide."""
    enrolment = identity.enroll(
        season.home,
        root_passphrase=PASS,
        subject="secrecy-lin",
        name="林涛 Lin Tao",
        organisation="省保密局 Provincial Secrecy Bureau",
        roles=[Role.SECRECY_OFFICER],
        not_before=season.now - timedelta(days=1),
        not_after=season.now + timedelta(days=200),
        passphrase=PASS,
        now=season.now,
        kdf=season.kdf,
    )
    assert enrolment.key_file is not None
    season.keys["secrecy-lin"] = read_keyfile(enrolment.key_file, PASS)
    season.refresh_trust()
    seal(season)
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    with pytest.raises(Exception):  # noqa: B017, PT011 - the RouteError; the incident matters
        transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "secrecy-chen")
    (incident,) = list_incidents(season.home.engine)
    chen = season.keys["secrecy-chen"].signing.key_id
    assert chen in {r["key_id"] for r in blocked_keys(season.home.engine)}
    return incident.id


def _act(season: Season, incident: str, what: str, person: str, **kw: object) -> object:
    fields = {"time": season.now, "key": None, **kw}
    return Act(
        season.authority.id, incident, what, person, fields["time"], None, fields["key"]
    ).sign(season.keys[person].signing)  # type: ignore[arg-type]


def test_a_suspect_officer_cannot_unblock_or_resolve_their_own_incident(
    watched: Season,
) -> None:
    season = watched
    incident = _officer_blocked_by_an_incident(season)
    log = desk_log(season)
    chen = season.keys["secrecy-chen"].signing.key_id
    season.tick()
    with pytest.raises(RoleError):
        log.act(_act(season, incident, "unblock", "secrecy-chen", key=chen), season.now)  # type: ignore[arg-type]
    with pytest.raises(RoleError):
        log.act(_act(season, incident, "resolve", "secrecy-chen"), season.now)  # type: ignore[arg-type]
    assert chen in {r["key_id"] for r in blocked_keys(season.home.engine) if not r["unblocked_at"]}
    # another officer decides
    log.act(_act(season, incident, "unblock", "secrecy-lin", key=chen), season.now)  # type: ignore[arg-type]
    log.act(_act(season, incident, "resolve", "secrecy-lin"), season.now)  # type: ignore[arg-type]
    assert get_incident(season.home.engine, incident).status == "resolved"


def test_acts_dated_before_the_incident_opened_are_refused(watched: Season) -> None:
    season = watched
    incident = _officer_blocked_by_an_incident(season)
    log = desk_log(season)
    opened = get_incident(season.home.engine, incident).opened_at
    early = _act(season, incident, "acknowledge", "secrecy-lin", time=opened - timedelta(minutes=3))
    with pytest.raises(ClockError):
        log.act(early, season.now)  # type: ignore[arg-type]
    stale = _act(season, incident, "acknowledge", "secrecy-lin")
    with pytest.raises(ClockError):  # received an hour after it was dated
        log.act(stale, season.now + timedelta(hours=1))  # type: ignore[arg-type]
    assert get_incident(season.home.engine, incident).status == "open"


def test_a_blocked_key_cannot_sign_an_act_on_another_incident(watched: Season) -> None:
    season = watched
    _officer_blocked_by_an_incident(season)
    log = desk_log(season)
    public = log.report_public("答案在网上出售 answers for sale", season.now)
    with pytest.raises(KeyBlockedError):
        log.act(_act(season, public.id, "acknowledge", "secrecy-chen"), season.now)  # type: ignore[arg-type]


def test_incident_statements_come_from_the_system_key_alone(watched: Season) -> None:
    season = watched
    event = Event(
        kind=Kind.INCIDENT,
        authority=season.authority.id,
        time=season.now,
        place="",
        packages={},
        actors={"officer": "secrecy-chen"},
        body={"action": "resolve"},
    )
    env = sign_envelope(EVENT_TYPE, event.payload(), [season.keys["secrecy-chen"].signing])
    with pytest.raises(RoleError):
        season.submit(env)
