"""``access_flush="queued"``: access records leave the request path (a bounded queue, a writer
thread), and whatever reads the access log sees every read this process answered."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from custody.access import Principal
from custody.access_log import QUEUE_INTERVAL, AccessLog, verify_access
from custody.demo import Season
from custody.errors import StorageError
from custody.events import Kind
from tests.api.helpers import as_person, seal_event, transfer_event
from tests.conftest import PASS


def _principal(season: Season, person: str) -> Principal:
    cert = season.trust().certificates[season.keys[person].signing.key_id]
    return Principal.of(cert)


def test_queued_records_are_committed_in_order_and_checkpointed(season: Season) -> None:
    log = season.log()
    access = AccessLog(season.home.engine, season.authority, log.log_key, flush="queued")
    who = _principal(season, "courier-sun")
    for n in range(10):
        assert (
            access.record(who, "GET /v1/packages/{package_id}", [f"package:PK-{n}"], season.now)
            == -1
        )
    assert access.size() == 10  # reading the size commits what is queued first
    note = access.checkpoint(season.now)
    assert verify_access(season.authority, note, access.leaves()) == []
    objects = [json.loads(leaf)["objects"] for leaf in access.leaves()]
    assert objects == [[f"package:PK-{n}"] for n in range(10)]
    access.record(who, "GET /v1/packages/{package_id}", ["package:PK-LAST"], season.now)
    access.close()  # the service's shutdown commits the rest
    reader = AccessLog(season.home.engine, season.authority, None)
    assert [e.objects for e in reader.who_read(obj="package:PK-LAST")] == [("package:PK-LAST",)]


def test_the_writer_commits_without_being_asked(season: Season) -> None:
    import time

    access = AccessLog(season.home.engine, season.authority, None, flush="queued")
    access.record(_principal(season, "courier-sun"), "GET /x", ["package:PK-1"], season.now)
    other = AccessLog(season.home.engine, season.authority, None)  # another process's view
    deadline = time.monotonic() + 20
    while other.size() == 0 and time.monotonic() < deadline:
        time.sleep(QUEUE_INTERVAL)
    assert other.size() == 1
    access.close()


def test_a_queue_that_cannot_be_committed_keeps_its_records(season: Season) -> None:
    from sqlalchemy import text

    access = AccessLog(season.home.engine, season.authority, None, flush="queued")
    access.close()  # no writer thread: drain by hand
    access.flush = "queued"
    who = _principal(season, "courier-sun")
    with season.home.engine.begin() as conn:
        conn.execute(text("ALTER TABLE access_record RENAME TO access_record_away"))
    access.record(who, "GET /x", ["package:PK-1"], season.now)
    with pytest.raises(StorageError):
        access.drain()
    with season.home.engine.begin() as conn:
        conn.execute(text("ALTER TABLE access_record_away RENAME TO access_record"))
    access.drain()
    assert [e.objects for e in access.who_read(obj="package:PK-1")] == [("package:PK-1",)]


def test_the_service_with_queued_records_answers_who_read_what(season: Season) -> None:
    app = create_app(
        Settings(
            home=season.home.path,
            log_passphrase=PASS,
            clock=lambda: season.now,
            access_flush="queued",
        )
    )
    with TestClient(app) as c:
        assert c.post("/v1/events", content=seal_event(season).to_bytes()).status_code == 201
        env = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
        assert c.post("/v1/events", content=env.to_bytes()).status_code == 201
        sun = as_person(c, season, "courier-sun")
        assert c.get("/v1/packages/PK-1", headers=sun).status_code == 200
        r = c.get("/v1/access?object=package:PK-1", headers=as_person(c, season, "auditor-chu"))
        assert r.status_code == 200
        assert [x["who"] for x in r.json()["records"]] == ["courier-sun"]
        assert c.get("/v1/packages/PK-1", headers=sun).status_code == 200
    # leaving the client's block ran the app's shutdown: the second read is committed
    reader = AccessLog(season.home.engine, season.authority, None)
    assert [e.who for e in reader.who_read(obj="package:PK-1")] == ["courier-sun"] * 2
