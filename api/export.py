"""``GET /v1/export``: the export bundle an auditor verifies offline, over HTTP.

The answer is the folder `custody export --out` writes (``events.jsonl``, ``labels.jsonl``,
``trust.json``, ``checkpoint.note``, ``witnesses.json`` if the home has one, the access log
up to its checkpoint, ``manifest.json``), as one uncompressed POSIX tar under ``custody-export/``.

Rules:
- Who may export is the access policy's (``may_export``: auditors); anyone else logged in gets
  403 ``forbidden``, no login 401 ``login_required``.
- The export is recorded on the access log (route ``GET /v1/export``, object
  ``export:<log size>``) before anything is written, so the bundle's own access log holds the
  read that made it whenever the service signs the access checkpoint (a writer does; a
  read-only service exports up to the latest checkpoint it finds).
- Nothing is held in memory whole: the bundle is written to a private temporary folder (events
  streamed to disk, as the CLI does), then sent as tar, each file read from disk 1 MiB at a
  time; the folder is removed when the answer ends (or the client goes). The temporary folder
  needs as much free space as the bundle.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from api.access import Viewer, record
from api.deps import backend_of, error_responses
from crypto.files import CAP_SMALL_JSON, read_optional_file
from custody import access as policy
from custody.audit import export_bundle

router = APIRouter()

TAR_TYPE = "application/x-tar"
FOLDER = "custody-export"
CHUNK = 1 << 20


def _tar(folder: Path) -> Iterator[bytes]:
    """The folder's files as a POSIX (pax) tar stream: each file's header, then its bytes read
    from disk ``CHUNK`` at a time, padded to 512-byte blocks; two zero blocks end it."""
    for path in sorted(folder.iterdir()):
        info = tarfile.TarInfo(f"{FOLDER}/{path.name}")
        info.size = path.stat().st_size
        info.mode = 0o644
        info.mtime = int(path.stat().st_mtime)
        yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        sent = 0
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                sent += len(chunk)
                yield chunk
        if sent != info.size:  # pragma: no cover - the folder is private to this request
            raise OSError(f"{path.name} changed while it was sent")
        if sent % tarfile.BLOCKSIZE:
            yield tarfile.NUL * (tarfile.BLOCKSIZE - sent % tarfile.BLOCKSIZE)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def _stream(tmp: Path) -> Iterator[bytes]:
    try:
        yield from _tar(tmp / FOLDER)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@router.get(
    "/v1/export",
    tags=["access"],
    responses={200: {"content": {TAR_TYPE: {}}}, **error_responses(401, 403, 429, 503)},
    response_class=StreamingResponse,
)
def export(request: Request, p: Viewer) -> StreamingResponse:
    """The export bundle (`custody export`) as a tar stream, for auditors; the export is
    recorded on the access log first."""
    service = backend_of(request)
    viewer = policy.require(policy.may_export(p), p, "the export")
    service.trust()  # enrolments and revocations made since are in trust.json
    size = service.log.size()
    record(service, viewer, "GET /v1/export", [f"export:{size}"])
    tmp = Path(tempfile.mkdtemp(prefix="custody-export-"))
    try:
        manifest = export_bundle(
            service.log,
            tmp / FOLDER,
            witnesses=read_optional_file(
                service.home.witnesses_path, what="witness policy", limit=CAP_SMALL_JSON
            ),
            access=service.access,
            now=service.now(),
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    name = f"custody-export-{manifest['size']}.tar"
    return StreamingResponse(
        _stream(tmp),
        media_type=TAR_TYPE,
        headers={"content-disposition": f'attachment; filename="{name}"'},
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )
