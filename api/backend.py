"""The service objects one app shares: settings, the home, the log, the trust store.

Rules:
- The log service is opened the one way every path opens it (``custody.service``): rules,
  blocked-key gate and incident desk. The log and system keys are unsealed once, when the app
  is created, each with its own passphrase; without them the log is read-only.
- The desk's clock work (break-glass intake, overdue handovers, missed check-ins and patrols,
  the escalation ladder) and the outbox's delivery run in the service on their own schedule
  (``desk_every``), not only when someone runs ``custody incident sweep``; so does sending
  the latest checkpoint to the live witnesses of ``witnesses.json`` (those with a ``url``).
- The trust store is re-read whenever a certificate or revocation was added since the last
  request (rows are only ever added), so an enrolment or a revocation made with the CLI counts
  at once: the home's trust version (one stat call, bumped after every enrolment, revocation
  and import) says so, and the rows are counted every ``TRUST_RECOUNT`` seconds besides, in
  case a writer stopped between its commit and its bump.
- Single submissions go through one group-commit writer (``custody.group_commit``): requests
  arriving together share one durable transaction, each answered once it has committed.
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

from sqlalchemy import func
from sqlmodel import Session, select

from custody import identity
from custody.access_log import AccessLog
from custody.group_commit import GroupCommit
from custody.home import Home
from custody.incidents.model import WatchedLog
from custody.incidents.outbox import DeliveryReport, Mailer, deliver_outbox
from custody.log import CustodyLog
from custody.readiness import MIN_FREE_BYTES, Readiness, readiness
from custody.service import ServiceSecrets, open_reader, open_writer, signed_head_file
from custody.sessions import Sessions
from custody.store.tables import CertificateRow, RevocationRow
from custody.witness_client import WitnessOutcome, published, send_to_witnesses
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
    mailer: Mailer | None = None
    max_event_body: int = 16 * MIB
    max_batch: int = 1000
    max_image_body: int = 8 * MIB
    max_label_body: int = 16 * 1024
    max_cosignature_body: int = 64 * 1024
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
    access_flush: str = "full"  # access records: "full" (fsync each) or "lazy" (see access_log)


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
        self.committer: GroupCommit | None = (
            GroupCommit(self.log, self.now) if self.log.log_key is not None else None
        )

    def close(self) -> None:
        """Commit the queued submissions and stop the group-commit writer."""
        if self.committer is not None:
            self.committer.close()

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
        report = deliver_outbox(self.home.engine, now, mailer=self.settings.mailer)
        policy = self.home.witness_policy()
        if policy is not None and policy.urls:
            # Live witnesses: each is brought up to the latest checkpoint (a fork they report
            # opens a critical incident through the desk).
            self.witness_outcomes = send_to_witnesses(self.log, policy, now)
            touched += [o.incident for o in self.witness_outcomes if o.incident]
        return touched, report

    def now(self) -> datetime:
        return self.settings.clock()

    def readiness(self) -> Readiness:
        """May this service take appends now (``/readyz``)?"""
        head = signed_head_file(self.home, self.log.trust.authority)
        report = readiness(self.log, head, self.home.path, floor=self.settings.min_free_bytes)
        policy = self.home.witness_policy()
        if policy is None or not report.checks["database"].ok:
            return report
        # Informative: whether the latest checkpoint met the witness quorum (k of n), and what
        # each live witness answered last; it does not make the service unready.
        witnessed: dict[str, object] = {
            "policy": policy.describe(),
            "published": published(self.log, policy),
            "last_round": [o.as_dict() for o in self.witness_outcomes],
        }
        return Readiness(report.checks, report.standbys, witnessed)

    def _version(self) -> tuple[int, int]:
        with Session(self.home.engine) as session:
            certs = session.exec(select(func.count()).select_from(CertificateRow)).one()
            revs = session.exec(select(func.count()).select_from(RevocationRow)).one()
        return int(certs), int(revs)

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
