"""Sealed packages as stored: the signed label text, plus the columns needed to find it.

The label text is re-verified against the trust store by whoever loads it; the other columns
are indexes only and are never believed over the signed text.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class PackageRow(SQLModel, table=True):
    __tablename__ = "package"

    id: str = Field(primary_key=True, max_length=32)
    exam_id: str = Field(index=True, max_length=32)
    sealer_key_id: str = Field(max_length=64)
    issued_at: str = Field(max_length=20)
    label: str
