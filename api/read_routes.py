"""The read routes of custody: packages (paged list, timeline), papers (paged list, one) and
custody reports.

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
- ``GET /v1/reports/custody`` (a package, an exam, or a period ``from``/``to`` with or
  without an exam; ``format`` pdf or json) is for secrecy officers and auditors
  (``may_read_custody_reports``); it names every package and person it shows on the access log
  before the answer is rendered. A scope that does not fit (none, several, a half or empty
  period, a malformed time) answers 422 ``invalid_request``; an unknown package or exam 404.
- Lists are paged: ``offset`` (0..) and ``limit`` (1..500, default 50); the answer carries
  ``total`` and ``next_offset`` (null on the last page).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.access import Viewer, package_objects, package_view, record
from api.backend import Backend
from api.deps import error_responses, path_id
from api.errors import InvalidRequestError
from api.routes import PACKAGE_ID_PATTERN
from crypto.encoding import parse_time
from crypto.vocabulary import check_id
from custody import access as policy
from custody.access import Principal
from custody.custody_report import (
    MAX_TIMELINES,
    build_custody_report,
    custody_report_json,
    render_custody_pdf,
    report_scope,
)
from custody.errors import FormatError, UsageError
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
    "/v1/packages",
    response_model=PageOut,
    tags=["packages"],
    responses=error_responses(400, 401, 403, 422),
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
    responses=error_responses(401, 403, 404, 422),
)
async def package_timeline(
    package_id: PackageId, read: Annotated[Reader, Depends(reader("package_timeline"))]
) -> dict[str, Any]:
    """Every event of a package, its signers' names and verification marks.

    Needs a login whose roles and assignments cover the package; the read is recorded."""
    path_id(package_id, "package id")

    def run() -> dict[str, Any]:
        view = package_view(read.service, package_id)
        facts = view.facts
        policy.require(
            policy.may_read_package(read.viewer, facts), read.viewer, f"package {package_id}"
        )
        events = read.views.timeline(package_id, history=view.history)
        signers = sorted({f"person:{s.person}" for e in events for s in e.signers})
        objects = package_objects(facts)
        read.record(
            "GET /v1/packages/{package_id}/timeline",
            [*objects, *(s for s in signers if s not in objects)],
        )
        return {"package_id": package_id, "events": [e.as_dict() for e in events]}

    return await run_in_threadpool(run)


@router.get(
    "/v1/papers", response_model=PageOut, tags=["papers"], responses=error_responses(401, 403, 422)
)
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
    responses=error_responses(400, 401, 403, 404, 422),
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


ReportFormat = Literal["pdf", "json"]


class CustodyReportOut(BaseModel):
    """``custody-report/v1`` (docs/formats.md, "Custody reports")."""

    type: Literal["custody-report/v1"]
    authority: str
    scope: dict[str, Any] = Field(
        description="kind (package, exam, period), package, exam, from, to."
    )
    generated_at: str
    checkpoint: dict[str, Any] = Field(description="The signed checkpoint it rests on: size, root.")
    statements: int = Field(description="Statements listed, each verified again for this report.")
    verified: int = Field(description="How many of them passed every check.")
    packages: list[dict[str, Any]]
    timelines_shown: int
    max_timelines: int
    timelines: list[dict[str, Any]]
    incidents: list[dict[str, Any]]


def _time_param(value: str | None, what: str) -> datetime | None:
    return None if value is None else parse_time(value, what=what)


@router.get(
    "/v1/reports/custody",
    tags=["reports"],
    response_model=CustodyReportOut,
    responses={
        200: {"content": {"application/pdf": {}}},
        **error_responses(401, 403, 404, 422),
    },
)
def custody_report(
    request: Request,
    p: Viewer,
    package: Annotated[
        str | None, Query(pattern=PACKAGE_ID_PATTERN, description="One package.")
    ] = None,
    exam: Annotated[
        str | None, Query(max_length=200, description="One exam (with from/to: only its packages).")
    ] = None,
    start: Annotated[
        str | None,
        Query(
            alias="from", max_length=20, description="Period start, the log's receive time (UTC)."
        ),
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", max_length=20, description="Period end, excluded (UTC).")
    ] = None,
    fmt: Annotated[
        ReportFormat, Query(alias="format", description="pdf (default) or json.")
    ] = "pdf",
    max_timelines: Annotated[
        int, Query(ge=0, le=MAX_TIMELINES, description="Timelines shown at most.")
    ] = MAX_TIMELINES,
) -> Any:
    """A custody report for a package, an exam or a period [from, to): the packages, their
    timelines with every statement verified again, the incidents touching them; PDF (Chinese
    first) or JSON. Secrecy officers and auditors; recorded on the access log (it names people).
    """
    viewer = policy.require(policy.may_read_custody_reports(p), p, "a custody report")
    service = cast(Backend, request.app.state.backend)
    try:
        if exam is not None:
            check_id(exam, "exam")
        scope = report_scope(
            package=package,
            exam=exam,
            start=_time_param(start, "from"),
            end=_time_param(end, "to"),
        )
    except (UsageError, FormatError) as e:  # a bad scope does not fit the route: 422
        raise InvalidRequestError(e.template, hint=e.hint_template, **e.params) from e
    service.trust()  # enrolments and revocations made since count for the marks
    views = Views(service.home, service.log)
    report = build_custody_report(views, scope, service.now(), max_timelines=max_timelines)
    objects = [f"package:{row['package_id']}" for row in report.packages]
    objects += [f"person:{person}" for person in report.people]
    record(service, viewer, "GET /v1/reports/custody", objects)
    if fmt == "json":
        return custody_report_json(report)
    data = render_custody_pdf(report, zone=service.home.time_zone)
    name = report.scope.package or report.scope.exam or "period"
    stamp = report.scope.start.strftime("%Y%m%dT%H%M%SZ") if report.scope.start else ""
    filename = "-".join(x for x in ("custody-report", name, stamp) if x) + ".pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
