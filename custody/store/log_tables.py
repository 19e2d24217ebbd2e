"""Tables of the custody log. Rows hold signed bytes; everything else is an index or a cache
that ``custody verify`` never trusts (it re-derives states and the tree from the envelopes)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

STATE_FILLFACTOR = 40  # per cent of a package_state page filled by inserts (PostgreSQL)


class LogHead(SQLModel, table=True):
    """One row (id 1). Appenders lock it, which gives every entry one index, no gap."""

    __tablename__ = "log_head"

    id: int = Field(primary_key=True)
    size: int = 0


class LogEntry(SQLModel, table=True):
    """One accepted event. ``envelope`` holds the envelope in its parts, in binary, and
    ``received_at`` the log's receive time: the leaf (their canonical JSON, docs/formats.md) is
    rebuilt from the two on read (``store/leaves.py``), or is ``envelope`` itself in rows that
    do not fit the parts. ``statement_id`` is the SHA-256 of the payload, as 32 bytes."""

    __tablename__ = "log_entry"

    idx: int = Field(primary_key=True)
    statement_id: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    kind: str = Field(max_length=32)
    received_at: str = Field(max_length=20)
    envelope: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class PackageEvent(SQLModel, table=True):
    """Which log entries touch which package (a package's history in order). On SQLite the
    table is its primary key's B-tree (``WITHOUT ROWID``): no second copy of the key."""

    __tablename__ = "package_event"
    __table_args__ = {"sqlite_with_rowid": False}

    package_id: str = Field(primary_key=True, max_length=128)
    idx: int = Field(primary_key=True)


class TreeNode(SQLModel, table=True):
    """Complete perfect subtrees of the RFC 9162 tree: (level, index) covers leaves
    [index * 2^level, (index + 1) * 2^level). ``WITHOUT ROWID`` on SQLite, as above."""

    __tablename__ = "tree_node"
    __table_args__ = {"sqlite_with_rowid": False}

    level: int = Field(primary_key=True)
    idx: int = Field(primary_key=True)
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckpointRow(SQLModel, table=True):
    """Every checkpoint the log key ever signed: the log never signs two for one size."""

    __tablename__ = "checkpoint"
    __table_args__ = (UniqueConstraint("size"),)

    id: int | None = Field(default=None, primary_key=True)
    size: int
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str
    signed_at: str = Field(max_length=20)


class CosignatureRow(SQLModel, table=True):
    """A witness's cosignature/v1 line on the checkpoint of one size, stored after it verified
    under the witness's key from the authority's witness policy; one per witness key and size."""

    __tablename__ = "cosignature"
    __table_args__ = (UniqueConstraint("size", "witness", "key_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    size: int = Field(index=True)
    witness: str = Field(max_length=255)
    key_hash: str = Field(max_length=8)
    cosigned_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    line: str
    added_at: str = Field(max_length=20)


class PackageStateRow(SQLModel, table=True):
    """The rules engine's cache of each package's state after its last event. Every event
    rewrites its package's row: on PostgreSQL inserts fill a page only to 40% (``fillfactor``)
    so the new version fits in the same page and the update is HOT (heap-only: the old version
    is pruned within the page, no index entry added) instead of a dead row version left behind.
    40, not 50: room for a second new version when a long read (an export) holds back pruning
    for a while."""

    __tablename__ = "package_state"
    __table_args__ = {"postgresql_with": {"fillfactor": STATE_FILLFACTOR}}

    package_id: str = Field(primary_key=True, max_length=128)
    state: str
    last_idx: int


class FindingRow(SQLModel, table=True):
    """Anomalies found in accepted events (seal mismatch, short count)."""

    __tablename__ = "finding"

    id: int | None = Field(default=None, primary_key=True)
    idx: int = Field(index=True)
    kind: str = Field(max_length=32)
    package_id: str = Field(max_length=128)
    detail: str
    evidence: str


class ExamPolicyRow(SQLModel, table=True):
    """Each exam's policy in force: the body of the latest ``exam_policy`` statement on the
    log for it (a cache; ``custody verify`` replays the statements themselves)."""

    __tablename__ = "exam_policy"

    exam_id: str = Field(primary_key=True, max_length=200)
    idx: int
    body: str
