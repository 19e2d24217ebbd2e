"""Tables. Each stores signed bytes as received, plus the columns needed to find them.

Nothing in a table is trusted on read: the signed envelope is re-verified by whoever loads it,
so an edited row is caught by verification, not believed.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class AuthorityRow(SQLModel, table=True):
    __tablename__ = "authority"

    id: str = Field(primary_key=True, max_length=64)
    name: str
    envelope: bytes


class CertificateRow(SQLModel, table=True):
    __tablename__ = "certificate"

    key_id: str = Field(primary_key=True, max_length=64)
    subject: str = Field(index=True)
    envelope: bytes


class RevocationRow(SQLModel, table=True):
    __tablename__ = "revocation"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(index=True, max_length=64)
    envelope: bytes


import custody.store.package_tables  # noqa: E402, F401  (package tables register themselves)
from custody.store import access_tables as _access_tables  # noqa: E402, F401
from custody.store import incident_tables as _incident_tables  # noqa: E402, F401
from custody.store import log_tables as _log_tables  # noqa: E402, F401
from custody.store import paper_tables as _paper_tables  # noqa: E402, F401
