"""The incident system's storage (an edge): rows in, domain values out, and back.

Every function takes the caller's ``Connection``, so the desk's reads and writes share the
append transaction (and its lock) with the statements they cause. Times are RFC 3339 strings
in the rows (``incident_tables.py`` says why) and ``datetime`` values out here; JSON columns
are written with sorted keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from crypto.dsse import Envelope
from crypto.encoding import format_time, parse_time
from custody.errors import N_, NotFoundError
from custody.incidents.acts import Act
from custody.incidents.policy import Incident, IncidentStatus, Severity, Target
from custody.rules import PackageState, Status
from custody.store.db import driver_sql, sqlite_marks
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

INCIDENT = IncidentRow.__table__  # type: ignore[attr-defined]
ACT = IncidentActRow.__table__  # type: ignore[attr-defined]
BLOCKED = BlockedKeyRow.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
WATCH = WatchRow.__table__  # type: ignore[attr-defined]
STATE = PackageStateRow.__table__  # type: ignore[attr-defined]
PAPER_INCIDENT = PaperIncidentRow.__table__  # type: ignore[attr-defined]

CHUNK = 500  # ids per IN (...) list


# -- incidents -------------------------------------------------------------------------------


def _incident(row: Any) -> Incident:
    return Incident(
        id=row.id,
        kind=row.kind,
        severity=Severity(row.severity),
        status=IncidentStatus(row.status),
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


def _columns(i: Incident) -> dict[str, Any]:
    return {
        "kind": i.kind,
        "severity": i.severity.value,
        "status": i.status.value,
        "subject": i.subject,
        "package_id": i.package_id,
        "paper": i.paper,
        "opened_at": format_time(i.opened_at),
        "updated_at": format_time(i.updated_at),
        "level": i.level,
        "ack_deadline": format_time(i.ack_deadline) if i.ack_deadline else None,
        "detail": i.detail,
        "scope": json.dumps(i.scope, sort_keys=True),
        "evidence": json.dumps(list(i.evidence), sort_keys=True),
        "containment": json.dumps(i.containment, sort_keys=True),
        "statements": json.dumps(list(i.statements)),
    }


def get_incident(conn: Connection, incident_id: str) -> Incident:
    row = conn.execute(select(INCIDENT).where(INCIDENT.c.id == incident_id)).first()
    if row is None:
        raise NotFoundError(N_("no incident {incident_id!r}"), incident_id=incident_id)
    return _incident(row)


def list_incidents(conn: Connection, *, status: str | None = None) -> list[Incident]:
    q = select(INCIDENT).order_by(INCIDENT.c.id)
    if status is not None:
        q = q.where(INCIDENT.c.status == status)
    return [_incident(r) for r in conn.execute(q)]


def page_incidents(
    conn: Connection,
    *,
    status: str | None = None,
    severity: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Incident], int]:
    """One page of incidents, newest first (ids are issued in order), and how many match."""
    where = []
    if status is not None:
        where.append(INCIDENT.c.status == status)
    if severity is not None:
        where.append(INCIDENT.c.severity == severity)
    total = conn.execute(select(func.count()).select_from(INCIDENT).where(*where)).scalar_one()
    q = (
        select(INCIDENT)
        .where(*where)
        .order_by(func.length(INCIDENT.c.id).desc(), INCIDENT.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [_incident(r) for r in conn.execute(q)], int(total)


def unresolved_incident(conn: Connection, kind: str, subject: str) -> Incident | None:
    """The incident a detection of ``kind`` about ``subject`` joins, if one is not resolved."""
    row = conn.execute(
        select(INCIDENT).where(
            INCIDENT.c.kind == kind,
            INCIDENT.c.subject == subject,
            INCIDENT.c.status != IncidentStatus.RESOLVED.value,
        )
    ).first()
    return _incident(row) if row is not None else None


def count_incidents(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(INCIDENT)).scalar_one())


def unacknowledged_past(conn: Connection, now: datetime) -> list[Incident]:
    """Open incidents whose acknowledgement deadline is before ``now``."""
    return [
        _incident(r)
        for r in conn.execute(
            select(INCIDENT).where(
                INCIDENT.c.status == IncidentStatus.OPEN.value,
                INCIDENT.c.ack_deadline < format_time(now),
            )
        )
    ]


def insert_incident(conn: Connection, incident: Incident) -> None:
    conn.execute(insert(INCIDENT).values(id=incident.id, **_columns(incident)))


def save_incident(conn: Connection, incident: Incident) -> None:
    """Write an incident's every column but its id."""
    conn.execute(update(INCIDENT).where(INCIDENT.c.id == incident.id).values(**_columns(incident)))


# -- people's acts ---------------------------------------------------------------------------


def incident_acts(conn: Connection, incident_id: str) -> list[dict[str, Any]]:
    """The acts recorded on an incident, in order: act, person, time, statement_id."""
    rows = conn.execute(
        select(ACT.c.act, ACT.c.person, ACT.c.time, ACT.c.statement_id)
        .where(ACT.c.incident_id == incident_id)
        .order_by(ACT.c.id)
    )
    return [dict(r._mapping) for r in rows]


def act_envelopes(conn: Connection, incident_id: str) -> list[tuple[str, bytes]]:
    """The signed acts recorded on an incident, in order: (statement id, envelope bytes)."""
    rows = conn.execute(
        select(ACT.c.statement_id, ACT.c.envelope)
        .where(ACT.c.incident_id == incident_id)
        .order_by(ACT.c.id)
    )
    return [(str(r.statement_id), bytes(r.envelope)) for r in rows]


def act_recorded(conn: Connection, statement_id: str) -> bool:
    row = conn.execute(select(ACT.c.id).where(ACT.c.statement_id == statement_id)).first()
    return row is not None


def insert_act(conn: Connection, act: Act, statement_id: str, envelope: Envelope) -> None:
    conn.execute(
        insert(ACT).values(
            incident_id=act.incident,
            act=act.act,
            person=act.person,
            time=format_time(act.time),
            statement_id=statement_id,
            envelope=envelope.to_bytes(),
        )
    )


# -- blocked keys ----------------------------------------------------------------------------


def blocked_keys(conn: Connection) -> list[dict[str, Any]]:
    """Every key ever blocked (lifted blocks too), by key id."""
    return [dict(r._mapping) for r in conn.execute(select(BLOCKED).order_by(BLOCKED.c.key_id))]


_BLOCKS = "SELECT key_id, incident_id FROM blocked_key WHERE unblocked_at IS NULL AND key_id IN "
_PG_BLOCKS = (
    "SELECT b.key_id, b.incident_id FROM unnest(%b::text[]) AS wanted(id) "
    "JOIN blocked_key b ON b.key_id = wanted.id WHERE b.unblocked_at IS NULL"
)


def blocks(conn: Connection, key_ids: Iterable[str]) -> list[tuple[str, str]]:
    """(key id, incident id) for each of ``key_ids`` still blocked. Every append asks it (the
    desk's gate, for a batch's signers), so it is the driver's own SQL, as ``watches``."""
    kids = sorted(set(key_ids))
    if not kids:
        return []
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(_PG_BLOCKS, (kids,))
    else:
        rows = conn.exec_driver_sql(_BLOCKS + sqlite_marks(len(kids)), tuple(kids))
    return [(str(kid), str(incident)) for kid, incident in rows]


def block_key(
    conn: Connection, key_id: str, *, subject: str, incident_id: str, at: datetime
) -> bool:
    """Block a key for an incident; False if it is blocked already (the first block stands)."""
    row = conn.execute(select(BLOCKED).where(BLOCKED.c.key_id == key_id)).first()
    if row is not None and row.unblocked_at is None:
        return False
    values = {
        "subject": subject,
        "incident_id": incident_id,
        "blocked_at": format_time(at),
        "unblocked_at": None,
        "unblocked_by": None,
    }
    if row is None:
        conn.execute(insert(BLOCKED).values(key_id=key_id, **values))
    else:
        conn.execute(update(BLOCKED).where(BLOCKED.c.key_id == key_id).values(**values))
    return True


def unblock_key(conn: Connection, key_id: str, *, at: datetime, by: str) -> bool:
    """Lift a key's block; False if it is not blocked."""
    blocked = conn.execute(
        select(BLOCKED).where(BLOCKED.c.key_id == key_id, BLOCKED.c.unblocked_at.is_(None))
    ).first()
    if blocked is None:
        return False
    conn.execute(
        update(BLOCKED)
        .where(BLOCKED.c.key_id == key_id)
        .values(unblocked_at=format_time(at), unblocked_by=by)
    )
    return True


# -- watch: each package's status since when, and where it was last seen ----------------------


@dataclass(frozen=True)
class Watch:
    package_id: str
    paper: str
    status: str
    since: datetime  # when the package entered ``status``
    last_place: str | None = None  # a registered place it was last seen at
    last_place_time: datetime | None = None
    last_place_event: str | None = None

    @property
    def last_seen(self) -> tuple[str, datetime, str] | None:
        """(place, time, statement id) where the package was last seen, if anywhere."""
        if self.last_place is None or self.last_place_time is None:
            return None
        return self.last_place, self.last_place_time, self.last_place_event or ""


def _watch_columns(w: Watch) -> dict[str, Any]:
    return {
        "paper": w.paper,
        "status": w.status,
        "since": format_time(w.since),
        "last_place": w.last_place,
        "last_place_time": format_time(w.last_place_time) if w.last_place_time else None,
        "last_place_event": w.last_place_event,
    }


_WATCH_COLUMNS = "package_id, paper, status, since, last_place, last_place_time, last_place_event"
_WATCH_SELECT = f"SELECT {_WATCH_COLUMNS} FROM incident_watch WHERE package_id IN "  # noqa: S608
# PostgreSQL: the ids as one array joined to the table (``WHERE package_id = ANY(%s)`` can be
# planned once, by psycopg's prepared statement, as a scan of the whole table: see log_store).
_PG_WATCHES = (
    f"SELECT w.{_WATCH_COLUMNS.replace(', ', ', w.')} "  # noqa: S608
    "FROM unnest(%b::text[]) AS wanted(id) JOIN incident_watch w ON w.package_id = wanted.id"
)


def watches(conn: Connection, package_ids: Sequence[str]) -> dict[str, Watch]:
    """The watches of those of these packages that have one. Every append reads those of its
    packages, so the query is the driver's own SQL (one array parameter on PostgreSQL, an
    ``IN`` list on SQLite), without SQLAlchemy's work per id and per row."""
    out: dict[str, Watch] = {}
    for chunk in chunks(package_ids, CHUNK):
        if conn.dialect.name == "postgresql":
            rows = conn.exec_driver_sql(_PG_WATCHES, (chunk,))
        else:
            rows = conn.exec_driver_sql(_WATCH_SELECT + sqlite_marks(len(chunk)), tuple(chunk))
        for pid, paper, status, since, place, place_time, place_event in rows:
            out[pid] = Watch(
                package_id=pid,
                paper=paper,
                status=status,
                since=parse_time(since, what="watch since"),
                last_place=place,
                last_place_time=parse_time(place_time, what="watch time") if place_time else None,
                last_place_event=place_event,
            )
    return out


def insert_watches(conn: Connection, new: Sequence[Watch]) -> None:
    conn.execute(insert(WATCH), [{"package_id": w.package_id, **_watch_columns(w)} for w in new])


# One row per changed watch, as the driver's own SQL with plain tuples: every append saves
# those of its packages (SQLAlchemy's executemany of dictionaries cost more than the write).
_SAVE_WATCHES = (
    "UPDATE incident_watch SET paper = {0}, status = {0}, since = {0}, last_place = {0}, "
    "last_place_time = {0}, last_place_event = {0} WHERE package_id = {0}"
)


def save_watches(conn: Connection, ws: Sequence[Watch]) -> None:
    """Save changed watches: one statement executed for all (a batch's dispatches)."""
    if ws:
        rows = [(*_watch_columns(w).values(), w.package_id) for w in ws]
        conn.exec_driver_sql(driver_sql(conn, _SAVE_WATCHES), rows)


def watched_since(conn: Connection) -> list[tuple[str, datetime]]:
    """(package id, since) for every package not destroyed."""
    return [
        (r.package_id, parse_time(r.since, what="watch since"))
        for r in conn.execute(
            select(WATCH.c.package_id, WATCH.c.since).where(
                WATCH.c.status != Status.DESTROYED.value
            )
        )
    ]


def packages_of_paper(conn: Connection, paper: str) -> list[str]:
    return sorted(
        r.package_id for r in conn.execute(select(WATCH.c.package_id).where(WATCH.c.paper == paper))
    )


def package_states(conn: Connection, package_ids: Sequence[str]) -> dict[str, PackageState]:
    """The log's cached states of these packages (those it has)."""
    out: dict[str, PackageState] = {}
    for chunk in chunks(package_ids, CHUNK):
        for row in conn.execute(
            select(STATE.c.package_id, STATE.c.state).where(STATE.c.package_id.in_(chunk))
        ):
            out[row.package_id] = state_from_json(row.state)
    return out


# -- the outbox ------------------------------------------------------------------------------


def add_notification(
    conn: Connection,
    *,
    incident_id: str,
    target: Target,
    idempotency_key: str,
    subject: str,
    payload: bytes,
    now: datetime,
) -> None:
    """A notification to deliver (``custody/incidents/outbox.py`` delivers it)."""
    conn.execute(
        insert(OUTBOX).values(
            incident_id=incident_id,
            channel=target.channel,
            target=target.name,
            address=target.address,
            idempotency_key=idempotency_key,
            subject=subject,
            payload=payload,
            created_at=format_time(now),
            status="pending",
            attempts=0,
            next_attempt_at=format_time(now),
        )
    )


# -- incidents the papers service raised -----------------------------------------------------


@dataclass(frozen=True)
class PaperIncident:
    """A break-glass opening the papers service recorded, not yet an incident."""

    id: int
    paper_ref: str
    at: datetime
    act_sha256: str
    summary: str


def pending_paper_incidents(conn: Connection) -> list[PaperIncident]:
    rows = conn.execute(
        select(PAPER_INCIDENT).where(PAPER_INCIDENT.c.acknowledged.is_(False))
    ).all()
    return [
        PaperIncident(
            r.id, r.paper_ref, parse_time(r.at, what="paper incident time"), r.act_sha256, r.summary
        )
        for r in rows
    ]


def take_paper_incident(conn: Connection, paper_incident_id: int) -> None:
    conn.execute(
        update(PAPER_INCIDENT)
        .where(PAPER_INCIDENT.c.id == paper_incident_id)
        .values(acknowledged=True)
    )


def chunks(items: Iterable[str], size: int) -> Iterable[list[str]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]


__all__ = [
    "PaperIncident",
    "Watch",
    "act_envelopes",
    "act_recorded",
    "add_notification",
    "block_key",
    "blocked_keys",
    "blocks",
    "count_incidents",
    "get_incident",
    "incident_acts",
    "insert_act",
    "insert_incident",
    "insert_watches",
    "list_incidents",
    "package_states",
    "packages_of_paper",
    "pending_paper_incidents",
    "save_incident",
    "save_watches",
    "take_paper_incident",
    "unacknowledged_past",
    "unblock_key",
    "unresolved_incident",
    "watched_since",
    "watches",
]
