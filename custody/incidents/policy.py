"""The incident policy: severities, the escalation ladder, places, limits and recipients.

Pure values: nothing here reads the clock, opens a file or touches the database. A home's
``incidents.json`` becomes a ``Policy`` in ``config.py``.

Rules:
- Severity: low < medium < high < critical.
- Escalation: each level of the ladder has an acknowledgement deadline; an incident still open
  past it climbs one level per deadline passed; at the top it stays and its deadline renews.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from custody.rules import Status
from keys.model import Role


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True)
class Place:
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Level:
    """One rung of the escalation ladder."""

    name: str
    title: str
    ack_within: timedelta
    ack_roles: frozenset[Role]


DEFAULT_LADDER = (
    Level(
        "custodian",
        "custodian on site",
        timedelta(minutes=15),
        frozenset({Role.CUSTODIAN, Role.SECRECY_OFFICER}),
    ),
    Level(
        "municipal", "municipal officer", timedelta(minutes=30), frozenset({Role.SECRECY_OFFICER})
    ),
    Level(
        "provincial",
        "provincial secrecy officer",
        timedelta(minutes=60),
        frozenset({Role.SECRECY_OFFICER}),
    ),
)


@dataclass(frozen=True)
class Target:
    """A notification recipient: a webhook URL or an e-mail address."""

    name: str
    channel: str  # "webhook" | "email"
    address: str


@dataclass(frozen=True)
class Policy:
    """Limits, places, ladder and recipients. Defaults follow the national exam rules."""

    places: Mapping[str, Place] = field(default_factory=dict)
    max_speed_kmh: float = 120.0
    # Distances under this are one site (GPS noise, two buildings of one exam site).
    same_site_km: float = 2.0
    # Dwell limit per status (None: no limit). In transit: the handover or receipt is due.
    dwell: Mapping[Status, timedelta] = field(
        default_factory=lambda: {
            Status.IN_TRANSIT: timedelta(hours=6),
            Status.RECOVERED: timedelta(hours=2),
        }
    )
    checkin_every: timedelta = timedelta(minutes=60)
    patrol_every: timedelta = timedelta(minutes=30)
    # After the window closes, an opened package must be recovered within this grace.
    recovery_grace: timedelta = timedelta(hours=1)
    ladder: tuple[Level, ...] = DEFAULT_LADDER
    # Level name -> recipients notified while the incident is at that level (and above).
    recipients: Mapping[str, tuple[Target, ...]] = field(default_factory=dict)
    # Paper -> its backup paper (offered when a paper is compromised).
    backups: Mapping[str, str] = field(default_factory=dict)


def due_escalation(
    level: int, deadline: datetime, now: datetime, ladder: Sequence[Level]
) -> tuple[int, datetime] | None:
    """The (level, new deadline) an unacknowledged incident climbs to at ``now``, if any.

    One step per deadline passed: an incident left alone for two deadlines climbs two levels
    (a sweep that ran late catches up). At the top it stays, and its deadline renews.
    """
    if now <= deadline:
        return None
    while now > deadline:
        level = min(level + 1, len(ladder) - 1)
        deadline = deadline + ladder[level].ack_within
    return level, deadline


__all__ = [
    "DEFAULT_LADDER",
    "Level",
    "Place",
    "Policy",
    "Severity",
    "Target",
    "due_escalation",
]
