"""What the database says of itself, for readiness (``custody/readiness.py`` judges it).

Rules:
- Reads only, on a connection of its own, rolled back; never the log's append lock.
- PostgreSQL: whether it is in recovery (a standby), whether transactions are read-only, its
  streaming standbys (name, state, sync state, replay lag in seconds) and the configured
  synchronous standby names. SQLite: that the log's head table answers, and the file's path.
- A fault of the database is its storage error (``store/faults.py``), raised to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class DatabaseState:
    engine: str  # the dialect: "postgresql" or "sqlite"
    in_recovery: bool = False
    read_only: bool = False
    standbys: tuple[dict[str, object], ...] = ()
    sync_standby_names: str = ""
    file: Path | None = None  # SQLite: the database file


def probe(engine: Engine) -> DatabaseState:
    """Ask the database the questions of the module rules."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            recovery, read_only = conn.execute(
                text("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
            ).one()
            standbys = tuple(
                {
                    "name": r.application_name,
                    "state": r.state,
                    "sync_state": r.sync_state,
                    "replay_lag_seconds": r.lag,
                }
                for r in conn.execute(
                    text(
                        "SELECT application_name, state, sync_state, "
                        "EXTRACT(EPOCH FROM replay_lag)::float AS lag "
                        "FROM pg_stat_replication ORDER BY application_name"
                    )
                )
            )
            wanted = conn.execute(text("SELECT current_setting('synchronous_standby_names')"))
            sync_names = str(wanted.scalar_one() or "")
            conn.rollback()
            return DatabaseState(
                "postgresql",
                in_recovery=bool(recovery),
                read_only=read_only == "on",
                standbys=standbys,
                sync_standby_names=sync_names,
            )
        conn.execute(text("SELECT 1 FROM log_head"))
        conn.rollback()
    return DatabaseState(engine.dialect.name, file=Path(engine.url.database or ""))
