"""Logins, and what a read route needs to ask the access policy (``custody.access``).

A read route of personal data does three things, in this order:

    p = principal                                   # a dependency: None without a login
    facts = package_facts(service, package_id)      # what the policy judges
    policy.require(policy.may_read_package(p, facts), p, f"package {package_id}")
    record(service, p, "GET /v1/packages/{package_id}", facts_objects(facts))
    ... answer ...

Rules:
- ``Authorization: Bearer <token>`` is the one way to present a session; a malformed header or
  a token that does not stand answers 401 ``login_required`` (never a silent anonymous read).
- Each logged-in request counts against its key's rate limit.
- The read is recorded on the access log before the answer is built; a read that cannot be
  recorded is not answered (503).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api.backend import Backend
from api.deps import backend_of, error_responses
from api.guard import key_check, key_count, rate_check, read_body
from api.schemas import LOGIN_BODY, AccessRecordsOut, ChallengeOut, SessionOut
from crypto.dsse import parse_envelope
from crypto.encoding import format_time
from custody import access as policy
from custody.access import PackageFacts, Principal
from custody.errors import N_, LoginRequiredError, NotFoundError
from custody.events import Event, parse_event
from custody.rules import PackageState
from custody.sessions import issue_challenge

router = APIRouter()


async def principal(request: Request) -> Principal | None:
    """The logged-in person, or None; 401 for a token that does not stand.

    Runs on the event loop (no hop through the thread pool on every read): a token seen
    before is a dictionary look-up, the trust store's version one ``stat``, the key's rate
    one upsert on the shared counters (as the per-address rate in ``api.guard.Guard``). Only
    a trust store that must be reloaded or recounted is read in the thread pool."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise LoginRequiredError(N_("the Authorization header must be 'Bearer <session token>'"))
    service = backend_of(request)
    trust = service.current_trust()
    if trust is None:  # a reload or a recount: off the event loop
        trust = await run_in_threadpool(service.trust)
    p = service.sessions.principal_of(token.strip(), trust, service.now())
    rate_check(request, service.settings.rate_per_key, "key", p.key_id)
    return p


Viewer = Annotated[Principal | None, Depends(principal)]


# -- the facts the policy judges -------------------------------------------------------------


SEAL_CACHE = 100_000  # packages whose seal facts one process keeps (they never change)


def _seal_facts(
    service: Backend, package_id: str, history: list[int]
) -> tuple[str, str, tuple[str, ...]]:
    """The exam, destination site and sealer of a package, from its first event (a seal
    event is immutable: read once per process)."""
    held = service.seal_facts.get(package_id)
    if held is not None:
        return held
    if not history:
        raise NotFoundError(N_("no package {package!r} on this log"), package=package_id)
    facts = policy.seal_facts(parse_event(service.log.entry(history[0]).payload))
    if len(service.seal_facts) >= SEAL_CACHE:
        service.seal_facts.clear()
    service.seal_facts[package_id] = facts
    return facts


@dataclass(frozen=True)
class PackageView:
    """A package as read once for a request: the policy's facts, its state and history."""

    facts: PackageFacts
    state: PackageState
    history: list[int]


def package_view(service: Backend, package_id: str) -> PackageView:
    """Read a package once (404 if the log has none of that id) with the facts the policy
    judges; the route answers from the same state and history."""
    state, history = service.log.package_state_and_history(package_id)
    exam, site, sealers = _seal_facts(service, package_id, history)
    people = [*state.route, state.holder, *sealers]
    facts = PackageFacts.build(package_id, exam=exam or state.exam, site=site, people=people)
    return PackageView(facts, state, history)


def package_facts(service: Backend, package_id: str) -> PackageFacts:
    """What the policy needs of a package (404 if the log has none of that id)."""
    return package_view(service, package_id).facts


def event_facts(service: Backend, event: Event) -> list[PackageFacts]:
    """The facts of every package an event names (a package not on the log is skipped)."""
    out = []
    for package_id in event.packages:
        try:
            out.append(package_facts(service, package_id))
        except NotFoundError:
            continue
    return out


package_objects = policy.package_objects  # what a read of a package names on the access log


def record(service: Backend, p: Principal, route: str, objects: list[str]) -> None:
    service.access.record(p, route, objects, service.now())


# -- login -----------------------------------------------------------------------------------


def origin_of(request: Request, service: Backend) -> str:
    """The origin logins are bound to: the configured one, else the one the client called."""
    if service.settings.public_origin:
        return service.settings.public_origin
    return f"{request.url.scheme}://{request.url.netloc}"


@router.post(
    "/v1/login/challenge",
    tags=["login"],
    response_model=ChallengeOut,
    responses=error_responses(429, 503),
)
def login_challenge(request: Request) -> dict[str, str]:
    """A fresh login challenge (single use, short-lived), bound to this service's origin."""
    service = backend_of(request)
    challenge = issue_challenge(
        service.home.engine,
        origin_of(request, service),
        service.now(),
        timedelta(seconds=service.settings.challenge_seconds),
    )
    return challenge.as_dict()


@router.post(
    "/v1/login",
    tags=["login"],
    response_model=SessionOut,
    openapi_extra=LOGIN_BODY,
    responses=error_responses(400, 401, 408, 413, 415, 422, 429),
)
async def login(request: Request) -> JSONResponse:
    """Exchange a login statement (the challenge, signed by your enrolled key) for a session
    token: ``Authorization: Bearer <token>`` on every read that needs a login."""
    service = backend_of(request)
    body = await read_body(
        request, service.settings.max_login_body, "login statement", accept=("application/json",)
    )
    statement = parse_envelope(body, what="login statement")
    # refused if the key is over its rate; counted once the login succeeded (a stranger's
    # statement naming the key spends nothing of it: api.guard.key_check)
    key_check(request, [sig.keyid for sig in statement.signatures[:1]])
    origin = origin_of(request, service)

    def run() -> tuple[str, Principal, Any]:
        return service.sessions.login(
            service.home.engine, statement, service.trust(), origin=origin, now=service.now()
        )

    token, p, expires = await run_in_threadpool(run)
    key_count(request, [p.key_id])
    return JSONResponse(
        {
            "token": token,
            "token_type": "Bearer",
            "expires_at": format_time(expires),
            "subject": p.subject,
            "key_id": p.key_id,
            "roles": sorted(r.value for r in p.roles),
        }
    )


# -- the access log --------------------------------------------------------------------------


@router.get(
    "/v1/access",
    tags=["access"],
    response_model=AccessRecordsOut,
    responses=error_responses(400, 401, 403, 422),
)
def access_records(
    request: Request,
    p: Viewer,
    object: Annotated[
        str | None,
        Query(max_length=255, description="package:ID, person:ID, entry:N ..."),
    ] = None,
    who: Annotated[
        str | None, Query(max_length=128, description="Reads made by this person.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Who read whose data, and when: the access log's records naming ``object`` or made by
    ``who`` (secrecy officers and auditors). This read is itself recorded."""
    service = backend_of(request)
    viewer = policy.require(policy.may_read_access_log(p), p, "the access log")
    named = [f"access:{object}"] if object else []
    record(service, viewer, "GET /v1/access", [*named, *([f"person:{who}"] if who else [])])
    entries = service.access.who_read(obj=object, who=who, limit=limit)
    return {"size": service.access.size(), "records": [e.as_dict() for e in entries]}


@router.get(
    "/v1/access/checkpoint",
    tags=["access"],
    responses={200: {"content": {"text/plain": {}}}, **error_responses(401, 403, 404)},
)
def access_checkpoint(request: Request, p: Viewer) -> PlainTextResponse:
    """The access log's signed checkpoint (its own origin, the log key)."""
    service = backend_of(request)
    policy.require(policy.may_read_access_log(p), p, "the access log")
    return PlainTextResponse(service.access.checkpoint(service.now()))
