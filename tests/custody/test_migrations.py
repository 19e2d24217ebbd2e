"""The alembic migrations build exactly the schema the code declares, on both engines, and
convert the rows an earlier revision wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from crypto import merkle
from crypto.encoding import format_time
from custody.audit import export_bundle
from custody.demo import Season
from custody.errors import SchemaBehindError
from custody.events import Kind, parse_event, parse_leaf, statement_id
from custody.store.db import SCHEMA_HEAD, alembic_config, at_head, create_schema, make_engine
from custody.store.leaves import PARTS_DEFLATED, PARTS_RAW, leaf_of
from tests.custody.test_audit import verify_folder
from tests.custody.test_log import seal, to_storage, transfer


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_migrations_match_the_models(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/m.db"
        if engine_name == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    engine = make_engine(url)
    create_schema(engine)
    create_schema(engine)  # idempotent: a second start changes nothing
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    engine.dispose()


def _migrate(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        if revision == "head":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)


def _layout(engine: Engine) -> tuple[bool, bool]:
    """(tree nodes and package links WITHOUT ROWID on SQLite, package_state's fillfactor 40 on
    PostgreSQL); each is False on the other engine."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = "SELECT sql FROM sqlite_master WHERE name IN ('tree_node', 'package_event')"
            ddl = [str(r[0]) for r in conn.execute(text(sql))]
            return all("WITHOUT ROWID" in d for d in ddl), False
        opts = conn.execute(
            text("SELECT reloptions FROM pg_class WHERE relname = 'package_state'")
        ).scalar_one()
        return False, "fillfactor=40" in (opts or [])


def test_0009_converts_the_rows_0008_wrote_and_the_export_stays_the_same(
    any_season: Season, tmp_path: Path
) -> None:
    season = any_season
    seal(season, "PK-1")
    to_storage(season, "PK-1")
    seal(season, "PK-2")
    log = season.log()
    size = log.size()
    export_bundle(log, tmp_path / "before")
    leaves = [leaf for _, leaf in log.entries(0, size)]
    engine = season.home.engine
    sqlite = engine.dialect.name == "sqlite"
    assert _layout(engine) == (sqlite, not sqlite)
    _migrate(engine, "0008")
    # The rows as revision 0008's code wrote them: the leaf, the statement id in hex, the
    # event's time.
    select_old = "SELECT statement_id, event_time, received_at, envelope FROM log_entry"
    with engine.connect() as conn:
        old = conn.execute(text(select_old + " ORDER BY idx")).all()
    assert [bytes(r.envelope) for r in old] == leaves
    for r, leaf in zip(old, leaves, strict=True):
        env = parse_leaf(leaf).envelope
        assert r.statement_id == statement_id(env.payload)
        assert r.event_time == format_time(parse_event(env.payload).time)
    assert _layout(engine) == (False, False)

    _migrate(engine, "head")  # as the next start does
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.statement_id, e.received_at, e.envelope, n.hash FROM log_entry e "
                "JOIN tree_node n ON n.level = 0 AND n.idx = e.idx ORDER BY e.idx"
            )
        ).all()
    assert len(rows) == size
    for r, leaf, o in zip(rows, leaves, old, strict=True):
        assert bytes(r.envelope)[0] in (PARTS_RAW, PARTS_DEFLATED)
        assert len(bytes(r.envelope)) < len(leaf) * 2 // 3
        assert leaf_of(bytes(r.envelope), r.received_at) == leaf
        assert merkle.leaf_hash(leaf) == bytes(r.hash)
        assert bytes(r.statement_id).hex() == o.statement_id
    assert _layout(engine) == (sqlite, not sqlite)
    log.close()
    season.facts.pop("log")
    export_bundle(season.log(), tmp_path / "after")  # a new writer: its start check passed
    before = sorted(p.name for p in (tmp_path / "before").iterdir())
    assert sorted(p.name for p in (tmp_path / "after").iterdir()) == before
    for name in before:  # events.jsonl, the checkpoint, the manifest: byte for byte
        assert (tmp_path / "after" / name).read_bytes() == (tmp_path / "before" / name).read_bytes()
    transfer(season, Kind.DISPATCH, "PK-2", "print-qian", "courier-sun")  # appends go on
    assert season.log().size() == size + 1
    export_bundle(season.log(), tmp_path / "later")
    report = verify_folder(tmp_path / "later")
    assert report.ok, report.problems


def test_0010_keeps_every_access_record_findable_both_ways(any_season: Season) -> None:
    """Upgrading marks every record 0009 wrote as indexed; downgrading indexes the records
    0010 left waiting, as 0009 expects of every record."""
    from custody.access import Principal
    from custody.access_log import AccessLog

    season = any_season
    engine = season.home.engine
    cert = season.trust().certificates[season.keys["courier-sun"].signing.key_id]
    access = AccessLog(engine, season.authority, None)
    for n in range(5):
        access.record(Principal.of(cert), "GET /v1/packages/{package_id}", [f"package:PK-{n}"],
                      season.now)  # fmt: skip
    count = "SELECT count(*) FROM access_object"
    with engine.connect() as conn:
        assert conn.execute(text(count)).scalar_one() == 0  # 5 records wait for their batch
    _migrate(engine, "0009")
    with engine.connect() as conn:
        assert conn.execute(text(count)).scalar_one() == 5
    _migrate(engine, "head")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT indexed, size FROM access_head")).one() == (5, 5)
    assert [e.index for e in access.who_read(obj="package:PK-3")] == [3]


def test_the_schema_head_named_in_the_code_is_alembic_s_head() -> None:
    from alembic.script import ScriptDirectory

    config = alembic_config(make_engine("sqlite://"))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_HEAD]


def test_a_database_at_the_head_opens_without_alembic_and_another_one_is_migrated(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    engine = make_engine(url)
    assert not at_head(engine)  # empty: no version table
    create_schema(engine)
    assert at_head(engine)
    engine.dispose()
    # a command's start on it: the schema is checked by one read, alembic is never loaded
    code = (
        "import sys; from custody.store.db import create_schema, make_engine; "
        f"create_schema(make_engine({url!r})); "
        "assert not [m for m in sys.modules if m.startswith('alembic')], 'alembic loaded'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    # one revision behind: not at the head, so alembic brings it there
    _migrate(make_engine(url), "0009")
    engine = make_engine(url)
    assert not at_head(engine)
    create_schema(engine)
    assert at_head(engine)
    # a revision this custody does not know (a newer one's): refused, named
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaBehindError):
        create_schema(engine)
    engine.dispose()
