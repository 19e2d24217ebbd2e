"""The desk reads a package's watch row (status since, last place) from the database only when
the log has not kept it: rows it wrote in this writer's last appends come from memory, exact
while no other writer has appended; after another writer's append they are read again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from custody.demo import Season
from custody.events import Kind
from custody.service import ServiceSecrets, open_writer
from custody.store import incidents as store
from tests.conftest import PASS
from tests.custody.test_log import seal, transfer


def _read(season: Season, pid: str = "PK-1") -> store.Watch:
    with season.home.engine.begin() as conn:
        return store.watches(conn, [pid])[pid]


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The package ids of every watch read the desk sends to the database."""
    seen: list[list[str]] = []
    real = store.watches

    def watches(conn: object, package_ids: list[str]) -> dict[str, store.Watch]:
        seen.append(list(package_ids))
        return real(conn, package_ids)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "watches", watches)
    return seen


def _inspect(season: Season, pid: str = "PK-1") -> None:
    season.submit(
        season.event(
            Kind.INSPECT, [pid], actors={"inspector": "custodian-zhou"}, signers=["custodian-zhou"]
        )
    )


def test_a_writer_reads_no_watch_row_it_wrote_itself(
    season: Season, asked: list[list[str]]
) -> None:
    seal(season)
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    asked.clear()
    season.now += timedelta(minutes=5)
    transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-li")
    assert asked == []  # the dispatch's row, kept by the log once it committed
    row = _read(season)
    assert row.status == "in_transit"  # and what the database holds is what the desk kept


def test_after_another_writer_appends_the_rows_are_read_again(
    season: Season, asked: list[list[str]]
) -> None:
    """Writer A keeps PK-1's row as `in_transit`; writer B (another process, same database)
    receives the package into storage. A's next statement, an inspection (the status stays
    `stored`), must not take its old row for the truth: the row keeps B's time."""
    seal(season)
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    mine = season.log()
    other = open_writer(season.home, ServiceSecrets(log=PASS, system=PASS))
    season.facts["log"] = other
    try:
        season.now += timedelta(minutes=10)
        transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-li")
        season.now += timedelta(minutes=10)
        transfer(
            season, Kind.RECEIVE, "PK-1", "courier-li", "custodian-zhou", custodian2="custodian-wu"
        )
        received = season.now
    finally:
        season.facts["log"] = mine
    assert _read(season).since == received
    asked.clear()
    season.now += timedelta(minutes=10)
    _inspect(season)
    assert asked == [["PK-1"]]  # another writer appended: the row was read, not recalled
    row = _read(season)
    assert (row.status, row.since) == ("stored", received)
