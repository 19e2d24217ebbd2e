"""The read routes of custody: packages (paged list, timeline) and papers (paged list, one).

Rules:
- Every route gets its data through ``reader(WHAT)``, the one door of the read side: it names
  what the route reads (``packages``, ``package_timeline``, ``papers``, ``paper``), so an
  access policy decides there, once, for every route (one line per route names its read).
- The routes answer what the CLI's `package list|timeline` and `paper list|show` print with
  ``--json`` (``custody.views``); they decide nothing themselves and raise no HTTP error.
- Lists are paged: ``offset`` (0..) and ``limit`` (1..500, default 50); the answer carries
  ``total`` and ``next_offset`` (null on the last page).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from api.backend import Backend
from api.routes import PACKAGE_ID_PATTERN
from api.schemas import ErrorBody
from crypto.vocabulary import check_id
from custody.views import MAX_PAGE, PackageFilter, Views

router = APIRouter()

Read = Literal["packages", "package_timeline", "papers", "paper"]


def reader(what: Read) -> Callable[[Request], Views]:
    """The read side for a route that reads ``what``: the one place every read passes."""

    def read(request: Request) -> Views:
        backend = cast(Backend, request.app.state.backend)
        backend.trust()  # enrolments and revocations made since count for the marks
        return Views(backend.home, backend.log)

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


@router.get("/v1/packages", response_model=PageOut, tags=["packages"], responses=_errors(422))
def packages(
    request: Request,
    views: Annotated[Views, Depends(reader("packages"))],
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
    return views.packages(filters, now=_now(request), offset=offset, limit=limit).as_dict()


@router.get(
    "/v1/packages/{package_id}/timeline",
    response_model=TimelineOut,
    tags=["packages"],
    responses=_errors(404, 422),
)
def package_timeline(
    package_id: PackageId, views: Annotated[Views, Depends(reader("package_timeline"))]
) -> dict[str, Any]:
    """Every event of a package, its signers' names and verification marks."""
    check_id(package_id, "package id")
    return {"package_id": package_id, "events": [e.as_dict() for e in views.timeline(package_id)]}


@router.get("/v1/papers", response_model=PageOut, tags=["papers"], responses=_errors(422))
def papers(
    views: Annotated[Views, Depends(reader("papers"))],
    exam: str | None = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Papers with their status and how many sealed keys are held, paged."""
    return views.papers(exam=exam, offset=offset, limit=limit).as_dict()


@router.get(
    "/v1/papers/{paper}", response_model=PaperOut, tags=["papers"], responses=_errors(404, 422)
)
def paper(
    paper: Annotated[str, Path(max_length=200, description="Paper id (newest) or ID@vN.")],
    views: Annotated[Views, Depends(reader("paper"))],
) -> dict[str, Any]:
    """One paper with every act on it, each act's signers verified again."""
    return views.paper(paper)
