"""The proposition page's routes: papers encrypted and signed in the proposer's browser.

Rules:
- ``GET /v1/proposition/recipients``: for a logged-in proposer, the certificates of everyone a
  paper may be sealed to (printers, opening officers, secrecy officers), root-signed as in
  ``trust.json``, so the browser checks each X25519 key under the authority's root key; and
  the log service's X25519 key for the log's part of the key. The read is recorded.
- ``POST /v1/papers``: a logged-in proposer posts their own signed proposal, one sealed blob
  per recipient and the encrypted file (``custody-paper/v1``, base64). The service checks
  everything ``custody paper encrypt`` guarantees (``paper_service.accept_proposal``) and
  stores nothing unless all of it holds; it never receives the data key or the plaintext.
- The route decides nothing itself: parsing here, judgement in the services, HTTP statuses in
  api/errors.py.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.access import Viewer, record
from api.backend import Backend
from api.deps import Service, error_responses
from api.errors import ReadOnlyError
from api.guard import read_body
from api.routes import JSON_TYPES, _check_envelope
from crypto.dsse import parse_envelope
from crypto.encoding import Fields, b64encode, format_time, parse_json_object
from crypto.signing import X25519, key_id
from custody import access as policy
from custody import paper_service
from custody.errors import N_, ForbiddenError, FormatError
from custody.incidents.model import WatchedLog
from custody.papers import OPENING_ROLES, Slot
from keys.model import Role
from keys.trust import TrustStore, verify_certificate

router = APIRouter()

RECIPIENT_ROLES = frozenset({Role.PRINTER, Role.SECRECY_OFFICER, *OPENING_ROLES})
MAX_KEYS = 20  # printer, up to 16 officers, a standby, the log


def _writer(service: Backend) -> WatchedLog:
    log = service.log
    if not service.writable or not isinstance(log, WatchedLog):
        raise ReadOnlyError(
            N_("this service was started without the log key: it stores no paper"),
            hint=N_("restart it with the log key's passphrase to accept papers"),
        )
    return log


def recipients_document(trust: TrustStore, log_public: bytes, now: Any) -> bytes:
    """The authority statement, the certificates of everyone a paper may be sealed to, the
    revocations, and the log's X25519 key (docs/formats.md "Papers proposed in a browser")."""
    certificates = []
    for env in trust.certificate_envelopes:
        cert = verify_certificate(env, trust.authority)
        if cert.roles & RECIPIENT_ROLES and cert.not_before <= now <= cert.not_after:
            certificates.append(env.to_json_obj())
    return json.dumps(
        {
            "authority": trust.authority_envelope.to_json_obj(),
            "certificates": certificates,
            "revocations": [e.to_json_obj() for e in trust.revocation_envelopes],
            "log_key": {
                "alg": "x25519",
                "key": b64encode(log_public),
                "key_id": key_id(X25519, log_public),
            },
            "issued_at": format_time(now),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


@router.get(
    "/v1/proposition/recipients",
    tags=["papers"],
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, **error_responses(401, 403, 503)},
)
def recipients(service: Service, p: Viewer) -> Response:
    """Whom a proposer may seal a paper to: root-signed certificates (check them under the
    root key you pinned) and the log service's X25519 key. Proposers only; recorded."""
    viewer = policy.require(policy.may_propose(p), p, "the recipients of papers")
    log = _writer(service)
    trust = service.trust()
    now = service.now()
    document = recipients_document(trust, log.escrow.public_raw, now)
    record(service, viewer, "GET /v1/proposition/recipients", ["people:recipients"])
    return Response(document, media_type="application/json")


def _parse(body: bytes) -> tuple[Any, dict[tuple[Slot, str], bytes], bytes]:
    what = "paper submission"
    f = Fields(parse_json_object(body, what=what), what=what)
    envelope = _check_envelope(
        parse_envelope(f.sub("proposal").obj, what="paper proposal"), "paper proposal"
    )
    raw_keys = f.items("keys")
    if not raw_keys or len(raw_keys) > MAX_KEYS:
        raise FormatError(
            N_("{what}: keys must list 1..{most} sealed keys"), what=what, most=MAX_KEYS
        )
    sealed: dict[tuple[Slot, str], bytes] = {}
    for i, raw in enumerate(raw_keys):
        if not isinstance(raw, dict):
            raise FormatError(N_("{what}: key {i} must be an object"), what=what, i=i)
        kf = Fields(raw, what=f"{what}: key {i}")
        try:
            slot = Slot(kf.text("slot"))
        except ValueError as e:
            raise FormatError(N_("{what}: key {i} has an unknown slot"), what=what, i=i) from e
        where = (slot, kf.text("subject"))
        if where in sealed:
            raise FormatError(N_("{what}: key {i} is listed twice"), what=what, i=i)
        sealed[where] = kf.blob("sealed")
    return envelope, sealed, f.blob("ciphertext")


@router.post(
    "/v1/papers",
    tags=["papers"],
    status_code=201,
    responses={
        201: {"description": "Stored, and the proposal is on the custody log."},
        **error_responses(400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 503),
    },
)
async def submit_paper(request: Request, service: Service, p: Viewer) -> JSONResponse:
    """A paper encrypted in the proposer's browser: ``{"proposal": <DSSE envelope>, "keys":
    [{"slot", "subject", "sealed": <base64>}], "ciphertext": <base64 custody-paper/v1>}``.

    The logged-in person must be the proposal's proposer. Checked as ``custody paper
    encrypt`` would have made it (docs/formats.md "Papers proposed in a browser"); refused
    with nothing stored otherwise."""
    viewer = policy.require(policy.may_propose(p), p, "proposing a paper")
    log = _writer(service)
    body = await read_body(
        request, service.settings.max_paper_body, "paper submission", accept=JSON_TYPES
    )
    envelope, sealed, ciphertext = _parse(body)

    def accept() -> paper_service.Proposed:
        trust = service.trust()
        signer = envelope.signatures[0].keyid
        if signer in trust.certificates and trust.certificates[signer].subject != viewer.subject:
            raise ForbiddenError(
                N_("{subject} may post only a proposal they signed themselves"),
                subject=viewer.subject,
            )
        return paper_service.accept_proposal(
            service.home,
            envelope=envelope,
            sealed=sealed,
            ciphertext=ciphertext,
            now=received,
            log=log,
        )

    received = service.now()  # the server's clock: what the paper's row records
    done = await run_in_threadpool(accept)
    proposal = done.proposal
    return JSONResponse(
        {
            "ref": proposal.ref,
            "paper_id": proposal.paper_id,
            "version": proposal.version,
            "commitment": proposal.commitment,
            "ciphertext_bytes": proposal.ciphertext_bytes,
            "proposed_at": format_time(proposal.proposed_at),  # as the proposer signed it
            "received": format_time(received),  # the server's clock, as stored
            "log_size": log.size(),
        },
        status_code=201,
    )
