"""Papers: who may encrypt, print, open, replace and destroy a question paper (pure rules).

A paper is a file encrypted under a fresh 32-byte data key (crypto/stream.py). The key is
never stored in the clear and never held by the custody service: it is sealed (X25519 sealed
box) to the printing unit, and split k-of-n (Shamir over GF(2^8)) among named opening
officers, each share sealed to that officer's certified X25519 key. A secrecy officer may hold
one standby share for break-glass. The proposer signs a proposal statement that fixes every
public fact of the paper, including the SHA-256 of every sealed blob, so an edited row or a
share moved from another paper is refused before anything is decrypted.

Rules enforced here:
- Proposal: the proposer holds ``proposer``; the printer holds ``printer``; every opening
  officer holds ``chief_examiner`` or ``supervisor`` and at least one holds ``supervisor``
  (no supervisor, no opening); the standby holds ``secrecy_officer``; nobody involved is
  recused for the exam or the position; officers are distinct people; 2 <= k <= n; the window
  ends after it starts. A backup paper names the main paper it backs up.
- Opening: the paper is not destroyed (``ClosedError``), not replaced by its backup
  (``FrozenError``), and is the newest version of its id (``ChainError``: a replayed older
  version); the time is inside the window (``WindowError``); each key holder is a named
  officer of this paper (``RoleError``), holds an opening role now (``RoleError``), is not
  recused (``RecusedError``), appears once (``DuplicateSignatureError``); there are at least k
  of them, including a supervisor (``ThresholdError``). The standby share is refused in a
  normal opening.
- Break-glass: the standby secrecy officer stands in for exactly one missing officer (k - 1
  named officers + standby), inside the window; the act always yields an incident.
- Each wrapped key and share names paper id, version, commitment, recipient person and
  recipient key id inside its sealed plaintext; a mismatch is a ``DecryptionError``.
- Backup activation: a secrecy officer replaces an active paper by a backup of the same exam
  and position that backs it up and is itself usable.
- Destruction: a destruction officer and a witness (secrecy officer, supervisor or auditor);
  afterwards nothing about the paper may happen (``ClosedError``).
- Every act is a DSSE statement signed by the people who perform it, verified with the
  multi-signer rule of keys/statements.py at the act's time, and recorded on the custody log
  (the caller's ``record``) before any wrapped key or share is opened: no log entry, no
  decryption.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from crypto import shamir
from crypto.dsse import Envelope, sign_envelope
from crypto.encoding import Fields, b64encode, canonical_json, format_time, parse_json_object
from crypto.sealing import open_sealed, seal_to
from crypto.signing import X25519, EncryptionKey, key_id
from crypto.vocabulary import Classification, Window, check_id
from custody.errors import (
    N_,
    ChainError,
    ClosedError,
    ConflictError,
    DecryptionError,
    DuplicateSignatureError,
    FormatError,
    FrozenError,
    Phrase,
    RecusedError,
    RoleError,
    SignatureError,
    ThresholdError,
    UsageError,
    WindowError,
)
from custody.sealed_text import seal_text
from keys.keyfile import KeyPair
from keys.model import Certificate, Role
from keys.statements import SignerRequirement, require, verify_statement
from keys.trust import TrustStore

PROPOSAL_TYPE = "application/vnd.custody.paper-proposal.v1+json"
OPENING_TYPE = "application/vnd.custody.paper-opening.v1+json"
PRINT_TYPE = "application/vnd.custody.paper-print.v1+json"
BACKUP_TYPE = "application/vnd.custody.paper-backup-activation.v1+json"
DESTRUCTION_TYPE = "application/vnd.custody.paper-destruction.v1+json"
WRAP_TYPE = "custody.paper-key.v1"
SHARE_TYPE = "custody.paper-share.v1"
OPENING_ROLES = (Role.CHIEF_EXAMINER, Role.SUPERVISOR)
WITNESS_ROLES = (Role.SECRECY_OFFICER, Role.SUPERVISOR, Role.AUDITOR)
MAX_OFFICERS = 16


class PaperRole(StrEnum):
    MAIN = "main"
    BACKUP = "backup"


class PaperStatus(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    COMPROMISED = "compromised"
    DESTROYED = "destroyed"


class Slot(StrEnum):
    PRINTER = "printer"
    OFFICER = "officer"
    STANDBY = "standby"
    LOG = "log"  # the log service's part of the key, released only for a logged act


LOG_SUBJECT = "custody-log"


def xor_parts(a: bytes, b: bytes) -> bytes:
    """The data key from its people's part and the log's part (or one part from the other)."""
    if len(a) != len(b):
        raise DecryptionError()
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _check_id(value: str, what: str) -> str:
    return check_id(value, what)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Recipient:
    """One sealed blob: the printer's wrapped key, an officer's share or the standby share."""

    slot: Slot
    subject: str
    key_id: str  # x25519 key id of the recipient
    x: int  # Shamir x coordinate; 0 for the printer's whole key
    sealed_sha256: str

    def to_obj(self) -> dict[str, Any]:
        return {
            "slot": self.slot.value,
            "subject": self.subject,
            "key_id": self.key_id,
            "x": self.x,
            "sealed_sha256": self.sealed_sha256,
        }


@dataclass(frozen=True)
class Proposal:
    """Every public fact of one paper version, as the proposer signed it."""

    paper_id: str
    version: int
    classification: Classification
    exam: str
    position: str
    role: PaperRole
    backup_of: str | None
    commitment: str
    ciphertext_bytes: int
    chunk_size: int
    threshold: int
    window_start: datetime
    window_end: datetime
    proposer: str
    proposed_at: datetime
    recipients: tuple[Recipient, ...]
    title: str = ""

    @property
    def ref(self) -> str:
        return f"{self.paper_id}@v{self.version}"

    @property
    def scope(self) -> tuple[str, ...]:
        return (f"exam:{self.exam}", f"position:{self.position}")

    def officers(self) -> tuple[Recipient, ...]:
        return tuple(r for r in self.recipients if r.slot is Slot.OFFICER)

    def recipient(self, slot: Slot, subject: str) -> Recipient | None:
        for r in self.recipients:
            if r.slot is slot and r.subject == subject:
                return r
        return None

    def subject_ref(self) -> dict[str, Any]:
        return {"paper_id": self.paper_id, "version": self.version, "commitment": self.commitment}

    def payload(self) -> bytes:
        return canonical_json(
            {
                "type": "custody.paper-proposal.v1",
                "paper_id": self.paper_id,
                "version": self.version,
                "classification": self.classification.slug,
                "exam": self.exam,
                "position": self.position,
                "role": self.role.value,
                "backup_of": self.backup_of,
                "title": self.title,
                "commitment": self.commitment,
                "ciphertext_bytes": self.ciphertext_bytes,
                "chunk_size": self.chunk_size,
                "threshold": self.threshold,
                "window": {
                    "start": format_time(self.window_start),
                    "end": format_time(self.window_end),
                },
                "proposer": self.proposer,
                "proposed_at": format_time(self.proposed_at),
                "recipients": [r.to_obj() for r in self.recipients],
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> Proposal:
        what = "paper proposal"
        f = Fields(parse_json_object(payload, what=what), what=what)
        f.expect("type", "custody.paper-proposal.v1")
        window = f.sub("window")
        recipients = []
        for i, raw in enumerate(f.items("recipients")):
            if not isinstance(raw, dict):
                raise FormatError(N_("{what}: recipient {i} must be an object"), what=what, i=i)
            rf = Fields(raw, what=f"{what}: recipient {i}")
            try:
                slot = Slot(rf.text("slot"))
            except ValueError as e:
                raise FormatError(
                    N_("{what}: recipient {i} has an unknown slot"), what=what, i=i
                ) from e
            recipients.append(
                Recipient(
                    slot,
                    rf.text("subject"),
                    rf.text("key_id"),
                    rf.integer("x"),
                    rf.text("sealed_sha256"),
                )
            )
        try:
            classification = Classification.from_slug(f.text("classification"))
            role = PaperRole(f.text("role"))
        except ValueError as e:
            raise FormatError(N_("{what}: unknown classification or role"), what=what) from e
        return cls(
            paper_id=f.text("paper_id"),
            version=f.integer("version"),
            classification=classification,
            exam=f.text("exam"),
            position=f.text("position"),
            role=role,
            backup_of=f.opt_text("backup_of"),
            title=f.text("title"),
            commitment=f.text("commitment"),
            ciphertext_bytes=f.integer("ciphertext_bytes"),
            chunk_size=f.integer("chunk_size"),
            threshold=f.integer("threshold"),
            window_start=window.time("start"),
            window_end=window.time("end"),
            proposer=f.text("proposer"),
            proposed_at=f.time("proposed_at"),
            recipients=tuple(recipients),
        )


# --- proposition -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperPlan:
    """What the proposer asks for, before encryption."""

    paper_id: str
    version: int
    classification: Classification
    exam: str
    position: str
    role: PaperRole
    backup_of: str | None
    printer: str
    officers: tuple[str, ...]
    threshold: int
    window_start: datetime
    window_end: datetime
    standby: str | None = None
    title: str = ""

    def __post_init__(self) -> None:
        _check_id(self.paper_id, "paper id")
        _check_id(self.exam, "exam id")
        _check_id(self.position, "position id")
        if self.version < 1:
            raise UsageError(N_("a paper's version is 1 or more"))
        if self.role is PaperRole.BACKUP and not self.backup_of:
            raise UsageError(N_("a backup paper names the main paper it backs up"))
        if self.role is PaperRole.MAIN and self.backup_of:
            raise UsageError(N_("a main paper backs up nothing: only a backup paper names one"))
        if self.backup_of == self.paper_id:
            raise UsageError(N_("a paper cannot be its own backup"))
        if len(set(self.officers)) != len(self.officers):
            raise DuplicateSignatureError(N_("an opening officer is named twice"))
        if not 2 <= self.threshold <= len(self.officers) <= MAX_OFFICERS:
            raise ThresholdError(
                N_(
                    "need 2 <= threshold ({threshold}) <= officers ({n_officers})"
                    " <= {max_officers}: a paper opens only with two or more "
                    "people"
                ),
                threshold=self.threshold,
                n_officers=len(self.officers),
                max_officers=MAX_OFFICERS,
            )
        if self.window_end <= self.window_start:
            raise WindowError(N_("the opening window must end after it starts"))
        people = [self.printer, *self.officers] + ([self.standby] if self.standby else [])
        if len(set(people)) != len(people):
            raise ConflictError(N_("printer, officers and standby must be different people"))

    @property
    def scope(self) -> frozenset[str]:
        return frozenset({f"exam:{self.exam}", f"position:{self.position}"})


@dataclass(frozen=True)
class PaperPeople:
    proposer: Certificate
    printer: Certificate
    officers: tuple[Certificate, ...]
    standby: Certificate | None


def _person(
    trust: TrustStore,
    subject: str,
    roles: Sequence[Role],
    scope: frozenset[str],
    at: datetime,
    what: str,
) -> Certificate:
    cert = trust.current_certificate(subject, at)
    if not cert.roles & set(roles):
        wanted = " or ".join(r.value for r in roles)
        raise RoleError(
            N_("{who} cannot be the {what}: needs {wanted}"),
            who=cert.describe(),
            what=what,
            wanted=wanted,
        )
    if cert.recusals & scope:
        raise RecusedError(
            N_("{who} is recused from {value}"),
            who=cert.describe(),
            value=", ".join(sorted(cert.recusals & scope)),
        )
    return cert


def check_people(
    plan: PaperPlan, trust: TrustStore, proposer: KeyPair, at: datetime
) -> PaperPeople:
    """The proposition rule: everyone named holds the right role and is not recused."""
    return check_people_of(plan, trust, proposer.signing.key_id, at)


def check_people_of(
    plan: PaperPlan, trust: TrustStore, proposer_key_id: str, at: datetime
) -> PaperPeople:
    """``check_people`` for a proposer known by key id (a proposal signed elsewhere)."""
    scope = plan.scope
    prop = trust.standing_at(proposer_key_id, at)
    if Role.PROPOSER not in prop.roles:
        raise RoleError(N_("{who} is not a proposer"), who=prop.describe())
    if prop.recusals & scope:
        raise RecusedError(
            N_("{who} is recused from {value}"),
            who=prop.describe(),
            value=", ".join(sorted(prop.recusals & scope)),
        )
    printer = _person(trust, plan.printer, [Role.PRINTER], scope, at, "printer")
    officers = tuple(
        _person(trust, s, OPENING_ROLES, scope, at, "opening officer") for s in plan.officers
    )
    if not any(Role.SUPERVISOR in c.roles for c in officers):
        raise ThresholdError(
            N_("no supervisor among the opening officers: no supervisor, no opening")
        )
    standby = (
        _person(trust, plan.standby, [Role.SECRECY_OFFICER], scope, at, "standby")
        if plan.standby
        else None
    )
    return PaperPeople(prop, printer, officers, standby)


def wrap_payload(
    kind: str,
    paper_id: str,
    version: int,
    commitment: str,
    recipient: Recipient,
    secret: bytes,
    threshold: int,
) -> bytes:
    """The plaintext sealed to one recipient (docs/formats.md "Wrapped key and share")."""
    body: dict[str, Any] = {
        "type": kind,
        "paper_id": paper_id,
        "version": version,
        "commitment": commitment,
        "slot": recipient.slot.value,
        "subject": recipient.subject,
        "key_id": recipient.key_id,
    }
    if kind == WRAP_TYPE:
        body["key"] = b64encode(secret)
    else:
        body.update({"x": recipient.x, "threshold": threshold, "y": b64encode(secret)})
    return canonical_json(body)


@dataclass(frozen=True)
class KeyMaterial:
    """Sealed blobs by (slot, subject), and the recipients list the proposal signs."""

    sealed: dict[tuple[Slot, str], bytes] = field(hash=False)
    recipients: tuple[Recipient, ...]


def wrap_keys(
    data_key: bytes,
    plan: PaperPlan,
    people: PaperPeople,
    commitment: str,
    log_public: bytes,
    log_part: bytes,
) -> KeyMaterial:
    """Split the data key into the people's part (``data_key`` XOR ``log_part``) and the log's
    part; seal the people's part whole to the printer and as one Shamir share to each officer
    (and standby), and the log's part to the log service's X25519 key ``log_public``. Neither
    part alone, nor any number of people's shares, opens the paper."""
    people_part = xor_parts(data_key, log_part)
    holders: list[tuple[Slot, Certificate]] = [(Slot.OFFICER, c) for c in people.officers]
    if people.standby is not None:
        holders.append((Slot.STANDBY, people.standby))
    shares = shamir.split(people_part, plan.threshold, len(holders))
    sealed: dict[tuple[Slot, str], bytes] = {}
    recipients: list[Recipient] = []

    def seal(slot: Slot, subject: str, public: bytes, x: int, secret: bytes, kind: str) -> None:
        draft = Recipient(slot, subject, key_id(X25519, public), x, "")
        plain = wrap_payload(
            kind, plan.paper_id, plan.version, commitment, draft, secret, plan.threshold
        )
        blob = seal_to(public, plain)
        sealed[(slot, subject)] = blob
        recipients.append(Recipient(slot, subject, draft.key_id, x, sha256_hex(blob)))

    printer = people.printer
    seal(Slot.PRINTER, printer.subject, printer.encryption_key, 0, people_part, WRAP_TYPE)
    for (slot, cert), share in zip(holders, shares, strict=True):
        seal(slot, cert.subject, cert.encryption_key, share.x, share.y, SHARE_TYPE)
    seal(Slot.LOG, LOG_SUBJECT, log_public, 0, log_part, WRAP_TYPE)
    return KeyMaterial(sealed, tuple(recipients))


def plan_of(proposal: Proposal) -> PaperPlan:
    """The plan a signed proposal carries out (officers in the order of their x), checked by
    ``PaperPlan``'s own rules: a proposal made elsewhere (the proposition page) is judged by
    the same rules as one made here."""
    slots = [r.slot for r in proposal.recipients]
    printers = [r for r in proposal.recipients if r.slot is Slot.PRINTER]
    standbys = [r for r in proposal.recipients if r.slot is Slot.STANDBY]
    if len(printers) != 1 or len(standbys) > 1 or slots.count(Slot.LOG) != 1:
        raise FormatError(
            N_("paper proposal: exactly one printer, one log part and at most one standby")
        )
    officers = sorted(proposal.officers(), key=lambda r: r.x)
    return PaperPlan(
        paper_id=proposal.paper_id,
        version=proposal.version,
        classification=proposal.classification,
        exam=proposal.exam,
        position=proposal.position,
        role=proposal.role,
        backup_of=proposal.backup_of,
        printer=printers[0].subject,
        officers=tuple(r.subject for r in officers),
        threshold=proposal.threshold,
        window_start=proposal.window_start,
        window_end=proposal.window_end,
        standby=standbys[0].subject if standbys else None,
        title=proposal.title,
    )


def expected_recipients(people: PaperPeople, log_public: bytes) -> list[tuple[Slot, str, str, int]]:
    """(slot, subject, X25519 key id, x) of every sealed blob, in the order ``wrap_keys``
    writes them: the printer, the officers (x = 1..n), the standby (x = n + 1), the log."""
    out = [(Slot.PRINTER, people.printer.subject, key_id(X25519, people.printer.encryption_key), 0)]
    for x, cert in enumerate(people.officers, start=1):
        out.append((Slot.OFFICER, cert.subject, key_id(X25519, cert.encryption_key), x))
    if people.standby is not None:
        out.append(
            (
                Slot.STANDBY,
                people.standby.subject,
                key_id(X25519, people.standby.encryption_key),
                len(people.officers) + 1,
            )
        )
    out.append((Slot.LOG, LOG_SUBJECT, key_id(X25519, log_public), 0))
    return out


SEALED_OVERHEAD = 48  # crypto_box_seal: ephemeral public key + Poly1305 tag
MAX_SEALED = 4096  # a wrapped key or share is a few hundred bytes of canonical JSON


def check_submitted_keys(
    proposal: Proposal,
    people: PaperPeople,
    log_public: bytes,
    sealed: dict[tuple[Slot, str], bytes],
) -> None:
    """A proposal made elsewhere: its recipients are exactly the certified X25519 keys of the
    people it names (and the log's), in order, and each sealed blob is the one it signed. What
    a blob sealed to a person holds cannot be checked here (that is the point of sealing it);
    the log's part is checked by its caller, who can open it."""
    got = [(r.slot, r.subject, r.key_id, r.x) for r in proposal.recipients]
    want = expected_recipients(people, log_public)
    if got != want:
        wrong = next(
            (f"{g[0].value} {g[1]}" for g, w in zip(got, want, strict=False) if g != w),
            "the list's length",
        )
        raise SignatureError(
            N_(
                "paper proposal: its recipients are not the certified keys of the people it "
                "names, in order (first difference: {wrong})"
            ),
            hint=N_("seal to the X25519 keys of the certificates the service lists"),
            wrong=wrong,
        )
    if set(sealed) != {(r.slot, r.subject) for r in proposal.recipients}:
        raise FormatError(N_("paper proposal: one sealed key for each recipient, and no other"))
    for r in proposal.recipients:
        blob = sealed[(r.slot, r.subject)]
        if not SEALED_OVERHEAD < len(blob) <= MAX_SEALED or sha256_hex(blob) != r.sealed_sha256:
            raise SignatureError(
                N_("the sealed {slot} key of {subject} is not the one the proposer signed"),
                slot=r.slot.value,
                subject=r.subject,
            )


def build_proposal(
    plan: PaperPlan,
    people: PaperPeople,
    material: KeyMaterial,
    *,
    commitment: str,
    ciphertext_bytes: int,
    chunk_size: int,
    at: datetime,
) -> Proposal:
    return Proposal(
        paper_id=plan.paper_id,
        version=plan.version,
        classification=plan.classification,
        exam=plan.exam,
        position=plan.position,
        role=plan.role,
        backup_of=plan.backup_of,
        title=plan.title,
        commitment=commitment,
        ciphertext_bytes=ciphertext_bytes,
        chunk_size=chunk_size,
        threshold=plan.threshold,
        window_start=plan.window_start,
        window_end=plan.window_end,
        proposer=people.proposer.subject,
        proposed_at=at,
        recipients=material.recipients,
    )


def sign_proposal(proposal: Proposal, proposer: KeyPair) -> Envelope:
    return sign_envelope(PROPOSAL_TYPE, proposal.payload(), [proposer.signing])


def verify_proposal(env: Envelope, trust: TrustStore) -> Proposal:
    """The one place a stored proposal becomes a domain value: signed by a proposer, in time."""
    if env.payload_type != PROPOSAL_TYPE:
        raise FormatError(
            N_("paper proposal: payload type {payload_type!r}"), payload_type=env.payload_type
        )
    unverified = Proposal.from_payload(env.payload)
    check = verify_statement(
        env,
        trust,
        [require("proposer", Role.PROPOSER, person=unverified.proposer)],
        at=unverified.proposed_at,
        scope=unverified.scope,
    )
    return Proposal.from_payload(check.payload)


# --- state and acts --------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperState:
    """A verified proposal plus what the store knows of its fate."""

    proposal: Proposal
    status: PaperStatus
    newest_version: int
    sealed: dict[tuple[Slot, str], bytes] = field(hash=False)

    def check_sealed(self, slot: Slot, subject: str) -> tuple[Recipient, bytes]:
        recipient = self.proposal.recipient(slot, subject)
        if recipient is None:
            raise RoleError(
                N_("{subject} holds no {slot} key for paper {ref}"),
                subject=subject,
                slot=slot.value,
                ref=self.proposal.ref,
            )
        blob = self.sealed.get((slot, subject))
        if blob is None:
            raise ClosedError(
                N_("the {slot} key of {subject} for {ref} is gone"),
                slot=slot.value,
                subject=subject,
                ref=self.proposal.ref,
            )
        if sha256_hex(blob) != recipient.sealed_sha256:
            raise SignatureError(
                N_("stored {slot} key of {subject} for {ref} is not the one the proposer signed"),
                slot=slot.value,
                subject=subject,
                ref=self.proposal.ref,
            )
        return recipient, blob


def check_usable(state: PaperState) -> None:
    p = state.proposal
    if state.status is PaperStatus.DESTROYED:
        raise ClosedError(N_("paper {ref} was destroyed; nothing can open it"), ref=p.ref)
    if state.status is PaperStatus.COMPROMISED:
        raise FrozenError(
            N_("paper {ref} was declared compromised and replaced by its backup"), ref=p.ref
        )
    if state.newest_version > p.version or state.status is PaperStatus.SUPERSEDED:
        raise ChainError(
            N_(
                "paper {ref} is an older version (newest is "
                "v{newest_version}); a replayed version is refused"
            ),
            ref=p.ref,
            newest_version=state.newest_version,
        )


def check_window(proposal: Proposal, at: datetime) -> None:
    if Window(proposal.window_start, proposal.window_end).contains(at):
        return
    if at < proposal.window_start:
        raise WindowError(
            N_("paper {ref} opens from {window_start}, not at {at}"),
            ref=proposal.ref,
            window_start=format_time(proposal.window_start),
            at=format_time(at),
        )
    if at > proposal.window_end:
        raise WindowError(
            N_("paper {ref}'s opening window closed at {window_end}"),
            ref=proposal.ref,
            window_end=format_time(proposal.window_end),
        )


def _open_blob(pair: KeyPair, recipient: Recipient, blob: bytes) -> bytes:
    if pair.encryption is None or pair.encryption.key_id != recipient.key_id:
        raise DecryptionError()  # wrong key: this key file's X25519 key is not the recipient
    return open_sealed(pair.encryption.private_key(), blob)


def _parse_wrapped(plain: bytes, kind: str, proposal: Proposal, recipient: Recipient) -> Fields:
    """A sealed plaintext must name this paper, version, commitment and recipient."""
    try:
        f = Fields(parse_json_object(plain, what=Phrase("sealed key")), what=Phrase("sealed key"))
        bound = (
            f.text("type"),
            f.text("paper_id"),
            f.integer("version"),
            f.text("commitment"),
            f.text("slot"),
            f.text("subject"),
            f.text("key_id"),
        )
    except FormatError as e:
        raise DecryptionError() from e
    expected = (
        kind,
        proposal.paper_id,
        proposal.version,
        proposal.commitment,
        recipient.slot.value,
        recipient.subject,
        recipient.key_id,
    )
    if bound != expected:
        raise DecryptionError()  # a share replayed from another paper, version or officer
    return f


def open_share(
    pair: KeyPair, proposal: Proposal, recipient: Recipient, blob: bytes
) -> shamir.Share:
    f = _parse_wrapped(_open_blob(pair, recipient, blob), SHARE_TYPE, proposal, recipient)
    try:
        if f.integer("x") != recipient.x or f.integer("threshold") != proposal.threshold:
            raise DecryptionError()
        return shamir.Share(recipient.x, f.blob("y"))
    except FormatError as e:
        raise DecryptionError() from e


def open_log_part(
    escrow: EncryptionKey, proposal: Proposal, recipient: Recipient, blob: bytes
) -> bytes:
    """The log service opens its part of a paper's key (only after the act is on the log)."""
    if escrow.key_id != recipient.key_id:
        raise DecryptionError()
    plain = open_sealed(escrow.private_key(), blob)
    return _parse_wrapped(plain, WRAP_TYPE, proposal, recipient).blob("key")


def _take_release(holder: Holder, released: bytes | None) -> bytes:
    """The log's part, sealed by the service to the acting person who asked for it."""
    if released is None or holder.pair.encryption is None:
        raise DecryptionError()
    return open_sealed(holder.pair.encryption.private_key(), released)


def _release_to(holder: Holder) -> bytes:
    if holder.pair.encryption is None:
        raise DecryptionError()
    return holder.pair.encryption.public_raw


def open_wrapped_key(pair: KeyPair, proposal: Proposal, recipient: Recipient, blob: bytes) -> bytes:
    f = _parse_wrapped(_open_blob(pair, recipient, blob), WRAP_TYPE, proposal, recipient)
    try:
        key = f.blob("key")
    except FormatError as e:
        raise DecryptionError() from e
    if len(key) != 32:
        raise DecryptionError()
    return key


@dataclass(frozen=True)
class Holder:
    """A key holder presenting their key at an act: their certificate at that moment."""

    pair: KeyPair
    certificate: Certificate


def identify(pairs: Iterable[KeyPair], trust: TrustStore, at: datetime) -> list[Holder]:
    """Certificates of the people presenting keys; one person presenting twice is refused."""
    holders: list[Holder] = []
    seen: set[str] = set()
    for pair in pairs:
        cert = trust.standing_at(pair.signing.key_id, at)
        if cert.subject in seen:
            raise DuplicateSignatureError(N_("{who} presented a share twice"), who=cert.describe())
        seen.add(cert.subject)
        holders.append(Holder(pair, cert))
    return holders


def _check_officer(proposal: Proposal, holder: Holder, slot: Slot) -> Recipient:
    cert = holder.certificate
    recipient = proposal.recipient(slot, cert.subject)
    if recipient is None:
        raise RoleError(
            N_("{who} is not a named {slot} of paper {ref}"),
            who=cert.describe(),
            slot=slot.value,
            ref=proposal.ref,
        )
    roles = OPENING_ROLES if slot is Slot.OFFICER else (Role.SECRECY_OFFICER,)
    if not cert.roles & set(roles):
        raise RoleError(
            N_("{who} no longer holds a role that may open papers"), who=cert.describe()
        )
    if cert.recusals & set(proposal.scope):
        tags = sorted(cert.recusals & set(proposal.scope))
        raise RecusedError(N_("{who} is recused from {tags}"), who=cert.describe(), tags=tags)
    return recipient


def act_payload(
    kind: str, proposal: Proposal, at: datetime, people: Sequence[str], **extra: Any
) -> bytes:
    return canonical_json(
        {
            "type": kind,
            "paper": proposal.subject_ref(),
            "exam": proposal.exam,
            "position": proposal.position,
            "classification": proposal.classification.slug,
            "at": format_time(at),
            "by": sorted(people),
            **extra,
        }
    )


def _sealed_reason(reason: str, trust: TrustStore, at: datetime) -> dict[str, Any]:
    """A reason as an act carries it: sealed to the secrecy officers standing at ``at``
    (``custody.sealed_text``); none standing is a ``ConflictError``, nothing signed."""
    sealed = seal_text(reason, trust, at, field="reason")
    assert sealed is not None  # the callers refuse an empty reason first
    return sealed.as_json()


def _sign_act(
    payload_type: str,
    payload: bytes,
    holders: Sequence[Holder],
    trust: TrustStore,
    requirements: Sequence[SignerRequirement],
    at: datetime,
    scope: Iterable[str],
) -> Envelope:
    env = sign_envelope(payload_type, payload, [h.pair.signing for h in holders])
    # The act must pass the same verifier an auditor runs; refuse to hand out one that would not.
    verify_statement(env, trust, requirements, at=at, scope=scope)
    return env


@dataclass(frozen=True)
class Incident:
    """An incident this module raises for the incident system (issue 6) to take over."""

    kind: str
    paper_id: str
    version: int
    exam: str
    position: str
    at: datetime
    act_sha256: str
    summary: str
    incident: bool = True


@dataclass(frozen=True)
class Release:
    """A data key released by a signed act (never stored; the caller decrypts and drops it)."""

    proposal: Proposal
    envelope: Envelope
    data_key: bytes = field(repr=False)
    incident: Incident | None = None


# Puts the signed act on the log, then (given an X25519 public key) releases the log's part of
# the paper's key sealed to it; ``None`` when nothing is to be released.
Record = Callable[[Envelope, bytes | None], bytes | None]


def open_with_quorum(
    state: PaperState, trust: TrustStore, pairs: Sequence[KeyPair], at: datetime, record: Record
) -> Release:
    """The opening rule: k named officers (with a supervisor), in the window, on a live paper.

    ``record`` puts the signed act on the log; only after it returns is any share opened."""
    p = state.proposal
    check_usable(state)
    check_window(p, at)
    holders = identify(pairs, trust, at)
    for h in holders:
        if p.recipient(Slot.STANDBY, h.certificate.subject) is not None:
            raise RoleError(
                N_("{who} holds the standby share: use break-glass, which records an incident"),
                who=h.certificate.describe(),
            )
    recipients = [_check_officer(p, h, Slot.OFFICER) for h in holders]
    if len(holders) < p.threshold:
        raise ThresholdError(
            N_("paper {ref} opens with {threshold} officers; {n_holders} presented a share"),
            ref=p.ref,
            threshold=p.threshold,
            n_holders=len(holders),
        )
    if not any(Role.SUPERVISOR in h.certificate.roles for h in holders):
        raise ThresholdError(N_("paper {ref}: no supervisor present, no opening"), ref=p.ref)
    blobs = [state.check_sealed(Slot.OFFICER, h.certificate.subject)[1] for h in holders]
    people = [h.certificate.subject for h in holders]
    reqs = [require(f"officer-{i + 1}", *OPENING_ROLES, person=s) for i, s in enumerate(people)]
    payload = act_payload("custody.paper-opening.v1", p, at, people, break_glass=False)
    env = _sign_act(OPENING_TYPE, payload, holders, trust, reqs, at, p.scope)
    released = record(env, _release_to(holders[0]))  # on the log first
    shares = [
        open_share(h.pair, p, r, blob)
        for h, r, blob in zip(holders, recipients, blobs, strict=True)
    ]
    people_part = shamir.combine(shares[: p.threshold])
    data_key = xor_parts(people_part, _take_release(holders[0], released))
    return Release(p, env, data_key)


def break_glass(
    state: PaperState,
    trust: TrustStore,
    pairs: Sequence[KeyPair],
    at: datetime,
    reason: str,
    record: Record,
) -> Release:
    """The standby secrecy officer stands in for one missing officer; always an incident."""
    p = state.proposal
    if not reason.strip():
        raise UsageError(N_("break-glass needs a reason (what failed, who is absent)"))
    check_usable(state)
    check_window(p, at)
    holders = identify(pairs, trust, at)
    standby = [h for h in holders if p.recipient(Slot.STANDBY, h.certificate.subject)]
    officers = [h for h in holders if h not in standby]
    if not standby:
        raise RoleError(
            N_("break-glass on {ref} needs its standby secrecy officer's key"), ref=p.ref
        )
    recipients = [_check_officer(p, h, Slot.OFFICER) for h in officers]
    standby_recipient = _check_officer(p, standby[0], Slot.STANDBY)
    if len(officers) != p.threshold - 1:
        raise ThresholdError(
            N_(
                "break-glass on {ref}: the standby stands in for exactly one "
                "officer; {value} officer(s) must present their shares, not "
                "{n_officers}"
            ),
            ref=p.ref,
            value=p.threshold - 1,
            n_officers=len(officers),
        )
    blobs = [state.check_sealed(Slot.OFFICER, h.certificate.subject)[1] for h in officers]
    _, standby_blob = state.check_sealed(Slot.STANDBY, standby[0].certificate.subject)
    people = [h.certificate.subject for h in holders]
    reqs = [require("standby", Role.SECRECY_OFFICER, person=standby[0].certificate.subject)]
    reqs += [
        require(f"officer-{i + 1}", *OPENING_ROLES, person=h.certificate.subject)
        for i, h in enumerate(officers)
    ]
    named = {r.subject for r in p.officers()}
    absent = sorted(named - {h.certificate.subject for h in officers})
    payload = act_payload(
        "custody.paper-opening.v1",
        p,
        at,
        people,
        break_glass=True,
        reason_sealed=_sealed_reason(reason, trust, at),
        absent=absent,
    )
    env = _sign_act(OPENING_TYPE, payload, holders, trust, reqs, at, p.scope)
    incident = Incident(
        kind="break_glass_opening",
        paper_id=p.paper_id,
        version=p.version,
        exam=p.exam,
        position=p.position,
        at=at,
        act_sha256=sha256_hex(env.to_bytes()),
        # the reason is the people's words: sealed in the act, never copied into the incident
        summary=f"break-glass opening of {p.ref} by {', '.join(sorted(people))} "
        f"standing in for {', '.join(absent)}",
    )
    # on the log first (the desk opens the incident in that transaction)
    released = record(env, _release_to(standby[0]))
    shares = [
        open_share(h.pair, p, r, blob)
        for h, r, blob in zip(officers, recipients, blobs, strict=True)
    ]
    shares.append(open_share(standby[0].pair, p, standby_recipient, standby_blob))
    data_key = xor_parts(shamir.combine(shares), _take_release(standby[0], released))
    return Release(p, env, data_key, incident)


def release_to_printer(
    state: PaperState, trust: TrustStore, pair: KeyPair, at: datetime, record: Record
) -> Release:
    """The printing unit decrypts (to print) before the window ends; a signed act."""
    p = state.proposal
    check_usable(state)
    if at > p.window_end:
        raise WindowError(N_("paper {ref}'s window closed; it can no longer be printed"), ref=p.ref)
    (holder,) = identify([pair], trust, at)
    cert = holder.certificate
    if Role.PRINTER not in cert.roles:
        raise RoleError(N_("{who} is not a printer"), who=cert.describe())
    if cert.recusals & set(p.scope):
        raise RecusedError(
            N_("{who} is recused from {recusals}"),
            who=cert.describe(),
            recusals=", ".join(sorted(cert.recusals)),
        )
    recipient, blob = state.check_sealed(Slot.PRINTER, cert.subject)
    payload = act_payload("custody.paper-print.v1", p, at, [cert.subject])
    reqs = [require("printer", Role.PRINTER, person=cert.subject)]
    env = _sign_act(PRINT_TYPE, payload, [holder], trust, reqs, at, p.scope)
    released = record(env, _release_to(holder))  # on the log first
    people_part = open_wrapped_key(pair, p, recipient, blob)
    data_key = xor_parts(people_part, _take_release(holder, released))
    return Release(p, env, data_key)


def activate_backup(
    compromised: PaperState,
    backup: PaperState,
    trust: TrustStore,
    pair: KeyPair,
    at: datetime,
    reason: str,
) -> Envelope:
    """A secrecy officer replaces a compromised paper by its backup (every package follows)."""
    c, b = compromised.proposal, backup.proposal
    if not reason.strip():
        raise UsageError(N_("backup activation needs a reason"))
    if compromised.status is PaperStatus.DESTROYED:
        raise ClosedError(N_("paper {ref} was destroyed"), ref=c.ref)
    if compromised.status is PaperStatus.COMPROMISED:
        raise ConflictError(N_("paper {ref} was already replaced"), ref=c.ref)
    check_usable(backup)
    if b.role is not PaperRole.BACKUP or (b.exam, b.position) != (c.exam, c.position):
        raise ChainError(
            N_("{ref} is not a backup paper for exam {exam} position {position}"),
            ref=b.ref,
            exam=c.exam,
            position=c.position,
        )
    main_id = c.paper_id if c.role is PaperRole.MAIN else c.backup_of
    if b.backup_of != main_id:
        raise ChainError(
            N_("{ref} backs up {backup_of}, not {main_id}"),
            ref=b.ref,
            backup_of=b.backup_of,
            main_id=main_id,
        )
    (holder,) = identify([pair], trust, at)
    reqs = [require("secrecy_officer", Role.SECRECY_OFFICER)]
    payload = act_payload(
        "custody.paper-backup-activation.v1",
        c,
        at,
        [holder.certificate.subject],
        backup=b.subject_ref(),
        reason_sealed=_sealed_reason(reason, trust, at),
    )
    return _sign_act(BACKUP_TYPE, payload, [holder], trust, reqs, at, c.scope)


def destroy(
    state: PaperState, trust: TrustStore, pairs: Sequence[KeyPair], at: datetime
) -> Envelope:
    """A destruction officer and a witness sign; the caller then deletes every sealed key."""
    p = state.proposal
    if state.status is PaperStatus.DESTROYED:
        raise ClosedError(N_("paper {ref} was already destroyed"), ref=p.ref)
    holders = identify(pairs, trust, at)
    reqs = [
        require("destroyer", Role.DESTRUCTION_OFFICER),
        require("witness", *WITNESS_ROLES),
    ]
    payload = act_payload(
        "custody.paper-destruction.v1",
        p,
        at,
        [h.certificate.subject for h in holders],
        shredded=[r.to_obj() for r in p.recipients],
    )
    return _sign_act(DESTRUCTION_TYPE, payload, holders, trust, reqs, at, p.scope)
