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
  at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from custody import identity
from custody.home import Home
from custody.incidents.model import WatchedLog
from custody.incidents.outbox import DeliveryReport, Mailer, deliver_outbox
from custody.log import CustodyLog
from custody.readiness import MIN_FREE_BYTES, Readiness, readiness
from custody.service import ServiceSecrets, open_reader, open_writer, signed_head_file
from custody.store.tables import CertificateRow, RevocationRow
from custody.witness_client import WitnessOutcome, published, send_to_witnesses
from keys.trust import TrustStore

MIB = 1 << 20


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
        self._trust_version = self._version()
        self.witness_outcomes: list[WitnessOutcome] = []

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
        version = self._version()
        with self._lock:
            if version != self._trust_version:
                self.log.set_trust(identity.load_trust(self.home))
                self._trust_version = version
            return self.log.trust
