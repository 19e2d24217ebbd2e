"""The access log's object index is written a batch of records at a time: ``who_read`` finds
every record that named an object, indexed or still waiting, once each and oldest first."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from custody.access import Principal
from custody.access_log import AccessLog
from custody.demo import Season
from custody.store.access_log import INDEX_EVERY


def _principal(season: Season, person: str) -> Principal:
    return Principal.of(season.trust().certificates[season.keys[person].signing.key_id])


def _index_state(season: Season) -> tuple[int, int]:
    """(``access_head.indexed``, rows in ``access_object``)."""
    with season.home.engine.connect() as conn:
        indexed = conn.execute(text("SELECT indexed FROM access_head")).scalar_one()
        rows = conn.execute(text("SELECT count(*) FROM access_object")).scalar_one()
    return int(indexed), int(rows)


def test_who_read_finds_indexed_and_waiting_records_once_each(any_season: Season) -> None:
    season = any_season
    access = AccessLog(season.home.engine, season.authority, None)
    sun, li = _principal(season, "courier-sun"), _principal(season, "courier-li")
    route = "GET /v1/incidents"
    total = INDEX_EVERY + 5
    for n in range(total):
        who = sun if n % 2 else li
        objects = [f"incident:{k}" for k in range(n % 7, n % 7 + 50)]  # a page of 50
        assert access.record(who, route, objects, season.now) == n
        indexed, rows = _index_state(season)
        if n + 1 < INDEX_EVERY:
            assert (indexed, rows) == (0, 0)  # waiting: no index entry written yet
    # the append that made INDEX_EVERY records wait indexed all of them, 50 entries each
    assert _index_state(season) == (INDEX_EVERY, INDEX_EVERY * 50)
    for k in (0, 6, 49, 55):
        expected = [n for n in range(total) if n % 7 <= k < n % 7 + 50]
        found = access.who_read(obj=f"incident:{k}")
        assert [e.index for e in found] == expected  # both parts, in order, none twice
        assert all(f"incident:{k}" in e.objects for e in found)
        assert [e.index for e in access.who_read(obj=f"incident:{k}", limit=3)] == expected[:3]
    assert access.who_read(obj="incident:999") == []
    assert [e.index for e in access.who_read(who="courier-sun")] == list(range(1, total, 2))


@pytest.mark.parametrize("waiting", [0, 3])
def test_a_record_indexed_between_two_statements_is_found_once(
    season: Season, waiting: int
) -> None:
    """On PostgreSQL each of ``who_read``'s statements is its own snapshot: a batch indexed
    after it read ``indexed`` puts records in both parts. Simulated by moving the head back."""
    access = AccessLog(season.home.engine, season.authority, None)
    who = _principal(season, "courier-sun")
    for _ in range(INDEX_EVERY + waiting):
        access.record(who, "GET /v1/packages/{package_id}", ["package:PK-1"], season.now)
    with season.home.engine.begin() as conn:
        conn.execute(text("UPDATE access_head SET indexed = 0"))
    found = access.who_read(obj="package:PK-1")
    assert [e.index for e in found] == list(range(INDEX_EVERY + waiting))
