"""Storage edge: SQLModel tables and the engine; one code path for SQLite and PostgreSQL."""
