"""Tables of access: login challenges, and the access log (every read of personal data).

The access log is kept like the custody log: rows hold the exact leaf bytes that are hashed;
``access_object`` is an index (which records name an object) that verification never trusts,
derived from the leaves and written a batch of records at a time (``access_head.indexed``).
"""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


class LoginChallenge(SQLModel, table=True):
    """A login challenge: single use (``used`` flips once), short-lived."""

    __tablename__ = "login_challenge"

    nonce: str = Field(primary_key=True, max_length=64)
    expires_at: str = Field(max_length=20, index=True)
    used: bool = False


class AccessHead(SQLModel, table=True):
    """One row (id 1). Recorders lock it, which gives every record one index, no gap."""

    __tablename__ = "access_head"

    id: int = Field(primary_key=True)
    size: int = 0
    last: str = Field(default="0" * 64, max_length=64)  # hex leaf hash of the last record
    # Records [0, indexed) are in ``access_object``; the ones after wait for the next batch.
    indexed: int = 0


class AccessRecord(SQLModel, table=True):
    __tablename__ = "access_record"

    idx: int = Field(primary_key=True)
    subject: str = Field(max_length=128, index=True)
    at: str = Field(max_length=20)
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AccessObject(SQLModel, table=True):
    """Which access records name which object (``package:ID``, ``person:ID``, ...)."""

    __tablename__ = "access_object"

    object: str = Field(primary_key=True, max_length=255)
    idx: int = Field(primary_key=True)


class AccessCheckpoint(SQLModel, table=True):
    """Every checkpoint of the access log the log key signed (one per size)."""

    __tablename__ = "access_checkpoint"
    __table_args__ = (UniqueConstraint("size"),)

    id: int | None = Field(default=None, primary_key=True)
    size: int
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str
    signed_at: str = Field(max_length=20)
