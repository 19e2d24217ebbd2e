"""The alembic migrations build exactly the schema the code declares, on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from custody.store.db import create_schema, make_engine


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
