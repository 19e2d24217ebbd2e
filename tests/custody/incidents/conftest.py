"""A season whose log is watched by the incident desk."""

from __future__ import annotations

import pytest

from custody.demo import Season
from custody.demo.breaches import attach
from custody.incidents.desk import WatchedLog


@pytest.fixture
def watched(season: Season) -> Season:
    attach(season)
    return season


def desk_log(season: Season) -> WatchedLog:
    log = season.log()
    assert isinstance(log, WatchedLog)
    return log
