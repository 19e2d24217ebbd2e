"""Tables of the incident system: incidents, people's acts, blocked keys, watch, outbox.

Every incident change is also a system-signed statement on the custody log; these rows are
the working copy (what is open, at which level, what to deliver). Times are RFC 3339 UTC
strings, so they sort and compare as text on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel


class IncidentRow(SQLModel, table=True):
    __tablename__ = "incident"

    id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(max_length=32)
    severity: str = Field(max_length=16)
    status: str = Field(max_length=16, index=True)
    # What joins detections into this incident: a package id, a key id, a report digest.
    subject: str = Field(max_length=128, index=True)
    package_id: str | None = Field(default=None, max_length=128)
    paper: str | None = Field(default=None, max_length=128)
    opened_at: str = Field(max_length=20)
    updated_at: str = Field(max_length=20)
    level: int = 0
    ack_deadline: str | None = Field(default=None, max_length=20)
    detail: str
    scope: str  # JSON object
    evidence: str  # JSON list of evidence entries
    containment: str  # JSON object
    statements: str  # JSON list of the incident's system statement ids, in order


class IncidentActRow(SQLModel, table=True):
    """A person's signed act on an incident (acknowledge, contain, resolve, unblock)."""

    __tablename__ = "incident_act"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(max_length=32, index=True)
    act: str = Field(max_length=16)
    person: str = Field(max_length=128)
    time: str = Field(max_length=20)
    statement_id: str = Field(max_length=64, unique=True)
    envelope: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class BlockedKeyRow(SQLModel, table=True):
    """A suspect key: submissions it signs are refused until a secrecy officer unblocks it."""

    __tablename__ = "blocked_key"

    key_id: str = Field(primary_key=True, max_length=64)
    subject: str = Field(max_length=128)
    incident_id: str = Field(max_length=32)
    blocked_at: str = Field(max_length=20)
    unblocked_at: str | None = Field(default=None, max_length=20)
    unblocked_by: str | None = Field(default=None, max_length=128)


class WatchRow(SQLModel, table=True):
    """Per package: since when it is in its status and where it was last seen (for sweeps)."""

    __tablename__ = "incident_watch"

    package_id: str = Field(primary_key=True, max_length=128)
    paper: str = Field(max_length=128, index=True)
    status: str = Field(max_length=16, index=True)
    since: str = Field(max_length=20)
    last_place: str | None = Field(default=None, max_length=128)
    last_place_time: str | None = Field(default=None, max_length=20)
    last_place_event: str | None = Field(default=None, max_length=64)


class OutboxRow(SQLModel, table=True):
    """A notification written with the incident change that caused it, delivered later."""

    __tablename__ = "incident_outbox"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(max_length=32, index=True)
    channel: str = Field(max_length=16)  # webhook | email
    target: str = Field(max_length=64)  # the recipient's name in the policy
    address: str  # URL or e-mail address
    idempotency_key: str = Field(max_length=64, unique=True)
    subject: str
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # DSSE envelope JSON
    created_at: str = Field(max_length=20)
    status: str = Field(default="pending", max_length=16, index=True)  # pending | sent | dead
    attempts: int = 0
    next_attempt_at: str = Field(max_length=20, index=True)
    lease_until: str | None = Field(default=None, max_length=20)
    sent_at: str | None = Field(default=None, max_length=20)
    last_error: str | None = None
