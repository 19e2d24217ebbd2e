"""The incident routes: the secrecy officer's queue (paged list, one incident) and the signed
acts (acknowledge, contain, resolve, unblock) sent from the console.

Rules:
- Reading incidents needs a login the access policy allows (``custody.access``:
  ``may_read_incidents``, secrecy officers and auditors); every read is recorded on the access
  log (the incidents shown and the people their acts name) before the answer is built.
- ``POST /v1/incidents/{id}/acts`` needs no session: the act is a statement signed by the
  acting person (``custody.incidents.acts``, the format the CLI's `incident ack|contain|
  resolve|unblock` sign), judged by the incident policy as the CLI's acts are: the person's
  role at the incident's level, the status it may follow, no blocked or suspect signer, dated
  within the service's skew of the server's clock. 201 with the incident as it now stands and
  the log statement that records the act.
- The routes decide nothing themselves and raise no HTTP error: refusals are ``CustodyError``s
  (``api.errors`` gives each its status and stable code).
- Lists are paged like ``GET /v1/packages``: ``offset``, ``limit`` (1..500, default 50),
  ``total`` and ``next_offset`` (null on the last page); newest incident first.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.access import Viewer, record
from api.backend import Backend
from api.deps import backend_of, error_responses
from api.errors import ReadOnlyError
from api.guard import key_check, key_count, read_body
from api.read_routes import PageOut
from crypto.dsse import Envelope, parse_envelope
from crypto.vocabulary import MAX_ID
from custody import access as policy
from custody.access import Principal
from custody.errors import N_, FormatError
from custody.incidents.acts import ACT_TYPE, ACTS, parse_act
from custody.incidents.desk import (
    WatchedLog,
    get_incident,
    incident_acts,
    list_incidents,
    page_incidents,
)
from custody.incidents.policy import (
    Incident,
    IncidentStatus,
    Level,
    Severity,
    act_roles,
)
from custody.service import home_policy
from custody.views import MAX_PAGE

router = APIRouter()

INCIDENT_ID_PATTERN = rf"^[\w.\-]{{1,{MAX_ID}}}$"
MAX_ACT_BODY = 64 * 1024  # an act: a 4000-character note and a few signatures fit many times
MAX_ACT_SIGNATURES = 2  # an act is signed by the acting person (one key; room for a second)
JSON_TYPES = ("application/json", "")

ACT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A DSSE envelope of payload type "
        f"{ACT_TYPE} (docs/formats.md 'Incident act'), signed by the acting person.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _ladder(service: Backend) -> tuple[Level, ...]:
    if isinstance(service.log, WatchedLog):
        return tuple(service.log.desk.policy.ladder)
    return tuple(home_policy(service.home).ladder)


def _reader(request: Request, p: Principal | None) -> tuple[Backend, Principal]:
    service = backend_of(request)
    viewer = policy.require(policy.may_read_incidents(p), p, "incidents")
    return service, viewer


def ladder_out(ladder: tuple[Level, ...]) -> list[dict[str, Any]]:
    """The escalation ladder as the routes show it: each rung's name, title, deadline and
    the roles that may acknowledge there."""
    return [
        {
            "level": n,
            "name": lv.name,
            "title": lv.title,
            "ack_within_seconds": int(lv.ack_within.total_seconds()),
            "ack_roles": sorted(r.value for r in lv.ack_roles),
        }
        for n, lv in enumerate(ladder)
    ]


def next_acts(incident: Incident, ladder: tuple[Level, ...]) -> dict[str, list[str]]:
    """The acts that may follow the incident's status now, each with the roles that may sign
    it (``unblock`` only while a key it blocked is still blocked)."""
    out: dict[str, list[str]] = {}
    status = incident.status
    containment = incident.containment
    unblocked = set(containment.get("unblocked_keys") or [])
    still_blocked = [k for k in containment.get("blocked_keys", []) if k not in unblocked]
    for act in ACTS:
        if act == "acknowledge" and status != IncidentStatus.OPEN:
            continue
        if act in ("contain", "resolve") and status == IncidentStatus.RESOLVED:
            continue
        if act == "unblock" and not still_blocked:
            continue
        out[act] = sorted(r.value for r in act_roles(act, incident.level, ladder))
    return out


def incident_out(incident: Incident, ladder: tuple[Level, ...]) -> dict[str, Any]:
    return {**incident.as_dict(ladder), "next_acts": next_acts(incident, ladder)}


class IncidentOut(BaseModel):
    """One incident: what the CLI's `incident show --json` prints, with the ladder."""

    id: str
    kind: str
    severity: str
    status: str
    subject: str
    package: str | None
    paper: str | None
    opened_at: str
    updated_at: str
    level: int
    level_name: str
    ack_deadline: str | None = Field(description="Acknowledge by (UTC); null once handled.")
    detail: str
    detail_zh: str = Field(description="The detail in Chinese (the same sentence).")
    scope: dict[str, Any] = Field(
        description="packages, papers, exams, positions, backup_paper, backup_packages."
    )
    evidence: list[dict[str, Any]]
    containment: dict[str, Any] = Field(
        description="frozen, compromised, blocked_keys, backup, unblocked_keys (after one)."
    )
    statements: list[str] = Field(description="The log statements about it, oldest first.")
    next_acts: dict[str, list[str]] = Field(
        description="The acts that may follow its status now, each with the roles that sign it."
    )
    ladder: list[dict[str, Any]] = Field(
        description="Every rung: level, name, title, ack_within_seconds, ack_roles."
    )
    acts: list[dict[str, Any]] = Field(
        description="Acts recorded on it, in order: act, person, time, statement_id."
    )


class ActOut(BaseModel):
    incident: dict[str, Any] = Field(description="The incident as it stands after the act.")
    act: str
    person: str
    statement_id: str = Field(description="The log statement that records the act.")
    log_size: int


Offset = Annotated[int, Query(ge=0, le=(1 << 63) - 1, description="Skip this many.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many.")]
IncidentId = Annotated[str, Path(pattern=INCIDENT_ID_PATTERN, description="e.g. INC-00001")]
StatusQ = Annotated[
    IncidentStatus | None, Query(description="open, acknowledged, contained, resolved")
]
SeverityQ = Annotated[Severity | None, Query(description="low, medium, high, critical")]
ExamQ = Annotated[
    str | None, Query(max_length=MAX_ID, description="Incidents whose scope names this exam.")
]


@router.get(
    "/v1/incidents",
    response_model=PageOut,
    tags=["incidents"],
    responses=error_responses(401, 403, 422),
)
async def incidents(
    request: Request,
    p: Viewer,
    status: StatusQ = None,
    severity: SeverityQ = None,
    exam: ExamQ = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Incidents, newest first, paged: status, severity, level and its deadline, scope and
    containment (secrecy officers and auditors; the read is recorded)."""
    service, viewer = _reader(request, p)

    def run() -> dict[str, Any]:  # the database's part, in one hop through the thread pool
        ladder = _ladder(service)
        wanted_status = status.value if status else None
        wanted_severity = severity.value if severity else None
        if exam is None:  # paged by the database
            page, total = page_incidents(
                service.home.engine,
                status=wanted_status,
                severity=wanted_severity,
                offset=offset,
                limit=limit,
            )
        else:  # the scope's exams are inside its JSON: filtered here
            found = [
                i
                for i in list_incidents(service.home.engine, status=wanted_status)
                if (severity is None or i.severity == severity) and exam in i.scope.get("exams", [])
            ]
            found.reverse()  # newest first: ids are issued in order
            page, total = found[offset : offset + limit], len(found)
        record(service, viewer, "GET /v1/incidents", [f"incident:{i.id}" for i in page])
        end = offset + len(page)
        return {
            "items": [incident_out(i, ladder) for i in page],
            "total": total,
            "offset": offset,
            "limit": limit,
            "next_offset": end if end < total else None,
        }

    return await run_in_threadpool(run)


@router.get(
    "/v1/incidents/{incident_id}",
    response_model=IncidentOut,
    tags=["incidents"],
    responses=error_responses(401, 403, 404, 422),
)
def incident(request: Request, incident_id: IncidentId, p: Viewer) -> dict[str, Any]:
    """One incident with its ladder, deadline, scope, containment and the acts on it."""
    service, viewer = _reader(request, p)
    ladder = _ladder(service)
    found = get_incident(service.home.engine, incident_id)
    acts = incident_acts(service.home.engine, incident_id)
    people = sorted({f"person:{a['person']}" for a in acts})
    record(service, viewer, "GET /v1/incidents/{incident_id}", [f"incident:{found.id}", *people])
    return {**incident_out(found, ladder), "ladder": ladder_out(ladder), "acts": acts}


def _check_act_envelope(env: Envelope) -> Envelope:
    if env.payload_type != ACT_TYPE:
        raise FormatError(N_("not an incident act: payload type {type!r}"), type=env.payload_type)
    if not env.signatures:
        raise FormatError(N_("an incident act must be signed by the acting person"))
    if len(env.signatures) > MAX_ACT_SIGNATURES:
        raise FormatError(
            N_("an incident act carries {n} signatures; at most {most}"),
            n=len(env.signatures),
            most=MAX_ACT_SIGNATURES,
        )
    for n, sig in enumerate(env.signatures):
        if not sig.keyid:
            raise FormatError(
                N_("incident act: signature {n} has no key id hint"),
                hint=N_("set each signature's keyid to its signing key's id"),
                n=n,
            )
    return env


@router.post(
    "/v1/incidents/{incident_id}/acts",
    tags=["incidents"],
    status_code=201,
    openapi_extra=ACT_BODY,
    responses={
        201: {"model": ActOut, "description": "Recorded, and on the log."},
        **error_responses(400, 403, 404, 408, 409, 413, 415, 422, 423, 429, 503),
    },
)
async def add_act(request: Request, incident_id: IncidentId) -> JSONResponse:
    """Record a person's signed act on an incident: acknowledge, contain, resolve or unblock
    (docs/formats.md 'Incident act'). The act is judged as the CLI's are; its statement goes on
    the log. A replay of a recorded act answers 409 ``conflict``."""
    service = backend_of(request)
    if not service.writable:
        raise ReadOnlyError(
            N_("this service was started without the log key: it records no act"),
            hint=N_("restart it with the log key's passphrase to record incident acts"),
        )
    body = await read_body(request, MAX_ACT_BODY, "incident act", accept=JSON_TYPES)
    env = _check_act_envelope(parse_envelope(body, what="incident act"))
    key_check(request, [sig.keyid for sig in env.signatures])  # counted once recorded
    act = parse_act(env)
    if act.incident != incident_id:
        raise FormatError(
            N_("the act names incident {named!r}, not {route!r} (the route's)"),
            named=act.incident,
            route=incident_id,
        )
    log = service.log
    if not isinstance(log, WatchedLog):  # a writable service always holds the desk
        raise ReadOnlyError(N_("this service holds no incident desk"))

    def run() -> tuple[Incident, int]:
        service.trust()  # enrolments and revocations made since count
        got = log.act(env, service.now())
        return got, log.size()

    done, size = await run_in_threadpool(run)
    key_count(request, [sig.keyid for sig in env.signatures])
    ladder = _ladder(service)
    return JSONResponse(
        {
            "incident": incident_out(done, ladder),
            "act": act.act,
            "person": act.person,
            "statement_id": done.statements[-1],
            "log_size": size,
        },
        status_code=201,
    )


__all__ = ["INCIDENT_ID_PATTERN", "ladder_out", "next_acts", "router"]
