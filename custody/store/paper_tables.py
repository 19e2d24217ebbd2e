"""Tables for papers: signed proposals, sealed keys, signed acts and the incidents they raise.

Rules:
- A paper row stores the proposer's signed proposal as received; its columns (status,
  commitment, exam...) are for finding rows, and every load re-verifies the proposal.
- Sealed keys live in their own table so that destruction deletes them row by row (and, on
  SQLite, with ``secure_delete`` so their bytes do not linger in free pages).
- The ciphertext is not in the database: it is a file under the home named by its
  commitment (docs/adr/0003-papers-encryption.md says why).
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class PaperRow(SQLModel, table=True):
    __tablename__ = "paper"

    ref: str = Field(primary_key=True, max_length=160)  # "<paper_id>@v<version>"
    paper_id: str = Field(index=True, max_length=128)
    version: int
    exam: str = Field(index=True, max_length=128)
    position: str = Field(max_length=128)
    role: str = Field(max_length=16)
    backup_of: str | None = Field(default=None, max_length=128)
    classification: str = Field(max_length=32)
    status: str = Field(max_length=16)
    commitment: str = Field(max_length=64)
    proposed_at: str = Field(max_length=20)
    proposal: bytes


class PaperKeyRow(SQLModel, table=True):
    __tablename__ = "paper_key"

    id: int | None = Field(default=None, primary_key=True)
    paper_ref: str = Field(index=True, max_length=160)
    slot: str = Field(max_length=16)
    subject: str = Field(max_length=128)
    sealed: bytes


class PaperActRow(SQLModel, table=True):
    __tablename__ = "paper_act"

    id: int | None = Field(default=None, primary_key=True)
    paper_ref: str = Field(index=True, max_length=160)
    kind: str = Field(max_length=32)
    at: str = Field(max_length=20)
    incident: bool = False
    envelope: bytes


class PaperIncidentRow(SQLModel, table=True):
    """An incident raised by a paper act, waiting for the incident system (issue 6)."""

    __tablename__ = "paper_incident"

    id: int | None = Field(default=None, primary_key=True)
    paper_ref: str = Field(index=True, max_length=160)
    kind: str = Field(max_length=32)
    at: str = Field(max_length=20)
    act_id: int
    act_sha256: str = Field(max_length=64)
    summary: str
    acknowledged: bool = False
