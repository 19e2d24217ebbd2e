"""Readiness of a log service: may it take appends now? (``/readyz``, `custody log check`.)

Rules:
- Ready means all of: the database answers and accepts writes (a PostgreSQL primary, not a
  standby or a read-only transaction; a SQLite file and folder this account may write); the
  disk under the home has more free space than a floor; the stored log agrees with the last
  checkpoint its key signed (the database's and the file's); and, when the database has
  streaming standbys, each is reported with its state and lag (a synchronous standby that is
  configured but not streaming makes the service not ready: commits would wait for it).
- Each check reports ``ok`` and a one-line ``detail``; a failed check names what to do. The
  check never takes the log's append lock and never writes.
- No SQL here: the database is asked through ``custody/store/probe.py``; this judges.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from custody.errors import CustodyError
from custody.log import CustodyLog
from custody.store.faults import describe_database
from custody.store.guard import SignedHeadFile
from custody.store.probe import probe

MIN_FREE_BYTES = 256 << 20  # below this, the service stops taking appends


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str
    code: str = ""  # the error code when a storage error failed it

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"ok": self.ok, "detail": self.detail}
        if self.code:
            body["error"] = self.code
        return body


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, Check] = field(default_factory=dict)
    standbys: tuple[dict[str, object], ...] = ()
    witnessed: dict[str, object] | None = None  # informative: k of n met, last answers

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "checks": {name: c.as_dict() for name, c in self.checks.items()},
            "standbys": list(self.standbys),
            "witnessed": self.witnessed,
        }


def _failed(e: CustodyError) -> Check:
    detail = e.message + (f" ({e.hint})" if e.hint else "")
    return Check(False, detail, e.code)


def database_check(log: CustodyLog) -> tuple[Check, tuple[dict[str, object], ...]]:
    """The database answers and takes writes; its standbys, if any (PostgreSQL)."""
    name = describe_database(log.engine.url)
    try:
        state = probe(log.engine)
    except CustodyError as e:
        return _failed(e), ()
    if state.engine == "postgresql":
        standbys = state.standbys
        if state.in_recovery:
            return Check(
                False,
                f"the {name} is a standby (in recovery): point the home "
                "at the primary, or promote this one",
            ), standbys
        if state.read_only:
            return Check(False, f"the {name} accepts reads only"), standbys
        sync_names = state.sync_standby_names
        if sync_names and not any(s["sync_state"] in ("sync", "quorum") for s in standbys):
            return Check(
                False,
                f"the {name} waits for a synchronous standby ({sync_names}) that is not "
                "streaming: commits would hang; start the standby or fail over",
            ), standbys
        return Check(True, f"the {name} is a writable primary"), standbys
    path = state.file or Path()
    for p in (path, path.parent):
        if not os.access(p, os.W_OK):
            return Check(False, f"the {name} is not writable by this account ({p})"), ()
    return Check(True, f"the {name} is writable"), ()


def disk_check(folder: Path, floor: int) -> Check:
    try:
        free = shutil.disk_usage(folder).free
    except OSError as e:
        return Check(False, f"cannot read the free space under {folder}: {e.strerror}")
    mib = free >> 20
    if free < floor:
        return Check(
            False,
            f"{mib} MiB free under {folder}, below the floor of {floor >> 20} MiB: free space",
        )
    return Check(True, f"{mib} MiB free under {folder}")


def log_check(log: CustodyLog, head_file: SignedHeadFile | None) -> Check:
    try:
        report = log.check_state(head_file, light=True)
    except CustodyError as e:
        return _failed(e)
    signed = report.checkpoint.describe() if report.checkpoint else "nothing signed yet"
    return Check(True, f"{report.size} entries; the last signed checkpoint agrees: {signed}")


def readiness(
    log: CustodyLog, head_file: SignedHeadFile | None, home: Path, *, floor: int = MIN_FREE_BYTES
) -> Readiness:
    """Every readiness check (see the module rules)."""
    db, standbys = database_check(log)
    checks = {"database": db, "disk": disk_check(home, floor)}
    checks["log"] = (
        log_check(log, head_file)
        if db.ok or db.code != "db_unavailable"
        else Check(False, "not checked: the database cannot be reached")
    )
    return Readiness(checks, standbys)
