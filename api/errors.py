"""The one place where failures become HTTP answers.

Rules:
- Every ``CustodyError`` answers its class's ``http_status`` with the body
  ``{"error": code, "message": ..., "hint"?: ..., "message_zh"?: ..., "hint_zh"?: ...}``
  (English text; the Chinese too unless ``Accept-Language`` prefers English, see
  ``custody.i18n.negotiate``); routes never raise HTTP errors inline.
- Request validation (a query parameter that is not an integer, a path that breaks its pattern)
  answers 422 with the same shape and the stable code ``invalid_request``.
- Unknown routes and methods answer 404 / 405 with the same shape.
- A ``StorageError`` (an outage, a full or read-only disk, a damaged database) answers 503
  with ``Retry-After``: it is the service's trouble, not the client's, and retrying is safe.
- Anything else is a bug: it is logged (exception class and stack frames only: no message, no
  request body, so no secret can reach the log) and answers 500 ``internal``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from custody.errors import N_, CustodyError, StorageError, UsageError
from custody.i18n import error_body, gettext_for, negotiate

log = logging.getLogger("custody.api")


class ReadOnlyError(StorageError):
    """The service was started without the log key: it answers reads only."""

    code = "read_only"
    http_status = 503


class TooLargeError(UsageError):
    """A request body beyond the route's limit (nothing of it was processed)."""

    code = "too_large"
    http_status = 413


class InvalidRequestError(UsageError):
    """A query or path parameter that does not fit the route's declared schema."""

    code = "invalid_request"
    http_status = 422


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


RETRY_AFTER_SECONDS = 5  # a storage fault: the client retries (the same statement is idempotent)


def request_language(request: Request) -> str:
    """``zh`` or ``en``: the language the request's ``Accept-Language`` asks for (zh if none)."""
    return negotiate(request.headers.get("accept-language"))


def error_response(error: CustodyError, lang: str = "zh") -> JSONResponse:
    retry = getattr(error, "retry_after", None)
    if retry is None and isinstance(error, StorageError):
        retry = RETRY_AFTER_SECONDS  # an outage: the client retries (idempotent)
    headers = {"Retry-After": str(retry)} if retry is not None else None
    if error.http_status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="custody"'}
    headers = {**(headers or {}), "Vary": "Accept-Language"}
    return JSONResponse(error_body(error, lang), status_code=error.http_status, headers=headers)


def _where(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def describe_validation(exc: RequestValidationError) -> str:
    """One line per broken field; pydantic's ``msg`` never quotes the input value."""
    parts = [f"{_where(err.get('loc', ()))}: {err.get('msg', 'invalid')}" for err in exc.errors()]
    return "; ".join(parts) or "-"


async def _custody_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CustodyError)
    return error_response(exc, request_language(request))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    error = InvalidRequestError(
        N_("the request does not match the route's schema: {problems}"),
        problems=describe_validation(exc),
    )
    return error_response(error, request_language(request))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http")
    known = {404: N_("no such route"), 405: N_("Method Not Allowed")}
    message = known.get(exc.status_code, str(exc.detail))
    body = {"error": code, "message": message}
    if request_language(request) == "zh":
        body["message_zh"] = gettext_for("zh")(message)
    headers = {**(exc.headers or {}), "Vary": "Accept-Language"}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


class CatchAll:
    """Outermost guard: a bug answers 500 ``internal`` (if nothing was sent yet) and is logged.

    It sits inside Starlette's own error middleware so that the exception is not re-raised to
    the server (whose log line would carry the exception's message).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as exc:  # noqa: BLE001 - the last line of defence, by design
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error(
                "internal error %s on %s %s\n%s",
                type(exc).__name__,
                scope.get("method", "?"),
                scope.get("path", "?"),
                frames,
            )
            if started:
                return
            response = JSONResponse(
                {"error": "internal", "message": "internal error; it was logged"},
                status_code=500,
            )
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(CustodyError, _custody_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(CatchAll)
