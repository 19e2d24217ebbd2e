"""Engines for the embedded default (SQLite, WAL, fully synchronous) and PostgreSQL.

Rules:
- One code path: the same tables and queries serve both; only the engine's connect-time
  settings differ.
- Durability: SQLite runs with ``synchronous=FULL`` in WAL mode, so a committed transaction
  survives a killed process; PostgreSQL commits are durable by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlmodel import create_engine

import custody.store.tables  # noqa: F401  (registers every table on SQLModel.metadata)
from custody.errors import N_, CustodyError, SchemaBehindError, StorageError, UsageError
from custody.store.faults import describe_database, storage_error

if TYPE_CHECKING:  # alembic is loaded only when a database is not at SCHEMA_HEAD
    from alembic.config import Config

BUSY_TIMEOUT_MS = 30000  # how long a SQLite statement waits for another connection's lock


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and pick the psycopg 3 driver for it."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin_immediate)
        else:
            # No pre-ping: it costs a round trip on every checkout (proofs must answer in
            # under a millisecond); stale connections are recycled instead.
            engine = create_engine(url, pool_recycle=600)
    except (ArgumentError, ImportError) as e:
        raise UsageError(N_("database URL {url!r} is not usable: {e}"), url=url, e=e) from e
    event.listen(engine, "handle_error", _storage_fault)
    return engine


def _storage_fault(ctx: ExceptionContext) -> BaseException | None:
    """Every driver error passes here: a fault of the database becomes its storage error."""
    url = ctx.engine.url if ctx.engine is not None else ""
    return storage_error(ctx.original_exception, url)


READ_ONLY = {"custody_read_only": True}


def read_options(engine: Engine) -> dict[str, object]:
    """Execution options for a read-only connection: no write lock on SQLite, and no
    BEGIN/ROLLBACK round trips on PostgreSQL (each read is one consistent statement)."""
    if engine.dialect.name == "postgresql":
        return {**READ_ONLY, "isolation_level": "AUTOCOMMIT"}
    return dict(READ_ONLY)


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN: a transaction that reads the log head and then appends
    # must not find, at its first write, that another process appended meanwhile. Readers
    # (connections opened with READ_ONLY options) take a plain snapshot and block nobody.
    if conn.get_execution_options().get("custody_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook issue BEGIN itself (pysqlite's implicit BEGIN is deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    # Deleted rows (shredded key shares) are overwritten with zeros, not left in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


# The newest revision under custody/migrations/versions (tests/custody/test_migrations.py
# checks that it is alembic's head). A database already there opens without loading alembic
# and its scripts (about 0.2 s of every command's start).
SCHEMA_HEAD = "0010"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config  # noqa: PLC0415 (fast start)

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Not through configparser's interpolation: a '%' in the URL (a home path, a password)
    # would break it. env.py takes the engine's connection from ``attributes``.
    config.attributes["url"] = engine.url.render_as_string(hide_password=False)
    return config


def at_head(engine: Engine) -> bool:
    """Whether the database's schema is exactly SCHEMA_HEAD (one read, no write lock); any
    doubt (no version table, another revision, a fault) says no, and alembic decides."""
    try:
        with engine.connect().execution_options(**read_options(engine)) as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except (DBAPIError, CustodyError):
        return False
    return [tuple(r) for r in rows] == [(SCHEMA_HEAD,)]


def create_schema(engine: Engine) -> None:
    """Bring the database to the latest migration (alembic), one code path for both engines.

    On PostgreSQL an advisory lock makes concurrent starters wait for the first one; SQLite's
    BEGIN IMMEDIATE serialises them already.
    """
    if at_head(engine):
        return
    from alembic import command  # noqa: PLC0415 (fast start)
    from alembic.util.exc import CommandError  # noqa: PLC0415

    config = alembic_config(engine)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7262021)")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except CommandError as e:  # a revision this version does not know: a newer custody's
        raise SchemaBehindError(
            N_("the {url} has a schema this version of custody does not know ({e})"),
            hint=N_("run the version of custody that wrote it, or restore a matching backup"),
            url=describe_database(engine.url),
            e=e,
        ) from e
    except DBAPIError as e:
        raise StorageError(
            N_("cannot migrate the schema of the {url}: {orig}"),
            url=describe_database(engine.url),
            orig=e.orig,
        ) from e


def driver_sql(conn: Connection, template: str) -> str:
    """``template`` with the driver's placeholder for each ``{0}`` (``%s`` for psycopg, ``?``
    for sqlite3): SQL the driver runs as it is, without SQLAlchemy's work per row."""
    return template.format("%s" if conn.dialect.name == "postgresql" else "?")


def sqlite_marks(count: int) -> str:
    """``(?, ?, …)``: ``count`` placeholders of an ``IN`` list in sqlite3's own SQL."""
    return "(" + ", ".join(["?"] * count) + ")"
