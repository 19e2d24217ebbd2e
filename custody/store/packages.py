"""The sealed packages' storage (an edge): the ``package`` table in, label texts and ids out.

Rules:
- One style with the other repositories: SQLAlchemy Core on one connection, no ORM session;
  ``custody/package_service.py`` holds no SQL.
- ``add`` inside the log's append transaction (``alongside``) runs in a savepoint, so a
  package id that is already sealed answers ``False`` and leaves the transaction usable for
  the caller to refuse it; any other refusal of the row is a ``StorageError``.
- The label text is returned as stored: whoever uses it verifies it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from crypto.encoding import format_time
from custody.errors import N_, StorageError
from custody.store import package_tables as _package_tables  # noqa: F401  (registers it)
from custody.store.db import READ_ONLY

PACKAGE: Table = SQLModel.metadata.tables["package"]


@dataclass(frozen=True)
class NewPackage:
    """A sealed package to store: its id, exam, sealer's key and the signed label text."""

    package_id: str
    exam_id: str
    sealer_key_id: str
    issued_at: datetime
    label: str


class PackageRepository:
    """The ``package`` table, read and written on one connection (inside its transaction)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, package: NewPackage) -> bool:
        """Store the package; ``False`` (and nothing written) when its id is sealed already."""
        row = {
            "id": package.package_id,
            "exam_id": package.exam_id,
            "sealer_key_id": package.sealer_key_id,
            "issued_at": format_time(package.issued_at),
            "label": package.label,
        }
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(PACKAGE), row)
        except IntegrityError as e:
            if self.is_sealed(package.package_id):
                return False
            raise StorageError(
                N_("the database refused the package row: {reason}"), reason=str(e.orig)
            ) from e
        return True

    def is_sealed(self, package_id: str) -> bool:
        query = select(PACKAGE.c.id).where(PACKAGE.c.id == package_id)
        return self.conn.execute(query).first() is not None

    def label(self, package_id: str) -> str | None:
        """The stored label text of ``package_id`` (``None``: no such package)."""
        query = select(PACKAGE.c.label).where(PACKAGE.c.id == package_id)
        found = self.conn.execute(query).scalar_one_or_none()
        return None if found is None else str(found)

    def ids(self, exam_id: str | None = None) -> list[str]:
        """The sealed packages' ids (of ``exam_id``, if given), in order."""
        query = select(PACKAGE.c.id).order_by(PACKAGE.c.id)
        if exam_id is not None:
            query = query.where(PACKAGE.c.exam_id == exam_id)
        return [str(i) for i in self.conn.execute(query).scalars()]

    def labels(self) -> Iterator[tuple[str, str]]:
        """(package id, label text) of every sealed package, by id, as stored; streamed."""
        query = select(PACKAGE.c.id, PACKAGE.c.label).order_by(PACKAGE.c.id)
        for row in self.conn.execute(query):
            yield str(row.id), str(row.label)


@contextmanager
def reading(engine: Engine) -> Iterator[PackageRepository]:
    """A repository for reads on a connection of its own (no write lock); nothing commits."""
    with engine.connect().execution_options(**READ_ONLY) as conn:
        yield PackageRepository(conn)


@contextmanager
def writing(engine: Engine) -> Iterator[PackageRepository]:
    """A repository on a transaction of its own, committed when the block ends."""
    with engine.begin() as conn:
        yield PackageRepository(conn)


def alongside(work: Callable[[PackageRepository], None]) -> Callable[[Connection], None]:
    """``work`` as a write the custody log runs inside its append transaction: both commit
    or neither."""

    def write(conn: Connection) -> None:
        work(PackageRepository(conn))

    return write
