"""The names services give the database handles they pass to the repositories of ``store/``.

A service that holds no SQL still holds an engine (from its home or its log) and, inside the
log's append, a connection; it hands them on without using them. These names let it state
their types without importing the database library (the "no-SQL" import contract in
``pyproject.toml``), and without loading the migrations machinery ``store/db.py`` carries.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine

Database = Engine
"""An engine: what a service asks a repository to read or write with."""

Transaction = Connection
"""A connection inside a transaction (the log's append, say) that a repository writes in."""
