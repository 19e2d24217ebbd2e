"""The service objects one app shares: settings, the home, the log, the trust store.

Rules:
- The log key is unsealed once, when the app is created; without a passphrase the log is
  read-only.
- The trust store is re-read whenever a certificate or revocation was added since the last
  request (rows are only ever added), so an enrolment or a revocation made with the CLI counts
  at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from custody import identity
from custody.home import Home
from custody.log import CustodyLog, LogObserver
from custody.store.tables import CertificateRow, RevocationRow
from keys.trust import TrustStore

MIB = 1 << 20


def system_clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Settings:
    """What one service process needs; the passphrase is used once and never shown."""

    home: Path
    log_passphrase: str | None = field(default=None, repr=False)
    clock: Callable[[], datetime] = system_clock
    observers: Sequence[LogObserver] = ()
    max_event_body: int = 16 * MIB
    max_batch: int = 1000
    max_image_body: int = 8 * MIB
    max_label_body: int = 16 * 1024


class Backend:
    """The service objects the routes share (one per app)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = Home(settings.home)
        trust = identity.load_trust(self.home)
        key = None
        if settings.log_passphrase is not None:
            key = self.home.authority_key("log", settings.log_passphrase).signing
        self.log = CustodyLog(self.home.engine, trust, key, observers=settings.observers)
        self._lock = threading.Lock()
        self._trust_version = self._version()

    @property
    def writable(self) -> bool:
        return self.log.log_key is not None

    def now(self) -> datetime:
        return self.settings.clock()

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
                self.log.trust = identity.load_trust(self.home)
                self._trust_version = version
            return self.log.trust
