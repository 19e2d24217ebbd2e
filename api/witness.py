"""A live witness over HTTP (c2sp.org/tlog-witness): ``POST /add-checkpoint``.

Rules:
- The body is an add-checkpoint request (``old N``, the consistency proof lines, a blank line,
  the log's signed checkpoint note), at most 64 KiB. The witness checks it against the latest
  checkpoint it cosigned for that log (``custody.witness``, pure) and answers:
  200 and its cosignature line(s) (``text/x.tlog.signature``) when it cosigns;
  409 and its latest size (``text/x.tlog.size``) when ``old`` is not that size or the
  checkpoint would roll back; 404 for a log it does not follow; 403 for a note the log's key did
  not sign; 422 when the proof does not lead from its cosigned checkpoint to the new one (the
  log forked: the body holds the checkpoint it cosigned, evidence the log can check); 400 for
  anything malformed.
- The state (what it cosigned last, per log) is read, checked and replaced under an exclusive
  lock, and written durably before the cosignature leaves: a witness never cosigns two
  histories, even with requests racing.
- ``GET /latest?origin=ORIGIN`` (an extension of this project, not in tlog-witness): the latest
  checkpoint it cosigned for that log, as the log signed it, with a fresh cosignature line of
  this witness after the log's signature (200, ``text/plain``), 404 when it cosigned none. A log
  that lost its disk asks this at start to learn what it already signed (docs/adr/0012).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from crypto.encoding import Fields, parse_json_object
from crypto.files import CAP_SMALL_JSON, read_user_file
from crypto.note import NoteVerifier, cosign, parse_checkpoint, parse_note
from custody.errors import (
    N_,
    CustodyError,
    FormatError,
    LogConsistencyError,
    NotFoundError,
    SignatureError,
    UnknownSignerError,
)
from custody.witness import (
    Cosigner,
    WitnessConflictError,
    WitnessRecord,
    WitnessState,
    parse_add_checkpoint,
    witness_add_checkpoint,
)
from keys.keyfile import write_new_file

MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class WitnessSettings:
    state: Path
    cosigner: Cosigner = field(repr=False)
    logs: Sequence[NoteVerifier]
    clock: Callable[[], datetime]


def load_witness_state(path: Path) -> WitnessState:
    """The state file (``custody witness cosign --state``), or an empty state if none exists
    yet (``custody witness serve --init`` made the file)."""
    data = read_user_file(path, what="witness state", limit=CAP_SMALL_JSON, stdin=False)
    f = Fields(parse_json_object(data, what=str(path)), what=str(path))
    notes = f.obj.get("cosigned")
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise FormatError(
            N_("{path} is not a witness state file (cosigned: a list of notes)"), path=str(path)
        )
    return WitnessState(
        tuple(WitnessRecord(parse_checkpoint(parse_note(n).text), n) for n in notes)
    )


def save_witness_state(path: Path, state: WitnessState) -> None:
    body = {"cosigned": [r.note for r in state.records]}
    write_new_file(path, json.dumps(body, indent=2).encode() + b"\n", mode=0o600, replace=True)


def _text(body: str, status: int, media: str = "text/plain") -> Response:
    return PlainTextResponse(body, status_code=status, media_type=media)


def create_witness_app(settings: WitnessSettings) -> FastAPI:
    app = FastAPI(title="custody witness", docs_url=None, redoc_url=None)
    by_origin = {v.name: v for v in settings.logs}
    lock_path = settings.state.with_name(settings.state.name + ".lock")

    def handle(body: bytes) -> Response:
        try:
            request = parse_add_checkpoint(body)
            origin = parse_checkpoint(parse_note(request.checkpoint_note).text).origin
        except CustodyError as e:
            return _text(e.message + "\n", 400)
        verifier = by_origin.get(origin)
        if verifier is None:
            return _text(f"this witness does not follow the log {origin}\n", 404)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = load_witness_state(settings.state)
            try:
                new_state, line = witness_add_checkpoint(
                    state, verifier, body, settings.cosigner, settings.clock(), origin=origin
                )
            except WitnessConflictError as e:
                return _text(f"{e.latest_size}\n", 409, "text/x.tlog.size")
            except NotFoundError as e:
                return _text(e.message + "\n", 404)
            except (SignatureError, UnknownSignerError) as e:
                return _text(e.message + "\n", 403)
            except LogConsistencyError as e:
                held = state.latest(origin)
                evidence = held.note if held is not None else ""
                return _text(f"{e.message}\n\n{evidence}", 422)
            except CustodyError as e:
                return _text(e.message + "\n", 400)
            save_witness_state(settings.state, new_state)  # durable before the line leaves
            return _text(line, 200, "text/x.tlog.signature")
        finally:
            os.close(fd)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _text(f"more than the {MAX_BODY} bytes accepted\n", 413)
        from starlette.concurrency import run_in_threadpool  # noqa: PLC0415

        return await run_in_threadpool(handle, body)

    @app.get("/latest")
    def latest(origin: str) -> Response:
        if origin not in by_origin:
            return _text(f"this witness does not follow the log {origin}\n", 404)
        try:
            state = load_witness_state(settings.state)
        except CustodyError as e:
            return _text(e.message + "\n", 503)
        record = state.latest(origin)
        if record is None:
            return _text(f"this witness has cosigned no checkpoint of {origin} yet\n", 404)
        note = parse_note(record.note)
        line = cosign(
            record.checkpoint, settings.cosigner.name, settings.cosigner.key, settings.clock()
        )
        body = note.text + "\n" + "".join(s.line() for s in note.signatures) + line
        return _text(body, 200)

    @app.get("/livez")
    def livez() -> dict[str, bool]:
        return {"ok": True}

    return app
