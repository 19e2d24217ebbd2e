"""``GET /v1/export``: the auditor's export bundle over HTTP, streamed as a tar, on the access
log, and verifiable offline exactly as `custody export`'s folder is."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from custody.access_log import AccessLog
from custody.audit import load_trust_document, verify_bundle
from custody.demo import Season
from custody.events import Kind
from tests.api.helpers import as_person, client, seal_event, transfer_event


def _world(season: Season) -> TestClient:
    c = client(season)
    assert c.post("/v1/events", content=seal_event(season).to_bytes()).status_code == 201
    env = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    assert c.post("/v1/events", content=env.to_bytes()).status_code == 201
    assert (
        c.get("/v1/packages/PK-1", headers=as_person(c, season, "courier-sun")).status_code == 200
    )
    return c


def test_an_auditor_exports_a_bundle_that_verifies_and_holds_its_own_read(
    season: Season, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the service writes the bundle
    c = _world(season)
    access = AccessLog(season.home.engine, season.authority, None)
    size = season.log().size()
    with c.stream("GET", "/v1/export", headers=as_person(c, season, "auditor-chu")) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"] == "application/x-tar"
        assert (
            r.headers["content-disposition"] == f'attachment; filename="custody-export-{size}.tar"'
        )
        assert r.headers["cache-control"] == "no-store"
        chunks = list(r.iter_bytes())
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:") as tar:
        names = sorted(m.name for m in tar.getmembers())
        tar.extractall(tmp_path, filter="data")
    folder = tmp_path / "custody-export"
    assert "custody-export/events.jsonl" in names and "custody-export/manifest.json" in names
    assert "custody-export/access.jsonl" in names
    trust = load_trust_document((folder / "trust.json").read_bytes(), pinned_root_id=None)
    report = verify_bundle(folder, trust)
    assert report.ok, report.problems
    assert report.access_records == access.size()
    records = [json.loads(line) for line in (folder / "access.jsonl").read_bytes().splitlines()]
    last = records[-1]
    assert (last["who"], last["route"], last["objects"]) == (
        "auditor-chu",
        "GET /v1/export",
        [f"export:{size}"],
    )
    assert list(scratch.iterdir()) == []  # the service's temporary bundle is gone


def test_others_are_refused_and_nothing_is_exported_or_recorded(season: Season) -> None:
    c = _world(season)
    access = AccessLog(season.home.engine, season.authority, None)
    before = access.size()
    for person in ("secrecy-chen", "courier-sun", "custodian-zhou"):
        r = c.get("/v1/export", headers=as_person(c, season, person))
        assert (r.status_code, r.json()["error"]) == (403, "forbidden"), person
    r = c.get("/v1/export")
    assert (r.status_code, r.json()["error"]) == (401, "login_required")
    assert access.size() == before
