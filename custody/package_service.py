"""Sealing and loading packages: the service the CLI (and later the API) calls.

Rules:
- A package is stored only after its label verifies against the home's trust store at the
  sealing time: an unenrolled, revoked, expired, role-less or recused sealer stores nothing.
- Package ids are unique; sealing an id twice is a ``ConflictError`` and leaves the first intact.
- Loading re-verifies every stored label (the row is never believed by itself).
- No SQL here: the rows are read and written through ``custody/store/packages.py``.
- A seal made elsewhere (the proposition page signs the label and the seal event in the
  sealer's browser) is accepted only as ``custody package seal`` would have made it
  (``accept_seal``): the label verifies as a courier would, both are the sealer's own, the
  package is new, the exam has a policy, and the seal event is byte for byte the one the CLI
  builds from that label; then the policy (if the log lacks it), the package and its seal
  event are stored in one transaction, or nothing is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from crypto.dsse import Envelope
from crypto.encoding import format_time
from crypto.signing import SigningKey
from custody import identity
from custody.errors import (
    N_,
    ConflictError,
    ExamPolicyError,
    ExpiredError,
    ForbiddenError,
    FormatError,
    NotFoundError,
    RecusedError,
    RevokedError,
    RouteError,
    UnknownSignerError,
)
from custody.events import Event, Kind, parse_event
from custody.home import Home
from custody.incidents.model import WatchedLog
from custody.log import Alongside, Receipt
from custody.packages import Manifest, seal_event_body
from custody.store import packages as store
from custody.store.handles import Database
from custody.store.packages import NewPackage, PackageRepository
from keys.model import Certificate
from keys.trust import TrustStore
from labels.payload import VerifiedLabel, seal_manifest, verify_label


def check_plan(manifest: Manifest, trust: TrustStore, now: datetime) -> None:
    """What a package must promise before it is sealed, beyond what a courier's phone checks:
    everyone on its route enrolled and in good standing now (by the service's clock), none
    recused for its exam, position or package; and a label that lives until its opening
    window closes. A typo in a route, or a label that expires before its exam, would make
    a package nobody may carry or open: refused before anything is stored."""
    for n, step in enumerate(manifest.route, start=1):
        try:
            cert = trust.current_certificate(step.person, now)
        except UnknownSignerError as e:
            raise RouteError(
                N_("route step {step}: nobody called {person!r} is enrolled with this authority"),
                hint=N_("name people as they are enrolled (custody keys list)"),
                step=n,
                person=step.person,
            ) from e
        except (RevokedError, ExpiredError) as e:
            raise RouteError(
                N_("route step {step}: {person} holds no key in good standing now"),
                step=n,
                person=step.person,
            ) from e
        recused = cert.recusals & manifest.scope
        if recused:
            raise RecusedError(
                N_("route step {step}: {person} is recused from {recused}"),
                step=n,
                person=step.person,
                recused=", ".join(sorted(recused)),
            )
    if manifest.expires_at < manifest.closes_at:
        raise FormatError(
            N_("the label expires at {expires} before its opening window closes at {closes}"),
            expires=format_time(manifest.expires_at),
            closes=format_time(manifest.closes_at),
        )


def sign_label(
    home: Home, manifest: Manifest, key: SigningKey, *, now: datetime
) -> tuple[str, VerifiedLabel]:
    """Sign the manifest with the sealer's key and check it as a courier would, and its plan
    (``check_plan``); stores nothing."""
    trust = identity.load_trust(home)
    check_plan(manifest, trust, now)
    text = seal_manifest(manifest, key)
    return text, verify_label(text, trust, now=now)


def package_row_writer(manifest: Manifest, label: str, verified: VerifiedLabel) -> Alongside:
    """The sealed package's row, written in the transaction that appends its seal event
    (``CustodyLog.submit(..., alongside=...)``): the package and its seal event are stored
    together or not at all."""
    package = _new_package(manifest, text=label, verified=verified)

    def write(repo: PackageRepository) -> None:
        if not repo.add(package):
            raise ConflictError(
                N_("package {package_id} is already sealed"), package_id=manifest.package_id
            )

    return store.alongside(write)


def _new_package(manifest: Manifest, *, text: str, verified: VerifiedLabel) -> NewPackage:
    return NewPackage(
        package_id=manifest.package_id,
        exam_id=manifest.exam_id,
        sealer_key_id=verified.key_id,
        issued_at=manifest.issued_at,
        label=text,
    )


def seal_package(
    home: Home, manifest: Manifest, key: SigningKey, *, now: datetime
) -> VerifiedLabel:
    """Sign the manifest with the sealer's key, check it as a courier would, then store it
    (alone: ``custody package seal`` stores it with its seal event instead)."""
    trust = identity.load_trust(home)
    text = seal_manifest(manifest, key)
    verified = verify_label(text, trust, now=now)
    with store.writing(home.engine) as repo:
        if not repo.add(_new_package(manifest, text=text, verified=verified)):
            raise ConflictError(
                N_("package {package_id} is already sealed"), package_id=manifest.package_id
            )
    return verified


def refuse_sealed(home: Home, package_id: str) -> None:
    """``ConflictError`` if the package is sealed already (asked before anything is signed)."""
    with store.reading(home.engine) as repo:
        sealed = repo.is_sealed(package_id)
    if sealed:
        raise ConflictError(N_("package {package_id} is already sealed"), package_id=package_id)


def label_text(home: Home, package_id: str) -> str:
    with store.reading(home.engine) as repo:
        text = repo.label(package_id)
    if text is None:
        raise NotFoundError(N_("no sealed package {package_id!r}"), package_id=package_id)
    return text


def load_labels(
    home: Home, package_ids: Iterable[str], *, now: datetime, trust: TrustStore | None = None
) -> Iterator[tuple[str, VerifiedLabel]]:
    """(label text, verification) for each id, re-verified; one at a time (constant memory)."""
    store = trust or identity.load_trust(home)
    for package_id in package_ids:
        text = label_text(home, package_id)
        yield text, verify_label(text, store, now=now)


def all_package_ids(home: Home, exam_id: str | None = None) -> list[str]:
    with store.reading(home.engine) as repo:
        return repo.ids(exam_id)


def sealed_labels(engine: Database) -> Iterator[tuple[str, str]]:
    """(package id, label text) of every sealed package, by id, as stored (not re-verified:
    for an export, whose verifier checks each label itself)."""
    with store.reading(engine) as repo:
        yield from repo.labels()


def seal_event(
    manifest: Manifest,
    label: str,
    sealer: Certificate,
    authority_id: str,
    key: SigningKey,
    *,
    handover_witness: bool,
) -> Envelope:
    """The sealer's signed ``seal`` event that starts the package's chain in the log.

    ``handover_witness`` comes from the exam's policy (``Home.exam_policy``), never from the
    sealer: it decides for the whole chain whether handovers need a supervising witness."""
    event = seal_event_of(
        manifest, label, sealer.subject, authority_id, handover_witness=handover_witness
    )
    return event.sign([key])


def seal_event_of(
    manifest: Manifest, label: str, sealer: str, authority_id: str, *, handover_witness: bool
) -> Event:
    """The ``seal`` event (unsigned) that ``custody package seal`` makes for a label."""
    return Event(
        kind=Kind.SEAL,
        authority=authority_id,
        time=manifest.issued_at,
        place=manifest.route[0].place if manifest.route else "",
        packages={manifest.package_id: None},
        actors={"sealer": sealer},
        body=seal_event_body(manifest, sealer, label, handover_witness=handover_witness),
    )


@dataclass(frozen=True)
class SealAccepted:
    """A package sealed from elsewhere: its checked label and the seal event's receipt."""

    label: str
    verified: VerifiedLabel
    handover_witness: bool
    receipt: Receipt

    @property
    def label_sha256(self) -> str:
        return hashlib.sha256(self.label.encode("ascii")).hexdigest()


def _differences(expected: Event, payload: bytes) -> list[str]:
    """What a submitted seal event says otherwise than the one its label makes (names only)."""
    try:
        got = parse_event(payload)
    except FormatError:
        return ["payload"]
    out = [
        name
        for name in ("kind", "authority", "time", "place", "packages", "actors", "corrects")
        if getattr(got, name) != getattr(expected, name)
    ]
    body = dict(got.body)
    keys = sorted(set(body) | set(expected.body))
    out += [f"body.{k}" for k in keys if body.get(k) != expected.body.get(k)]
    return out or ["encoding"]


def accept_seal(
    home: Home,
    log: WatchedLog,
    *,
    trust: TrustStore,
    label: str,
    seal: Envelope,
    sealer_key_id: str,
    now: datetime,
) -> SealAccepted:
    """A label and its seal event signed elsewhere by the sealer whose key is
    ``sealer_key_id``, stored as ``custody package seal`` stores its own, or refused with
    nothing stored (docs/formats.md "Packages sealed in a browser")."""
    verified = verify_label(label, trust, now=now)
    manifest = verified.manifest
    if verified.key_id != sealer_key_id:
        raise ForbiddenError(
            N_("the label is signed by {signer}, not by the key logged in"),
            signer=verified.certificate.subject,
        )
    check_plan(manifest, trust, now)
    refuse_sealed(home, manifest.package_id)
    policy = home.exam_policy(manifest.exam_id)
    expected = seal_event_of(
        manifest,
        label,
        verified.certificate.subject,
        trust.authority.id,
        handover_witness=policy.handover_witness,
    )
    if seal.payload != expected.payload():
        differ = _differences(expected, seal.payload)
        if differ == ["body.handover_witness"]:
            raise ExamPolicyError(
                N_("the seal event's handover_witness is not exam {exam}'s policy ({policy})"),
                exam=manifest.exam_id,
                policy=policy.handover_witness,
            )
        raise FormatError(
            N_("the seal event is not the one its label makes: {fields} differ"),
            hint=N_("build it from the label as custody package seal does (docs/formats.md)"),
            fields=", ".join(differ),
        )
    publish = log.exam_policy_statement(policy, now=now)
    result = log.submit_many(
        [*([publish] if publish is not None else []), seal],
        now=now,
        alongside=package_row_writer(manifest, label, verified),
    )
    if result.rejected:
        raise result.rejected[0].error
    if result.receipts[-1].duplicate:
        # The same seal sent twice at once: both passed ``refuse_sealed`` before either was
        # committed, and the log took the envelope once. The later sender is answered as it
        # would have been a moment later.
        raise ConflictError(
            N_("package {package_id} is already sealed"), package_id=manifest.package_id
        )
    return SealAccepted(label, verified, policy.handover_witness, result.receipts[-1])
