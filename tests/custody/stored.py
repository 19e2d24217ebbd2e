"""Every stored byte of a home, to compare before and after a command that must fail whole.

The database is compared by its content (every row of every table, in a stable order): a
rolled-back transaction may leave pages in SQLite's WAL file that no reader ever sees, so the
database files themselves are not compared. Every other file under the home (key files, paper
ciphertext, config) and beside it (the root key) is compared by its SHA-256.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import inspect, text

from custody.home import Home
from custody.log import ensure_head

_DATABASE_FILES = ("custody.db", "custody.db-wal", "custody.db-shm", "custody.db-journal")


def stored(home: Home) -> dict[str, Any]:
    """The home's database content and file hashes.

    The log's head row (size 0) is written the first time anything opens the log of a new
    home, by whichever command comes first; it is made here, so that first opening is not
    taken for a command's leftover."""
    ensure_head(home.engine)
    tables: dict[str, list[tuple[Any, ...]]] = {}
    engine = home.engine
    with engine.connect() as conn:
        for name in sorted(inspect(conn).get_table_names()):
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()
            tables[name] = sorted((tuple(r) for r in rows), key=repr)
    files = {}
    for path in sorted(home.path.parent.rglob("*")):
        if path.is_file() and path.name not in _DATABASE_FILES:
            files[str(path.relative_to(home.path.parent))] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return {"tables": tables, "files": files}


def fail_inserts_into(home: Home, table: str) -> None:
    """Make the database refuse every insert into ``table``, so a command fails at that write,
    after the writes made before it in the same command, as a storage fault: on PostgreSQL a
    trigger that fails as a full disk does (SQLSTATE 53100)."""
    with home.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                f'CREATE FUNCTION "refuse_{table}"() RETURNS trigger LANGUAGE plpgsql AS '
                "$$ BEGIN RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'disk_full'; "
                "END $$"
            )
            conn.exec_driver_sql(
                f'CREATE TRIGGER "refuse_{table}" BEFORE INSERT ON "{table}" '
                f'FOR EACH ROW EXECUTE FUNCTION "refuse_{table}"()'
            )
            return
        # SQLite: the trigger writes to a table that does not exist, so the insert fails as
        # a storage fault does (OperationalError), not as a broken constraint.
        conn.exec_driver_sql(
            f'CREATE TRIGGER "refuse_{table}" BEFORE INSERT ON "{table}" '
            'BEGIN INSERT INTO "refused by the test" VALUES (1); END'
        )


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two ``stored`` snapshots: table and file names (empty: nothing)."""
    out = []
    for part in ("tables", "files"):
        for name in sorted(set(before[part]) | set(after[part])):
            if before[part].get(name) != after[part].get(name):
                out.append(f"{part[:-1]} {name}")
    return out
