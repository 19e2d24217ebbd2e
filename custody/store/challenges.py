"""Login challenges' storage (an edge): store a fresh one, spend one once.

Rules:
- A challenge is stored unused with its expiry; storing one sweeps the expired ones in the
  same transaction.
- Spending is one conditional update (unused, not expired): two logins racing for one
  challenge cannot both spend it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, Table, delete, insert, update
from sqlmodel import SQLModel

from crypto.encoding import format_time
from custody.store import access_tables as _access_tables  # noqa: F401  (registers it)

CHALLENGES: Table = SQLModel.metadata.tables["login_challenge"]


def add_challenge(engine: Engine, nonce: str, expires: datetime, now: datetime) -> None:
    """Store ``nonce`` unused until ``expires``; drop the challenges expired at ``now``."""
    with engine.begin() as conn:
        conn.execute(delete(CHALLENGES).where(CHALLENGES.c.expires_at < format_time(now)))
        conn.execute(
            insert(CHALLENGES).values(nonce=nonce, expires_at=format_time(expires), used=False)
        )


def spend_challenge(engine: Engine, nonce: str, now: datetime) -> bool:
    """Mark ``nonce`` used if it is stored, unused and not expired at ``now``; whether it was."""
    with engine.begin() as conn:
        spent = conn.execute(
            update(CHALLENGES)
            .where(CHALLENGES.c.nonce == nonce)
            .where(CHALLENGES.c.used.is_(False))
            .where(CHALLENGES.c.expires_at >= format_time(now))
            .values(used=True)
        ).rowcount
    return spent == 1
