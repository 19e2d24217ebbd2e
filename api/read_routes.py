"""The read routes of custody: packages (paged list, timeline) and papers (paged list, one).

Rules:
- Every route gets its data through ``reader(WHAT)``, the one door of the read side: it names
  what the route reads and asks the access policy (``custody.access``) there: a login for
  every read; the lists and the papers only for those who see everything (and a proposer's
  own papers for a proposer); a timeline judged
  by its package's facts, as ``GET /v1/packages/{id}`` is. Every read is on the access log
  (the packages, papers and people it showed) before the answer is built.
- A route is a coroutine whose database part (read, judge, record) runs in one hop through
  the thread pool; the login and ``reader`` run on the event loop.
- The routes answer what the CLI's `package list|timeline` and `paper list|show` print with
  ``--json`` (``custody.views``); they decide nothing themselves and raise no HTTP error.
- Lists are paged: ``offset`` (0..) and ``limit`` (1..500, default 50); the answer carries
  ``total`` and ``next_offset`` (null on the last page).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.access import Viewer, package_objects, package_view, record
from api.backend import Backend
from api.routes import PACKAGE_ID_PATTERN
from api.schemas import ErrorBody
from crypto.vocabulary import check_id
from custody import access as policy
from custody.access import Principal
from custody.views import MAX_PAGE, PackageFilter, Views

router = APIRouter()

Read = Literal["packages", "package_timeline", "papers", "paper"]
READS: dict[str, str] = {
    "packages": "the list of packages",
    "package_timeline": "a package's timeline",
    "papers": "the list of papers",
    "paper": "a paper and its acts",
}


@dataclass(frozen=True)
class Reader:
    """What a read route works with: the views, who reads, and the service (to record)."""

    views: Views
    viewer: Principal
    service: Backend

    def record(self, route: str, objects: list[str]) -> None:
        """The read on the access log, before the answer is built."""
        record(self.service, self.viewer, route, objects)


def reader(what: Read) -> Callable[[Request, Principal | None], Awaitable[Reader]]:
    """The one door of the read side: a login is needed for every read here; the lists and
    the papers (names of every holder and signer) are for those who see everything (the
    policy's ``sees_all``); a timeline is judged package by package in its route."""

    async def read(request: Request, p: Viewer) -> Reader:
        service = cast(Backend, request.app.state.backend)
        allowed = p is not None and (
            what == "package_timeline"
            or p.sees_all
            or (what == "papers" and policy.may_read_papers(p))
        )
        viewer = policy.require(allowed, p, READS[what])
        if service.current_trust() is None:  # enrolments and revocations made since count
            await run_in_threadpool(service.trust)  # for the marks (a reload: off the loop)
        return Reader(Views(service.home, service.log), viewer, service)

    read.__name__ = f"read_{what}"
    return read


def _now(request: Request) -> Any:
    return cast(Backend, request.app.state.backend).now()


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody} for s in statuses}


class PageOut(BaseModel):
    items: list[dict[str, Any]] = Field(description="This page's items.")
    total: int = Field(description="How many match in all.")
    offset: int
    limit: int
    next_offset: int | None = Field(description="Where the next page starts; null on the last.")


class TimelineOut(BaseModel):
    package_id: str
    events: list[dict[str, Any]] = Field(
        description="Every event naming the package, in log order: index, statement_id, kind, "
        "time, received (UTC), place, signers [{slot, person, name, key_id, ok}], body, "
        "findings, and the marks verified / signatures_ok / included / problems, checked again "
        "for this answer."
    )


class PaperOut(BaseModel):
    ref: str
    paper_id: str
    version: int
    exam: str
    position: str
    role: str
    backup_of: str | None
    classification: str
    status: str
    commitment: str
    keys_held: int
    proposed_at: str
    acts: list[dict[str, Any]] = Field(
        description="The proposal and every act: kind, at, signers [{person, name, key_id}], "
        "signatures_ok, log_index (the log entry that recorded it)."
    )


Offset = Annotated[int, Query(ge=0, le=(1 << 63) - 1, description="Skip this many.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many.")]
PackageId = Annotated[str, Path(pattern=PACKAGE_ID_PATTERN)]


@router.get(
    "/v1/packages", response_model=PageOut, tags=["packages"], responses=_errors(400, 401, 403, 422)
)
async def packages(
    request: Request,
    read: Annotated[Reader, Depends(reader("packages"))],
    exam: str | None = None,
    state: Annotated[str | None, Query(description="sealed, in_transit, stored, ...")] = None,
    holder: str | None = None,
    site: Annotated[str | None, Query(description="The destination exam site.")] = None,
    overdue: Annotated[bool, Query(description="Only overdue packages.")] = False,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Packages with their state, holder and destination, in id order, paged."""
    filters = PackageFilter(exam=exam, status=state, holder=holder, site=site, overdue=overdue)

    def run() -> dict[str, Any]:
        page = read.views.packages(filters, now=_now(request), offset=offset, limit=limit)
        objects = [f"package:{i['package_id']}" for i in page.items]
        objects += sorted({f"person:{i['holder']}" for i in page.items if i["holder"]})
        read.record("GET /v1/packages", objects)
        return page.as_dict()

    return await run_in_threadpool(run)


@router.get(
    "/v1/packages/{package_id}/timeline",
    response_model=TimelineOut,
    tags=["packages"],
    responses=_errors(401, 403, 404, 422),
)
async def package_timeline(
    package_id: PackageId, read: Annotated[Reader, Depends(reader("package_timeline"))]
) -> dict[str, Any]:
    """Every event of a package, its signers' names and verification marks.

    Needs a login whose roles and assignments cover the package; the read is recorded."""
    check_id(package_id, "package id")

    def run() -> dict[str, Any]:
        facts = package_view(read.service, package_id).facts
        policy.require(
            policy.may_read_package(read.viewer, facts), read.viewer, f"package {package_id}"
        )
        events = read.views.timeline(package_id)
        signers = sorted({f"person:{s.person}" for e in events for s in e.signers})
        objects = package_objects(facts)
        read.record(
            "GET /v1/packages/{package_id}/timeline",
            [*objects, *(s for s in signers if s not in objects)],
        )
        return {"package_id": package_id, "events": [e.as_dict() for e in events]}

    return await run_in_threadpool(run)


@router.get("/v1/papers", response_model=PageOut, tags=["papers"], responses=_errors(401, 403, 422))
async def papers(
    read: Annotated[Reader, Depends(reader("papers"))],
    exam: str | None = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Papers with their status and how many sealed keys are held, paged. A proposer (who
    does not see everything) gets the papers they proposed."""
    mine = None if read.viewer.sees_all else read.viewer.subject

    def run() -> dict[str, Any]:
        page = read.views.papers(exam=exam, offset=offset, limit=limit, proposer=mine)
        read.record("GET /v1/papers", [f"paper:{i['ref']}" for i in page.items])
        return page.as_dict()

    return await run_in_threadpool(run)


@router.get(
    "/v1/papers/{paper}",
    response_model=PaperOut,
    tags=["papers"],
    responses=_errors(400, 401, 403, 404, 422),
)
async def paper(
    paper: Annotated[str, Path(max_length=200, description="Paper id (newest) or ID@vN.")],
    read: Annotated[Reader, Depends(reader("paper"))],
) -> dict[str, Any]:
    """One paper with every act on it, each act's signers verified again."""

    def run() -> dict[str, Any]:
        shown = read.views.paper(paper)
        people = sorted({f"person:{s['person']}" for a in shown["acts"] for s in a["signers"]})
        read.record("GET /v1/papers/{paper}", [f"paper:{shown['ref']}", *people])
        return shown

    return await run_in_threadpool(run)
