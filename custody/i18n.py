"""Placeholder for the message catalogue (the `words` branch brings the real one).

``_`` returns its English message unchanged and ``show_time`` shows a UTC time in the
authority's zone, with the same signatures as the real module, which replaces this one; every
human-facing string is written as ``_("English text")`` so the catalogue finds it.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

DEFAULT_TIME_ZONE = "Asia/Shanghai"


def _(message: str) -> str:
    return message


def show_time(moment: datetime | None, zone: str = DEFAULT_TIME_ZONE) -> str:
    """A stored UTC time as people read it: in the authority's zone, with the zone's name."""
    if moment is None:
        return "-"
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M:%S} {zone}"
