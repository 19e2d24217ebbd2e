"""Read-only queries over the custody log's tables for the read side (``custody/views.py``)
and the witness client (``custody/witness_client.py``).

Rules:
- Reads only, each on a read-only connection of its own (``store/db.py``'s ``read_options``:
  no write lock on SQLite, no transaction round trips on PostgreSQL).
- Envelopes come back as the signed bytes stored; whoever shows them parses and verifies
  them. Cached package states come back as the rules' ``PackageState``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, Table, func, select
from sqlmodel import SQLModel

from custody.rules import PackageState
from custody.store import log_tables as _log_tables  # noqa: F401  (registers the tables)
from custody.store.db import read_options
from custody.store.leaves import leaf_of
from custody.store.states import state_from_json

ENTRY: Table = SQLModel.metadata.tables["log_entry"]
PKG_EVENT: Table = SQLModel.metadata.tables["package_event"]
STATE: Table = SQLModel.metadata.tables["package_state"]
COSIGNATURE: Table = SQLModel.metadata.tables["cosignature"]

CHUNK = 500  # package ids per IN (...) list


@contextmanager
def _reader(engine: Engine) -> Iterator[Connection]:
    with engine.connect().execution_options(**read_options(engine)) as conn:
        yield conn


def package_states(engine: Engine) -> list[PackageState]:
    """Every package's cached state, by package id."""
    with _reader(engine) as conn:
        rows = conn.execute(select(STATE.c.state).order_by(STATE.c.package_id)).all()
    return [state_from_json(r.state) for r in rows]


def package_entries(
    engine: Engine, package_ids: Iterable[str], kind: str
) -> list[tuple[str, bytes]]:
    """(package id, envelope) of every ``kind`` entry on the log naming one of these
    packages."""
    wanted = list(package_ids)
    out: list[tuple[str, bytes]] = []
    with _reader(engine) as conn:
        for start in range(0, len(wanted), CHUNK):
            rows = conn.execute(
                select(PKG_EVENT.c.package_id, ENTRY.c.envelope, ENTRY.c.received_at)
                .join(ENTRY, ENTRY.c.idx == PKG_EVENT.c.idx)
                .where(
                    PKG_EVENT.c.package_id.in_(wanted[start : start + CHUNK]),
                    ENTRY.c.kind == kind,
                )
            )
            out += [(str(r.package_id), leaf_of(r.envelope, r.received_at)) for r in rows]
    return out


def packages_received_between(engine: Engine, start: str, end: str) -> list[str]:
    """The ids of the packages named by an entry the log received in [``start``, ``end``)
    (UTC times as stored, ``YYYY-MM-DDTHH:MM:SSZ``, so text order is time order), by id. The
    ``received_at`` column is an index: whoever shows the entries reads the time from the leaf."""
    with _reader(engine) as conn:
        rows = conn.execute(
            select(PKG_EVENT.c.package_id)
            .join(ENTRY, ENTRY.c.idx == PKG_EVENT.c.idx)
            .where(ENTRY.c.received_at >= start, ENTRY.c.received_at < end)
            .group_by(PKG_EVENT.c.package_id)
            .order_by(PKG_EVENT.c.package_id)
        )
        return [str(r.package_id) for r in rows]


def entries_of_kind(engine: Engine, kind: str) -> list[tuple[int, bytes]]:
    """(log index, envelope) of every entry of ``kind``, in log order."""
    with _reader(engine) as conn:
        rows = conn.execute(
            select(ENTRY.c.idx, ENTRY.c.envelope, ENTRY.c.received_at)
            .where(ENTRY.c.kind == kind)
            .order_by(ENTRY.c.idx)
        )
        return [(int(r.idx), leaf_of(r.envelope, r.received_at)) for r in rows]


def sizes_cosigned_by(engine: Engine, quorum: int, limit: int = 64) -> list[int]:
    """The largest checkpoint sizes (at most ``limit``, largest first) holding at least
    ``quorum`` stored cosignatures (whoever uses them verifies the cosignatures)."""
    with _reader(engine) as conn:
        rows = conn.execute(
            select(COSIGNATURE.c.size)
            .group_by(COSIGNATURE.c.size)
            .having(func.count() >= quorum)
            .order_by(COSIGNATURE.c.size.desc())
            .limit(limit)
        )
        return [int(r.size) for r in rows]


def largest_cosigned_size(engine: Engine) -> int | None:
    """The largest checkpoint size any stored cosignature is on (``None``: none stored)."""
    with _reader(engine) as conn:
        stored = conn.execute(select(func.max(COSIGNATURE.c.size))).scalar_one()
    return None if stored is None else int(stored)


def envelopes_by_statement(engine: Engine, statement_ids: Iterable[str]) -> dict[str, bytes]:
    """The log entry (leaf bytes, ``events.parse_leaf``) of each of these statements that is on
    the log, by statement id."""
    hexits = frozenset("0123456789abcdef")
    wanted = [  # stored as 32 bytes; anything but 64 lowercase hex digits is on no entry
        bytes.fromhex(s)
        for s in dict.fromkeys(statement_ids)
        if len(s) == 64 and hexits.issuperset(s)
    ]
    out: dict[str, bytes] = {}
    with _reader(engine) as conn:
        for start in range(0, len(wanted), CHUNK):
            rows = conn.execute(
                select(ENTRY.c.statement_id, ENTRY.c.envelope, ENTRY.c.received_at).where(
                    ENTRY.c.statement_id.in_(wanted[start : start + CHUNK])
                )
            )
            out.update(
                {bytes(r.statement_id).hex(): leaf_of(r.envelope, r.received_at) for r in rows}
            )
    return out
