"""Paper services the CLI (and later the API) call: the edge around custody/papers.py.

Rules:
- The plaintext is read from the caller's stream and only ciphertext is written: to a temp
  file in ``<home>/papers/`` renamed to ``<commitment>.cpaper`` once complete; the data key
  lives in memory only and is sealed to people's keys before anything is stored.
- A proposal is stored in one transaction with its sealed keys; if the transaction fails the
  ciphertext file is removed again.
- A version at or below one already stored for the same paper id is refused (``ConflictError``).
- An act (opening, print, break-glass, backup activation, destruction) is stored as its signed
  envelope before any plaintext is produced; break-glass also stores an incident row.
- No SQL here: every read and write of the paper tables goes through the repository in
  ``custody/store/papers.py``, which returns domain values; writes that must commit with an
  act on the custody log run inside the log's append transaction (``alongside``).
- Destruction deletes every sealed key of every version of the paper (SQLite: with
  ``secure_delete``), then proves the bytes left the database (custody/store/shred.py): SQLite's
  WAL truncated and no database file holding a copy; PostgreSQL's table vacuumed with no old
  row version left. If that proof fails the destruction stays recorded and
  ``ShredIncompleteError`` names what is left; running destroy again finishes the erase.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import nacl.utils

from crypto.dsse import Envelope, parse_envelope
from crypto.encoding import format_time
from crypto.sealing import seal_to
from crypto.stream import (
    DEFAULT_CHUNK,
    Progress,
    StreamHeader,
    check_framing,
    decrypt_into,
    decrypt_to_writer,
    encrypt_stream,
)
from custody import identity
from custody.errors import (
    N_,
    ChainError,
    ConflictError,
    DecryptionError,
    FormatError,
    NotFoundError,
    ShredIncompleteError,
    SignatureError,
    StorageError,
    UsageError,
    WindowError,
)
from custody.home import Home
from custody.incidents.model import WatchedLog
from custody.log import Alongside, load_exam_policies
from custody.papers import (
    LOG_SUBJECT,
    Incident,
    PaperPlan,
    PaperRole,
    PaperState,
    PaperStatus,
    Proposal,
    Release,
    Slot,
    build_proposal,
    check_people,
    check_people_of,
    check_submitted_keys,
    open_log_part,
    open_with_quorum,
    plan_of,
    release_to_printer,
    sha256_hex,
    sign_proposal,
    verify_proposal,
    wrap_keys,
)
from custody.papers import activate_backup as activate_backup_rule
from custody.papers import break_glass as break_glass_rule
from custody.papers import destroy as destroy_rule
from custody.store import papers as store
from custody.store.papers import (
    KEY_BLOB_COLUMN,
    KEY_TABLE,
    PaperIncidentRecord,
    PaperRepository,
    PaperSummary,
    SealedKey,
    StoredPaper,
)
from custody.store.shred import ERASE_WAIT, Destroyed, check_erased, locator
from keys.keyfile import KeyPair
from keys.trust import TrustStore


def _no_progress(_n: int) -> None:
    return None


def papers_dir(home: Home) -> Path:
    return home.path / "papers"


def blob_path(home: Home, commitment: str) -> Path:
    return papers_dir(home) / f"{commitment}.cpaper"


@dataclass(frozen=True)
class Proposed:
    proposal: Proposal
    envelope: Envelope
    blob: Path


# How far ahead a paper's opening window may lie (a season is planned a year or so ahead).
MAX_WINDOW_AHEAD = timedelta(days=3 * 366)


def check_window_ahead(plan: PaperPlan, now: datetime) -> None:
    """A paper must be openable: its window not over by the service's clock, and not decades
    away (a typo in the year)."""
    if plan.window_end <= now:
        raise WindowError(
            N_(
                "paper {ref}: its opening window ended at {end}, before now ({now}): it could "
                "never be opened"
            ),
            ref=f"{plan.paper_id}@v{plan.version}",
            end=format_time(plan.window_end),
            now=format_time(now),
        )
    if plan.window_start > now + MAX_WINDOW_AHEAD:
        raise WindowError(
            N_("paper {ref}: its opening window starts at {start}, more than three years ahead"),
            ref=f"{plan.paper_id}@v{plan.version}",
            start=format_time(plan.window_start),
        )


def propose(
    home: Home,
    *,
    source: BinaryIO,
    plan: PaperPlan,
    proposer: KeyPair,
    now: datetime,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress = _no_progress,
    log: WatchedLog,
) -> Proposed:
    """Encrypt at once, wrap the key to people, sign the proposal, put it on the custody log,
    then store it."""
    trust = _fresh_trust(home, log)
    check_window_ahead(plan, now)
    people = check_people(plan, trust, proposer, now)
    with store.reading(home.engine) as repo:
        _check_versions(repo, plan)
    folder = papers_dir(home)
    fd, tmp = _incoming(folder)
    final: Path | None = None
    try:
        data_key = nacl.utils.random(32)
        header = StreamHeader(plan.paper_id, plan.version, plan.classification.slug, chunk_size)
        with os.fdopen(fd, "wb") as fh:
            enc = encrypt_stream(source, fh, data_key, header, progress=progress)
            fh.flush()
            os.fsync(fh.fileno())
        log_part = nacl.utils.random(32)
        material = wrap_keys(
            data_key, plan, people, enc.commitment, log.escrow.public_raw, log_part
        )
        del log_part
        del data_key  # only the sealed copies remain (Python cannot wipe bytes reliably)
        proposal = build_proposal(
            plan,
            people,
            material,
            commitment=enc.commitment,
            ciphertext_bytes=enc.ciphertext_bytes,
            chunk_size=chunk_size,
            at=now,
        )
        envelope = sign_proposal(proposal, proposer)
        verify_proposal(envelope, trust)
        final = _place(tmp, blob_path(home, enc.commitment), enc.commitment)
        _keep(log, plan, proposal, envelope, material.sealed, now)
    except BaseException:
        if final is not None:
            final.unlink(missing_ok=True)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return Proposed(proposal, envelope, final)


def _keep(
    log: WatchedLog,
    plan: PaperPlan,
    proposal: Proposal,
    envelope: Envelope,
    sealed: dict[tuple[Slot, str], bytes],
    now: datetime,
) -> None:
    """The proposal on the custody log, with its row and sealed keys in the same transaction
    (the ciphertext file is in place already; its caller removes it if this raises)."""
    stored = StoredPaper(
        ref=proposal.ref,
        paper_id=proposal.paper_id,
        version=proposal.version,
        exam=proposal.exam,
        position=proposal.position,
        role=proposal.role,
        backup_of=proposal.backup_of,
        classification=proposal.classification.slug,
        status=PaperStatus.ACTIVE,
        commitment=proposal.commitment,
        proposed_at=format_time(now),
        proposal=envelope.to_bytes(),
    )
    keys = [SealedKey(slot, subject, blob) for (slot, subject), blob in sealed.items()]

    def keep(repo: PaperRepository) -> None:
        # In the transaction that appends the proposal to the log: both or neither.
        _check_versions(repo, plan)
        repo.add_version(stored, keys)

    log.append_paper_act(
        envelope,
        act_kind="proposal",
        paper=proposal.ref,
        now=now,
        alongside=store.alongside(keep, f"paper {proposal.ref}"),
    )


def accept_proposal(
    home: Home,
    *,
    envelope: Envelope,
    sealed: dict[tuple[Slot, str], bytes],
    ciphertext: bytes,
    now: datetime,
    log: WatchedLog,
) -> Proposed:
    """A paper encrypted and signed elsewhere (the proposition page, in the proposer's
    browser): the service never sees its data key or its plaintext, and checks everything
    ``propose`` guarantees by construction before it stores a byte: the proposal signed by a
    proposer in good standing; everyone it names holding their role, unrecused, now (by the
    service's clock); its recipients exactly their certified X25519 keys and the log's, each
    sealed blob the one signed; the log's part opening under the log's key to this paper;
    the ciphertext's commitment, length and framing; the versions. The log then judges the
    proposal's time against its own clock (within 5 minutes) as for every paper act."""
    trust = _fresh_trust(home, log)
    proposal = verify_proposal(envelope, trust)
    plan = plan_of(proposal)
    signer = envelope.signatures[0].keyid if len(envelope.signatures) == 1 else ""
    if len(envelope.signatures) != 1 or trust.certificate(signer).subject != proposal.proposer:
        raise SignatureError(N_("paper proposal: one signature, the proposer's own"))
    check_window_ahead(plan, now)
    people = check_people_of(plan, trust, signer, now)
    log_public = log.escrow.public_raw
    check_submitted_keys(proposal, people, log_public, sealed)
    recipient, blob = proposal.recipients[-1], sealed[(Slot.LOG, LOG_SUBJECT)]
    try:
        open_log_part(log.escrow, proposal, recipient, blob)
    except DecryptionError as e:
        raise DecryptionError(
            N_("the log's part of the key does not open under the log's key for this paper"),
            hint=N_("seal it to the key GET /v1/proposition/recipients names"),
        ) from e
    if len(ciphertext) != proposal.ciphertext_bytes or sha256_hex(ciphertext) != (
        proposal.commitment
    ):
        raise SignatureError(
            N_("the encrypted paper is not the one the proposal commits to (length or SHA-256)")
        )
    check_framing(
        ciphertext,
        StreamHeader(
            proposal.paper_id, proposal.version, proposal.classification.slug, proposal.chunk_size
        ),
    )
    with store.reading(home.engine) as repo:
        _check_versions(repo, plan)
    folder = papers_dir(home)
    final: Path | None = None
    fd, tmp = _incoming(folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(ciphertext)
            fh.flush()
            os.fsync(fh.fileno())
        final = _place(tmp, blob_path(home, proposal.commitment), proposal.commitment)
        _keep(log, plan, proposal, envelope, sealed, now)
    except BaseException:
        if final is not None:
            final.unlink(missing_ok=True)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return Proposed(proposal, envelope, final)


def _incoming(folder: Path) -> tuple[int, Path]:
    """A new private temporary file under the papers' folder, for a ciphertext being written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".incoming-", suffix=".cpaper")
    except OSError as e:
        raise StorageError(
            N_("cannot write under {folder}: {reason}"), folder=str(folder), reason=e.strerror
        ) from e
    return fd, Path(name)


def _place(tmp: Path, target: Path, commitment: str) -> Path:
    """The written ciphertext under its final name. A hard link is made only if no file has
    that name (atomically): of two submissions of one paper at once only one places the file,
    and the other's refusal never removes the file the first one stored (the CLI and the
    browser route alike)."""
    try:
        os.link(tmp, target)
    except FileExistsError as e:
        raise ConflictError(
            N_("an encrypted paper with commitment {commitment} is stored already"),
            commitment=commitment,
        ) from e
    except OSError as e:
        raise StorageError(
            N_("cannot write under {folder}: {reason}"),
            folder=str(target.parent),
            reason=e.strerror,
        ) from e
    return target


def _check_versions(repo: PaperRepository, plan: PaperPlan) -> None:
    for row in repo.versions(plan.paper_id):
        if row.version >= plan.version:
            raise ConflictError(
                N_(
                    "paper {paper} already has version {have}; "
                    "version {version} would replay or repeat it"
                ),
                hint=N_("a new version needs a higher --version"),
                paper=plan.paper_id,
                have=row.version,
                version=plan.version,
            )
        if (row.exam, row.position, row.role) != (plan.exam, plan.position, plan.role):
            raise ConflictError(
                N_("paper {paper} belongs to another exam, position or role"), paper=plan.paper_id
            )
        if row.status is PaperStatus.DESTROYED:
            raise ConflictError(
                N_("paper {paper} was destroyed; use a new paper id"), paper=plan.paper_id
            )
    if plan.role is PaperRole.BACKUP:
        mains = repo.versions(plan.backup_of or "")
        if not mains:
            raise NotFoundError(N_("no paper {paper} to back up"), paper=plan.backup_of)
        main = mains[0]
        if (main.exam, main.position, main.role) != (plan.exam, plan.position, PaperRole.MAIN):
            raise ChainError(
                N_("{paper} is not the main paper of exam {exam} position {position}"),
                paper=plan.backup_of,
                exam=plan.exam,
                position=plan.position,
            )
    else:
        other = repo.other_main(plan.exam, plan.position, plan.paper_id)
        if other is not None:
            raise ConflictError(
                N_(
                    "position {position} of exam {exam} already has main paper {paper}; "
                    "propose this one as --role backup"
                ),
                position=plan.position,
                exam=plan.exam,
                paper=other.paper_id,
            )


def parse_ref(text: str) -> tuple[str, int | None]:
    """``ID`` (newest version) or ``ID@vN``."""
    if "@v" in text:
        pid, _, ver = text.rpartition("@v")
        if not ver.isdigit():
            raise UsageError(N_("paper {text!r}: write ID or ID@vN"), text=text)
        return pid, int(ver)
    return text, None


def load_state(home: Home, paper: str, trust: TrustStore | None = None) -> PaperState:
    """The verified proposal, status and sealed keys of one paper version."""
    trust = trust or identity.load_trust(home)
    pid, version = parse_ref(paper)
    with store.reading(home.engine) as repo:
        rows = repo.versions(pid)
        if not rows:
            raise NotFoundError(N_("no paper {paper}"), paper=pid)
        newest = max(r.version for r in rows)
        want = newest if version is None else version
        row = next((r for r in rows if r.version == want), None)
        if row is None:
            raise NotFoundError(
                N_("paper {paper} has no version {version}"), paper=pid, version=want
            )
        keys = repo.keys(row.ref)
    proposal = verify_proposal(parse_envelope(row.proposal, what="paper proposal"), trust)
    if (proposal.paper_id, proposal.version, proposal.commitment) != (
        row.paper_id,
        row.version,
        row.commitment,
    ):
        raise ChainError(N_("stored row {ref} does not match its signed proposal"), ref=row.ref)
    sealed = {(k.slot, k.subject): k.sealed for k in keys}
    return PaperState(proposal, row.status, newest, sealed)


def _act_row(
    ref: str, kind: str, env: Envelope, at: datetime, ids: list[int]
) -> Callable[[PaperRepository], None]:
    """The act's row (a convenience index: the act itself is on the custody log), written in
    the transaction that appends the act to the log; its id is appended to ``ids``."""

    def write(repo: PaperRepository) -> None:
        ids.append(repo.add_act(ref, kind, at, env.to_bytes(), incident=kind == "break_glass"))

    return write


@dataclass(frozen=True)
class Opened:
    """A signed release plus the decrypted stream, produced only on request.

    ``write_file`` and ``write_stream`` authenticate everything before the caller sees a byte.
    """

    release: Release
    blob: Path
    act_id: int

    @property
    def envelope(self) -> Envelope:
        return self.release.envelope

    @property
    def incident(self) -> Incident | None:
        return self.release.incident

    def _header(self) -> StreamHeader:
        p = self.release.proposal
        return StreamHeader(p.paper_id, p.version, p.classification.slug, p.chunk_size)

    def _source(self) -> BinaryIO:
        try:
            return self.blob.open("rb")
        except FileNotFoundError as e:
            raise NotFoundError(
                N_("the ciphertext of {ref} is missing"), ref=self.release.proposal.ref
            ) from e

    def write_file(self, out: Path, progress: Progress = _no_progress) -> int:
        with self._source() as src:
            return decrypt_to_path(
                src,
                self.release.data_key,
                self._header(),
                out,
                commitment=self.release.proposal.commitment,
                progress=progress,
            )

    def write_stream(self, out: BinaryIO, progress: Progress = _no_progress) -> int:
        with self._source() as src:
            return decrypt_to_writer(
                src,
                self.release.data_key,
                self._header(),
                out,
                commitment=self.release.proposal.commitment,
                progress=progress,
            )


def _fresh_trust(home: Home, log: WatchedLog) -> TrustStore:
    """The home's trust store now (an enrolment or revocation made since counts), which the
    log then judges with too."""
    trust = identity.load_trust(home)
    log.set_trust(trust)
    return trust


class _Recorder:
    """Puts a signed paper act on the custody log, with its act row in the same transaction;
    then, and only then, opens the log's part of the paper's key and seals it to the acting
    person who asked (the papers rules call it before they open any wrapped key or share)."""

    def __init__(
        self, log: WatchedLog, act_kind: str, ref: str, now: datetime, state: PaperState | None
    ) -> None:
        self.log, self.act_kind, self.ref, self.now, self.state = log, act_kind, ref, now, state
        self.ids: list[int] = []

    def __call__(self, env: Envelope, release_to: bytes | None) -> bytes | None:
        receipt = self.log.append_paper_act(
            env,
            act_kind=self.act_kind,
            paper=self.ref,
            now=self.now,
            alongside=store.alongside(
                _act_row(self.ref, self.act_kind, env, self.now, self.ids),
                f"the {self.act_kind} act of {self.ref}",
            ),
        )
        if receipt.duplicate:  # the same act again (same people, same second): its first row
            with store.reading(self.log.engine) as repo:
                self.ids.extend(repo.act_ids(self.ref, env.to_bytes()))
        if release_to is None or self.state is None:
            return None
        recipient, blob = self.state.check_sealed(Slot.LOG, LOG_SUBJECT)
        part = open_log_part(self.log.escrow, self.state.proposal, recipient, blob)
        return seal_to(release_to, part)

    @property
    def act_id(self) -> int:
        if not self.ids:  # pragma: no cover - the rules record before they release
            raise StorageError(
                N_("the {act} act of {ref} was not recorded"), act=self.act_kind, ref=self.ref
            )
        return self.ids[-1]


def open_paper(
    home: Home, paper: str, pairs: Sequence[KeyPair], now: datetime, *, log: WatchedLog
) -> Opened:
    trust = _fresh_trust(home, log)
    state = load_state(home, paper, trust)
    ref = state.proposal.ref
    record = _Recorder(log, "opening", ref, now, state)
    release = open_with_quorum(state, trust, pairs, now, record)
    return Opened(release, blob_path(home, state.proposal.commitment), record.act_id)


def break_glass(
    home: Home,
    paper: str,
    pairs: Sequence[KeyPair],
    now: datetime,
    reason: str,
    *,
    log: WatchedLog,
) -> Opened:
    trust = _fresh_trust(home, log)
    state = load_state(home, paper, trust)
    ref = state.proposal.ref
    record = _Recorder(log, "break_glass", ref, now, state)
    release = break_glass_rule(state, trust, pairs, now, reason, record)
    return Opened(release, blob_path(home, state.proposal.commitment), record.act_id)


def print_decrypt(
    home: Home, paper: str, pair: KeyPair, now: datetime, *, log: WatchedLog
) -> Opened:
    trust = _fresh_trust(home, log)
    state = load_state(home, paper, trust)
    ref = state.proposal.ref
    record = _Recorder(log, "print", ref, now, state)
    release = release_to_printer(state, trust, pair, now, record)
    return Opened(release, blob_path(home, state.proposal.commitment), record.act_id)


def activate_backup(
    home: Home,
    paper: str,
    backup: str,
    pair: KeyPair,
    now: datetime,
    reason: str,
    *,
    log: WatchedLog,
) -> Envelope:
    trust = _fresh_trust(home, log)
    compromised = load_state(home, paper, trust)
    replacement = load_state(home, backup, trust)
    env = activate_backup_rule(compromised, replacement, trust, pair, now, reason)
    ref = compromised.proposal.ref

    def mark(repo: PaperRepository) -> None:
        repo.set_status(ref, PaperStatus.COMPROMISED)
        _act_row(ref, "backup_activation", env, now, [])(repo)

    log.append_paper_act(
        env,
        act_kind="backup_activation",
        paper=ref,
        now=now,
        alongside=store.alongside(mark, f"paper {ref}"),
    )
    return env


def destroy(
    home: Home,
    paper: str,
    pairs: Sequence[KeyPair],
    now: datetime,
    *,
    erase_wait: float = ERASE_WAIT,
    log: WatchedLog,
) -> list[Envelope]:
    """Destroy every version of a paper, then prove its sealed keys left the database.

    A destruction officer and a witness sign one act per live version; each goes on the
    custody log first (the log's part of the key is deleted with the rest). One transaction
    deletes every sealed key row (SQLite: with ``secure_delete``), stores the acts, marks the
    versions destroyed and writes a ``paper_erase`` row per deleted key. After the commit,
    ``check_erased`` makes the engine drop its old copies and looks for them; once none is
    left the ``paper_erase`` rows go.

    Decision (docs/adr/0005-checked-shredding.md): when the check fails, the destruction stays
    recorded. The deletion happened and custody will never hand out those keys again; what is
    incomplete is the physical erase, and the error says exactly that. Running ``destroy``
    again on such a paper signs and records nothing new: it repeats the erase and its check
    (the keys given are not needed for that). A paper whose erase is proven is refused with
    ``ClosedError`` as before.

    Args:
        erase_wait: seconds the SQLite checkpoint is retried while a reader holds a snapshot.

    Returns:
        The paper's destruction acts (the stored ones when only the erase was repeated).

    Raises:
        ShredIncompleteError: (a ``StorageError``) the destruction is recorded but a copy of a
            destroyed key may survive: the message names the paper, the key and the file (or
            table, or session) that still holds it, never the bytes.
    """
    trust = _fresh_trust(home, log)
    pid, _ = parse_ref(paper)
    with store.reading(home.engine) as repo:
        refs = [r.ref for r in repo.versions(pid)]
    if not refs:
        raise NotFoundError(N_("no paper {paper}"), paper=pid)
    states = [load_state(home, ref, trust) for ref in refs]
    live = [s for s in states if s.status is not PaperStatus.DESTROYED]
    pending = _pending_erase(home, refs)
    if not live and not pending:
        destroy_rule(states[-1], trust, pairs, now)  # raises ClosedError
    envelopes = [destroy_rule(state, trust, pairs, now) for state in live]
    deleted: list[Destroyed] = []
    if live:
        # The acts on the log and the keys' deletion in one transaction: all or nothing.
        log.append_paper_acts(
            [
                (env, "destruction", state.proposal.ref)
                for state, env in zip(live, envelopes, strict=True)
            ],
            now=now,
            alongside=_key_deleter(live, envelopes, now, deleted),
        )
    destroyed = pending + deleted
    check = check_erased(home.engine, KEY_TABLE, KEY_BLOB_COLUMN, destroyed, wait=erase_wait)
    if not check.complete:
        raise ShredIncompleteError(
            N_(
                "paper {paper} is destroyed (acts recorded, sealed keys deleted) but not yet "
                "erased from the database: {check}"
            ),
            hint=N_(
                "close whatever holds an old snapshot of the database (another custody "
                "process, a backup, an sqlite3 or psql session) and run the same destroy command "
                "again: it records nothing new and repeats the erase and its check"
            ),
            paper=pid,
            check=check.describe(),
        )
    with store.writing(home.engine) as repo:
        repo.forget_erased(refs)
    return envelopes if live else _destruction_acts(home, refs)


def _key_label(slot: str, subject: str, ref: str) -> str:
    return f"the {slot} key of {subject} for {ref}"


def _key_deleter(
    live: Sequence[PaperState],
    envelopes: Sequence[Envelope],
    now: datetime,
    destroyed: list[Destroyed],
) -> Alongside:
    """In the transaction that appends the destruction acts: delete the sealed keys (SQLite:
    with ``secure_delete``), record the acts and what is to be erased (appended to
    ``destroyed``)."""

    def write(repo: PaperRepository) -> None:
        repo.require_secure_delete()
        for state, env in zip(live, envelopes, strict=True):
            ref = state.proposal.ref
            for key in repo.keys(ref):
                digest = sha256_hex(key.sealed)
                found_by = locator(key.sealed)
                label = _key_label(key.slot.value, key.subject, ref)
                destroyed.append(Destroyed(label, digest, (key.sealed, found_by)))
                repo.add_erase(ref, key.slot.value, key.subject, digest, found_by.hex())
            repo.delete_keys(ref)
            repo.set_status(ref, PaperStatus.DESTROYED)
            repo.add_act(ref, "destruction", now, env.to_bytes())

    return store.alongside(write, "the destruction")


def _pending_erase(home: Home, refs: Sequence[str]) -> list[Destroyed]:
    """Destroyed keys of these versions whose erase a previous run could not prove."""
    with store.reading(home.engine) as repo:
        rows = repo.pending_erase(refs)
    out = []
    for r in rows:
        try:
            found_by = bytes.fromhex(r.locator)
        except ValueError as e:
            raise FormatError(
                N_("paper_erase row {row} for {ref} is damaged"), row=r.id, ref=r.paper_ref
            ) from e
        label = _key_label(r.slot, r.subject, r.paper_ref)
        out.append(Destroyed(label, r.sealed_sha256, (found_by,)))
    return out


def _destruction_acts(home: Home, refs: Sequence[str]) -> list[Envelope]:
    with store.reading(home.engine) as repo:
        acts = repo.acts(refs, "destruction")
    return [parse_envelope(a, what="destruction act") for a in acts]


def list_papers(home: Home, exam: str | None = None) -> list[PaperSummary]:
    """Every paper version (of ``exam``, if given), by exam and ref, with its keys held."""
    with store.reading(home.engine) as repo:
        return repo.summaries(exam)


def incidents(home: Home) -> list[PaperIncidentRecord]:
    """The incidents paper acts raised (break-glass openings), oldest first."""
    with store.reading(home.engine) as repo:
        return repo.incidents()


def decrypt_to_path(
    src: BinaryIO,
    key: bytes,
    expect: StreamHeader,
    out: Path,
    *,
    commitment: str | None = None,
    progress: Progress = _no_progress,
) -> int:
    """Decrypt into ``out``: a private sibling temp file (mode 0600), linked into place only
    when every chunk, the final tag and the commitment verified; deleted on any failure. An
    existing ``out`` is never replaced (``ConflictError``)."""
    if out.exists():
        raise ConflictError(N_("{out} already exists; refusing to overwrite it"), out=str(out))
    try:
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    except OSError as e:
        raise StorageError(
            N_("cannot write beside {out}: {reason}"), out=str(out), reason=e.strerror
        ) from e
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            total = decrypt_into(src, key, expect, fh, commitment=commitment, progress=progress)
            # No fsync: a decrypted paper is a working copy, not a record (the signed act on
            # the log is); forcing 1 GiB of plaintext to disk would only add latency.
        try:
            os.link(tmp, out)  # never replaces a file that appeared meanwhile
        except FileExistsError as e:
            raise ConflictError(
                N_("{out} already exists; refusing to overwrite it"), out=str(out)
            ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return total


@dataclass(frozen=True)
class Purge:
    purged: tuple[str, ...]
    kept: tuple[str, ...]
    bytes_freed: int


def purge(
    home: Home, *, now: datetime, writer: Callable[[], WatchedLog], exam: str | None = None
) -> Purge:
    """After the retention date (the new hires' probation end), delete the ciphertext of
    destroyed papers. The custody log keeps only hashes and signatures, so it still verifies;
    papers not yet destroyed are kept and listed.

    The retention date is the exam's policy **on the log** (the latest ``exam_policy``
    statement; ``exams.json`` binds only once published), judged for ``exam``, or without it
    for every exam whose destroyed papers would go: if any of them is still within its
    retention, or has no policy on the log, nothing is deleted. Each purge goes on the log
    first (a system ``paper_act`` of kind ``purge``, which the log itself refuses before the
    retention date), then the ciphertext is deleted. The log's writer (``writer``, which needs
    the log's and the system's passphrases) is opened only when there is something to purge.
    """
    rows = list_papers(home, exam)
    judged = {exam} if exam is not None else {r.exam for r in rows if _destroyed(r)}
    retained = []
    if judged:  # a home with nothing to judge needs no policy
        with home.engine.connect() as conn:
            policies = load_exam_policies(conn)
        for name in sorted(judged):
            if name not in policies:
                raise NotFoundError(
                    N_("exam {exam} has no policy on the log: nothing of it is purged"),
                    hint=N_("publish the exam's policy from exams.json: custody exam publish"),
                    exam=name,
                )
            until = policies[name].retention_until
            if now < until:
                retained.append(f"{name} until {format_time(until)}")
    if retained and exam is not None:
        raise WindowError(
            N_("records are kept ({kept}); it is now {now}"),
            kept="; ".join(retained),
            now=format_time(now),
        )
    if retained:
        raise WindowError(
            N_("records are kept ({kept}); it is now {now}"),
            hint=N_("purge an exam whose retention is over: --exam ID"),
            kept="; ".join(retained),
            now=format_time(now),
        )
    purged: list[str] = []
    kept = [row.ref for row in rows if not _destroyed(row)]
    present = [row for row in rows if _destroyed(row) and blob_path(home, row.commitment).exists()]
    if present:  # the log first: no record, no deletion
        writer().append_purges([(r.ref, r.exam, r.commitment) for r in present], now=now)
    freed = 0
    for row in rows:
        if not _destroyed(row):
            continue
        path = blob_path(home, row.commitment)
        if path.exists():
            freed += path.stat().st_size
            path.unlink()
        purged.append(row.ref)
    return Purge(tuple(purged), tuple(kept), freed)


def _destroyed(row: PaperSummary) -> bool:
    return row.status == PaperStatus.DESTROYED.value
