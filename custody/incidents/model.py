"""Where the incident system's names used to live: re-exported, no logic of its own.

Callers written before the split keep importing from here; new code imports from the module
that does the job:

- ``acts.py``: the act format (``Act``, ``parse_act``, ``ACT_TYPE``);
- ``policy.py``: severities, the ladder, containment, status transitions, who may act;
- ``config.py``: ``incidents.json`` to a ``Policy`` (``policy_from_json``);
- ``desk.py``: the observer, ``WatchedLog``, and reading incidents;
- ``custody/store/incidents.py``: the SQL.
"""

from __future__ import annotations

from custody.errors import CustodyError
from custody.incidents.acts import ACT_TYPE, Act, parse_act
from custody.incidents.config import policy_from_json
from custody.incidents.desk import (
    NOTIFY_TYPE,
    IncidentDesk,
    WatchedLog,
    blocked_keys,
    get_incident,
    incident_acts,
    list_incidents,
)
from custody.incidents.policy import Incident

__all__ = [
    "ACT_TYPE",
    "NOTIFY_TYPE",
    "Act",
    "CustodyError",
    "Incident",
    "IncidentDesk",
    "WatchedLog",
    "blocked_keys",
    "get_incident",
    "incident_acts",
    "list_incidents",
    "parse_act",
    "policy_from_json",
]
