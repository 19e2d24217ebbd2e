"""The proposition page's packages: labels and seal events signed in the sealer's browser.

Rules:
- ``GET /v1/proposition/exams``: for a logged-in sealer (proposer or printer), every exam's
  policy in the home's ``exams.json`` (the seal body's ``handover_witness`` is the exam's, never
  the sealer's choice) and the service's clock (a label's issued-at must not be later than the
  service's now, which decides).
- ``POST /v1/packages``: the sealer posts ``{"label": "CP1:...", "seal": <DSSE envelope>}``,
  both signed by the key they logged in with; ``package_service.accept_seal`` checks them as
  ``custody package seal`` would have made them and stores the package and its seal event
  together, or nothing.
- ``GET /v1/packages/{package_id}/label.pdf``: the package's label on an A4 sheet, as ``custody
  label render`` prints it (re-verified first), for whoever may read the package; recorded.
- The route decides nothing itself: parsing here, judgement in the services, HTTP statuses in
  api/errors.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.access import Viewer, package_facts, package_objects, record
from api.backend import Backend
from api.deps import Service, error_responses
from api.errors import ReadOnlyError
from api.guard import read_body
from api.read_routes import PackageId
from api.routes import JSON_TYPES, _check_envelope
from crypto.dsse import parse_envelope
from crypto.encoding import Fields, format_time, parse_json_object
from custody import access as policy
from custody import package_service
from custody.errors import N_, ForbiddenError
from custody.incidents.model import WatchedLog
from labels.qr import encode_qr
from labels.sheet import write_sheets

router = APIRouter()

MAX_SEAL_BODY = 64 * 1024  # a label (at most 1600 characters) and one seal event


def _writer(service: Backend) -> WatchedLog:
    log = service.log
    if not service.writable or not isinstance(log, WatchedLog):
        raise ReadOnlyError(
            N_("this service was started without the log key: it seals no package"),
            hint=N_("restart it with the log key's passphrase to accept seals"),
        )
    return log


@router.get(
    "/v1/proposition/exams",
    tags=["packages"],
    responses=error_responses(401, 403),
)
def exams(service: Service, p: Viewer) -> dict[str, Any]:
    """Every exam's policy a seal follows (``exams.json``), and the service's clock."""
    policy.require(policy.may_seal(p), p, "the exams' policies")
    policies = service.home.exam_policies().exams
    return {
        "exams": [
            {
                "exam": e.exam_id,
                "handover_witness": e.handover_witness,
                "retention_until": format_time(e.retention_until),
            }
            for e in sorted(policies.values(), key=lambda e: e.exam_id)
        ],
        "now": format_time(service.now()),
    }


def _parse(body: bytes) -> tuple[str, Any]:
    what = "package seal"
    f = Fields(parse_json_object(body, what=what), what=what)
    label = f.text("label")
    envelope = _check_envelope(parse_envelope(f.sub("seal").obj, what="seal event"), "seal event")
    return label, envelope


@router.post(
    "/v1/packages",
    tags=["packages"],
    status_code=201,
    responses={
        201: {"description": "Sealed: the package and its seal event are on the log."},
        **error_responses(400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 503),
    },
)
async def seal_package(request: Request, service: Service, p: Viewer) -> JSONResponse:
    """A package sealed in the sealer's browser: ``{"label": "CP1:...", "seal": <DSSE
    envelope of the seal event>}``, both signed by the key logged in with. Checked as
    ``custody package seal`` would have made them (docs/formats.md "Packages sealed in a
    browser"); refused with nothing stored otherwise."""
    viewer = policy.require(policy.may_seal(p), p, "sealing a package")
    log = _writer(service)
    body = await read_body(request, MAX_SEAL_BODY, "package seal", accept=JSON_TYPES)
    label, seal = _parse(body)
    if len(seal.signatures) != 1 or seal.signatures[0].keyid != viewer.key_id:
        raise ForbiddenError(
            N_("{subject} may post only a seal event they signed themselves, alone"),
            subject=viewer.subject,
        )

    def accept() -> package_service.SealAccepted:
        return package_service.accept_seal(
            service.home,
            log,
            trust=service.trust(),
            label=label,
            seal=seal,
            sealer_key_id=viewer.key_id,
            now=service.now(),
        )

    done = await run_in_threadpool(accept)
    m = done.verified.manifest
    return JSONResponse(
        {
            "package_id": m.package_id,
            "label_sha256": done.label_sha256,
            "handover_witness": done.handover_witness,
            "receipt": done.receipt.as_dict(),
            "label_pdf": f"/v1/packages/{m.package_id}/label.pdf",
        },
        status_code=201,
    )


@router.get(
    "/v1/packages/{package_id}/label.pdf",
    tags=["packages"],
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **error_responses(401, 403, 404, 422)},
)
def label_pdf(package_id: PackageId, service: Service, p: Viewer) -> Response:
    """The package's label on an A4 sheet (PDF, CJK font embedded), re-verified first; for
    whoever may read the package. Recorded."""
    policy.require(p is not None, p, f"package {package_id}")
    facts = package_facts(service, package_id)
    viewer = policy.require(policy.may_read_package(p, facts), p, f"package {package_id}")
    data = _render(service, package_id)
    record(service, viewer, "GET /v1/packages/{package_id}/label.pdf", package_objects(facts))
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="label-{package_id}.pdf"'},
    )


def _render(service: Backend, package_id: str) -> bytes:
    (text, verified), *_ = package_service.load_labels(
        service.home, [package_id], now=service.now(), trust=service.trust()
    )
    with tempfile.TemporaryDirectory(prefix="custody-label-") as tmp:
        out = Path(tmp) / "label.pdf"
        write_sheets([(verified.manifest, encode_qr(text))], out, total=1)
        return out.read_bytes()
