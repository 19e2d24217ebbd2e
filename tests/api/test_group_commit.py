"""Single submissions made together share one transaction (group commit), through `custody serve`
over HTTP: each is answered with its own receipt or its own refusal, once durable; the same
statement sent by many at once is appended once. And the service's cheap trust view: it reloads
when the home's trust version moves, and recounts the rows in case a writer never bumped it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

import api.backend
from crypto.dsse import Envelope
from custody import identity
from custody.demo import Season
from custody.events import Kind, statement_id
from custody.home import Home
from keys.model import RevocationReason
from tests.api.helpers import SEALS, as_person, client, seal_event, transfer_event
from tests.api.test_serve import _serve
from tests.conftest import PASS

PACKAGES = [f"PK-{n}" for n in range(1, 25)]


def _dispatch(season: Season, pkg: str, signers: list[str]) -> Envelope:
    return season.event(
        Kind.DISPATCH,
        [pkg],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=signers,
        body={"seals": SEALS},
        at=season.now,  # all made now, as the service's clock reads
    )


def test_concurrent_single_submissions_each_get_their_own_answer(season: Season) -> None:
    for pkg in [*PACKAGES, "PK-99"]:
        season.submit(seal_event(season, pkg))
    dispatches = [_dispatch(season, pkg, ["print-qian", "courier-sun"]) for pkg in PACKAGES]
    # a countersignature missing: refused alone, while the others around it are appended
    unsigned = _dispatch(season, "PK-99", ["print-qian"])
    bodies = [d.to_bytes() for d in dispatches] + [unsigned.to_bytes()]
    bodies += [dispatches[0].to_bytes()] * 6  # the same statement, sent by several at once
    size_before = season.log().size()
    proc, base = _serve(season)
    try:
        with httpx.Client(base_url=base, timeout=60) as http, ThreadPoolExecutor(16) as pool:
            answers = list(
                pool.map(
                    lambda b: http.post(
                        "/v1/events", content=b, headers={"content-type": "application/json"}
                    ),
                    bodies,
                )
            )
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    by_body = list(zip(bodies, answers, strict=True))
    refused = [r for b, r in by_body if b == unsigned.to_bytes()]
    assert [r.status_code for r in refused] == [422]
    assert refused[0].json()["error"] == "threshold"
    first = dispatches[0].to_bytes()
    same = [r for b, r in by_body if b == first]
    assert sorted(r.status_code for r in same) == [200] * 6 + [201]  # appended once
    assert len({r.json()["index"] for r in same}) == 1
    assert {r.json()["statement_id"] for r in same} == {statement_id(dispatches[0].payload)}
    appended = [r for b, r in by_body if b != unsigned.to_bytes() and r.status_code == 201]
    assert len(appended) == len(PACKAGES)
    log = season.log()
    assert log.size() - size_before >= len(PACKAGES)  # the incident desk may add its own
    for r in appended:  # each receipt names its own entry, durable and in the log
        receipt = r.json()
        entry = log.entry(receipt["index"])
        assert statement_id(entry.payload) == receipt["statement_id"]
    for pkg in PACKAGES:
        assert log.package_state(pkg).holder == "courier-sun"


def _revoke(season: Season) -> None:
    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=season.keys["courier-sun"].signing.key_id,
        reason=RevocationReason.KEY_COMPROMISE,
        effective_at=season.now - timedelta(minutes=1),
        now=season.now,
    )


def _dispatch_status(season: Season, c: object) -> int:
    env = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    r = c.post(  # type: ignore[attr-defined]
        "/v1/events", content=env.to_bytes(), headers={"content-type": "application/json"}
    )
    return int(r.status_code)


def test_a_revocation_counts_at_once_by_the_trust_version(
    season: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.backend, "TRUST_RECOUNT", 3600.0)  # the version alone must do it
    season.submit(seal_event(season))
    c = client(season)
    assert (
        c.get("/v1/trust-bundle", headers=as_person(c, season, "auditor-chu")).status_code == 200
    )  # trust loaded before the revocation
    version = season.home.trust_version()
    _revoke(season)
    assert season.home.trust_version() != version
    assert _dispatch_status(season, c) == 422


def test_a_revocation_without_its_version_bump_counts_at_the_next_recount(
    season: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    season.submit(seal_event(season))
    c = client(season)
    assert c.get("/v1/trust-bundle", headers=as_person(c, season, "auditor-chu")).status_code == 200
    # a writer that stopped between its commit and its bump
    monkeypatch.setattr(Home, "bump_trust_version", lambda self: None)
    monkeypatch.setattr(api.backend, "TRUST_RECOUNT", 0.0)
    _revoke(season)
    assert _dispatch_status(season, c) == 422
