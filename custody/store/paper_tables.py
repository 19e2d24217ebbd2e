"""Tables for papers: signed proposals, sealed keys, signed acts and the incidents they raise.

Rules:
- A paper row stores the proposer's signed proposal as received; its columns (status,
  commitment, exam...) are for finding rows, and every load re-verifies the proposal.
- Sealed keys live in their own table so that destruction deletes them row by row (and, on
  SQLite, with ``secure_delete`` so their bytes do not linger in free pages).
- A destroyed key whose erase from the database files is not yet proven has a ``paper_erase``
  row, written in the same transaction as the delete and removed once the check passes
  (docs/adr/0005-checked-shredding.md). It holds no key material: the SHA-256 the proposal
  already publishes, and a locator (the first bytes of the sealed box's ephemeral public key,
  as hex) that lets a later run find a surviving copy without keeping the copy.
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


class PaperEraseRow(SQLModel, table=True):
    """A destroyed sealed key whose physical erase is still to be proven (see module rules)."""

    __tablename__ = "paper_erase"

    id: int | None = Field(default=None, primary_key=True)
    paper_ref: str = Field(index=True, max_length=160)
    slot: str = Field(max_length=16)
    subject: str = Field(max_length=128)
    sealed_sha256: str = Field(max_length=64)
    locator: str = Field(max_length=64)  # hex of the blob's first LOCATOR_BYTES bytes


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
