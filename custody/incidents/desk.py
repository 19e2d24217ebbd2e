"""The incident desk: opens or joins incidents, contains, escalates, records people's acts and
notifies; and ``WatchedLog``, the custody log with the desk attached.

The ``IncidentDesk`` is a log observer: it runs inside the append transaction, so an incident,
its containment statements, its rows and its outbox notifications are durable together with
the event that caused them, or not at all. ``WatchedLog`` also refuses submissions signed by a
blocked key (inside the same transaction) and runs the desk's own work (sweep, acts, reports)
under the log's append lock.

What the desk decides comes from the policy (``policy.py``: containment by severity, the
ladder, status transitions, who may act); what it detects, from the detectors (``detect.py``);
what it reads and writes, from the store (``custody/store/incidents.py``). The desk's own rules:
- A detection joins the unresolved incident of the same kind and subject (the package, or the
  key, or the log); otherwise it opens a new one (``INC-00001``...). The same evidence twice (a
  sweep re-run) changes nothing.
- Scope: the package, every other package of the same paper, the exams and positions they
  serve, and the backup paper the policy names for it.
- Every change is a system-signed ``incident`` statement on the log (no packages named: the
  scope is in the body), with ``actors.system`` = the authority id; containment is carried out
  by system-signed ``freeze`` and ``compromise`` statements, appended after it.
- The system statement recording a person's act embeds the person's envelope, so an auditor
  checks both signatures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from crypto.dsse import Envelope, parse_envelope, sign_envelope
from crypto.encoding import b64decode, b64encode, canonical_json, format_time, parse_json_object
from crypto.sealing import derive_key, open_sealed, seal_to
from crypto.signing import EncryptionKey, SigningKey
from custody.errors import (
    N_,
    ConflictError,
    DecryptionError,
    FormatError,
    KeyBlockedError,
    NotFoundError,
    Phrase,
)
from custody.events import Event, Kind, parse_event, parse_leaf, statement_id
from custody.exams import ExamPolicy, exam_policy_body
from custody.incidents.acts import (
    Act,
    ActKind,
    SealedNote,
    open_note,
    parse_act,
    parse_sealed_note,
)
from custody.incidents.detect import (
    Detection,
    Watched,
    detect_accepted,
    detect_break_glass,
    detect_fork,
    detect_public_report,
    detect_refusal,
    detect_travel,
    public_report_plaintext,
)
from custody.incidents.detect import sweep as sweep_packages
from custody.incidents.policy import (
    Containment,
    Incident,
    IncidentStatus,
    Level,
    Policy,
    Target,
    check_act,
    check_receipt,
    decide_containment,
    due_escalation,
    escalation_levels,
    joined_severity,
    level_at,
    new_incident_id,
    note_recipients,
    recipients,
)
from custody.log import (
    Alongside,
    AppendResult,
    AppendView,
    CustodyLog,
    Prepared,
    Receipt,
    Rejected,
)
from custody.rules import PackageState
from custody.sealed_text import PAPER_TEXT_FIELDS, event_text
from custody.store import incidents as store
from custody.store import log_reads
from custody.store.handles import Database, Transaction
from keys.trust import TrustStore

NOTIFY_TYPE = "application/vnd.custody.notification.v1+json"
STATEMENT_CHUNK = 500  # packages named by one compromise statement at most

Task = Callable[["DeskTxn"], None]


class IncidentDesk:
    """The incident system as a log observer (see the module docstring for its rules)."""

    def __init__(self, trust: TrustStore, system_key: SigningKey, policy: Policy) -> None:
        if system_key.key_id != trust.authority.system_key.key_id:
            raise ConflictError(N_("this is not the authority's system key"))
        self.trust = trust
        self.system_key = system_key
        self.policy = policy
        self._tasks: list[Task] = []

    def queue(self, task: Task) -> None:
        """Run ``task`` inside the next append transaction (after the detections)."""
        self._tasks.append(task)

    @contextmanager
    def queued(self, task: Task) -> Iterator[None]:
        """Queue ``task`` for the append made inside the block; when the block ends, drop
        whatever no append ran (the append failed before the desk observed it)."""
        self.queue(task)
        try:
            yield
        finally:
            self._tasks.clear()

    def observe(self, view: AppendView) -> list[Envelope]:
        txn = DeskTxn(self, view)
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
        self,
        conn: Transaction,
        prepared: list[tuple[int, Prepared]],
        rejected: list[Rejected],
        known: dict[str, str | None],
    ) -> list[tuple[int, Prepared]]:
        """Refuse (inside the append transaction) what a blocked key signed. Keys this
        transaction asked about already (``known``) are not asked again: a large batch's
        chunks share its signers."""
        kids = {kid for _, p in prepared for kid in p.sigcheck.signed_by}
        ask = kids - known.keys()
        if ask:
            found = dict(store.blocks(conn, ask))
            known.update((kid, found.get(kid)) for kid in ask)
        blocked = {kid: known[kid] for kid in kids if known[kid] is not None}
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
                N_("key of {who} is blocked by incident {blocked} until a secrecy officer decides"),
                key_ids=tuple(hit),
                hint=N_("a secrecy officer lifts the block with `custody incident unblock`"),
                who=who,
                blocked=blocked[hit[0]],
            )
            rejected.append(Rejected(i, err, p.event, p.envelope))
        return keep


class WatchedLog(CustodyLog):
    """The custody log with the incident desk attached (observer and blocked-key gate)."""

    def __init__(
        self,
        engine: Database,
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
        with self.desk.queued(task):
            return self.append_system_work(now)

    # -- the desk's work, each one transaction -------------------------------------------

    def sweep(self, now: datetime) -> list[str]:
        """Time-based detections and escalation at ``now``; returns incident ids touched."""
        touched: list[str] = []
        self.run(now, lambda txn: touched.extend(txn.sweep()))
        return touched

    def act(self, env: Envelope, now: datetime) -> Incident:
        """Record a person's signed act (acknowledge, contain, resolve, unblock)."""
        act = parse_act(env)
        check_receipt(act, authority=self.trust.authority.id, now=now)
        self.run(now, lambda txn: txn.record_act(act, env))
        return get_incident(self.engine, act.incident)

    @property
    def escrow(self) -> EncryptionKey:
        """The log service's X25519 key for its part of every paper's key, derived from the
        system key (so it is unsealed with it, and never stored)."""
        return EncryptionKey(derive_key(self.desk.system_key.seed(), b"custody paper log part v1"))

    def append_paper_act(
        self,
        act: Envelope,
        *,
        act_kind: str,
        paper: str,
        now: datetime,
        alongside: Alongside | None = None,
    ) -> Receipt:
        """Put a person-signed paper act on the log, as a system statement that embeds it,
        before anything is decrypted: no log entry, no release. A break-glass opening becomes
        an incident in the same transaction (the desk sees the accepted statement).
        ``alongside`` writes the paper's own rows in that transaction (``CustodyLog.submit``)."""
        return self.submit(self._paper_act(act, act_kind, paper, now), now=now, alongside=alongside)

    def append_paper_acts(
        self,
        acts: Sequence[tuple[Envelope, str, str]],
        *,
        now: datetime,
        alongside: Alongside | None = None,
    ) -> list[Receipt]:
        """Several paper acts (act, act kind, paper ref) in one transaction with ``alongside``:
        every one is appended, or none is."""
        statements = [self._paper_act(act, kind, paper, now) for act, kind, paper in acts]
        result = self.submit_many(statements, now=now, alongside=alongside)
        if result.rejected:
            raise result.rejected[0].error
        return result.receipts

    def _paper_act(self, act: Envelope, act_kind: str, paper: str, now: datetime) -> Envelope:
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
        return event.sign([self.desk.system_key])

    def append_purges(
        self, papers: Sequence[tuple[str, str, str]], *, now: datetime
    ) -> list[Receipt]:
        """Put the purge of each ``(paper ref, exam, commitment)`` on the log, in one
        transaction, before any ciphertext is deleted: the log refuses them all unless every
        exam's retention on the log is over."""
        authority = self.trust.authority.id
        envelopes = [
            Event(
                kind=Kind.PAPER_ACT,
                authority=authority,
                time=now,
                place="",
                packages={},
                actors={"system": authority},
                body={"act_kind": "purge", "paper": ref, "exam": exam, "commitment": commitment},
            ).sign([self.desk.system_key])
            for ref, exam, commitment in papers
        ]
        result = self.submit_many(envelopes, now=now)
        if result.rejected:
            raise result.rejected[0].error
        return result.receipts

    def publish_exam_policy(self, policy: ExamPolicy, *, now: datetime) -> Receipt | None:
        """Put an exam's policy on the log (a system statement), unless the log already holds
        exactly this policy for the exam; returns the receipt, or None when nothing changed."""
        statement = self.exam_policy_statement(policy, now=now)
        return None if statement is None else self.submit(statement, now=now)

    def exam_policy_statement(self, policy: ExamPolicy, *, now: datetime) -> Envelope | None:
        """The system statement that puts an exam's policy on the log, or None when the log
        holds exactly this policy already (to submit with what needs it, in one batch)."""
        try:
            if self.exam_policy(policy.exam_id) == policy:
                return None
        except NotFoundError:
            pass
        authority = self.trust.authority.id
        event = Event(
            kind=Kind.EXAM_POLICY,
            authority=authority,
            time=now,
            place="",
            packages={},
            actors={"system": authority},
            body=exam_policy_body(policy),
        )
        return event.sign([self.desk.system_key])

    def ingest_paper_incidents(self, now: datetime) -> list[str]:
        """Turn break-glass openings recorded by the papers service into incidents (each
        once: the paper row is marked taken in the same transaction)."""
        ids: list[str] = []
        self.run(now, lambda txn: ids.extend(txn.take_paper_incidents()))
        return [i for i in ids if i]

    def report_public(
        self, text: str, now: datetime, *, package_id: str | None = None, contact: str = ""
    ) -> Incident:
        """A leak reported by a candidate or the public (unsigned text). Its text and contact
        are sealed to every secrecy officer in good standing; only the boxes and the
        plaintext's SHA-256 reach the log (``open_public_report`` opens one)."""
        plaintext = public_report_plaintext(text, contact)
        officers = note_recipients(self.desk.trust, now)
        if not officers:
            raise ConflictError(
                N_("no secrecy officer in good standing to seal the report to: nothing recorded"),
                hint=N_("enrol a secrecy officer (custody keys enrol --role secrecy_officer)"),
            )
        sealed = [
            {"to": r.subject, "key": r.key_id, "box": b64encode(seal_to(r.public, plaintext))}
            for r in officers
        ]
        detection = detect_public_report(plaintext, sealed, now, package_id=package_id)
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


def open_public_report(
    facts: Mapping[str, Any], key_id: str, secret: EncryptionKey
) -> dict[str, str]:
    """A secrecy officer opens a public report's sealed box (``facts`` of its evidence):
    ``{"text", "contact"}``; ``DecryptionError`` if no box is theirs or it does not open, a
    ``FormatError`` if the opened text does not hash to the recorded SHA-256."""
    boxes = facts.get("sealed")
    mine = (
        [b for b in boxes if isinstance(b, dict) and b.get("key") == key_id]
        if isinstance(boxes, list)
        else []
    )
    if not mine:
        raise DecryptionError()
    box = b64decode(str(mine[0].get("box", "")), what=Phrase("sealed box"))
    plaintext = open_sealed(secret.private_key(), box)
    if hashlib.sha256(plaintext).hexdigest() != facts.get("sha256"):
        raise FormatError(N_("the opened report does not hash to the SHA-256 the log holds"))
    opened = parse_json_object(plaintext, what=Phrase("public report"))
    return {"text": str(opened.get("text", "")), "contact": str(opened.get("contact", ""))}


# -- reading incidents (each its own connection, outside any append) ---------------------------


def list_incidents(engine: Database, *, status: str | None = None) -> list[Incident]:
    with engine.connect() as conn:
        return store.list_incidents(conn, status=status)


def page_incidents(
    engine: Database,
    *,
    status: str | None = None,
    severity: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Incident], int]:
    """One page of incidents, newest first, and how many match (``store.page_incidents``)."""
    with engine.connect() as conn:
        return store.page_incidents(
            conn, status=status, severity=severity, offset=offset, limit=limit
        )


def get_incident(engine: Database, incident_id: str) -> Incident:
    with engine.connect() as conn:
        return store.get_incident(conn, incident_id)


def incident_acts(engine: Database, incident_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return store.incident_acts(conn, incident_id)


def sealed_texts(
    engine: Database, incident: Incident, key_id: str, secret: EncryptionKey
) -> list[dict[str, Any]]:
    """What people wrote into an incident, opened with one secrecy officer's X25519 key: each
    public report's text and contact, the sealed text of each person's statement the incident
    names (a leak report's ``text``) and of the officers' freezes, releases and corrections of
    its package (``reason``), the sealed reason of its paper's break-glass openings and backup
    activations, and each act's note, in order. A
    box not sealed to this key (sealed before the officer was enrolled) is listed with
    ``opened: false``; a box that opens to something else than the log's SHA-256 raises
    ``FormatError``."""
    with engine.connect() as conn:
        envelopes = store.act_envelopes(conn, incident.id)
    out: list[dict[str, Any]] = []
    for entry in incident.evidence:
        facts = entry.get("facts") or {}
        if entry.get("kind") != "public_report" or "sealed" not in facts:
            continue
        item: dict[str, Any] = {"source": "public_report", "sha256": facts.get("sha256")}
        try:
            item |= {"opened": True, **open_public_report(facts, key_id, secret)}
        except DecryptionError:
            item["opened"] = False
        out.append(item)
    # the statements its evidence names (a person's leak report), by their log entries
    cited = [str(sid) for e in incident.evidence for sid in e.get("statements") or ()]
    named = log_reads.envelopes_by_statement(engine, cited)
    for sid in dict.fromkeys(cited):
        if sid in named:
            out += _statement_texts(sid, parse_leaf(named[sid]).envelope, key_id, secret)
    if incident.package_id:  # the officers' freezes, releases and corrections of its package
        for kind in (Kind.FREEZE, Kind.RELEASE, Kind.CORRECTION):
            for _pid, leaf in log_reads.package_entries(engine, [incident.package_id], kind):
                env = parse_leaf(leaf).envelope
                sid = statement_id(env.payload)
                if sid not in named:
                    out += _statement_texts(sid, env, key_id, secret)
    if incident.paper:
        for _idx, leaf in log_reads.entries_of_kind(engine, Kind.PAPER_ACT.value):
            env = parse_leaf(leaf).envelope
            sid = statement_id(env.payload)
            if sid in named:
                continue
            body = parse_event(env.payload).body
            if str(body.get("paper", "")).split("@", maxsplit=1)[0] == incident.paper:
                out += _statement_texts(sid, env, key_id, secret)
    for sid, raw in envelopes:
        act = parse_act(parse_envelope(raw))
        if act.note_sealed is None:
            continue
        item = {
            "source": "act",
            "statement_id": sid,
            "act": act.act,
            "person": act.person,
            "time": format_time(act.time),
            "sha256": act.note_sealed.sha256,
        }
        out.append(_opened(item, act.note_sealed, key_id, secret))
    return out


def _opened(
    item: dict[str, Any], sealed: SealedNote, key_id: str, secret: EncryptionKey
) -> dict[str, Any]:
    try:
        return item | {"opened": True, "note": open_note(sealed, key_id, secret)}
    except DecryptionError:
        return item | {"opened": False}


def _statement_texts(
    sid: str, env: Envelope, key_id: str, secret: EncryptionKey
) -> list[dict[str, Any]]:
    """The sealed free text of one statement on the log (a person's event, or the people's act
    a ``paper_act`` embeds), opened with a secrecy officer's key; [] when it holds none."""
    event = parse_event(env.payload)
    if event.kind == Kind.PAPER_ACT:
        if not isinstance(event.body.get("act"), dict):
            return []
        act = parse_envelope(event.body["act"])
        payload = parse_json_object(act.payload, what=Phrase("paper act"))
        field = PAPER_TEXT_FIELDS.get(str(payload.get("type")))
        sealed = parse_sealed_note(payload.get(f"{field}_sealed")) if field else None
        if sealed is None:
            return []
        by = payload.get("by")
        item: dict[str, Any] = {
            "source": "paper_act",
            "statement_id": sid,
            "kind": str(event.body.get("act_kind")),
            "person": ", ".join(by) if isinstance(by, list) else "",
            "time": str(payload.get("at", "")),
            "field": field,
            "sha256": sealed.sha256,
        }
        return [_opened(item, sealed, key_id, secret)]
    field = event_text(event.kind)
    if field is None or "system" in event.actors:
        return []
    sealed = parse_sealed_note(event.body.get(f"{field}_sealed"))
    if sealed is None:
        return []
    item = {
        "source": "statement",
        "statement_id": sid,
        "kind": event.kind.value,
        "person": ", ".join(sorted(set(event.actors.values()))),
        "time": format_time(event.time),
        "field": field,
        "sha256": sealed.sha256,
    }
    return [_opened(item, sealed, key_id, secret)]


def blocked_keys(engine: Database) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return store.blocked_keys(conn)


# -- what the desk writes --------------------------------------------------------------------


def incident_fields(incident: Incident, action: str, ladder: Sequence[Level]) -> dict[str, Any]:
    """What every statement and notification about an incident says of it (the incident as it
    stands after ``action``)."""
    return {
        "incident": incident.id,
        "action": action,
        "kind": incident.kind,
        "severity": incident.severity.value,
        "status": incident.status.value,
        "level": incident.level,
        "level_name": level_at(ladder, incident.level).name,
        "ack_deadline": format_time(incident.ack_deadline) if incident.ack_deadline else None,
        "detail": incident.detail,
        "detail_zh": incident.detail_zh,
        "scope": dict(incident.scope),
        "containment": dict(incident.containment),
    }


def statement_body(
    incident: Incident, action: str, ladder: Sequence[Level], extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The body of the system ``incident`` statement recording one change."""
    return {
        "type": "custody.incident.v1",
        **incident_fields(incident, action, ladder),
        **(extra or {}),
    }


def notification_body(
    incident: Incident,
    action: str,
    sid: str,
    *,
    authority: str,
    ladder: Sequence[Level],
    recipient: str,
    now: datetime,
) -> dict[str, Any]:
    """The body of one signed notification (payload type ``NOTIFY_TYPE``)."""
    return {
        "type": "custody.notification.v1",
        "authority": authority,
        **incident_fields(incident, action, ladder),
        "level_title": level_at(ladder, incident.level).title,
        "statement": sid,
        "time": format_time(now),
        "recipient": recipient,
        "idempotency_key": idempotency_key(sid, recipient),
    }


def idempotency_key(sid: str, recipient: str) -> str:
    """One per (statement, recipient): a receiver told twice can tell."""
    return _key(sid, recipient)[:48]


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _evidence_key(d: Detection) -> str:
    ev = d.evidence()
    ev.pop("at")
    return _key(json.dumps(ev, sort_keys=True, default=str))


# -- the desk's work inside one append transaction --------------------------------------------


@dataclass
class DeskTxn:
    """The desk's work inside one append transaction."""

    desk: IncidentDesk
    view: AppendView
    envelopes: list[Envelope] = field(default_factory=list)
    # Package states as the system statements of this transaction leave them.
    local: dict[str, PackageState] = field(default_factory=dict)

    @property
    def conn(self) -> Transaction:
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
        out.update(store.package_states(self.conn, missing))
        return out

    # -- watch (status since, last place) ------------------------------------------------

    def update_watch(self) -> list[Detection]:
        accepted = self.view.accepted
        pids = {pid for _, _, o in accepted for pid in o.states}
        if not pids:
            return []
        # the rows this desk wrote in the log's last appends, as they are (``AppendView``);
        # only the others are read
        rows: dict[str, store.Watch] = self.view.recall(pids)
        missing = pids - rows.keys()
        if missing:
            rows.update(store.watches(self.conn, sorted(missing)))
        fresh: set[str] = set()
        changed: set[str] = set()
        found: list[Detection] = []
        places = self.policy.places
        for _idx, event, outcome in accepted:
            for pid, st in outcome.states.items():
                w = rows.get(pid)
                if w is None:
                    w = store.Watch(pid, st.paper, st.status.value, event.time)
                    fresh.add(pid)
                elif w.status != st.status:  # a StrEnum member equals its value
                    w = replace(w, status=st.status.value, since=event.time)
                    changed.add(pid)
                if event.place in places:
                    d = detect_travel(st, w.last_seen, event, self.policy, self.now)
                    if d is not None:
                        found.append(d)
                    w = replace(
                        w,
                        last_place=event.place,
                        last_place_time=event.time,
                        last_place_event=event.id,
                    )
                    changed.add(pid)
                rows[pid] = w
        if fresh:
            store.insert_watches(self.conn, [rows[p] for p in sorted(fresh)])
        store.save_watches(self.conn, [rows[pid] for pid in sorted(changed - fresh)])
        self.view.keep.update((pid, rows[pid]) for pid in pids)
        return found

    # -- incidents -----------------------------------------------------------------------

    def handle(self, d: Detection) -> str | None:
        """Open or join the incident for a detection; contain and notify. Returns its id."""
        state = self.states([d.package_id]).get(d.package_id) if d.package_id else None
        paper = d.paper or (state.paper if state is not None else None)
        existing = store.unresolved_incident(self.conn, d.kind.value, d.subject)
        entry = {**d.evidence(), "key": _evidence_key(d)}
        if existing is not None and any(e.get("key") == entry["key"] for e in existing.evidence):
            return existing.id
        severity = joined_severity(existing.severity, d.severity) if existing else d.severity
        scope = self.scope(d.package_id, paper)
        # Decide the containment first, so the incident statement states it; then append the
        # incident statement and the containment statements in the order the log applies
        # them (each containment statement chains onto its packages' previous events).
        carrying = store.packages_of_paper(self.conn, paper) if paper else []
        decision = decide_containment(
            severity=severity,
            trusted=d.trusted,
            package_id=d.package_id,
            paper=paper,
            suspect_keys=d.suspect_keys,
            carrying=carrying,
            states=self.states([*([d.package_id] if d.package_id else []), *carrying]),
            backups=self.policy.backups,
            current=Containment.from_json(existing.containment) if existing else Containment(),
        )
        if existing is not None:
            action = "join"
            incident = replace(
                existing,
                kind=d.kind.value,
                severity=severity,
                subject=d.subject,
                package_id=d.package_id,
                paper=paper,
                updated_at=self.now,
                scope=scope,
                evidence=(*existing.evidence, entry),
                containment=decision.containment.as_json(),
            )
            store.save_incident(self.conn, incident)
        else:
            action = "open"
            incident = Incident(
                id=new_incident_id(store.count_incidents(self.conn)),
                kind=d.kind.value,
                severity=severity,
                status=IncidentStatus.OPEN,
                subject=d.subject,
                package_id=d.package_id,
                paper=paper,
                opened_at=self.now,
                updated_at=self.now,
                level=0,
                ack_deadline=self.now + self.policy.ladder[0].ack_within,
                detail=d.detail,
                scope=scope,
                evidence=(entry,),
                containment=decision.containment.as_json(),
                statements=(),
            )
            store.insert_incident(self.conn, incident)
        sid = self.statement(incident.id, action, extra={"evidence": entry})
        self.freeze(list(decision.freeze), incident.id, d)
        self.compromise(list(decision.compromise), paper or "", incident.id)
        self.block(decision.block, incident.id)
        self.notify(incident.id, action, sid)
        return incident.id

    def scope(self, package_id: str | None, paper: str | None) -> dict[str, Any]:
        packages = set(store.packages_of_paper(self.conn, paper)) if paper else set()
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
            "backup_packages": store.packages_of_paper(self.conn, backup) if backup else [],
        }

    def take_paper_incidents(self) -> list[str]:
        """Break-glass openings the papers service recorded: each an incident, once."""
        ids = []
        for p in store.pending_paper_incidents(self.conn):
            found = self.handle(detect_break_glass(p.paper_ref, p.at, p.act_sha256, p.summary))
            ids.append(found or "")
            store.take_paper_incident(self.conn, p.id)
        return ids

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
        for chunk in _chunks(package_ids, STATEMENT_CHUNK):
            self._system_event(
                Kind.COMPROMISE,
                {pid: states[pid].last_event for pid in chunk},
                {"incident": incident_id, "paper": paper, "backup": self.policy.backups.get(paper)},
            )

    def block(self, keys: Iterable[str], incident_id: str) -> list[str]:
        """Block each key (those blocked already stay blocked by their first incident)."""
        newly = []
        for kid in sorted(set(keys)):
            cert = self.desk.trust.certificates.get(kid)
            subject = cert.subject if cert else ""
            if store.block_key(
                self.conn, kid, subject=subject, incident_id=incident_id, at=self.now
            ):
                newly.append(kid)
        return newly

    # -- the incident statement and notifications ----------------------------------------

    def statement(
        self, incident_id: str, action: str, extra: Mapping[str, Any] | None = None
    ) -> str:
        incident = store.get_incident(self.conn, incident_id)
        body = statement_body(incident, action, self.policy.ladder, extra)
        env = self._system_event(Kind.INCIDENT, {}, body)
        sid = statement_id(env.payload)
        store.save_incident(self.conn, replace(incident, statements=(*incident.statements, sid)))
        return sid

    def notify(
        self, incident_id: str, action: str, sid: str, *, levels: Sequence[int] | None = None
    ) -> None:
        """Outbox rows for every recipient of the given levels (default: every level up to
        the incident's) and the ``all`` recipients; one row per (statement, recipient)."""
        incident = store.get_incident(self.conn, incident_id)
        subject = (
            f"[custody {incident.severity}] {incident_id} {incident.kind} ({action}) - "
            f"{incident.subject}"
        )
        for t in recipients(self.policy, incident.level, levels):
            self._notify_one(incident, action, sid, t, subject)

    def _notify_one(
        self, incident: Incident, action: str, sid: str, target: Target, subject: str
    ) -> None:
        note = notification_body(
            incident,
            action,
            sid,
            authority=self.desk.trust.authority.id,
            ladder=self.policy.ladder,
            recipient=target.name,
            now=self.now,
        )
        env = sign_envelope(NOTIFY_TYPE, canonical_json(note), [self.desk.system_key])
        store.add_notification(
            self.conn,
            incident_id=incident.id,
            target=target,
            idempotency_key=note["idempotency_key"],
            subject=subject,
            payload=env.to_bytes(),
            now=self.now,
        )

    # -- sweep and escalation ------------------------------------------------------------

    def sweep(self) -> list[str]:
        watched = store.watched_since(self.conn)
        states = self.states([pid for pid, _ in watched])
        items = [Watched(states[pid], since) for pid, since in watched if pid in states]
        touched = []
        for d in sweep_packages(items, self.now, self.policy):
            found = self.handle(d)
            if found:
                touched.append(found)
        touched.extend(self.escalate())
        return sorted(set(touched))

    def escalate(self) -> list[str]:
        ladder = self.policy.ladder
        climbed = []
        for incident in store.unacknowledged_past(self.conn, self.now):
            due = (
                due_escalation(incident.level, incident.ack_deadline, self.now, ladder)
                if incident.ack_deadline is not None
                else None
            )
            if due is None:  # pragma: no cover - the query selects only passed deadlines
                continue
            level, new_deadline = due
            store.save_incident(
                self.conn,
                replace(incident, level=level, ack_deadline=new_deadline, updated_at=self.now),
            )
            sid = self.statement(incident.id, "escalate", extra={"from_level": incident.level})
            # The levels climbed to are told (at the top, the top again on each renewal).
            levels = escalation_levels(incident.level, level)
            self.notify(incident.id, "escalate", sid, levels=levels)
            climbed.append(incident.id)
        return climbed

    # -- people's acts -------------------------------------------------------------------

    def record_act(self, act: Act, env: Envelope) -> None:
        """Record an act the policy allows (``check_act``), signed by no blocked key, once."""
        incident = store.get_incident(self.conn, act.incident)
        checked = check_act(act, env, incident, self.desk.trust, self.policy.ladder)
        still_blocked = store.blocks(self.conn, [c.key_id for c in checked.signers])
        if still_blocked:
            key_id, by = still_blocked[0]
            raise KeyBlockedError(
                N_("the key that signed this act is blocked by incident {by}"),
                key_ids=(key_id,),
                by=by,
            )
        sid_act = statement_id(env.payload)
        if store.act_recorded(self.conn, sid_act):
            raise ConflictError(N_("this act was already recorded"))
        containment = incident.containment
        if act.act == ActKind.UNBLOCK:
            if act.key is None:
                raise FormatError(N_("an unblock act names the key it lifts (key)"))
            if not store.unblock_key(self.conn, act.key, at=act.time, by=act.person):
                raise NotFoundError(N_("key {key} is not blocked"), key=act.key[:16])
            containment = Containment.from_json(containment).with_unblocked(act.key).as_json()
        store.save_incident(
            self.conn,
            replace(incident, status=checked.status, updated_at=self.now, containment=containment),
        )
        store.insert_act(self.conn, act, sid_act, env)
        sid = self.statement(
            act.incident,
            act.act,
            extra={"act": env.to_json_obj(), "by": act.person},
        )
        self.notify(act.incident, act.act, sid)


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]


__all__ = [
    "NOTIFY_TYPE",
    "DeskTxn",
    "IncidentDesk",
    "Task",
    "WatchedLog",
    "blocked_keys",
    "get_incident",
    "incident_acts",
    "incident_fields",
    "list_incidents",
    "notification_body",
    "sealed_texts",
    "statement_body",
]
