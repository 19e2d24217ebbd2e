"""Alembic environment: the project's SQLModel metadata, on the connection custody hands in."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import custody.store.tables  # noqa: F401  (registers every table)

config = context.config
target_metadata = SQLModel.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from custody.store.db import make_engine  # noqa: PLC0415 (CLI use: `alembic upgrade`)

        engine = make_engine(
            config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or ""
        )
        with engine.begin() as conn:
            context.configure(
                connection=conn, target_metadata=target_metadata, render_as_batch=True
            )
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
