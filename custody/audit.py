"""Export a self-contained log bundle, and verify one offline with no trust in the server.

Bundle (a folder; see docs/formats.md "Export bundle"):
  manifest.json     format, authority id, size, origin, SHA-256 of each file (informative)
  trust.json        the authority statement, certificates and revocations (each root-signed)
  checkpoint.note   the latest signed checkpoint (C2SP signed note, log key), followed by the
                    witness cosignature lines the log holds for it
  events.jsonl      every accepted event envelope, one per line, in log order
  witnesses.json    the authority's witness policy when the home has one (informative: a
                    verifier brings its own, or uses its home's)
  labels.jsonl      each sealed package whose seal event is in the export: its signed label
                    text, one canonical JSON object {"label", "package_id"} a line, by id

Verification rules (``verify_log``; pure over its inputs, it opens no file):
- The checkpoint verifies under the authority's log key; the tree size and root are taken from
  it, never from the bundle's other files.
- The RFC 9162 root over the event lines equals the checkpoint's root and the line count its
  size; an earlier checkpoint, if given, is consistent (its root is the root of that prefix).
- Every event: a well-formed envelope of a custody event; signatures by certified keys with
  the roles, validity, revocation and recusal the kind requires at the event's time; chain
  links; state machine, route, window and containment rules (the same ``apply_event`` the
  server runs). Each problem is reported with the event's index and the rule broken.
- Packages whose chain is not closed by destruction are listed (an error with
  ``require_closed``).
- Labels (``labels.jsonl``): each verifies (signature, sealer's certificate and roles) at
  its own issued-at time, names the package it is listed under, and agrees with that
  package's ``seal`` event on the log (``packages.label_disagreements``); a seal event that
  commits to a label (``label_sha256``) whose label the bundle lacks is named too. Each is
  the problem ``label`` naming the package.
- With a witness policy (k of n), at least k of the n listed witnesses must have a valid
  cosignature/v1 on the checkpoint verified (problem ``witness_policy`` otherwise, naming the
  witnesses counted); a line that does not verify is not counted, and a line that names a
  listed witness and its key yet does not verify is a problem of its own
  (``witness_cosignature``), even when the quorum is met: nobody but a forger writes one.
  Without a policy, no cosignature is checked and the report says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crypto import merkle
from crypto.dsse import SignatureCheck, parse_envelope, sign_envelope
from crypto.encoding import Fields, b64encode, canonical_json, format_time, parse_json_object
from crypto.files import (
    CAP_BUNDLE,
    CAP_NOTE,
    CAP_SMALL_JSON,
    open_user_file,
    read_optional_file,
    read_user_file,
)
from crypto.note import NoteVerifier, open_checkpoint, parse_checkpoint, parse_note
from crypto.signing import SigningKey
from custody.access_records import ACCESS_CHECKPOINT_FILE, ACCESS_FILE, verify_access
from custody.errors import (
    N_,
    ChainError,
    ConflictError,
    CustodyError,
    FormatError,
    NotFoundError,
    Phrase,
    Said,
)
from custody.events import Kind, parse_event
from custody.exams import ExamPolicy
from custody.packages import label_disagreements
from custody.parallel import Leaf, LineBlocks, SignaturePool, leaf_envelope
from custody.rules import Finding, PackageState, Status, apply_event, resync
from custody.witnesses import WITNESSES_FILE, CosignatureCount, WitnessPolicy, count_cosignatures
from keys.keyfile import write_new_file
from keys.trust import TrustStore
from labels.payload import manifest_from_fields, parse_label, verify_label

if TYPE_CHECKING:  # verifying a bundle never loads the database layer: export alone needs it
    from custody.access_log import AccessLog
    from custody.log import CustodyLog

EXPORT_FORMAT = "custody-export/v1"
CAP_EXPORT_FILE = 1 << 40  # events.jsonl of tens of millions of events is streamed
LABELS_FILE = "labels.jsonl"
CHUNK = 2000
BLOCK = 1 << 20  # events.jsonl is read and handed to the workers in blocks of about this
PROGRESS_EVERY = 1000


# -- export --------------------------------------------------------------------------------


def trust_document(trust: TrustStore) -> bytes:
    return json.dumps(
        {
            "authority": trust.authority_envelope.to_json_obj(),
            "certificates": [e.to_json_obj() for e in trust.certificate_envelopes],
            "revocations": [e.to_json_obj() for e in trust.revocation_envelopes],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def load_trust_document(data: bytes, *, pinned_root_id: str | None) -> TrustStore:
    f = Fields(parse_json_object(data, what="trust.json"), what="trust.json")
    return TrustStore.build(
        parse_envelope(f.sub("authority").obj, what="trust.json authority"),
        [parse_envelope(c, what="trust.json certificate") for c in f.items("certificates")],
        [parse_envelope(r, what="trust.json revocation") for r in f.items("revocations")],
        pinned_root_id=pinned_root_id,
    )


def export_bundle(
    log: CustodyLog,
    out: Path,
    *,
    witnesses: bytes | None = None,
    progress: Callable[[int, int], None] | None = None,
    access: AccessLog | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write the bundle under ``out`` (a new or empty folder); ``witnesses`` is the home's
    ``witnesses.json``, copied as it is; ``access`` adds the access log up to its latest
    checkpoint (``access.jsonl``, ``access-checkpoint.note``)."""
    from custody.package_service import sealed_labels  # noqa: PLC0415 (verify stays light)

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConflictError(
            N_("{out} exists and is not an empty folder"),
            hint=N_("pass a new folder to --out"),
            out=out,
        )
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = log.cosigned_checkpoint()
    authority = log.trust.authority
    size, _ = _checkpoint_of(checkpoint, log.trust)
    hashes: dict[str, str] = {}
    events_path = out / "events.jsonl"
    digest = hashlib.sha256()
    with events_path.open("wb") as fh:
        for index, leaf in log.entries(0, size):
            line = leaf + b"\n"
            fh.write(line)
            digest.update(line)
            if progress is not None:
                progress(index + 1, size)
        fh.flush()
        os.fsync(fh.fileno())
    hashes["events.jsonl"] = digest.hexdigest()
    labels = b"".join(
        canonical_json({"label": label, "package_id": pid}) + b"\n"
        for pid, label in sealed_labels(log.engine)
        if (history := log.package_history(pid)) and history[0] < size
    )
    files = [
        (LABELS_FILE, labels),
        ("trust.json", trust_document(log.trust) + b"\n"),
        ("checkpoint.note", checkpoint.encode()),
    ]
    if witnesses is not None:
        files.append((WITNESSES_FILE, witnesses))
    for name, data in files:
        write_new_file(out / name, data, mode=0o644)
        hashes[name] = hashlib.sha256(data).hexdigest()
    if access is not None and now is not None:
        hashes.update(access.export(out, now))
    manifest = {
        "format": EXPORT_FORMAT,
        "authority_id": authority.id,
        "origin": authority.log_origin,
        "size": size,
        "files": hashes,
    }
    write_new_file(out / "manifest.json", _manifest_bytes(manifest), mode=0o644)
    return manifest


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The one form of ``manifest.json`` (keys in export's order, two-space indent, a final
    newline); a verifier compares the file with this rendering of its own content."""
    return json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"


def _checkpoint_of(note: str, trust: TrustStore) -> tuple[int, bytes]:
    authority = trust.authority
    verifier = NoteVerifier(authority.log_origin, authority.log_key)
    checkpoint, _ = open_checkpoint(note, [verifier], origin=authority.log_origin)
    return checkpoint.size, checkpoint.root


# -- verify --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What verification found wrong: where (``index``, None for the bundle as a whole), by
    which rule (a stable code), and what. ``message`` is the English (JSON and logs); ``said``
    the same sentence as a template, which ``text`` renders in the reader's language."""

    index: int | None
    rule: str
    message: str
    statement_id: str = ""
    said: Said | None = field(default=None, compare=False, repr=False)

    def text(self, translate: Callable[[str], str]) -> str:
        """The problem in the reader's language (``translate``: a catalogue's ``gettext``)."""
        return self.message if self.said is None else self.said.render(translate)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "rule": self.rule,
            "message": self.message,
            "statement_id": self.statement_id,
        }


def _problem(index: int | None, rule: str, template: str, **params: object) -> Problem:
    """A problem told by ``template`` (an ``N_`` message id) and its parameters."""
    said = Said(template, params)
    return Problem(index, rule, said.english, said=said)


def _refusal(
    index: int | None, error: CustodyError, statement_id: str = "", rule: str | None = None
) -> Problem:
    """A problem that is a refusal: its words the message, its code the rule (unless
    ``rule`` names another)."""
    said = Said("{error}", {"error": error})
    return Problem(index, rule or error.code, error.message, statement_id, said)


@dataclass
class Report:
    size: int = 0
    checked: int = 0
    signatures: int = 0
    root_ok: bool = False
    since_ok: bool | None = None
    problems: list[Problem] = field(default_factory=list)
    findings: list[tuple[int, Finding]] = field(default_factory=list)
    open_chains: list[str] = field(default_factory=list)
    packages: int = 0
    destroyed: int = 0
    authority_id: str = ""
    authority_name: str = ""
    checkpoint_root: str = ""
    labels: int = 0
    witnesses: CosignatureCount | None = None
    witness_policy_source: str = ""
    access_records: int | None = None  # None: the bundle holds no access log

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "authority": {"id": self.authority_id, "name": self.authority_name},
            "checkpoint": {"size": self.size, "root": self.checkpoint_root},
            "size": self.size,
            "events_checked": self.checked,
            "signatures_checked": self.signatures,
            "root_matches_checkpoint": self.root_ok,
            "consistent_with_earlier_checkpoint": self.since_ok,
            "packages": self.packages,
            "destroyed": self.destroyed,
            "open_chains": self.open_chains,
            "labels_checked": self.labels,
            "access_records_checked": self.access_records,
            "witness_policy": None
            if self.witnesses is None
            else {"source": self.witness_policy_source, **self.witnesses.as_dict()},
            "problems": [p.as_dict() for p in self.problems],
            "findings": [
                {"index": i, "kind": f.kind, "package": f.package_id, "detail": f.detail}
                for i, f in self.findings
            ],
        }


def verify_log(
    trust: TrustStore,
    checkpoint_note: str,
    lines: Iterable[bytes] | LineBlocks,
    *,
    since_note: str | None = None,
    require_closed: bool = False,
    witness_policy: WitnessPolicy | None = None,
    labels: Iterable[bytes] | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Verify a log given as bytes (module rules): ``lines`` are the lines of
    ``events.jsonl``, one by one or in blocks; ``labels`` are the lines of ``labels.jsonl``
    (None: labels are not checked); ``progress`` hears (events checked, checkpoint size)
    every thousand events or so."""
    report = Report(authority_id=trust.authority.id, authority_name=trust.authority.name)
    try:
        size, root = _checkpoint_of(checkpoint_note, trust)
    except CustodyError as e:
        report.problems.append(
            _problem(None, "checkpoint_signature", N_("checkpoint refused: {error}"), error=e)
        )
        return report
    report.size = size
    report.checkpoint_root = root.hex()
    if witness_policy is not None:
        note = parse_note(checkpoint_note)  # verified above: its text is the checkpoint's
        count = count_cosignatures(witness_policy, parse_checkpoint(note.text), note.signatures)
        report.witnesses = count
        if not count.ok:
            said = count.said()
            report.problems.append(Problem(None, "witness_policy", said.english, said=said))
        for name in count.invalid:  # a listed witness's line that does not verify: forged
            report.problems.append(
                _problem(
                    None,
                    "witness_cosignature",
                    N_(
                        "the cosignature line of listed witness {name} does not verify over "
                        "the checkpoint: it was altered or forged"
                    ),
                    name=name,
                )
            )
    since: tuple[int, bytes] | None = None
    if since_note is not None:
        try:
            since = _checkpoint_of(since_note, trust)
        except CustodyError as e:
            report.problems.append(
                _problem(
                    None, "checkpoint_signature", N_("earlier checkpoint refused: {error}"), error=e
                )
            )
        if since is not None and since[0] > size:
            report.problems.append(
                _problem(
                    None,
                    "log_consistency",
                    N_("earlier checkpoint has size {earlier} > {size}: the log shrank"),
                    earlier=since[0],
                    size=size,
                )
            )
            since = None

    replay = _Replay(report, trust, since)
    pool = SignaturePool(trust.signing_keys, workers)
    step = replay.step
    try:
        if isinstance(lines, LineBlocks):
            for block in pool.leaf_blocks(lines.blocks):
                for leaf in block:
                    step(leaf)
                if progress is not None:
                    progress(replay.count, size)
        else:
            for leaf in pool.leaves(lines):
                step(leaf)
                if progress is not None and replay.count % PROGRESS_EVERY == 0:
                    progress(replay.count, size)
        if progress is not None:
            progress(replay.count, size)
    finally:
        pool.close()
    replay.conclude(size, root, require_closed)
    if labels is not None:
        report.problems.extend(_label_problems(report, trust, labels, replay.seals))
    return report


def _label_problems(
    report: Report,
    trust: TrustStore,
    lines: Iterable[bytes],
    seals: dict[str, tuple[int, str, dict[str, Any]]],
) -> list[Problem]:
    """Every label of ``labels.jsonl`` against the pinned trust and its package's seal event."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        where = f"{LABELS_FILE} line {number}"
        try:
            obj = parse_json_object(line.rstrip(b"\n"), what=where)
            if set(obj) != {"label", "package_id"}:
                raise FormatError(N_("{where} holds exactly label and package_id"), where=where)
            f = Fields(obj, what=where)
            pid, text = f.text("package_id"), f.text("label")
        except CustodyError as e:
            problems.append(_refusal(None, e, rule="label"))
            continue
        if pid in seen:
            problems.append(
                _problem(
                    None,
                    "label",
                    N_("package {pid}: listed twice in {file}"),
                    pid=pid,
                    file=LABELS_FILE,
                )
            )
            continue
        seen.add(pid)
        report.labels += 1
        seal = seals.get(pid)
        try:
            # The label is judged at its own issued-at time (the signature binds that time).
            issued_at = manifest_from_fields(parse_label(text).fields).issued_at
            verified = verify_label(text, trust, now=issued_at)
        except CustodyError as e:
            problems.append(
                _problem(
                    None, "label", N_("package {pid}: label refused: {error}"), pid=pid, error=e
                )
            )
            continue
        if verified.manifest.package_id != pid:
            problems.append(
                _problem(
                    None,
                    "label",
                    N_("package {pid}: the label is package {other}'s"),
                    pid=pid,
                    other=verified.manifest.package_id,
                )
            )
            continue
        if seal is None:
            problems.append(
                _problem(None, "label", N_("package {pid}: no seal event on the log"), pid=pid)
            )
            continue
        index, sealer, body = seal
        differ = label_disagreements(verified.manifest, text, sealer, body)
        if differ:
            problems.append(
                _problem(
                    index,
                    "label",
                    N_("package {pid}: the label disagrees with its seal event on {fields}"),
                    pid=pid,
                    fields=", ".join(differ),
                )
            )
    for pid, (index, _, body) in sorted(seals.items()):
        if pid not in seen and "label_sha256" in body:
            problems.append(
                _problem(
                    index,
                    "label",
                    N_("package {pid}: its seal event commits to a label the bundle lacks"),
                    pid=pid,
                )
            )
    return problems


class _Replay:
    """Follows the log event by event: the tree, the package states, the problems."""

    def __init__(self, report: Report, trust: TrustStore, since: tuple[int, bytes] | None) -> None:
        self.report = report
        self.trust = trust
        self.since = since
        self.tree = _RootBuilder()
        self.states: dict[str, PackageState | None] = {}
        self.exams: dict[str, ExamPolicy] = {}  # each exam's policy, as the log's statements set
        self.count = 0
        # Statement ids seen so far (16-byte prefixes: corrections must name an earlier one).
        self.seen: set[bytes] = set()
        self.last_received: datetime | None = None
        # Each package's accepted seal event: (index, sealer, body), for the label checks.
        self.seals: dict[str, tuple[int, str, dict[str, Any]]] = {}

    def step(self, leaf: Leaf) -> None:
        report, index = self.report, self.count
        self.count += 1
        self.tree.append(leaf[0])
        if self.since is not None and self.count == self.since[0]:
            report.since_ok = self.tree.root() == self.since[1]
            if not report.since_ok:
                report.problems.append(
                    _problem(
                        index,
                        "log_consistency",
                        N_(
                            "the first {n} events do not match the earlier checkpoint: the log "
                            "was rewritten or forked"
                        ),
                        n=self.since[0],
                    )
                )
        report.checked += 1
        if len(leaf) == 2:
            err = leaf[1]
            report.problems.append(_refusal(index, err))
            return
        _, parts, received, signed_by, unmatched = leaf
        env = leaf_envelope(parts)
        sigcheck = SignatureCheck(env.payload_type, env.payload, frozenset(signed_by), unmatched)
        report.signatures += len(env.signatures)
        if self.last_received is not None and received < self.last_received:
            report.problems.append(
                _problem(
                    index,
                    "receive_order",
                    N_(
                        "received {received} before the previous entry's {previous}: the "
                        "log's clock never runs backwards"
                    ),
                    received=format_time(received),
                    previous=format_time(self.last_received),
                )
            )
        self.last_received = received
        try:
            event = parse_event(env.payload)
        except CustodyError as e:
            report.problems.append(_refusal(index, e))
            return
        for pid in event.package_ids:
            self.states.setdefault(pid, None)
        self.seen.add(bytes.fromhex(event.id)[:16])
        try:
            if event.corrects and bytes.fromhex(event.corrects)[:16] not in self.seen:
                raise ChainError(
                    N_("the correction names statement {corrects}, not earlier in the log"),
                    corrects=event.corrects[:16],
                )
            outcome = apply_event(
                event, sigcheck, env, self.states, self.trust, received=received, exams=self.exams
            )
        except CustodyError as e:
            report.problems.append(_refusal(index, e, event.id))
            resync(event, self.states)
            return
        self.states.update(outcome.states)
        if outcome.exam is not None:
            self.exams[outcome.exam.exam_id] = outcome.exam
        if outcome.findings:
            report.findings.extend((index, f) for f in outcome.findings)
        if event.kind == Kind.SEAL:
            for pid in event.package_ids:
                sealer = event.actors.get("sealer", "")
                self.seals.setdefault(pid, (index, sealer, dict(event.body)))

    def conclude(self, size: int, root: bytes, require_closed: bool) -> None:
        report, count, since = self.report, self.count, self.since
        if since is not None and since[0] == 0:
            report.since_ok = since[1] == merkle.EMPTY_ROOT
        if since is not None and count < since[0]:
            report.problems.append(
                _problem(
                    None,
                    "log_consistency",
                    N_("the bundle holds {count} events, fewer than the earlier checkpoint's {n}"),
                    count=count,
                    n=since[0],
                )
            )
        if count != size:
            report.problems.append(
                _problem(
                    None,
                    "checkpoint_size",
                    N_("the bundle holds {count} events but the signed checkpoint says {size}"),
                    count=count,
                    size=size,
                )
            )
        report.root_ok = count == size and self.tree.root() == root
        if count == size and not report.root_ok:
            report.problems.append(
                _problem(
                    None,
                    "checkpoint_root",
                    N_(
                        "the Merkle root of the events differs from the signed checkpoint's "
                        "root: an event was altered, removed, added or reordered"
                    ),
                )
            )
        known = {pid: s for pid, s in self.states.items() if s is not None}
        report.packages = len(known)
        report.destroyed = sum(1 for s in known.values() if s.status == Status.DESTROYED)
        report.open_chains = sorted(p for p, s in known.items() if s.status != Status.DESTROYED)
        if require_closed:
            for pid in report.open_chains:
                report.problems.append(
                    _problem(
                        None,
                        "not_closed",
                        N_("package {pid} was never destroyed: its chain is open"),
                        pid=pid,
                    )
                )


class _RootBuilder:
    """RFC 9162 root of a stream of leaves in O(log n) memory (a stack of perfect subtrees)."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, bytes]] = []

    def append(self, leaf: bytes) -> None:
        level, h = 0, leaf
        while self.stack and self.stack[-1][0] == level:
            _, left = self.stack.pop()
            h = merkle.node_hash(left, h)
            level += 1
        self.stack.append((level, h))

    def root(self) -> bytes:
        if not self.stack:
            return merkle.EMPTY_ROOT
        h = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            h = merkle.node_hash(left, h)
        return h


def verify_bundle(
    folder: Path,
    trust: TrustStore,
    *,
    since_note: str | None = None,
    require_closed: bool = False,
    witness_policy: WitnessPolicy | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Verify an export folder against a trust store the caller chose (pinned, or its own
    bundle): every event (``verify_log``), and every file the manifest lists. The bundle's own
    ``trust.json`` must be the same authority's as ``trust``."""
    trust_doc, checkpoint = read_bundle(folder)
    events = folder / "events.jsonl"
    if not os.path.lexists(events):
        raise NotFoundError(
            N_("{folder} is not an export bundle (missing events.jsonl)"), folder=folder
        )
    digest = hashlib.sha256()

    labels_path = folder / LABELS_FILE
    labels_data = read_optional_file(
        labels_path, what=Phrase("bundle labels"), limit=CAP_EXPORT_FILE
    )
    label_lines = labels_data.splitlines() if labels_data is not None else []
    blocks = stream_blocks(events, digest.update)
    report = verify_log(
        trust,
        checkpoint,
        LineBlocks(blocks),
        since_note=since_note,
        require_closed=require_closed,
        witness_policy=witness_policy,
        labels=label_lines,
        workers=workers,
        progress=progress,
    )
    for (
        _
    ) in blocks:  # not read when the checkpoint was refused: hashed for the manifest all the same
        pass
    hashes = {
        "events.jsonl": digest.hexdigest(),
        "trust.json": hashlib.sha256(trust_doc).hexdigest(),
        "checkpoint.note": hashlib.sha256(checkpoint.encode()).hexdigest(),
    }
    for optional in (WITNESSES_FILE, LABELS_FILE, ACCESS_FILE, ACCESS_CHECKPOINT_FILE):
        data = read_optional_file(
            folder / optional, what=Phrase("bundle file"), limit=CAP_EXPORT_FILE
        )
        if data is not None:
            hashes[optional] = hashlib.sha256(data).hexdigest()
    report.problems.extend(_access_problems(folder, trust, report))
    # the checkpoint's size, when the checkpoint could be read (else nothing to compare with)
    size = report.size if report.checkpoint_root else None
    report.problems.extend(_manifest_problems(folder, trust, trust_doc, size, hashes))
    return report


def _access_problems(folder: Path, trust: TrustStore, report: Report) -> list[Problem]:
    """The access log in the bundle (when exported with it): chain, root and checkpoint."""
    lines_path, note_path = folder / ACCESS_FILE, folder / ACCESS_CHECKPOINT_FILE
    if not lines_path.is_file() and not note_path.is_file():
        return []
    if not lines_path.is_file() or not note_path.is_file():
        return [_problem(None, "access", N_("the access log is exported without its checkpoint"))]
    lines = lines_path.read_bytes().splitlines()
    report.access_records = len(lines)
    note = note_path.read_text("utf-8", errors="replace")
    return [
        Problem(None, "access", said.english, said=said)
        for said in verify_access(trust.authority, note, lines)
    ]


def _manifest_problems(
    folder: Path, trust: TrustStore, trust_doc: bytes, size: int | None, hashes: dict[str, str]
) -> list[Problem]:
    """Everything ``manifest.json`` says, checked against the files and the pinned trust."""
    problems: list[Problem] = []

    def problem(template: str, **params: object) -> None:
        problems.append(_problem(None, "manifest", template, **params))

    try:
        own = load_trust_document(trust_doc, pinned_root_id=None)
        if own.authority.id != trust.authority.id:
            problem(
                N_("trust.json is authority {own} ({own_name}), not the pinned {pinned} ({name})"),
                own=own.authority.id[:16],
                own_name=own.authority.name,
                pinned=trust.authority.id[:16],
                name=trust.authority.name,
            )
    except CustodyError as e:
        problem(N_("trust.json is not a valid trust document: {error}"), error=e)
    try:
        data = read_user_file(
            folder / "manifest.json",
            what=Phrase("bundle manifest"),
            limit=CAP_SMALL_JSON,
            stdin=False,
        )
        f = Fields(parse_json_object(data, what="manifest.json"), what="manifest.json")
        if _manifest_bytes(f.obj) != data:
            problem(N_("manifest.json is not in the exact form export writes (it was edited)"))
        f.expect("format", EXPORT_FORMAT)
        if f.text("authority_id") != trust.authority.id:
            problem(
                N_("manifest.json names authority {named}, not the pinned one"),
                named=f.text("authority_id")[:16],
            )
        if f.text("origin") != trust.authority.log_origin:
            problem(
                N_("manifest.json names log origin {origin}, not the authority's"),
                origin=repr(f.text("origin")),
            )
        if size is not None and f.integer("size") != size:
            problem(
                N_("manifest.json says {said} events, the checkpoint {size}"),
                said=f.integer("size"),
                size=size,
            )
        listed = f.sub("files").obj
        if set(listed) != set(hashes):
            problem(
                N_("manifest.json lists files {listed}, expected {expected}"),
                listed=", ".join(sorted(listed)),
                expected=", ".join(sorted(hashes)),
            )
        for name, want in hashes.items():
            if name in listed and listed[name] != want:
                problem(
                    N_("{name} does not match the SHA-256 that manifest.json lists for it"),
                    name=name,
                )
    except NotFoundError:
        problem(N_("manifest.json is missing"))
    except CustodyError as e:
        problem(N_("manifest.json is unreadable: {error}"), error=e)
    return problems


def read_bundle(folder: Path) -> tuple[bytes, str]:
    """The bundle's trust document and checkpoint (events are streamed separately)."""
    if not folder.is_dir():
        raise NotFoundError(N_("{folder} is not an export bundle (not a folder)"), folder=folder)
    try:
        trust = read_user_file(
            folder / "trust.json", what=Phrase("bundle"), limit=CAP_BUNDLE, stdin=False
        )
        note = read_user_file(
            folder / "checkpoint.note", what=Phrase("bundle"), limit=CAP_NOTE, stdin=False
        )
    except NotFoundError as e:
        raise NotFoundError(
            N_("{folder} is not an export bundle ({error})"), folder=folder, error=e
        ) from e
    try:
        return trust, note.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(N_("{folder}/checkpoint.note is not UTF-8"), folder=folder) from e


def stream_lines(path: Path) -> Iterator[bytes]:
    fh, _ = open_user_file(path, what=Phrase("bundle events"), limit=CAP_EXPORT_FILE)
    with fh:
        yield from fh


def stream_blocks(path: Path, feed: Callable[[bytes], object] | None = None) -> Iterator[bytes]:
    """The file in blocks of whole lines (about ``BLOCK`` bytes; a line longer than that is a
    block of its own), every byte given to ``feed`` (a digest's ``update``) as it is read."""
    fh, _ = open_user_file(path, what=Phrase("bundle events"), limit=CAP_EXPORT_FILE)
    with fh:
        rest: list[bytes] = []  # the start of a line the blocks read so far have not ended
        while data := fh.read(BLOCK):
            if feed is not None:
                feed(data)
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest.append(data)
                continue
            yield b"".join((*rest, data[:cut])) if rest else data[:cut]
            rest = [data[cut:]] if cut < len(data) else []
        if rest:
            yield b"".join(rest)


# -- the directory (issue 12) ----------------------------------------------------------------

DIRECTORY_TYPE = "application/vnd.custody.directory.v1+json"


def directory_document(trust: TrustStore, system_key: SigningKey, now: datetime) -> bytes:
    """What a courier's device needs about people, and no more: for each certificate the
    display name, roles, signing key and validity, signed as a whole by the system key; with
    the authority statement (which names the system key) and the revocations as issued."""
    people = [
        {
            "subject": cert.subject,
            "name": cert.name,
            "roles": sorted(r.value for r in cert.roles),
            "key_id": cert.key_id,
            "signing_key": b64encode(cert.signing_key.raw),
            "not_before": format_time(cert.not_before),
            "not_after": format_time(cert.not_after),
        }
        for cert in sorted(trust.certificates.values(), key=lambda c: (c.subject, c.key_id))
    ]
    payload = canonical_json(
        {
            "type": "custody.directory.v1",
            "authority": trust.authority.id,
            "issued_at": format_time(now),
            "people": people,
        }
    )
    directory = sign_envelope(DIRECTORY_TYPE, payload, [system_key])
    return json.dumps(
        {
            "authority": trust.authority_envelope.to_json_obj(),
            "directory": directory.to_json_obj(),
            "revocations": [e.to_json_obj() for e in trust.revocation_envelopes],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
