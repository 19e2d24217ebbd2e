"""The demo: a season of the 陕西省 civil-service interview played end to end in one folder,
and the project's simulator (tests build a ``Season`` and tamper with it freely).

``season`` (the authority, the people, the clock) is imported by the plays (``log``,
``papers``, ``breaches``) and ``play`` (``run_demo``) runs them all; nothing imports back
up: no circle.
"""

from custody.demo.season import (
    AUTHORITY_NAME,
    EXAM_ID,
    PEOPLE,
    Season,
    seal_body,
    seal_events,
    start_season,
)

__all__ = [
    "AUTHORITY_NAME",
    "EXAM_ID",
    "PEOPLE",
    "Season",
    "seal_body",
    "seal_events",
    "start_season",
]
