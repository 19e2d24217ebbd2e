"""The service objects one app shares: settings, the home, the log, the trust store.

Rules:
- The log service is opened the one way every path opens it (``custody.service``): rules,
  blocked-key gate and incident desk. The log and system keys are unsealed once, when the app
  is created, each with its own passphrase; without them the log is read-only.
- The desk's clock work (break-glass intake, overdue handovers, missed check-ins and patrols,
  the escalation ladder) and the outbox's delivery run in the service on their own schedule
  (``desk_every``), not only when someone runs ``custody incident sweep``.
- The live witnesses of ``witnesses.json`` (those with a ``url``): at start, a writer asks each
  for the latest checkpoint of this log it cosigned and refuses to start over a database behind
  or inconsistent with one (``check_witness_copies``; docs/adr/0012); while the service runs,
  the process that runs the desk sends them the latest checkpoint every ``witness_every``
  seconds, with a back-off per witness that fails (``WitnessSender``).
- The trust store is re-read whenever a certificate or revocation was added since the last
  request (rows are only ever added), so an enrolment or a revocation made with the CLI counts
  at once: the home's trust version (one stat call, bumped after every enrolment, revocation
  and import) says so, and the rows are counted every ``TRUST_RECOUNT`` seconds besides, in
  case a writer stopped between its commit and its bump.
- Single submissions go through one group-commit writer (``custody.group_commit``): requests
  arriving together share one durable transaction, each answered once it has committed. Under
  `serve --workers N` that writer is the serving process's (``api.writer_link``): every worker
  sends it its single submissions, so they all join one transaction stream.
- Sessions (``custody.sessions``) are issued with the system key (a writer only) and checked
  on every process with the authority's public system key; the access log
  (``custody.access_log``) records every read of personal data. The limits below are settings
  with their defaults documented in docs/formats.md ("Limits").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api.writer_link import WriterLink
from crypto.note import parse_checkpoint, parse_note
from custody import identity
from custody.access_log import AccessLog
from custody.errors import N_, NotFoundError
from custody.group_commit import GroupCommit
from custody.home import Home
from custody.incidents.model import WatchedLog
from custody.incidents.outbox import DeliveryReport, Mailer, deliver_outbox
from custody.log import CustodyLog
from custody.readiness import MIN_FREE_BYTES, Readiness, readiness
from custody.service import ServiceSecrets, open_reader, open_writer, signed_head_file
from custody.sessions import Sessions
from custody.store import identities
from custody.witness_client import (
    WitnessCopy,
    WitnessOutcome,
    WitnessSender,
    check_witness_copies,
    published,
    published_checkpoint,
    witness_copies,
)
from custody.witnesses import WitnessPolicy, count_cosignatures
from keys.trust import TrustStore

MIB = 1 << 20
TRUST_RECOUNT = 5.0  # seconds between two counts of the trust rows (the version file aside)


def system_clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Settings:
    """What one service process needs; the passphrase is used once and never shown."""

    home: Path
    log_passphrase: str | None = field(default=None, repr=False)
    system_passphrase: str | None = field(default=None, repr=False)
    clock: Callable[[], datetime] = system_clock
    desk_every: float = 60.0  # seconds between two rounds of the desk's clock work; 0: never
    witness_every: float = 2.0  # seconds between two rounds of sending to the witnesses; 0: never
    mailer: Mailer | None = None
    max_event_body: int = 16 * MIB
    max_batch: int = 1000
    max_image_body: int = 8 * MIB
    max_label_body: int = 16 * 1024
    max_cosignature_body: int = 64 * 1024
    max_paper_body: int = 64 * MIB  # POST /v1/papers: a paper encrypted in the browser, base64
    min_free_bytes: int = MIN_FREE_BYTES  # /readyz: free disk space under the home, at least
    # -- access (issue 12) --
    session_minutes: int = 15  # a session token's life (never past its key's certificate)
    challenge_seconds: int = 120  # a login challenge's life (single use)
    public_origin: str | None = None  # the origin logins are bound to (default: the request's)
    max_envelope: int = MIB  # one envelope, alone or inside a batch (docs/formats.md)
    max_login_body: int = 16 * 1024
    max_image_pixels: int = 24_000_000  # decoded size of a photo sent to /v1/labels/scan
    body_timeout: float = 30.0  # seconds for a whole request body to arrive (slow-loris)
    rate_per_address: str = "600/minute"  # every request, per client address
    rate_per_key: str = "300/minute"  # per signing key: logins, logged-in reads, events
    # Count in <home>/rates.table with the other processes of `serve --workers N`; False:
    # in this process's memory (it alone serves the home).
    shared_rates: bool = False
    access_flush: str = "full"  # access records: "full" (fsync each), "lazy", "queued" (access_log)
    # `serve --workers N`: the socket of the one log writer (``api.writer_link``) that takes
    # this process's single submissions; None: this process commits them itself.
    writer_socket: Path | None = None


class Backend:
    """The service objects the routes share (one per app)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = Home(settings.home)
        self.log: CustodyLog
        if settings.log_passphrase is not None:
            secrets = ServiceSecrets(
                log=settings.log_passphrase,
                system=settings.system_passphrase or settings.log_passphrase,
            )
            self.log = open_writer(self.home, secrets)
        else:
            self.log = open_reader(self.home)
        self._lock = threading.Lock()
        self._trust_token = self.home.trust_version()
        self._trust_version = self._version()
        self.witness_outcomes: list[WitnessOutcome] = []
        self.witness_copies: list[WitnessCopy] = []
        self.head_file = signed_head_file(self.home, self.log.trust.authority)
        self.witness_sender: WitnessSender | None = None
        if self.writable:
            policy = self.home.witness_policy()
            if policy is not None and policy.urls:
                # The witnesses' copies of what this log signed: a database behind one is
                # refused before anything is signed (docs/adr/0012).
                self.witness_copies = witness_copies(self.log, policy)
                check_witness_copies(self.log, self.witness_copies, self.head_file)
                self.witness_sender = WitnessSender(
                    self.log,
                    self.home.witness_policy,
                    self.now,
                    self.head_file,
                    every=settings.witness_every or 2.0,
                    on_outcomes=self._witnessed,
                )
        system_key = self.log.desk.system_key if isinstance(self.log, WatchedLog) else None
        self.sessions = Sessions(
            self.log.trust, system_key, ttl=timedelta(minutes=settings.session_minutes)
        )
        self.access = AccessLog(
            self.home.engine,
            self.log.trust.authority,
            self.log.log_key,
            flush=settings.access_flush,
        )
        self.seal_facts: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # api.access
        self._trust_counted = time.monotonic()
        self.link: WriterLink | None = None
        self.committer: GroupCommit | None = None
        if self.log.log_key is not None and settings.writer_socket is not None:
            self.link = WriterLink(settings.writer_socket)
        elif self.log.log_key is not None:
            self.committer = GroupCommit(self.log, self.now, refresh=self.trust)

    def close(self) -> None:
        """Commit the queued submissions and access records; stop their writers."""
        if self.committer is not None:
            self.committer.close()
        self.access.close()

    @property
    def writable(self) -> bool:
        return self.log.log_key is not None

    def desk_round(self) -> tuple[list[str], DeliveryReport | None]:
        """One round of the desk's clock work at the service's time: take in break-glass
        openings, sweep (overdue, missed check-ins and patrols, escalation), deliver the
        outbox. Returns the incidents touched and the delivery report."""
        if not isinstance(self.log, WatchedLog):
            return [], None
        self.trust()  # enrolments and revocations made since count
        now = self.now()
        touched = self.log.ingest_paper_incidents(now) + self.log.sweep(now)
        self.access.checkpoint(now)  # the access log is checkpointed on the desk's clock too
        report = deliver_outbox(
            self.home.engine, now, mailer=self.settings.mailer, zone=self.home.time_zone
        )
        return touched, report

    def _witnessed(self, outcomes: list[WitnessOutcome]) -> None:
        """The sender's last answer per witness (a fork they report opened a critical
        incident through the desk already)."""
        with self._lock:
            last = {o.witness: o for o in self.witness_outcomes}
            last.update({o.witness: o for o in outcomes})
            self.witness_outcomes = sorted(last.values(), key=lambda o: o.witness)

    def now(self) -> datetime:
        return self.settings.clock()

    def readiness(self) -> Readiness:
        """May this service take appends now (``/readyz``)?"""
        report = readiness(
            self.log, self.head_file, self.home.path, floor=self.settings.min_free_bytes
        )
        if self.link is not None:
            report.checks["writer"] = self.link.probe()
        policy = self.home.witness_policy()
        if policy is None or not report.checks["database"].ok:
            return report
        return Readiness(report.checks, report.standbys, self.witnessed(policy))

    def checkpoint(
        self, size: int | None = None, *, only_published: bool = False
    ) -> tuple[str, dict[str, str]]:
        """A checkpoint with its stored cosignatures (``GET /v1/checkpoint``) and the headers
        saying whether it is published: ``Custody-Published`` (``true``: its cosignatures meet
        the witness policy) and ``Custody-Witness-Policy`` (``k of n``); none without a policy.
        ``only_published``: the largest checkpoint that is published (``?published=true``)."""
        policy = self.home.witness_policy()
        if only_published:
            if policy is None:
                raise NotFoundError(
                    N_(
                        "this authority has no witness policy (witnesses.json): no checkpoint is "
                        "published by witnesses"
                    )
                )
            note = published_checkpoint(self.log, policy)
            if note is None:
                raise NotFoundError(
                    N_("no checkpoint of this log is cosigned by {policy} witnesses yet"),
                    policy=policy.describe(),
                )
        else:
            note = self.log.cosigned_checkpoint(size)
        if policy is None:
            return note, {}
        parsed = parse_note(note)
        count = count_cosignatures(policy, parse_checkpoint(parsed.text), parsed.signatures)
        return note, {
            "Custody-Published": "true" if count.ok else "false",
            "Custody-Witness-Policy": policy.describe(),
        }

    def witnessed(self, policy: WitnessPolicy) -> dict[str, object]:
        """Publication under the witness policy (docs/adr/0012): whether the latest checkpoint
        met k of n, the largest one that did, and what each live witness answered last. It
        does not make the service unready: appends go on while witnesses are down."""
        try:
            latest = parse_checkpoint(parse_note(self.log.latest_checkpoint()).text).size
        except NotFoundError:
            latest = 0
        note = published_checkpoint(self.log, policy)
        size = parse_checkpoint(parse_note(note).text).size if note is not None else None
        with self._lock:
            last = [o.as_dict() for o in self.witness_outcomes]
        behind = latest - (size or 0)
        detail = (
            f"published: the latest checkpoint (size {latest}) is cosigned by {policy.describe()}"
            if size == latest and latest
            else f"not published: the latest checkpoint that met {policy.describe()} is "
            + (f"size {size}" if size is not None else "none")
            + f"; {behind} entries are not yet witnessed"
        )
        return {
            "policy": policy.describe(),
            "published": published(self.log, policy),
            "latest_size": latest,
            "published_size": size,
            "unpublished_entries": behind,
            "detail": detail,
            "last_round": last,
            "retry_in_seconds": self.witness_sender.backoff() if self.witness_sender else {},
        }

    def _version(self) -> tuple[int, int]:
        return identities.counts(self.home.engine)

    def current_trust(self) -> TrustStore | None:
        """The trust store if the one held is known current without asking the database
        (one ``stat``, no recount due), else None: then call ``trust`` off the event loop.
        Never waits (for a lock another thread holds while reloading, either)."""
        token = self.home.trust_version()
        if not self._lock.acquire(blocking=False):
            return None
        try:
            fresh = time.monotonic() - self._trust_counted < TRUST_RECOUNT
            return self.log.trust if token == self._trust_token and fresh else None
        finally:
            self._lock.release()

    def trust(self) -> TrustStore:
        """The current trust store (reloaded only when rows were added)."""
        token = self.home.trust_version()
        with self._lock:
            recount = time.monotonic() - self._trust_counted >= TRUST_RECOUNT
            if token == self._trust_token and not recount:
                return self.log.trust
            version = self._version()
            self._trust_counted = time.monotonic()
            if token != self._trust_token or version != self._trust_version:
                self.log.set_trust(identity.load_trust(self.home))
                self._trust_token, self._trust_version = token, version
            return self.log.trust
