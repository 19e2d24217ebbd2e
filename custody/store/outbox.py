"""The incident outbox's storage (an edge): leases, marks and listings of notification rows.

The rows are written by the incident desk (``store/incidents.py``, in the incident's own
transaction); this module is what the deliverer (``custody/incidents/outbox.py``) needs to
take them, mark them and list them, in SQLAlchemy Core, so the deliverer holds no SQL.

Rules:
- A lease is taken under ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite's
  ``BEGIN IMMEDIATE`` serialises deliverers), in one transaction with the counting of e-mail
  rows held back, so a row another deliverer is leasing is skipped, not read twice.
- A mark names the lease it took (``lease_until``): a row whose lease was taken over is left
  as it is and the mark answers ``False``.
- Times are RFC 3339 strings in the rows and ``datetime`` values here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Table, func, or_, select, update
from sqlmodel import SQLModel

from crypto.encoding import format_time
from custody.store import incident_tables as _incident_tables  # noqa: F401  (registers it)

OUTBOX: Table = SQLModel.metadata.tables["incident_outbox"]

PENDING, SENT, DEAD = "pending", "sent", "dead"
ERROR_CHARS = 500  # how much of a failure's text a row keeps


@dataclass(frozen=True)
class Notification:
    """A leased row, as the deliverer needs it to send."""

    id: int
    incident_id: str
    channel: str  # webhook | email
    target: str  # the recipient's name in the policy
    address: str  # URL or e-mail address
    idempotency_key: str
    subject: str
    payload: bytes  # the signed DSSE envelope
    attempts: int


@dataclass(frozen=True)
class OutboxEntry:
    """A row as listed (``custody incident outbox list``): no payload."""

    id: int
    incident_id: str
    channel: str
    target: str
    status: str
    attempts: int
    next_attempt_at: str
    idempotency_key: str
    last_error: str | None


@dataclass(frozen=True)
class Leased:
    rows: list[Notification]
    waiting: int  # e-mail rows due but held back (no relay)
    until: datetime  # the lease the rows were taken under


def lease_due(engine: Engine, now: datetime, until: datetime, *, limit: int, email: bool) -> Leased:
    """Lease up to ``limit`` due rows until ``until``, oldest first. Without ``email`` the
    e-mail rows are not leased, only counted."""
    stamp = format_time(now)
    due: ColumnElement[bool] = (
        (OUTBOX.c.status == PENDING)
        & (OUTBOX.c.next_attempt_at <= stamp)
        & or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until <= stamp)
    )
    waiting = 0
    with engine.begin() as conn:
        if not email:
            waiting = int(
                conn.execute(
                    select(func.count())
                    .select_from(OUTBOX)
                    .where(due & (OUTBOX.c.channel == "email"))
                ).scalar_one()
            )
            due = due & (OUTBOX.c.channel != "email")
        rows = list(
            conn.execute(
                select(OUTBOX)
                .where(due)
                .order_by(OUTBOX.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if rows:
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_([r.id for r in rows]))
                .values(lease_until=format_time(until))
            )
    return Leased([_notification(r) for r in rows], waiting, until)


def _notification(row: Any) -> Notification:
    return Notification(
        id=int(row.id),
        incident_id=row.incident_id,
        channel=row.channel,
        target=row.target,
        address=row.address,
        idempotency_key=row.idempotency_key,
        subject=row.subject,
        payload=bytes(row.payload),
        attempts=int(row.attempts),
    )


def _ours(row_id: int, until: datetime) -> ColumnElement[bool]:
    # The row as this deliverer leased it: pending, under this lease.
    return (
        (OUTBOX.c.id == row_id)
        & (OUTBOX.c.status == PENDING)
        & (OUTBOX.c.lease_until == format_time(until))
    )


def _mark(engine: Engine, row: Notification, until: datetime, **values: Any) -> bool:
    """Update the row if it is still under the lease ``until``; whether it was."""
    with engine.begin() as conn:
        marked = conn.execute(
            update(OUTBOX)
            .where(_ours(row.id, until))
            .values(attempts=row.attempts + 1, lease_until=None, **values)
        ).rowcount
    return bool(marked)


def mark_sent(engine: Engine, row: Notification, until: datetime, at: datetime) -> bool:
    """The row was delivered at ``at``; ``False`` when the lease had been taken over."""
    return _mark(engine, row, until, status=SENT, sent_at=format_time(at), last_error=None)


def mark_failed(
    engine: Engine,
    row: Notification,
    until: datetime,
    *,
    dead: bool,
    next_attempt: datetime,
    error: str,
) -> bool:
    """An attempt failed: the row is dead, or due again at ``next_attempt``; ``False`` when
    the lease had been taken over."""
    return _mark(
        engine,
        row,
        until,
        status=DEAD if dead else PENDING,
        next_attempt_at=format_time(next_attempt),
        last_error=error[:ERROR_CHARS],
    )


def requeue_dead(
    engine: Engine, due: datetime, ids: Sequence[int] | None = None
) -> tuple[list[int], list[int]]:
    """Put dead rows (``ids``, or every one) back: pending, due at ``due``, attempts reset.

    Returns (the ids requeued, the ids asked for that are not dead rows); when any id asked
    for is unknown, nothing is requeued.
    """
    where: ColumnElement[bool] = OUTBOX.c.status == DEAD
    if ids is not None:
        where = where & OUTBOX.c.id.in_(list(ids))
    with engine.begin() as conn:
        query = select(OUTBOX.c.id).where(where).with_for_update()
        found = [int(r.id) for r in conn.execute(query)]
        unknown = sorted(set(ids) - set(found)) if ids is not None else []
        if unknown:
            return [], unknown
        if found:
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(found))
                .values(
                    status=PENDING, attempts=0, next_attempt_at=format_time(due), lease_until=None
                )
            )
    return found, []


def entries(
    engine: Engine, incident_id: str | None = None, status: str | None = None
) -> list[OutboxEntry]:
    """The rows (of one incident, in one status, if given), oldest first."""
    query = select(
        OUTBOX.c.id,
        OUTBOX.c.incident_id,
        OUTBOX.c.channel,
        OUTBOX.c.target,
        OUTBOX.c.status,
        OUTBOX.c.attempts,
        OUTBOX.c.next_attempt_at,
        OUTBOX.c.idempotency_key,
        OUTBOX.c.last_error,
    ).order_by(OUTBOX.c.id)
    if incident_id is not None:
        query = query.where(OUTBOX.c.incident_id == incident_id)
    if status is not None:
        query = query.where(OUTBOX.c.status == status)
    with engine.connect() as conn:
        return [OutboxEntry(**r._mapping) for r in conn.execute(query)]
