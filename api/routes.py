"""The JSON routes of the HTTP API (documented in the OpenAPI schema at /openapi.json).

Rules:
- A route parses its input with the project's one parser for that input, calls the service the
  CLI calls too, and shapes the answer; it decides nothing else and raises no HTTP error itself.
- Request bodies are read with a cap per route (413 ``too_large`` beyond it) before any parsing.
- Blocking work (database, signatures, image decoding) runs on the thread pool.
- POST /v1/events: one envelope answers 201 (appended) or 200 (already in the log), or the
  refusal's own status; a list is judged envelope by envelope in one transaction and answers
  201 if anything was appended, else 200, with each item's own status in the body.
- POST /v1/cosignatures: a witness's cosignature, verified under its key in the home's
  witnesses.json against the checkpoint the log signed for that size; 201 stored, 200 held
  already. The checkpoint routes answer the log's note with every stored cosignature appended.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Future
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from api.access import Viewer, event_facts, package_objects, package_view, record
from api.deps import Service, current_trust, error_responses, path_id, plain_route_errors
from api.errors import RETRY_AFTER_SECONDS, ReadOnlyError, TooLargeError, request_language
from api.guard import key_check, key_count, read_body
from api.schemas import (
    COSIGNATURE_BODY,
    EVENTS_BODY,
    IMAGE_BODY,
    LABEL_TEXT_BODY,
    BatchResult,
    ConsistencyProof,
    CosignaturesOut,
    EntryOut,
    Health,
    InclusionProof,
    PackageOut,
    ReceiptOut,
    VerifiedLabelOut,
)
from crypto.dsse import Envelope, parse_envelope, verify_signatures
from crypto.encoding import b64encode, format_time, parse_json
from crypto.vocabulary import MAX_ID
from custody import access as policy
from custody.audit import directory_document, trust_document
from custody.errors import N_, CustodyError, FormatError, UnknownSignerError
from custody.events import parse_event, parse_leaf
from custody.i18n import error_body
from custody.incidents.model import WatchedLog
from custody.log import AppendResult, CosignatureAdded, Receipt, statement_id_of
from custody.store.states import state_as_dict
from labels.payload import verify_label
from labels.scan import scan_label

router = APIRouter()

# Largest index or size SQLite and PostgreSQL store as a signed 64-bit integer.
MAX_INDEX = (1 << 63) - 1
# The event parser's rule for package ids (custody/events.py), checked before any query.
# The one id rule (crypto.vocabulary): letters or digits of any script, '.', '_', '-'.
PACKAGE_ID_PATTERN = rf"^[\w.\-]{{1,{MAX_ID}}}$"
# Media types a body may declare (none declared is read as the route's own type; a declared
# other one is 415). JSON is not a type an HTML form can send cross-site without a preflight.
JSON_TYPES = ("application/json", "")
TEXT_TYPES = ("text/plain", "")
IMAGE_TYPES = ("image/png", "image/jpeg", "application/octet-stream", "")


def _receipt(r: Receipt) -> dict[str, Any]:
    return r.as_dict()


@router.get("/healthz", response_model=Health, tags=["service"], responses=error_responses(503))
def healthz(service: Service) -> dict[str, Any]:
    """Liveness and the database's reachability (the log's size is read)."""
    authority = service.trust().authority
    return {
        "ok": True,
        "authority_id": authority.id,
        "log_origin": authority.log_origin,
        "log_size": service.log.size(),
        "writable": service.writable,
    }


@router.get("/livez", tags=["service"])
def livez() -> dict[str, Any]:
    """The process answers (nothing else is checked: restart it only if this fails)."""
    return {"ok": True}


@router.get("/readyz", tags=["service"], responses=error_responses(503))
def readyz(service: Service) -> JSONResponse:
    """May this service take appends now: the database writable (a primary), disk space above
    the floor, the last signed checkpoint consistent, the standbys' state. 503 when not."""
    report = service.readiness()
    if report.ready:
        return JSONResponse(report.as_dict())
    return JSONResponse(
        report.as_dict(), status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


@router.get(
    "/v1/trust-bundle",
    tags=["trust"],
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, **error_responses(401, 403, 503)},
)
def trust_bundle(service: Service, p: Viewer) -> Response:
    """What a device needs to check signatures offline; needs a login.

    Secrecy officers and auditors get ``trust.json`` of an export bundle (every certificate in
    full, each signed by the root key). Everyone else gets the directory: the authority
    statement, the revocations, and for each person only display name, roles, signing key and
    validity, signed as a whole by the authority's system key (docs/formats.md "Directory").
    Verify under the root key you pinned; nothing here is to be believed because this server
    sent it.
    """
    viewer = policy.require(policy.may_read_directory(p), p, "the trust bundle")
    full = policy.may_read_people(viewer)
    record(service, viewer, "GET /v1/trust-bundle", ["people:all" if full else "people:directory"])
    if full:
        return Response(trust_document(service.trust()), media_type="application/json")
    if not isinstance(service.log, WatchedLog):
        raise ReadOnlyError(
            N_("this service holds no system key to sign the directory"),
            hint=N_("ask the service that holds the system key, or a secrecy officer"),
        )
    document = directory_document(service.trust(), service.log.desk.system_key, service.now())
    return Response(document, media_type="application/json")


@router.get(
    "/v1/checkpoint",
    tags=["log"],
    response_class=PlainTextResponse,
    responses=plain_route_errors(404),
)
def checkpoint(
    service: Service,
    published: Annotated[
        bool,
        Query(description="The largest checkpoint whose cosignatures meet the witness policy."),
    ] = False,
) -> PlainTextResponse:
    """The latest signed checkpoint (C2SP signed note; 404 while the log is empty), with the
    witnesses' cosignature lines the log holds for it after the log's own signature; with
    ``published=true`` the largest one whose cosignatures meet the witness policy (k of n; 404
    while none does). Header ``Custody-Published``: whether the one served meets it."""
    note, headers = service.checkpoint(only_published=published)
    return PlainTextResponse(note, headers=headers)


Size = Annotated[int, Path(ge=0, le=MAX_INDEX, description="Tree size of a checkpoint.")]


@router.get(
    "/v1/checkpoint/{size}",
    tags=["log"],
    response_class=PlainTextResponse,
    responses=plain_route_errors(404, 422),
)
def checkpoint_of_size(size: Size, service: Service) -> PlainTextResponse:
    """The checkpoint the log signed for ``size``, with its stored cosignature lines (header
    ``Custody-Published`` as for ``GET /v1/checkpoint``)."""
    note, headers = service.checkpoint(size)
    return PlainTextResponse(note, headers=headers)


@router.post(
    "/v1/cosignatures",
    tags=["log"],
    status_code=201,
    openapi_extra=COSIGNATURE_BODY,
    responses={
        201: {"model": CosignaturesOut, "description": "Stored."},
        200: {"model": CosignaturesOut, "description": "Every cosignature was held already."},
        **error_responses(400, 404, 408, 409, 413, 415, 422, 503),
    },
)
async def add_cosignatures(
    request: Request,
    service: Service,
    size: Annotated[
        int | None,
        Query(ge=0, le=MAX_INDEX, description="For lines alone: the size they cosign."),
    ] = None,
) -> JSONResponse:
    """Store a witness's cosignature (c2sp.org/tlog-cosignature) on one of the log's
    checkpoints: the body is the cosigned checkpoint note, or the cosignature lines alone for
    the checkpoint of ``size`` (default: the latest). Each line must verify under the key the
    authority's witnesses.json lists for that witness."""
    if not service.writable:
        raise ReadOnlyError(
            N_("this service was started read-only: it stores nothing"),
            hint=N_("restart it with the log key's passphrase to store cosignatures"),
        )
    body = await read_body(
        request, service.settings.max_cosignature_body, "cosignature", accept=TEXT_TYPES
    )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(N_("a cosigned checkpoint must be UTF-8")) from e

    def store() -> list[CosignatureAdded]:
        policy = service.home.require_witness_policy()
        return service.log.add_cosignatures(text, policy, now=service.now(), size=size)

    added = await run_in_threadpool(store)
    status = 200 if all(a.duplicate for a in added) else 201
    return JSONResponse({"cosignatures": [a.as_dict() for a in added]}, status_code=status)


def _check_envelope(env: Envelope, what: str) -> Envelope:
    """Every signature names its key: the service tries that key only (docs/formats.md,
    "Signed statement envelope": a service's candidate list for an empty hint is empty), so
    the signature checks a request costs are bounded by the envelope's 16 signatures. A
    signature with no hint counts for nobody: ``unknown_signer``, as on every path where more
    keys are candidates than an empty hint may try."""
    for n, sig in enumerate(env.signatures):
        if not sig.keyid:
            raise UnknownSignerError(
                N_("{what}: signature {n} has no key id hint, so it counts for no key"),
                hint=N_("set each signature's keyid to its signing key's id"),
                what=what,
                n=n,
            )
    return env


def _parse_submission(
    body: bytes, *, max_envelope: int
) -> tuple[list[Envelope | CustodyError], bool]:
    """Envelopes (or each item's format refusal) and whether the body was a list."""
    if body.lstrip()[:1] == b"{" and len(body) > max_envelope:
        raise TooLargeError(
            N_("an envelope of {size} bytes; at most {most}"), size=len(body), most=max_envelope
        )
    value = parse_json(body, what="request body")
    if isinstance(value, dict):
        return [_check_envelope(parse_envelope(value), "envelope")], False
    if not isinstance(value, list):
        raise FormatError(
            N_("request body must be a DSSE envelope (JSON object) or a list of them")
        )
    if not value:
        raise FormatError(N_("request body is an empty list: nothing to submit"))
    items: list[Envelope | CustodyError] = []
    for i, item in enumerate(value):
        try:
            if not isinstance(item, dict):
                raise FormatError(N_("envelope {i} must be a JSON object"), i=i)
            # Only a body larger than one envelope's cap can hold an item over it.
            if len(body) > max_envelope and len(json.dumps(item)) > max_envelope:
                raise TooLargeError(
                    N_("envelope {i} is larger than {most} bytes"), i=i, most=max_envelope
                )
            env = parse_envelope(item, what=f"envelope {i}")
            items.append(_check_envelope(env, f"envelope {i}"))
        except CustodyError as e:
            items.append(e)
    return items, True


def _batch_answer(
    items: list[Envelope | CustodyError], result: AppendResult, lang: str = "zh"
) -> JSONResponse:
    positions = [i for i, item in enumerate(items) if isinstance(item, Envelope)]
    refused: dict[int, CustodyError] = {
        i: item for i, item in enumerate(items) if isinstance(item, CustodyError)
    }
    for rejected in result.rejected:
        refused[positions[rejected.envelope_index]] = rejected.error
    # Receipts name statement ids, not positions: hand each id's positions out in order
    # (new appends are listed before duplicates, as the first occurrence is the one appended).
    queue: dict[str, list[int]] = {}
    for pos in positions:
        env = items[pos]
        if pos not in refused and isinstance(env, Envelope):
            queue.setdefault(statement_id_of(env), []).append(pos)
    accepted = []
    for r in result.receipts:
        pos = queue[r.statement_id].pop(0)
        status = 200 if r.duplicate else 201
        accepted.append({"position": pos, "status": status, **_receipt(r)})
    accepted.sort(key=lambda a: int(a["position"]))
    body = {
        "accepted": accepted,
        "refused": [
            {"position": pos, "status": e.http_status, **error_body(e, lang)}
            for pos, e in sorted(refused.items())
        ],
        "system": [_receipt(r) for r in result.system],
    }
    appended = any(a["status"] == 201 for a in accepted)
    return JSONResponse(body, status_code=201 if appended else 200)


def _count_signers(request: Request, envelopes: list[Envelope], receipts: list[Receipt]) -> None:
    """Each key that signed an event this request newly appended, counted once against its
    rate (every signature of an accepted event verified; a duplicate, which anyone holding
    the statement can send again, counts for no one)."""
    new = {r.statement_id for r in receipts if not r.duplicate}
    if new:
        key_count(
            request,
            {s.keyid for env in envelopes if statement_id_of(env) in new for s in env.signatures},
        )


# Signatures of one envelope verified on the event loop itself under `serve --workers N`; an
# envelope with more is verified in a thread, so that it does not hold up the other requests.
INLINE_SIGNATURES = 4


@router.post(
    "/v1/events",
    tags=["log"],
    status_code=201,
    openapi_extra=EVENTS_BODY,
    responses={
        201: {"model": ReceiptOut, "description": "Appended (a list: `BatchResult`)."},
        200: {"model": BatchResult, "description": "Already in the log (a list: nothing new)."},
        **error_responses(400, 403, 404, 408, 409, 413, 415, 422, 423, 429, 503),
    },
)
async def submit_events(request: Request, service: Service) -> JSONResponse:
    """Append one signed custody event (a DSSE envelope), or a list of them.

    Each envelope is verified (signatures, roles, chain, route, window, containment) and
    appended, or refused with its reason; an accepted event is durable before it is answered.
    """
    if not service.writable:
        raise ReadOnlyError(
            N_("this service was started without the log key: it answers reads only"),
            hint=N_("restart it with the log key's passphrase to accept events"),
        )
    settings = service.settings
    body = await read_body(request, settings.max_event_body, "request body", accept=JSON_TYPES)
    items, is_batch = _parse_submission(body, max_envelope=settings.max_envelope)
    # Per-key rates: a key over its rate is refused before any work; a key counts only once
    # its signature verified on an event newly appended (a stranger writing its id spends
    # nothing of it), after the append (api.guard.key_check, key_count).
    known = service.log.trust.signing_keys
    key_check(
        request,
        {s.keyid for item in items if isinstance(item, Envelope) for s in item.signatures}
        & known.keys(),
    )
    if len(items) > service.settings.max_batch:
        raise TooLargeError(
            N_("{n} envelopes in one request; at most {most}"),
            n=len(items),
            most=service.settings.max_batch,
        )
    envelopes = [item for item in items if isinstance(item, Envelope)]
    if not is_batch and envelopes and service.link is not None:
        # one envelope, `serve --workers N`: its signatures checked here, on this process's
        # core, then to the one log writer's group commit (api.writer_link)
        # reloaded first (off the event loop) if someone was enrolled or revoked meanwhile
        keys = (await current_trust(service)).signing_keys
        try:
            # a handover's two signatures on the event loop (0.2 ms); up to 16 in a thread
            checked = (
                verify_signatures(envelopes[0], keys)
                if len(envelopes[0].signatures) <= INLINE_SIGNATURES
                else await run_in_threadpool(verify_signatures, envelopes[0], keys)
            )
        except CustodyError:
            checked = None  # the writer checks it again and gives the refusal
        one = await service.link.submit(envelopes[0], body, checked)
        _count_signers(request, envelopes, [one])
        return JSONResponse(_receipt(one), status_code=200 if one.duplicate else 201)
    if not is_batch and envelopes and service.committer is not None:
        # one envelope: joins the requests arriving now in one transaction (group commit)
        def queue() -> Future[Receipt]:
            service.trust()  # reload first if someone was enrolled or revoked meanwhile
            assert service.committer is not None
            return service.committer.submit(envelopes[0])

        # a handover's two signatures on the event loop (0.2 ms, less than a hop through the
        # thread pool and back); an envelope with up to 16 in a thread
        if len(envelopes[0].signatures) <= INLINE_SIGNATURES:
            await current_trust(service)  # a reload, if one is due, off the event loop
            queued = queue()
        else:
            queued = await run_in_threadpool(queue)
        one = await asyncio.wrap_future(queued)
        _count_signers(request, envelopes, [one])
        return JSONResponse(_receipt(one), status_code=200 if one.duplicate else 201)

    def append() -> AppendResult:
        service.trust()  # reload first if someone was enrolled or revoked meanwhile
        return service.log.submit_many(envelopes, now=service.now())

    result = await run_in_threadpool(append) if envelopes else AppendResult()
    _count_signers(request, envelopes, result.receipts)
    if is_batch:
        return _batch_answer(items, result, request_language(request))
    if result.rejected:
        raise result.rejected[0].error
    receipt = result.receipts[0]
    return JSONResponse(_receipt(receipt), status_code=200 if receipt.duplicate else 201)


Index = Annotated[int, Path(ge=0, le=MAX_INDEX, description="Log index (from 0).")]


@router.get(
    "/v1/entries/{index}",
    response_model=EntryOut,
    tags=["log"],
    responses=error_responses(401, 403, 404, 422),
)
def entry(index: Index, service: Service, p: Viewer) -> dict[str, Any]:
    """One log entry: the DSSE envelope, its receive time, and the leaf as hashed.

    Needs a login: whoever may read one of the entry's packages; an entry that names none
    (incidents, keys, leak reports) only secrecy officers and auditors. The read is recorded.
    """
    policy.require(p is not None, p, f"log entry {index}")
    leaf = service.log.leaf(index)
    entry = parse_leaf(leaf)
    event = parse_event(entry.envelope.payload)
    facts = event_facts(service, event)
    viewer = policy.require(policy.may_read_entry(p, facts), p, f"log entry {index}")
    objects = [f"entry:{index}", *(f"package:{f.package_id}" for f in facts)]
    objects += [f"person:{who}" for who in sorted(set(event.actors.values()))]
    record(service, viewer, "GET /v1/entries/{index}", objects)
    return {
        "index": index,
        "statement_id": statement_id_of(entry.envelope),
        "received": format_time(entry.received),
        "envelope": entry.envelope.to_json_obj(),
        "leaf": b64encode(leaf),
    }


@router.get(
    "/v1/proofs/inclusion",
    response_model=InclusionProof,
    tags=["log"],
    responses=error_responses(400, 401, 422, 503),
)
def inclusion(
    service: Service,
    p: Viewer,
    index: Annotated[int, Query(ge=0, le=MAX_INDEX)],
    size: Annotated[int, Query(ge=1, le=MAX_INDEX, description="Tree size of a checkpoint.")],
) -> dict[str, Any]:
    """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries (login)."""
    policy.require(policy.may_read_proofs(p), p, "proofs")
    proof = service.log.inclusion_proof(index, size)
    return {"index": index, "tree_size": size, "proof": [b64encode(h) for h in proof]}


@router.get(
    "/v1/proofs/consistency",
    response_model=ConsistencyProof,
    tags=["log"],
    responses=error_responses(400, 401, 422, 503),
)
def consistency(
    service: Service,
    p: Viewer,
    old: Annotated[int, Query(ge=1, le=MAX_INDEX, description="Earlier tree size.")],
    new: Annotated[int, Query(ge=1, le=MAX_INDEX, description="Later tree size.")],
) -> dict[str, Any]:
    """RFC 9162 consistency proof between two tree sizes (login)."""
    policy.require(policy.may_read_proofs(p), p, "proofs")
    proof = service.log.consistency_proof(old, new)
    return {"old_size": old, "new_size": new, "proof": [b64encode(h) for h in proof]}


@router.get(
    "/v1/packages/{package_id}",
    response_model=PackageOut,
    tags=["packages"],
    responses=error_responses(401, 403, 404, 422),
)
async def package(
    package_id: Annotated[str, Path(pattern=PACKAGE_ID_PATTERN)], service: Service, p: Viewer
) -> dict[str, Any]:
    """A package's state after its latest event, and the log indexes of all its events.

    Needs a login whose roles and assignments cover the package; the read is recorded."""
    path_id(package_id, "package id")  # the pattern admits '_' marks; the rule is exact
    policy.require(p is not None, p, f"package {package_id}")

    def read() -> dict[str, Any]:  # the database's part, in one hop through the thread pool
        view = package_view(service, package_id)
        viewer = policy.require(policy.may_read_package(p, view.facts), p, f"package {package_id}")
        record(service, viewer, "GET /v1/packages/{package_id}", package_objects(view.facts))
        return {
            "package_id": package_id,
            "state": state_as_dict(view.state),
            "history": view.history,
        }

    return await run_in_threadpool(read)


@router.post(
    "/v1/labels/verify",
    response_model=VerifiedLabelOut,
    response_model_exclude_none=True,
    tags=["labels"],
    openapi_extra=LABEL_TEXT_BODY,
    responses=error_responses(400, 403, 408, 413, 415, 422),
)
async def verify_label_text(request: Request, service: Service) -> dict[str, object]:
    """Verify a label's text (what its QR code holds) as a courier's scanner would."""
    body = await read_body(
        request, service.settings.max_label_body, "label text", accept=TEXT_TYPES
    )

    # A label's check is about 0.2 ms of CPU (one signature, a small CBOR document), less than
    # a hop through the thread pool and back: it runs here, on the event loop.
    return verify_label(body, await current_trust(service), now=service.now()).report()


@router.post(
    "/v1/labels/scan",
    response_model=VerifiedLabelOut,
    response_model_exclude_none=True,
    tags=["labels"],
    openapi_extra=IMAGE_BODY,
    responses=error_responses(400, 403, 408, 413, 415, 422),
)
async def scan_label_image(request: Request, service: Service) -> dict[str, object]:
    """Read the one QR code in a photo (PNG, JPEG...) and verify the label it holds.

    No code, or several, is refused with the code ``scan`` (aim again; nothing was read).
    """
    body = await read_body(request, service.settings.max_image_body, "image", accept=IMAGE_TYPES)
    max_pixels = service.settings.max_image_pixels

    def check() -> dict[str, object]:
        text = scan_label(body, max_pixels=max_pixels)
        return {"label": text, **verify_label(text, service.trust(), now=service.now()).report()}

    return await run_in_threadpool(check)
