"""Database failures as storage errors: an outage or a broken disk is told apart from a bug.

Rules:
- Every engine ``make_engine`` builds routes its driver errors through ``storage_error`` (an
  SQLAlchemy ``handle_error`` hook), so no caller sees a raw driver exception for a fault of
  the database itself: unreachable, read-only, full, corrupt, or a schema this version does not
  know. Each becomes its own ``StorageError`` subclass (HTTP 503 with Retry-After, exit 6) with
  a message naming the database and a hint saying what to do.
- The database is named without its password.
- Errors of the statement itself (a unique key taken by a concurrent writer, a serialisation
  failure) are not storage faults: they are left to the code that expects them.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from sqlalchemy.engine import URL

from custody.errors import (
    N_,
    DatabaseCorruptError,
    DatabaseFullError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
    SchemaBehindError,
    StorageError,
)

FULL_BELOW = 64 * 1024  # free bytes under which an I/O error is taken for a full disk
RESTORE_HINT = N_(
    "stop every custody process on this home; restore the database from the standby or the "
    "last backup, then replay the receipts clients hold (docs/operations.md, 'Recovery')"
)

# PostgreSQL SQLSTATE classes and codes (Appendix A of its manual).
_PG_UNAVAILABLE_PREFIXES = ("08", "57P")  # connection exception; operator intervention
_PG_READ_ONLY = {"25006"}  # read_only_sql_transaction (a standby, default_transaction_read_only)
_PG_FULL_PREFIX = "53"  # insufficient resources: disk full, out of memory, too many connections
_PG_CORRUPT = {"XX001", "XX002"}  # data_corrupted, index_corrupted
_PG_SCHEMA = {"42P01", "42703", "42883"}  # undefined table / column / function


def describe_database(url: URL | str) -> str:
    """The database as an operator names it: the SQLite file, or host:port/name (no password)."""
    if isinstance(url, str):
        from sqlalchemy.engine import make_url  # noqa: PLC0415

        try:
            url = make_url(url)
        except Exception:  # noqa: BLE001 - a URL we cannot parse is named as "the database"
            return "the database"
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database or ':memory:'}"
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"PostgreSQL database {url.database or ''} at {host}{port}"


def storage_error(error: BaseException, url: URL | str) -> StorageError | None:
    """The storage error a driver exception stands for, or None when it is not a fault of the
    database itself (the caller then sees the original exception)."""
    db = describe_database(url)
    name = getattr(error, "sqlite_errorname", None)
    if isinstance(name, str):
        if name.startswith("SQLITE_IOERR") and _disk_full(url):
            name = "SQLITE_FULL"  # SQLite reports a full disk under its -shm/-wal as I/O
        return _sqlite_error(name, str(error), db)
    sqlstate = getattr(error, "sqlstate", None)
    module = type(error).__module__
    if module.startswith("psycopg"):
        return _pg_error(sqlstate if isinstance(sqlstate, str) else None, error, db)
    return None


def _disk_full(url: URL | str) -> bool:
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    try:
        path = Path(make_url(url).database or "").resolve().parent
        return shutil.disk_usage(path).free < FULL_BELOW
    except (OSError, ValueError):
        return False


def _sqlite_error(name: str, text: str, db: str) -> StorageError | None:
    if name.startswith("SQLITE_READONLY"):
        return DatabaseReadOnlyError(
            N_("the {db} refuses writes ({text})"),
            hint=N_(
                "make the file, its -wal and -shm files and its folder "
                "writable by this account (or remount the disk read-write), "
                "then retry"
            ),
            db=db,
            text=text,
        )
    if name.startswith("SQLITE_FULL"):
        return DatabaseFullError(
            N_("the disk under the {db} is full ({text})"),
            hint=N_(
                "free space on that disk, then retry; nothing was acknowledged that is not stored"
            ),
            db=db,
            text=text,
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return DatabaseCorruptError(
            N_("the {db} is damaged ({text})"), hint=RESTORE_HINT, db=db, text=text
        )
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR")):
        return DatabaseUnavailableError(
            N_("the {db} cannot be used now ({text})"),
            hint=N_(
                "check that the file and its folder exist, the disk is "
                "mounted and healthy, and no other program holds a lock on "
                "it; then retry"
            ),
            db=db,
            text=text,
        )
    if name == "SQLITE_ERROR" and ("no such table" in text or "no such column" in text):
        return SchemaBehindError(
            N_("the {db} lacks part of the schema this version needs ({text})"),
            hint=N_(
                "run this version of custody once on the home (it migrates "
                "the schema), or restore the database if its tables were "
                "dropped"
            ),
            db=db,
            text=text,
        )
    return None


def _pg_error(sqlstate: str | None, error: BaseException, db: str) -> StorageError | None:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if sqlstate is None or sqlstate.startswith(_PG_UNAVAILABLE_PREFIXES):
        # No SQLSTATE: the connection itself failed (refused, reset, timed out).
        if sqlstate is None and type(error).__name__ not in ("OperationalError", "InterfaceError"):
            return None
        return DatabaseUnavailableError(
            N_("the {db} cannot be reached ({first_line})"),
            hint=N_(
                "start PostgreSQL (or fail over to the standby and point the "
                "home at it), check the network, then retry; nothing was "
                "acknowledged that is not stored"
            ),
            db=db,
            first_line=first_line,
        )
    if sqlstate in _PG_READ_ONLY:
        return DatabaseReadOnlyError(
            N_("the {db} accepts reads only ({first_line})"),
            hint=N_("point the home's database_url at the primary, or promote the standby"),
            db=db,
            first_line=first_line,
        )
    if sqlstate.startswith(_PG_FULL_PREFIX):
        return DatabaseFullError(
            N_("the {db} is out of a resource ({first_line})"),
            hint=N_("free disk space (or connections) on the database server, then retry"),
            db=db,
            first_line=first_line,
        )
    if sqlstate in _PG_CORRUPT:
        return DatabaseCorruptError(
            N_("the {db} reports damaged data ({first_line})"),
            hint=RESTORE_HINT,
            db=db,
            first_line=first_line,
        )
    if sqlstate in _PG_SCHEMA:
        return SchemaBehindError(
            N_("the {db} lacks part of the schema this version needs ({first_line})"),
            hint=N_("run this version of custody once on the home (it migrates the schema)"),
            db=db,
            first_line=first_line,
        )
    return None


def file_error(error: OSError, what: str) -> StorageError:
    """A file the service must write (its signed checkpoint) could not be written."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DatabaseFullError(
            N_("the disk is full: cannot write {what}"),
            hint=N_("free space, then retry"),
            what=what,
        )
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return DatabaseReadOnlyError(
            N_("cannot write {what}: {strerror}"),
            hint=N_("make the home's authority folder writable by this account"),
            what=what,
            strerror=error.strerror,
        )
    return StorageError(
        N_("cannot write {what}: {strerror}"),
        hint=N_("check the disk"),
        what=what,
        strerror=error.strerror,
    )
