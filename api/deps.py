"""What every route module asks of FastAPI the same way: the service it was built with, and
the documented error answers of a route (each an ``ErrorBody``)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from api.backend import Backend
from api.errors import InvalidRequestError
from api.schemas import ErrorBody
from crypto.errors import FormatError
from crypto.vocabulary import check_id
from keys.trust import TrustStore


def backend_of(request: Request) -> Backend:
    """The service this app was built with."""
    return cast(Backend, request.app.state.backend)


async def backend(request: Request) -> Backend:
    """The service as a route's dependency (on the event loop: no hop through the thread pool)."""
    return backend_of(request)


Service = Annotated[Backend, Depends(backend)]


async def current_trust(service: Backend) -> TrustStore:
    """The service's trust store for a route on the event loop: the one held when it is known
    current (one ``stat``), else reloaded in the thread pool (an enrolment or a revocation
    was made: the reload reads the database, which must not stop the event loop)."""
    trust = service.current_trust()
    if trust is None:
        trust = await run_in_threadpool(service.trust)
    return trust


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's documented error statuses for the OpenAPI schema, each answered with an
    ``ErrorBody`` (schemathesis checks that no other status is seen)."""
    return {s: {"model": ErrorBody} for s in statuses}


def plain_route_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``error_responses`` for a route whose success is not JSON (``PlainTextResponse``):
    FastAPI would document its errors under the route's own media type, but an error is
    always the JSON ``ErrorBody``, and the schema says so."""
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {s: {"description": HTTPStatus(s).phrase, "content": body} for s in statuses}


def path_id(value: str, what: str) -> str:
    """An id from a route's path, by the one id rule (``crypto.vocabulary``). The route's
    pattern only approximates it (its ``\\w`` knows newer Unicode than Python's), so what the
    pattern admits and the rule refuses answers as every path parameter that does not fit:
    422 ``invalid_request``."""
    try:
        return check_id(value, what)
    except FormatError as e:
        raise InvalidRequestError(e.template, hint=e.hint_template, **e.params) from e
