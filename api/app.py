"""The HTTP API: an app factory over the same services the CLI calls; no rules of its own.

Rules:
- Nothing is built at import time: ``create_app(settings)`` opens the home and the log.
- Every ``CustodyError`` maps to its ``http_status`` and a stable body
  ``{"error": code, "message": ...}`` in one handler; routes never raise HTTP errors inline.
- Untrusted bodies are read as bytes and parsed by the project's own parsers (the one place
  that turns bytes into domain values); request bodies over 1 MiB are refused (413).
- Without the log key's passphrase the API is read-only: submissions answer 503.
- No input produces a 500: a genuine bug answers 500 with no detail and is logged without
  request data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from crypto.dsse import parse_envelope
from crypto.encoding import b64encode
from custody import identity
from custody.audit import trust_document
from custody.errors import CustodyError, FormatError, StorageError, UsageError
from custody.home import Home
from custody.log import AppendResult, CustodyLog
from custody.store.states import state_as_dict
from labels.payload import verify_label

MAX_BODY = 1 << 20
log = logging.getLogger("custody.api")


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Settings:
    home: Path
    log_passphrase: str | None = None
    clock: Callable[[], datetime] = field(default=_utcnow)


class _Service:
    """The opened home and log, shared by the routes of one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = Home(settings.home)
        trust = identity.load_trust(self.home)
        key = None
        if settings.log_passphrase:
            key = self.home.authority_key("log", settings.log_passphrase).signing
        self.log = CustodyLog(self.home.engine, trust, key)


def _error(e: CustodyError) -> JSONResponse:
    return JSONResponse(e.as_dict(), status_code=e.http_status)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise TooLargeError
    data = await request.body()
    if len(data) > MAX_BODY:
        raise TooLargeError
    return data


class TooLargeError(CustodyError):
    code = "too_large"
    http_status = 413

    def __init__(self) -> None:
        super().__init__(f"request bodies are limited to {MAX_BODY} bytes")


def _result(result: AppendResult) -> dict[str, Any]:
    return {
        "accepted": [r.as_dict() for r in result.receipts],
        "refused": [{"position": r.envelope_index, **r.error.as_dict()} for r in result.rejected],
    }


def create_app(settings: Settings) -> FastAPI:
    service = _Service(settings)
    app = FastAPI(
        title="custody",
        description="Provable custody of exam papers: the log, proofs and label checks.",
        version="1",
    )

    @app.exception_handler(CustodyError)
    async def custody_error(_request: Request, e: CustodyError) -> JSONResponse:
        return _error(e)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, e: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(str(p) for p in err.get("loc", ())) for err in e.errors())
        return _error(UsageError(f"invalid request parameter(s): {fields}"))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(e).__name__)
        return JSONResponse({"error": "internal", "message": "internal error"}, status_code=500)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "size": service.log.size(), "writable": service.log.log_key is not None}

    @app.get("/v1/trust")
    def trust() -> Response:
        return Response(trust_document(service.log.trust), media_type="application/json")

    @app.get("/v1/checkpoint", response_class=PlainTextResponse)
    def checkpoint() -> str:
        return service.log.latest_checkpoint()

    @app.post("/v1/events", status_code=201)
    async def submit(request: Request) -> Response:
        """A DSSE event envelope (JSON), or a JSON list of them for a batch."""
        if service.log.log_key is None:
            raise StorageError("this server is read-only (started without the log key)")
        data = await _body(request)
        stripped = data.lstrip()
        if stripped.startswith(b"["):
            try:
                items = json.loads(stripped)
            except ValueError as e:
                raise FormatError("the batch is not valid JSON") from e
            if not isinstance(items, list) or not items or len(items) > 5000:
                raise FormatError("a batch is a JSON list of 1 to 5000 envelopes")
            envelopes = [parse_envelope(item, what=f"envelope {i}") for i, item in enumerate(items)]
            result = service.log.submit_many(envelopes, now=settings.clock())
            return JSONResponse(_result(result), status_code=200)
        env = parse_envelope(data)
        result = service.log.submit_many([env], now=settings.clock())
        if result.rejected:
            return _error(result.rejected[0].error)
        receipt = result.receipts[0]
        return JSONResponse(receipt.as_dict(), status_code=200 if receipt.duplicate else 201)

    @app.get("/v1/entries/{index}")
    def entry(index: int) -> Response:
        if index < 0:
            raise UsageError("an index is 0 or more")
        return Response(service.log.entry(index).to_bytes(), media_type="application/json")

    @app.get("/v1/proofs/inclusion")
    def inclusion(index: int, size: int | None = None) -> dict[str, Any]:
        tree = size if size is not None else service.log.size()
        if not 0 <= index < tree <= service.log.size():
            raise UsageError(f"need 0 <= index < size <= {service.log.size()}")
        proof = service.log.inclusion_proof(index, tree)
        return {"index": index, "tree_size": tree, "proof": [b64encode(h) for h in proof]}

    @app.get("/v1/proofs/consistency")
    def consistency(old: int, new: int | None = None) -> dict[str, Any]:
        tree = new if new is not None else service.log.size()
        if not 0 < old <= tree <= service.log.size():
            raise UsageError(f"need 0 < old <= new <= {service.log.size()}")
        proof = service.log.consistency_proof(old, tree)
        return {"old_size": old, "new_size": tree, "proof": [b64encode(h) for h in proof]}

    @app.get("/v1/packages/{package_id}")
    def package(package_id: str) -> dict[str, Any]:
        state = service.log.package_state(package_id)
        return {
            "state": state_as_dict(state),
            "history": service.log.package_history(package_id),
        }

    @app.post("/v1/labels/verify")
    async def label(request: Request) -> dict[str, Any]:
        """The label's text (``CP1:…``) as the request body; verified like a courier's phone."""
        data = await _body(request)
        try:
            text = data.decode("ascii").strip()
        except UnicodeDecodeError as e:
            raise FormatError("a label's text is ASCII (CP1: then Base45)") from e
        verified = verify_label(text, service.log.trust, now=settings.clock())
        return verified.report()

    @app.get("/v1/incidents/{incident_id}")
    def incident(incident_id: str) -> dict[str, Any]:
        from custody.incidents.model import get_incident  # noqa: PLC0415

        return get_incident(service.home.engine, incident_id).as_dict()

    return app
