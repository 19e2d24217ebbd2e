"""Each class of database fault, caused for real, becomes its own storage error (exit 6, HTTP
503) naming the database; an error of the statement itself stays what it is; a file the log
must write that cannot be written is a storage error naming the file."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from crypto.note import Checkpoint, NoteVerifier, sign_checkpoint
from crypto.signing import SigningKey
from custody.errors import (
    DatabaseFullError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
    SchemaBehindError,
    StorageError,
)
from custody.store.db import make_engine
from custody.store.faults import describe_database, file_error, storage_error
from custody.store.guard import SignedHeadFile


def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    return path


def test_the_database_is_named_as_an_operator_names_it() -> None:
    assert describe_database("sqlite:////srv/custody/db.sqlite") == (
        "SQLite database /srv/custody/db.sqlite"
    )
    assert describe_database("sqlite://") == "SQLite database :memory:"
    named = describe_database("postgresql://custody:pw@db.example:6543/custody")
    assert named == "PostgreSQL database custody at db.example:6543"
    assert describe_database("postgresql:///custody") == "PostgreSQL database custody at localhost"
    assert describe_database("not a url at all") == "the database"


def test_sqlite_opened_read_only_refuses_writes_as_read_only(tmp_path: Path) -> None:
    path = sqlite_db(tmp_path)
    engine = make_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(DatabaseReadOnlyError) as caught, engine.begin() as conn:
        conn.execute(text("INSERT INTO t (x) VALUES (1)"))
    assert caught.value.exit_code == 6 and caught.value.hint
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_sqlite_in_a_folder_that_is_not_there_is_unavailable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'gone' / 'db.sqlite'}")
    with pytest.raises(DatabaseUnavailableError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert "gone" in caught.value.message


def test_sqlite_locked_by_another_writer_is_unavailable(tmp_path: Path) -> None:
    path = sqlite_db(tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        waiter = sqlite3.connect(path, timeout=0)
        with pytest.raises(sqlite3.OperationalError) as raised:
            waiter.execute("INSERT INTO t (x) VALUES (1)")
        waiter.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    fault = storage_error(raised.value, f"sqlite:///{path}")
    assert isinstance(fault, DatabaseUnavailableError) and str(path) in fault.message


def test_a_statement_error_on_sqlite_is_not_a_storage_fault(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{sqlite_db(tmp_path)}")
    with pytest.raises(OperationalError) as caught, engine.connect() as conn:
        conn.execute(text("SELEC 1"))
    assert not isinstance(caught.value, StorageError)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (x) VALUES (1)"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t (x) VALUES (1)"))


def test_postgresql_faults_by_class(pg_url: str) -> None:
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
    # A read-only transaction (as on a standby) refuses the write.
    with pytest.raises(DatabaseReadOnlyError) as ro, engine.begin() as conn:
        conn.execute(text("SET TRANSACTION READ ONLY"))
        conn.execute(text("INSERT INTO t (x) VALUES (1)"))
    assert "accepts reads only" in ro.value.message
    # A column, a table or a function this version expects and the database lacks.
    for sql in ("SELECT missing FROM t", "SELECT * FROM missing", "SELECT missing_fn(1)"):
        with pytest.raises(SchemaBehindError), engine.connect() as conn:
            conn.execute(text(sql))
    # Out of a resource: the server's limit on temporary files.
    with pytest.raises(DatabaseFullError) as full, engine.begin() as conn:
        conn.execute(text("SET LOCAL work_mem = '64kB'"))
        conn.execute(text("SET LOCAL temp_file_limit = '64kB'"))
        conn.execute(text("SELECT g FROM generate_series(1, 300000) g ORDER BY random()"))
    assert full.value.exit_code == 6
    name = pg_url.rsplit("/", 1)[1]
    assert name in ro.value.message and name in full.value.message
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0


def test_postgresql_statement_errors_are_left_to_the_caller(pg_url: str) -> None:
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t (x) VALUES (1)"))
    with pytest.raises(IntegrityError), engine.begin() as conn:  # a key a writer took first
        conn.execute(text("INSERT INTO t (x) VALUES (1)"))
    with pytest.raises(DataError), engine.connect() as conn:
        conn.execute(text("SELECT 1 / 0"))
    with pytest.raises(OperationalError) as cancelled, engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 10"))
        conn.execute(text("SELECT pg_sleep(2)"))
    assert not isinstance(cancelled.value, StorageError)
    # Nor is an exception that does not come from a database driver at all.
    assert storage_error(ValueError("not a driver's"), pg_url) is None


def test_a_connection_the_server_drops_is_unavailable(pg_url: str) -> None:
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(DatabaseUnavailableError) as caught:
            conn.execute(text("SELECT 1"))
    assert "cannot be reached" in caught.value.message


def test_file_errors_by_cause(tmp_path: Path) -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(OSError, match="space") as raised:
            os.write(fd, b"checkpoint\n")
    finally:
        os.close(fd)
    full = file_error(raised.value, "the log's file")
    assert isinstance(full, DatabaseFullError) and "disk is full" in full.message
    read_only = file_error(OSError(errno.EROFS, os.strerror(errno.EROFS)), "the log's file")
    assert isinstance(read_only, DatabaseReadOnlyError) and read_only.hint
    other = file_error(OSError(errno.EIO, os.strerror(errno.EIO)), "the log's file")
    assert type(other) is StorageError and other.exit_code == 6


def test_a_signed_head_file_that_cannot_be_written_is_a_storage_error(tmp_path: Path) -> None:
    origin = "authority.example/log"
    key = SigningKey(b"\x31" * 32)
    head = SignedHeadFile(tmp_path / "signed-head", NoteVerifier(origin, key.verify_key), origin)
    note = sign_checkpoint(Checkpoint(origin, 1, b"\x01" * 32), origin, key)
    (tmp_path / "signed-head.tmp").mkdir()  # where the new file is written first
    with pytest.raises(StorageError) as caught:
        head.record(note)
    assert "signed-head" in caught.value.message
    assert not (tmp_path / "signed-head").exists()
    locked_head = SignedHeadFile(
        tmp_path / "other-head", NoteVerifier(origin, key.verify_key), origin
    )
    (tmp_path / "other-head.lock").mkdir()  # its lock cannot be opened
    with pytest.raises(StorageError) as locked:
        locked_head.record(note)
    assert "other-head.lock" in locked.value.message
    assert not (tmp_path / "other-head").exists()
