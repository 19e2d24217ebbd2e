"""Every read of personal data is on the access log: who, when, what; a secrecy officer asks
who read a person's or a package's data; the log is exported with the custody log and
`custody verify` (a real subprocess) checks its chain and checkpoint, and names an edit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from crypto.encoding import format_time
from custody.demo import Season
from custody.events import Kind
from tests.api.helpers import as_person, client, seal_event, transfer_event
from tests.conftest import PASS

ROOT = Path(__file__).resolve().parents[2]


def custody_cli(season: Season, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["--home", str(season.home.path), "--now", format_time(season.now), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUSTODY_PASSPHRASE": PASS}
    return subprocess.run(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def reads(season: Season) -> TestClient:
    """PK-1 routed courier-sun -> courier-li -> custodian-zhou, dispatched to courier-sun;
    read by courier-sun (allowed), courier-he (refused) and the auditor (an entry)."""
    c = client(season)
    assert c.post("/v1/events", content=seal_event(season).to_bytes()).status_code == 201
    env = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    assert c.post("/v1/events", content=env.to_bytes()).status_code == 201
    assert (
        c.get("/v1/packages/PK-1", headers=as_person(c, season, "courier-sun")).status_code == 200
    )
    assert c.get("/v1/packages/PK-1", headers=as_person(c, season, "courier-he")).status_code == 403
    assert c.get("/v1/entries/2", headers=as_person(c, season, "auditor-chu")).status_code == 200
    assert (
        c.get(
            "/v1/proofs/consistency?old=1&new=2", headers=as_person(c, season, "courier-li")
        ).status_code
        == 200
    )
    return c


def test_who_read_this_package_and_when(season: Season, reads: TestClient) -> None:
    c = reads
    officer = as_person(c, season, "secrecy-chen")
    r = c.get("/v1/access", params={"object": "package:PK-1"}, headers=officer)
    assert r.status_code == 200
    records = r.json()["records"]
    assert [(x["who"], x["route"]) for x in records] == [
        ("courier-sun", "GET /v1/packages/{package_id}"),
        ("auditor-chu", "GET /v1/entries/{index}"),
    ]
    assert records[0]["at"] == format_time(season.now)
    assert records[0]["key_id"] == season.keys["courier-sun"].signing.key_id
    assert "package:PK-1" in records[0]["objects"]
    # the refused read and the proof (no personal data) are not reads of PK-1's data
    assert all(x["who"] != "courier-he" for x in records)


def test_who_read_this_persons_data(season: Season, reads: TestClient) -> None:
    c = reads
    r = c.get(
        "/v1/access",
        params={"object": "person:courier-sun"},
        headers=as_person(c, season, "auditor-chu"),
    )
    # the package's state names courier-sun (route, holder); the dispatch entry names them too
    assert [x["who"] for x in r.json()["records"]] == ["courier-sun", "auditor-chu"]
    # the officer's question is itself a read, recorded
    r = c.get(
        "/v1/access", params={"who": "auditor-chu"}, headers=as_person(c, season, "secrecy-chen")
    )
    assert [x["route"] for x in r.json()["records"]] == [
        "GET /v1/entries/{index}",
        "GET /v1/access",
    ]


def test_the_access_log_is_exported_and_verified(
    season: Season, reads: TestClient, tmp_path: Path
) -> None:
    c = reads
    r = c.get("/v1/access/checkpoint", headers=as_person(c, season, "auditor-chu"))
    assert r.status_code == 200
    assert r.text.startswith(season.authority.log_origin + "/access\n2\n")
    out = tmp_path / "export"
    done = custody_cli(season, "export", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = (out / "access.jsonl").read_bytes().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["who"] == "courier-sun"
    done = custody_cli(season, "verify", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "access log 2 reads, chained to its checkpoint" in " ".join(done.stdout.split())
    done = custody_cli(season, "--json", "verify", str(out))
    assert json.loads(done.stdout)["access_records_checked"] == 2


@pytest.mark.parametrize("edit", ["row-edited", "row-deleted"])
def test_an_edited_access_log_fails_verification(
    season: Season, reads: TestClient, tmp_path: Path, edit: str
) -> None:
    c = reads
    assert (
        c.get("/v1/access/checkpoint", headers=as_person(c, season, "auditor-chu")).status_code
        == 200
    )
    with season.home.engine.begin() as conn:
        if edit == "row-edited":  # an insider hides who read PK-1
            leaf = conn.execute(text("SELECT leaf FROM access_record WHERE idx = 0")).scalar_one()
            forged = bytes(leaf).replace(b"courier-sun", b"courier-li_")
            conn.execute(text("UPDATE access_record SET leaf = :l WHERE idx = 0"), {"l": forged})
        else:
            conn.execute(text("DELETE FROM access_record WHERE idx = 1"))
    out = tmp_path / "export"
    assert custody_cli(season, "export", "--out", str(out)).returncode == 0
    done = custody_cli(season, "--json", "verify", str(out))
    assert done.returncode == 10
    problems = [p for p in json.loads(done.stdout)["problems"] if p["rule"] == "access"]
    assert problems, done.stdout
    said = " ".join(custody_cli(season, "verify", str(out)).stdout.split())
    assert "NOT chained to its checkpoint" in said  # the summary line agrees with the verdict
    assert "reads, chained to its checkpoint" not in said


@pytest.mark.parametrize("flush", ["full", "lazy"])
def test_reads_are_recorded_in_either_flush_mode(season: Season, flush: str) -> None:
    from api.app import Settings, create_app

    season.submit(seal_event(season))
    settings = Settings(
        home=season.home.path, log_passphrase=PASS, clock=lambda: season.now, access_flush=flush
    )
    c = TestClient(create_app(settings))
    auth = as_person(c, season, "courier-sun")
    for _ in range(3):
        assert c.get("/v1/packages/PK-1", headers=auth).status_code == 200
    log = c.app.state.backend.access  # type: ignore[attr-defined]
    assert [e.who for e in log.who_read(obj="package:PK-1")] == ["courier-sun"] * 3
    from custody.access_log import verify_access

    note = log.checkpoint(season.now)
    assert verify_access(season.authority, note, log.leaves()) == []


def test_an_unknown_flush_mode_is_refused(season: Season) -> None:
    from custody.access_log import AccessLog
    from custody.errors import UsageError

    with pytest.raises(UsageError):
        AccessLog(season.home.engine, season.authority, None, flush="never")
