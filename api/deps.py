"""What every route module asks of FastAPI the same way: the service it was built with, and
the documented error answers of a route (each an ``ErrorBody``)."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import Depends, Request

from api.backend import Backend
from api.schemas import ErrorBody


def backend_of(request: Request) -> Backend:
    """The service this app was built with."""
    return cast(Backend, request.app.state.backend)


async def backend(request: Request) -> Backend:
    """The service as a route's dependency (on the event loop: no hop through the thread pool)."""
    return backend_of(request)


Service = Annotated[Backend, Depends(backend)]


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's documented error statuses for the OpenAPI schema, each answered with an
    ``ErrorBody`` (schemathesis checks that no other status is seen)."""
    return {s: {"model": ErrorBody} for s in statuses}
