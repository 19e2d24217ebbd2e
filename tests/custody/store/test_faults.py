"""Database faults by class, at the engine: each becomes its own storage error naming the
database (the HTTP and CLI paths are tested in tests/api/test_storage_faults.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from custody.errors import (
    DatabaseCorruptError,
    DatabaseUnavailableError,
    SchemaBehindError,
    StorageError,
)
from custody.store.db import create_schema, make_engine
from tests.pg_cluster import free_port

ROOT = Path(__file__).resolve().parents[3]


def test_a_schema_this_version_does_not_know(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_engine(url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaBehindError) as caught:
        create_schema(make_engine(url))
    assert "db.sqlite" in caught.value.message and caught.value.exit_code == 6


def test_a_dropped_table_is_a_schema_fault(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE tree_node"))
    with pytest.raises(SchemaBehindError), engine.connect() as conn:
        conn.execute(text("SELECT hash FROM tree_node"))


def test_nothing_listening_and_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailableError) as caught:
        create_schema(make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/x"))
    assert "127.0.0.1" in caught.value.message and "password" not in caught.value.message
    bad = tmp_path / "bad.db"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(DatabaseCorruptError):
        create_schema(make_engine(f"sqlite:///{bad}"))


def test_the_password_is_never_in_the_message() -> None:
    with pytest.raises(StorageError) as caught:
        create_schema(make_engine(f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/x"))
    assert "s3cret-pw" not in caught.value.message + (caught.value.hint or "")


def test_a_cli_command_on_a_schema_from_the_future_exits_6(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CUSTODY_ROOT_PASSPHRASE": "root passphrase one",
        "CUSTODY_LOG_PASSPHRASE": "log passphrase two",
        "CUSTODY_SYSTEM_PASSPHRASE": "system passphrase three",
    }
    home = tmp_path / "home"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = ["--home", str(home), *args]
        return subprocess.run(
            [
                sys.executable,
                "-c",
                f"from custody.cli import main; raise SystemExit(main({argv!r}))",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert run("init", "--name", "A").returncode == 0
    engine = make_engine(f"sqlite:///{home / 'custody.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    done = run("log", "status")
    assert done.returncode == 6, done.stderr
    assert "db_schema" in done.stderr and "Traceback" not in done.stderr
