"""Incidents: open or join, contain by severity, escalate, record people's acts, notify.

The ``IncidentDesk`` is a log observer: it runs inside the append transaction, so an incident,
its containment statements, its rows and its outbox notifications are durable together with
the event that caused them, or not at all. ``WatchedLog`` is the custody log with the desk
attached; it also refuses submissions signed by a blocked key (inside the same transaction)
and runs the desk's own work (sweep, acts, reports) under the log's append lock.

Rules:
- A detection joins the open incident of the same kind and subject (the package, or the key,
  or the log); otherwise it opens a new one (``INC-00001``...). The same evidence twice (a
  sweep re-run) changes nothing.
- Scope: the package, every other package of the same paper, the exams and positions they
  serve, and the backup paper the policy names for it.
- Containment by severity (trusted detections only; an unsigned public report contains
  nothing by itself): high and above freezes the package (system ``freeze`` statement);
  critical also marks the paper compromised (``compromise`` statement naming every live
  package carrying it) and offers the backup paper; a suspect key of a high detection is
  blocked until a secrecy officer's signed ``unblock`` act.
- Every change is a system-signed ``incident`` statement on the log (no packages named:
  the scope is in the body), with ``actors.system`` = the authority id.
- Escalation ladder: each level has an acknowledgement deadline; an incident still open past
  it climbs (``due_escalation``) and the new level is notified.
- Acts (acknowledge, contain, resolve, unblock) are DSSE statements signed by a person with a
  role the act needs at the incident's level; the system statement recording an act embeds
  the person's envelope, so an auditor checks both signatures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from crypto.dsse import Envelope, sign_envelope
from crypto.encoding import canonical_json, format_time, parse_time
from crypto.sealing import derive_key
from crypto.signing import EncryptionKey, SigningKey
from custody.errors import (
    ClockError,
    ConflictError,
    CustodyError,
    FormatError,
    KeyBlockedError,
    NotFoundError,
    RoleError,
)
from custody.events import Event, Kind, statement_id
from custody.incidents.acts import ACT_TYPE, Act, parse_act
from custody.incidents.config import policy_from_json
from custody.incidents.detect import (
    Detection,
    Watched,
    detect_accepted,
    detect_break_glass,
    detect_fork,
    detect_public_report,
    detect_refusal,
    detect_travel,
    sweep,
)
from custody.incidents.policy import (
    DEFAULT_LADDER,
    Level,
    Policy,
    Severity,
    Target,
    due_escalation,
)
from custody.log import AppendResult, AppendView, CustodyLog, Prepared, Receipt, Rejected
from custody.rules import PackageState, Status
from custody.store.incident_tables import (
    BlockedKeyRow,
    IncidentActRow,
    IncidentRow,
    OutboxRow,
    WatchRow,
)
from custody.store.log_tables import PackageStateRow
from custody.store.paper_tables import PaperIncidentRow
from custody.store.states import state_from_json
from keys.model import Certificate, Role
from keys.statements import require, verify_statement
from keys.trust import TrustStore

INCIDENT = IncidentRow.__table__  # type: ignore[attr-defined]
ACT = IncidentActRow.__table__  # type: ignore[attr-defined]
BLOCKED = BlockedKeyRow.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
WATCH = WatchRow.__table__  # type: ignore[attr-defined]
STATE = PackageStateRow.__table__  # type: ignore[attr-defined]
PAPER_INCIDENT = PaperIncidentRow.__table__  # type: ignore[attr-defined]

NOTIFY_TYPE = "application/vnd.custody.notification.v1+json"
OPEN, ACKED, CONTAINED, RESOLVED = "open", "acknowledged", "contained", "resolved"
MAX_ACT_SKEW = timedelta(minutes=5)


# -- domain values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Incident:
    id: str
    kind: str
    severity: str
    status: str
    subject: str
    package_id: str | None
    paper: str | None
    opened_at: datetime
    updated_at: datetime
    level: int
    ack_deadline: datetime | None
    detail: str
    scope: Mapping[str, Any]
    evidence: tuple[Mapping[str, Any], ...]
    containment: Mapping[str, Any]
    statements: tuple[str, ...]

    def as_dict(self, ladder: Sequence[Level] = DEFAULT_LADDER) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "status": self.status,
            "subject": self.subject,
            "package": self.package_id,
            "paper": self.paper,
            "opened_at": format_time(self.opened_at),
            "updated_at": format_time(self.updated_at),
            "level": self.level,
            "level_name": ladder[min(self.level, len(ladder) - 1)].name,
            "ack_deadline": format_time(self.ack_deadline) if self.ack_deadline else None,
            "detail": self.detail,
            "scope": dict(self.scope),
            "evidence": [dict(e) for e in self.evidence],
            "containment": dict(self.containment),
            "statements": list(self.statements),
        }


def _incident(row: Any) -> Incident:
    return Incident(
        id=row.id,
        kind=row.kind,
        severity=row.severity,
        status=row.status,
        subject=row.subject,
        package_id=row.package_id,
        paper=row.paper,
        opened_at=parse_time(row.opened_at, what="incident.opened_at"),
        updated_at=parse_time(row.updated_at, what="incident.updated_at"),
        level=row.level,
        ack_deadline=parse_time(row.ack_deadline, what="deadline") if row.ack_deadline else None,
        detail=row.detail,
        scope=json.loads(row.scope),
        evidence=tuple(json.loads(row.evidence)),
        containment=json.loads(row.containment),
        statements=tuple(json.loads(row.statements)),
    )


def list_incidents(engine: Engine, *, status: str | None = None) -> list[Incident]:
    with engine.connect() as conn:
        q = select(INCIDENT).order_by(INCIDENT.c.id)
        if status is not None:
            q = q.where(INCIDENT.c.status == status)
        return [_incident(r) for r in conn.execute(q)]


def get_incident(engine: Engine, incident_id: str) -> Incident:
    with engine.connect() as conn:
        row = conn.execute(select(INCIDENT).where(INCIDENT.c.id == incident_id)).first()
    if row is None:
        raise NotFoundError(f"no incident {incident_id!r}")
    return _incident(row)


def incident_acts(engine: Engine, incident_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(ACT.c.act, ACT.c.person, ACT.c.time, ACT.c.statement_id)
            .where(ACT.c.incident_id == incident_id)
            .order_by(ACT.c.id)
        )
        return [dict(r._mapping) for r in rows]


def blocked_keys(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(BLOCKED).order_by(BLOCKED.c.key_id))]


# -- the desk --------------------------------------------------------------------------------

Task = Callable[["_Txn"], None]


class IncidentDesk:
    """The incident system as a log observer (see the module docstring for its rules)."""

    def __init__(self, trust: TrustStore, system_key: SigningKey, policy: Policy) -> None:
        if system_key.key_id != trust.authority.system_key.key_id:
            raise ConflictError("this is not the authority's system key")
        self.trust = trust
        self.system_key = system_key
        self.policy = policy
        self._tasks: list[Task] = []

    def queue(self, task: Task) -> None:
        self._tasks.append(task)

    def observe(self, view: AppendView) -> list[Envelope]:
        txn = _Txn(self, view)
        tasks, self._tasks = self._tasks, []
        detections: list[Detection] = []
        for r in view.rejected:
            detections.extend(
                detect_refusal(r.error, r.event, r.envelope, view.states, view.trust, view.now)
            )
        detections.extend(txn.update_watch())
        for _idx, event, outcome in view.accepted:
            detections.extend(detect_accepted(event, outcome, view.now))
        for d in detections:
            txn.handle(d)
        for task in tasks:
            task(txn)
        return txn.envelopes

    def gate(
        self, conn: Connection, prepared: list[tuple[int, Prepared]], rejected: list[Rejected]
    ) -> list[tuple[int, Prepared]]:
        """Refuse (inside the append transaction) what a blocked key signed."""
        kids = {kid for _, p in prepared for kid in p.sigcheck.signed_by}
        if not kids:
            return prepared
        blocked = {
            r.key_id: r.incident_id
            for r in conn.execute(
                select(BLOCKED.c.key_id, BLOCKED.c.incident_id).where(
                    BLOCKED.c.key_id.in_(kids), BLOCKED.c.unblocked_at.is_(None)
                )
            )
        }
        if not blocked:
            return prepared
        keep = []
        for i, p in prepared:
            hit = sorted(p.sigcheck.signed_by & set(blocked))
            if not hit:
                keep.append((i, p))
                continue
            who = self.trust.certificates[hit[0]].describe()
            err = KeyBlockedError(
                f"key of {who} is blocked by incident {blocked[hit[0]]} until a secrecy "
                "officer decides",
                key_ids=tuple(hit),
                hint="a secrecy officer lifts the block with `custody incident unblock`",
            )
            rejected.append(Rejected(i, err, p.event, p.envelope))
        return keep


class WatchedLog(CustodyLog):
    """The custody log with the incident desk attached (observer and blocked-key gate)."""

    def __init__(
        self,
        engine: Engine,
        trust: TrustStore,
        log_key: SigningKey | None,
        desk: IncidentDesk,
        *,
        workers: int = 1,
    ) -> None:
        super().__init__(engine, trust, log_key, observers=[desk], gates=[desk], workers=workers)
        self.desk = desk

    def set_trust(self, trust: TrustStore) -> None:
        super().set_trust(trust)
        self.desk.trust = trust

    def run(self, now: datetime, task: Task) -> AppendResult:
        """Run the desk's own work under the append lock, in one transaction with its
        statements (the same path as a submission with nothing submitted)."""
        self.desk.queue(task)
        try:
            return self.append_system_work(now)
        finally:
            self.desk._tasks.clear()

    # -- the desk's work, each one transaction -------------------------------------------

    def sweep(self, now: datetime) -> list[str]:
        """Time-based detections and escalation at ``now``; returns incident ids touched."""
        touched: list[str] = []
        self.run(now, lambda txn: touched.extend(txn.sweep()))
        return touched

    def act(self, env: Envelope, now: datetime) -> Incident:
        """Record a person's signed act (acknowledge, contain, resolve, unblock)."""
        act = parse_act(env)
        if act.authority != self.trust.authority.id:
            raise FormatError("incident act names another authority")
        if act.time > now + MAX_ACT_SKEW:
            raise ClockError(f"incident act is dated in the future ({format_time(act.time)})")
        if act.time < now - MAX_ACT_SKEW:
            raise ClockError(
                f"incident act is dated {format_time(act.time)}, more than "
                f"{MAX_ACT_SKEW} before the service received it ({format_time(now)})"
            )
        self.run(now, lambda txn: txn.record_act(act, env))
        return get_incident(self.engine, act.incident)

    @property
    def escrow(self) -> EncryptionKey:
        """The log service's X25519 key for its part of every paper's key, derived from the
        system key (so it is unsealed with it, and never stored)."""
        return EncryptionKey(derive_key(self.desk.system_key.seed(), b"custody paper log part v1"))

    def append_paper_act(
        self, act: Envelope, *, act_kind: str, paper: str, now: datetime
    ) -> Receipt:
        """Put a person-signed paper act on the log, as a system statement that embeds it,
        before anything is decrypted: no log entry, no release. A break-glass opening becomes
        an incident in the same transaction (the desk sees the accepted statement)."""
        authority = self.trust.authority.id
        event = Event(
            kind=Kind.PAPER_ACT,
            authority=authority,
            time=now,
            place="",
            packages={},
            actors={"system": authority},
            body={"act": act.to_json_obj(), "act_kind": act_kind, "paper": paper},
        )
        return self.submit(event.sign([self.desk.system_key]), now=now)

    def ingest_paper_incidents(self, now: datetime) -> list[str]:
        """Turn break-glass openings recorded by the papers service into incidents (each
        once: the paper row is marked taken in the same transaction)."""
        ids: list[str] = []

        def task(txn: _Txn) -> None:
            rows = txn.conn.execute(
                select(PAPER_INCIDENT).where(PAPER_INCIDENT.c.acknowledged.is_(False))
            ).all()
            for row in rows:
                at = parse_time(row.at, what="paper incident time")
                found = txn.handle(
                    detect_break_glass(row.paper_ref, at, row.act_sha256, row.summary)
                )
                ids.append(found or "")
                txn.conn.execute(
                    update(PAPER_INCIDENT)
                    .where(PAPER_INCIDENT.c.id == row.id)
                    .values(acknowledged=True)
                )

        self.run(now, task)
        return [i for i in ids if i]

    def report_public(
        self, text: str, now: datetime, *, package_id: str | None = None, contact: str = ""
    ) -> Incident:
        """A leak reported by a candidate or the public (unsigned text)."""
        detection = detect_public_report(text, now, package_id=package_id, contact=contact)
        ids: list[str] = []
        self.run(now, lambda txn: ids.append(txn.handle(detection) or ""))
        return get_incident(self.engine, ids[0])

    def report_checkpoints(
        self, old_note: str, new_note: str, proof: Sequence[bytes], now: datetime
    ) -> Incident | None:
        """Two signed checkpoints shown to two parties: an incident if they are inconsistent."""
        detection = detect_fork(old_note, new_note, proof, self.trust, now)
        if detection is None:
            return None
        ids: list[str] = []
        self.run(now, lambda txn: ids.append(txn.handle(detection) or ""))
        return get_incident(self.engine, ids[0])


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _evidence_key(d: Detection) -> str:
    ev = d.evidence()
    ev.pop("at")
    return _key(json.dumps(ev, sort_keys=True, default=str))


@dataclass
class _Txn:
    """The desk's work inside one append transaction."""

    desk: IncidentDesk
    view: AppendView
    envelopes: list[Envelope] = field(default_factory=list)
    # Package states as the system statements of this transaction leave them.
    local: dict[str, PackageState] = field(default_factory=dict)

    @property
    def conn(self) -> Connection:
        return self.view.conn

    @property
    def now(self) -> datetime:
        return self.view.now

    @property
    def policy(self) -> Policy:
        return self.desk.policy

    # -- states --------------------------------------------------------------------------

    def states(self, package_ids: Iterable[str]) -> dict[str, PackageState]:
        out: dict[str, PackageState] = {}
        missing = []
        for pid in package_ids:
            s = self.local.get(pid) or self.view.states.get(pid)
            if s is not None:
                out[pid] = s
            else:
                missing.append(pid)
        for chunk in _chunks(missing, 500):
            for row in self.conn.execute(
                select(STATE.c.package_id, STATE.c.state).where(STATE.c.package_id.in_(chunk))
            ):
                out[row.package_id] = state_from_json(row.state)
        return out

    def packages_of_paper(self, paper: str) -> list[str]:
        return sorted(
            r.package_id
            for r in self.conn.execute(select(WATCH.c.package_id).where(WATCH.c.paper == paper))
        )

    # -- watch (status since, last place) ------------------------------------------------

    def update_watch(self) -> list[Detection]:
        accepted = self.view.accepted
        pids = {pid for _, _, o in accepted for pid in o.states}
        if not pids:
            return []
        rows: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(sorted(pids), 500):
            for r in self.conn.execute(select(WATCH).where(WATCH.c.package_id.in_(chunk))):
                rows[r.package_id] = dict(r._mapping)
        fresh: set[str] = set()
        changed: set[str] = set()
        found: list[Detection] = []
        for _idx, event, outcome in accepted:
            for pid, st in outcome.states.items():
                w = rows.get(pid)
                if w is None:
                    w = rows[pid] = {
                        "package_id": pid,
                        "paper": st.paper,
                        "status": st.status.value,
                        "since": format_time(event.time),
                        "last_place": None,
                        "last_place_time": None,
                        "last_place_event": None,
                    }
                    fresh.add(pid)
                elif w["status"] != st.status.value:
                    w["status"], w["since"] = st.status.value, format_time(event.time)
                    changed.add(pid)
                if event.place in self.policy.places:
                    prev = None
                    if w["last_place"] is not None:
                        prev = (
                            w["last_place"],
                            parse_time(w["last_place_time"], what="watch time"),
                            w["last_place_event"],
                        )
                    d = detect_travel(st, prev, event, self.policy, self.now)
                    if d is not None:
                        found.append(d)
                    w["last_place"] = event.place
                    w["last_place_time"] = format_time(event.time)
                    w["last_place_event"] = event.id
                    changed.add(pid)
        if fresh:
            self.conn.execute(insert(WATCH), [rows[p] for p in sorted(fresh)])
        for pid in sorted(changed - fresh):
            w = rows[pid]
            self.conn.execute(
                update(WATCH)
                .where(WATCH.c.package_id == pid)
                .values({k: v for k, v in w.items() if k != "package_id"})
            )
        return found

    # -- incidents -----------------------------------------------------------------------

    def _row(self, incident_id: str) -> Any:
        row = self.conn.execute(select(INCIDENT).where(INCIDENT.c.id == incident_id)).first()
        if row is None:
            raise NotFoundError(f"no incident {incident_id!r}")
        return row

    def handle(self, d: Detection) -> str | None:
        """Open or join the incident for a detection; contain and notify. Returns its id."""
        state = self.states([d.package_id]).get(d.package_id) if d.package_id else None
        paper = d.paper or (state.paper if state is not None else None)
        existing = self.conn.execute(
            select(INCIDENT).where(
                INCIDENT.c.kind == d.kind.value,
                INCIDENT.c.subject == d.subject,
                INCIDENT.c.status != RESOLVED,
            )
        ).first()
        entry = {**d.evidence(), "key": _evidence_key(d)}
        if existing is not None:
            evidence = json.loads(existing.evidence)
            if any(e.get("key") == entry["key"] for e in evidence):
                return str(existing.id)
            incident_id = str(existing.id)
            evidence.append(entry)
            severity = max(Severity(existing.severity), d.severity, key=lambda s: s.rank)
            containment = json.loads(existing.containment)
            action = "join"
        else:
            count = self.conn.execute(select(func.count()).select_from(INCIDENT)).scalar_one()
            incident_id = f"INC-{count + 1:05d}"
            evidence = [entry]
            severity = d.severity
            containment = {"frozen": [], "compromised": [], "blocked_keys": [], "backup": None}
            action = "open"
        scope = self.scope(d.package_id, paper)
        # Decide the containment first, so the incident statement states it; then append the
        # incident statement and the containment statements in the order the log applies
        # them (each containment statement chains onto its packages' previous events).
        to_freeze: list[str] = []
        to_flag: list[str] = []
        if d.trusted and severity.rank >= Severity.HIGH.rank:
            to_freeze = self.live([d.package_id] if d.package_id else [], unless="frozen")
            containment["frozen"] = sorted(set(containment["frozen"]) | set(to_freeze))
            containment["blocked_keys"] = sorted(
                set(containment["blocked_keys"]) | set(d.suspect_keys)
            )
        if d.trusted and severity == Severity.CRITICAL and paper:
            carrying = self.packages_of_paper(paper)
            to_flag = self.live(carrying, unless="compromised")
            containment["compromised"] = sorted(
                set(containment["compromised"]) | set(self.live(carrying))
            )
            containment["backup"] = self.policy.backups.get(paper)
        self.write_incident(existing, incident_id, d, paper, severity, scope, evidence, containment)
        sid = self.statement(incident_id, action, extra={"evidence": entry})
        self.freeze(to_freeze, incident_id, d)
        self.compromise(to_flag, paper or "", incident_id)
        if d.trusted and severity.rank >= Severity.HIGH.rank:
            self.block(d.suspect_keys, incident_id)
        self.notify(incident_id, action, sid)
        return incident_id

    def live(self, package_ids: Iterable[str], unless: str | None = None) -> list[str]:
        """Packages not destroyed (and not already frozen/compromised, if asked)."""
        states = self.states(list(package_ids))
        return sorted(
            pid
            for pid, s in states.items()
            if s.status != Status.DESTROYED and not (unless and getattr(s, unless))
        )

    def write_incident(
        self,
        existing: Any,
        incident_id: str,
        d: Detection,
        paper: str | None,
        severity: Severity,
        scope: Mapping[str, Any],
        evidence: list[dict[str, Any]],
        containment: Mapping[str, Any],
    ) -> None:
        ladder = self.policy.ladder
        fields = {
            "kind": d.kind.value,
            "severity": severity.value,
            "status": existing.status if existing is not None else OPEN,
            "subject": d.subject,
            "package_id": d.package_id,
            "paper": paper,
            "updated_at": format_time(self.now),
            "detail": existing.detail if existing is not None else d.detail,
            "scope": json.dumps(scope, sort_keys=True),
            "evidence": json.dumps(evidence, sort_keys=True),
            "containment": json.dumps(containment, sort_keys=True),
        }
        if existing is None:
            self.conn.execute(
                insert(INCIDENT).values(
                    id=incident_id,
                    opened_at=format_time(self.now),
                    level=0,
                    ack_deadline=format_time(self.now + ladder[0].ack_within),
                    statements="[]",
                    **fields,
                )
            )
        else:
            self.conn.execute(update(INCIDENT).where(INCIDENT.c.id == incident_id).values(**fields))

    def scope(self, package_id: str | None, paper: str | None) -> dict[str, Any]:
        packages = set(self.packages_of_paper(paper)) if paper else set()
        if package_id:
            packages.add(package_id)
        states = self.states(sorted(packages))
        backup = self.policy.backups.get(paper) if paper else None
        return {
            "packages": sorted(packages),
            "papers": [paper] if paper else [],
            "exams": sorted({s.exam for s in states.values()}),
            "positions": sorted({s.position for s in states.values()}),
            "backup_paper": backup,
            "backup_packages": self.packages_of_paper(backup) if backup else [],
        }

    # -- containment statements ----------------------------------------------------------

    def _system_event(
        self, kind: Kind, packages: Mapping[str, str | None], body: Mapping[str, Any]
    ) -> Envelope:
        states = self.states(list(packages))
        when = max([self.now, *(s.last_time for s in states.values())])
        authority = self.desk.trust.authority.id
        event = Event(
            kind=kind,
            authority=authority,
            time=when,
            place="",
            packages=dict(packages),
            actors={"system": authority},
            body=dict(body),
        )
        env = event.sign([self.desk.system_key])
        self.envelopes.append(env)
        sid = statement_id(event.payload())
        for pid, s in states.items():
            flags: dict[str, Any] = {}
            if kind == Kind.FREEZE:
                flags["frozen"] = True
            if kind == Kind.COMPROMISE:
                flags["compromised"] = True
            self.local[pid] = replace(s, last_event=sid, last_time=when, **flags)
        return env

    def freeze(self, package_ids: list[str], incident_id: str, d: Detection) -> None:
        if package_ids:
            states = self.states(package_ids)
            self._system_event(
                Kind.FREEZE,
                {pid: states[pid].last_event for pid in package_ids},
                {"incident": incident_id, "reason": d.kind.value},
            )

    def compromise(self, package_ids: list[str], paper: str, incident_id: str) -> None:
        states = self.states(package_ids)
        for chunk in _chunks(package_ids, 500):
            self._system_event(
                Kind.COMPROMISE,
                {pid: states[pid].last_event for pid in chunk},
                {"incident": incident_id, "paper": paper, "backup": self.policy.backups.get(paper)},
            )

    def block(self, keys: Iterable[str], incident_id: str) -> list[str]:
        newly = []
        for kid in sorted(set(keys)):
            cert = self.desk.trust.certificates.get(kid)
            row = self.conn.execute(select(BLOCKED).where(BLOCKED.c.key_id == kid)).first()
            if row is not None and row.unblocked_at is None:
                continue
            values = {
                "subject": cert.subject if cert else "",
                "incident_id": incident_id,
                "blocked_at": format_time(self.now),
                "unblocked_at": None,
                "unblocked_by": None,
            }
            if row is None:
                self.conn.execute(insert(BLOCKED).values(key_id=kid, **values))
            else:
                self.conn.execute(update(BLOCKED).where(BLOCKED.c.key_id == kid).values(**values))
            newly.append(kid)
        return newly

    # -- the incident statement and notifications ----------------------------------------

    def statement(
        self, incident_id: str, action: str, extra: Mapping[str, Any] | None = None
    ) -> str:
        row = self._row(incident_id)
        level = self.policy.ladder[min(row.level, len(self.policy.ladder) - 1)]
        body = {
            "type": "custody.incident.v1",
            "incident": incident_id,
            "action": action,
            "kind": row.kind,
            "severity": row.severity,
            "status": row.status,
            "level": row.level,
            "level_name": level.name,
            "ack_deadline": row.ack_deadline,
            "detail": row.detail,
            "scope": json.loads(row.scope),
            "containment": json.loads(row.containment),
            **(extra or {}),
        }
        env = self._system_event(Kind.INCIDENT, {}, body)
        sid = statement_id(env.payload)
        statements = [*json.loads(row.statements), sid]
        self.conn.execute(
            update(INCIDENT)
            .where(INCIDENT.c.id == incident_id)
            .values(statements=json.dumps(statements))
        )
        return sid

    def notify(
        self, incident_id: str, action: str, sid: str, *, levels: Sequence[int] | None = None
    ) -> None:
        """Outbox rows for every recipient of the given levels (default: every level up to
        the incident's) and the ``all`` recipients; one row per (statement, recipient)."""
        row = self._row(incident_id)
        ladder = self.policy.ladder
        top = min(row.level, len(ladder) - 1)
        targets: dict[str, Target] = {}
        for lv in [ladder[i] for i in (levels if levels is not None else range(top + 1))]:
            for t in self.policy.recipients.get(lv.name, ()):
                targets.setdefault(t.name, t)
        for t in self.policy.recipients.get("all", ()):
            targets.setdefault(t.name, t)
        level = ladder[min(row.level, len(ladder) - 1)]
        subject = f"[custody {row.severity}] {incident_id} {row.kind} ({action}) - {row.subject}"
        for t in targets.values():
            ikey = _key(sid, t.name)[:48]
            note = {
                "type": "custody.notification.v1",
                "authority": self.desk.trust.authority.id,
                "incident": incident_id,
                "action": action,
                "kind": row.kind,
                "severity": row.severity,
                "status": row.status,
                "level": row.level,
                "level_name": level.name,
                "level_title": level.title,
                "ack_deadline": row.ack_deadline,
                "detail": row.detail,
                "scope": json.loads(row.scope),
                "containment": json.loads(row.containment),
                "statement": sid,
                "time": format_time(self.now),
                "recipient": t.name,
                "idempotency_key": ikey,
            }
            env = sign_envelope(NOTIFY_TYPE, canonical_json(note), [self.desk.system_key])
            self.conn.execute(
                insert(OUTBOX).values(
                    incident_id=incident_id,
                    channel=t.channel,
                    target=t.name,
                    address=t.address,
                    idempotency_key=ikey,
                    subject=subject,
                    payload=env.to_bytes(),
                    created_at=format_time(self.now),
                    status="pending",
                    attempts=0,
                    next_attempt_at=format_time(self.now),
                )
            )

    # -- sweep and escalation ------------------------------------------------------------

    def sweep(self) -> list[str]:
        rows = list(
            self.conn.execute(
                select(WATCH.c.package_id, WATCH.c.since).where(
                    WATCH.c.status != Status.DESTROYED.value
                )
            )
        )
        states = self.states([r.package_id for r in rows])
        items = [
            Watched(states[r.package_id], parse_time(r.since, what="watch since"))
            for r in rows
            if r.package_id in states
        ]
        touched = []
        for d in sweep(items, self.now, self.policy):
            incident_id = self.handle(d)
            if incident_id:
                touched.append(incident_id)
        touched.extend(self.escalate())
        return sorted(set(touched))

    def escalate(self) -> list[str]:
        ladder = self.policy.ladder
        climbed = []
        for row in list(
            self.conn.execute(
                select(INCIDENT).where(
                    INCIDENT.c.status == OPEN, INCIDENT.c.ack_deadline < format_time(self.now)
                )
            )
        ):
            deadline = parse_time(row.ack_deadline, what="deadline")
            due = due_escalation(row.level, deadline, self.now, ladder)
            if due is None:  # pragma: no cover - the query selects only passed deadlines
                continue
            level, new_deadline = due
            self.conn.execute(
                update(INCIDENT)
                .where(INCIDENT.c.id == row.id)
                .values(
                    level=level,
                    ack_deadline=format_time(new_deadline),
                    updated_at=format_time(self.now),
                )
            )
            sid = self.statement(row.id, "escalate", extra={"from_level": row.level})
            # The levels climbed to are told (at the top, the top again on each renewal).
            self.notify(row.id, "escalate", sid, levels=range(min(row.level + 1, level), level + 1))
            climbed.append(str(row.id))
        return climbed

    # -- people's acts -------------------------------------------------------------------

    def check_actor(self, act: Act, row: Any, signers: Sequence[Certificate]) -> None:
        """Acts by the right people, at the right time: not dated before the incident opened,
        not by a suspect of this incident (a key it names or blocked, or any key of that
        person), and not by a key any incident still blocks."""
        opened = parse_time(row.opened_at, what="incident.opened_at")
        if act.time < opened:
            raise ClockError(
                f"the {act.act} act is dated {format_time(act.time)}, before incident "
                f"{act.incident} opened ({format_time(opened)})"
            )
        suspects = set(json.loads(row.containment).get("blocked_keys", []))
        for entry in json.loads(row.evidence):
            suspects |= set(entry.get("suspect_keys", []))
        suspect_people = {
            self.desk.trust.certificates[k].subject
            for k in suspects
            if k in self.desk.trust.certificates
        }
        if act.person in suspect_people:
            raise RoleError(
                f"{act.person} is a suspect in incident {act.incident} and may not act on it: "
                "another secrecy officer decides"
            )
        kids = [c.key_id for c in signers]
        still_blocked = self.conn.execute(
            select(BLOCKED.c.key_id, BLOCKED.c.incident_id).where(
                BLOCKED.c.key_id.in_(kids), BLOCKED.c.unblocked_at.is_(None)
            )
        ).first()
        if still_blocked is not None:
            raise KeyBlockedError(
                f"the key that signed this act is blocked by incident {still_blocked.incident_id}",
                key_ids=(still_blocked.key_id,),
            )

    def record_act(self, act: Act, env: Envelope) -> None:
        row = self._row(act.incident)
        ladder = self.policy.ladder
        if row.status == RESOLVED and act.act != "unblock":
            raise ConflictError(f"incident {act.incident} is already resolved")
        if act.act == "acknowledge":
            roles: set[Role] = set()
            for lv in ladder[min(row.level, len(ladder) - 1) :]:
                roles |= lv.ack_roles
            if row.status != OPEN:
                raise ConflictError(f"incident {act.incident} is already {row.status}")
            new_status = ACKED
        else:
            roles = {Role.SECRECY_OFFICER}
            new_status = {"contain": CONTAINED, "resolve": RESOLVED}.get(act.act, row.status)
        try:
            check = verify_statement(
                env, self.desk.trust, [require("actor", *roles, person=act.person)], at=act.time
            )
        except RoleError as e:
            raise RoleError(
                f"{act.person} may not {act.act} incident {act.incident} at level "
                f"{ladder[min(row.level, len(ladder) - 1)].name}: {e.message}"
            ) from e
        self.check_actor(act, row, check.signers)
        sid_act = statement_id(env.payload)
        if self.conn.execute(select(ACT.c.id).where(ACT.c.statement_id == sid_act)).first():
            raise ConflictError("this act was already recorded")
        containment = json.loads(row.containment)
        if act.act == "unblock":
            if act.key is None:
                raise FormatError("an unblock act names the key it lifts (key)")
            blocked = self.conn.execute(
                select(BLOCKED).where(BLOCKED.c.key_id == act.key, BLOCKED.c.unblocked_at.is_(None))
            ).first()
            if blocked is None:
                raise NotFoundError(f"key {act.key[:16]} is not blocked")
            self.conn.execute(
                update(BLOCKED)
                .where(BLOCKED.c.key_id == act.key)
                .values(unblocked_at=format_time(act.time), unblocked_by=act.person)
            )
            containment["unblocked_keys"] = sorted(
                {*containment.get("unblocked_keys", []), act.key}
            )
        self.conn.execute(
            update(INCIDENT)
            .where(INCIDENT.c.id == act.incident)
            .values(
                status=new_status,
                updated_at=format_time(self.now),
                containment=json.dumps(containment, sort_keys=True),
            )
        )
        self.conn.execute(
            insert(ACT).values(
                incident_id=act.incident,
                act=act.act,
                person=act.person,
                time=format_time(act.time),
                statement_id=sid_act,
                envelope=env.to_bytes(),
            )
        )
        action = {"acknowledge": "acknowledge", "contain": "contain", "resolve": "resolve"}.get(
            act.act, "unblock"
        )
        sid = self.statement(
            act.incident,
            action,
            extra={"act": env.to_json_obj(), "by": act.person, "note": act.note},
        )
        self.notify(act.incident, action, sid)


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]


__all__ = [
    "ACT_TYPE",
    "NOTIFY_TYPE",
    "Act",
    "CustodyError",
    "Incident",
    "IncidentDesk",
    "WatchedLog",
    "blocked_keys",
    "get_incident",
    "incident_acts",
    "list_incidents",
    "parse_act",
    "policy_from_json",
]
