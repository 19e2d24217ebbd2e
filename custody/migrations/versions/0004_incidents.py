"""incidents: incident, incident_act, blocked_key, incident_watch, incident_outbox

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _s(n: int | None = None) -> sa.String:
    return sa.String(length=n)


def upgrade() -> None:
    op.create_table(
        "incident",
        sa.Column("id", _s(32), primary_key=True),
        sa.Column("kind", _s(32), nullable=False),
        sa.Column("severity", _s(16), nullable=False),
        sa.Column("status", _s(16), nullable=False, index=True),
        sa.Column("subject", _s(128), nullable=False, index=True),
        sa.Column("package_id", _s(128), nullable=True),
        sa.Column("paper", _s(128), nullable=True),
        sa.Column("opened_at", _s(20), nullable=False),
        sa.Column("updated_at", _s(20), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("ack_deadline", _s(20), nullable=True),
        sa.Column("detail", _s(), nullable=False),
        sa.Column("scope", _s(), nullable=False),
        sa.Column("evidence", _s(), nullable=False),
        sa.Column("containment", _s(), nullable=False),
        sa.Column("statements", _s(), nullable=False),
    )
    op.create_table(
        "incident_act",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", _s(32), nullable=False, index=True),
        sa.Column("act", _s(16), nullable=False),
        sa.Column("person", _s(128), nullable=False),
        sa.Column("time", _s(20), nullable=False),
        sa.Column("statement_id", _s(64), nullable=False, unique=True),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "blocked_key",
        sa.Column("key_id", _s(64), primary_key=True),
        sa.Column("subject", _s(128), nullable=False),
        sa.Column("incident_id", _s(32), nullable=False),
        sa.Column("blocked_at", _s(20), nullable=False),
        sa.Column("unblocked_at", _s(20), nullable=True),
        sa.Column("unblocked_by", _s(128), nullable=True),
    )
    op.create_table(
        "incident_watch",
        sa.Column("package_id", _s(128), primary_key=True),
        sa.Column("paper", _s(128), nullable=False, index=True),
        sa.Column("status", _s(16), nullable=False, index=True),
        sa.Column("since", _s(20), nullable=False),
        sa.Column("last_place", _s(128), nullable=True),
        sa.Column("last_place_time", _s(20), nullable=True),
        sa.Column("last_place_event", _s(64), nullable=True),
    )
    op.create_table(
        "incident_outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", _s(32), nullable=False, index=True),
        sa.Column("channel", _s(16), nullable=False),
        sa.Column("target", _s(64), nullable=False),
        sa.Column("address", _s(), nullable=False),
        sa.Column("idempotency_key", _s(64), nullable=False, unique=True),
        sa.Column("subject", _s(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _s(20), nullable=False),
        sa.Column("status", _s(16), nullable=False, index=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _s(20), nullable=False, index=True),
        sa.Column("lease_until", _s(20), nullable=True),
        sa.Column("sent_at", _s(20), nullable=True),
        sa.Column("last_error", _s(), nullable=True),
    )


def downgrade() -> None:
    for table in ("incident_outbox", "incident_watch", "blocked_key", "incident_act", "incident"):
        op.drop_table(table)
