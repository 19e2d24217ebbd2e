"""The incident system in a demo season: attach the desk, play three breaches, write reports.

``play_breaches`` runs on its own packages (``BR-SEAL``, ``BR-ROUTE``, ``BR-COUNT``) so the
season's clean packages are untouched; each breach must open exactly one incident.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from custody.demo import Season, seal_body
from custody.errors import RouteError
from custody.events import Kind
from custody.incidents.acts import Act, seal_note
from custody.incidents.config import policy_from_json
from custody.incidents.desk import WatchedLog, list_incidents
from custody.incidents.policy import Policy, note_recipients
from custody.incidents.report import write_reports
from custody.service import ServiceSecrets, open_writer

BREACH_SEALS = ["BR-S1", "BR-S2"]
BREACH_ROUTE = ["courier-sun", "courier-li", "custodian-zhou"]
EXAMINERS = {"examiner": "examiner-zheng", "supervisor": "supervisor-wang"}


def attach(season: Season, policy: Policy | None = None) -> WatchedLog:
    """Re-open the season's log service with this incident policy (defaults when None)."""
    secrets = ServiceSecrets(log=season.passphrase, system=season.passphrase)
    watched = open_writer(season.home, secrets, policy=policy or policy_from_json(None))
    season.facts["log"] = watched
    return watched


def _seal(season: Season, pkg: str, paper: str, start: datetime) -> None:
    body = seal_body(
        position="P-BR",
        paper=paper,
        copies=30,
        seals=BREACH_SEALS,
        window=(start, start + timedelta(hours=2)),
        route=BREACH_ROUTE,
    )
    season.submit(
        season.event(
            Kind.SEAL, [pkg], actors={"sealer": "print-qian"}, signers=["print-qian"], body=body
        )
    )


def _move(
    season: Season, kind: Kind, pkg: str, frm: str, to: str, seals: list[str], **extra: str
) -> None:
    actors = {"releaser": frm, "receiver": to, **extra}
    season.submit(
        season.event(
            kind, [pkg], actors=actors, signers=[frm, to, *extra.values()], body={"seals": seals}
        )
    )


def play_breaches(season: Season, out_dir: Path) -> list[Path]:
    """A seal mismatch, a holder off the route, a short count on recovery; one report each
    (text, JSON and PDF) under ``out_dir/incidents/``. Returns the report paths."""
    log = season.log()
    before = {i.id for i in list_incidents(log.engine)}
    start = season.now + timedelta(hours=3)
    # 1. Seal serials seen at dispatch differ from the manifest: incident, package frozen.
    _seal(season, "BR-SEAL", "PAPER-BR-1", start)
    _move(season, Kind.DISPATCH, "BR-SEAL", "print-qian", "courier-sun", ["BR-S1", "BR-S9"])
    # 2. A courier hands the package to someone not on its route: refused, incident.
    _seal(season, "BR-ROUTE", "PAPER-BR-2", start)
    _move(season, Kind.DISPATCH, "BR-ROUTE", "print-qian", "courier-sun", BREACH_SEALS)
    try:
        _move(season, Kind.HANDOVER, "BR-ROUTE", "courier-sun", "custodian-wu", BREACH_SEALS)
    except RouteError:
        pass
    else:  # pragma: no cover - the rules refuse it
        raise AssertionError("an off-route handover was accepted")
    # The secrecy officer takes charge and, having heard the custodian, lifts the block on
    # the custodian's key (a signed decision), so the rest of the season can use it.
    (route_incident,) = [
        i for i in list_incidents(log.engine) if i.id not in before and i.kind == "off_route"
    ]
    officer = season.keys["secrecy-chen"].signing
    authority = season.authority.id
    for what, key in (
        ("acknowledge", None),
        *(("unblock", k) for k in route_incident.containment["blocked_keys"]),
    ):
        season.tick()
        note = seal_note("demo", note_recipients(log.trust, season.now))
        act = Act(authority, route_incident.id, what, "secrecy-chen", season.now, note, key)
        log.act(act.sign(officer), season.now)
    # 3. 29 copies come back of 30: incident, paper compromised, backup offered.
    _seal(season, "BR-COUNT", "PAPER-BR-3", start)
    _move(season, Kind.DISPATCH, "BR-COUNT", "print-qian", "courier-sun", BREACH_SEALS)
    _move(season, Kind.HANDOVER, "BR-COUNT", "courier-sun", "courier-li", BREACH_SEALS)
    _move(
        season,
        Kind.RECEIVE,
        "BR-COUNT",
        "courier-li",
        "custodian-zhou",
        BREACH_SEALS,
        custodian2="custodian-wu",
    )
    season.now = max(season.now, start + timedelta(minutes=1))
    for kind, body in (
        (Kind.OPEN, {"seals": BREACH_SEALS}),
        (Kind.DISTRIBUTE, {"copies": 30}),
        (Kind.RECOVER, {"copies": 29}),
    ):
        season.submit(
            season.event(
                kind, ["BR-COUNT"], actors=EXAMINERS, signers=list(EXAMINERS.values()), body=body
            )
        )
    new = [i for i in list_incidents(log.engine) if i.id not in before]
    return write_reports(
        log, [i.id for i in new], out_dir / "incidents", zone=season.home.time_zone
    )
