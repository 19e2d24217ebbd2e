"""The same routes on PostgreSQL (one code path from the embedded default to production)."""

from __future__ import annotations

import pytest

from custody.demo import Season
from custody.events import Kind
from tests.api.helpers import as_person, client, seal_event, transfer_event


def test_routes_on_both_engines(any_season: Season) -> None:
    season = any_season
    c = client(season)
    assert c.post("/v1/events", content=seal_event(season).to_bytes()).status_code == 201
    env = transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    assert c.post("/v1/events", content=env.to_bytes()).status_code == 201
    c.headers.update(as_person(c, season, "auditor-chu"))
    assert c.get("/v1/packages/PK-1").json()["history"] == [1, 2]
    assert c.get("/v1/proofs/inclusion", params={"index": 1, "size": 2}).status_code == 200
    assert c.get("/v1/proofs/consistency", params={"old": 1, "new": 2}).status_code == 200
    assert c.get("/v1/entries/1").json()["index"] == 1
    assert c.get("/v1/checkpoint").status_code == 200


@pytest.mark.parametrize(
    ("package_id", "status"),
    [
        ("PK\x00NUL", 400),
        ("PK\x01", 400),
        ("PK\n", 400),
        ("P" * 65, 400),
        ("PK 1", 400),
        ("EVIL[/bold]", 400),
        ("试卷袋-一", 201),
        ("面试01", 201),
        ("P" * 64, 201),
    ],
    ids=[
        "nul",
        "control",
        "trailing-newline",
        "too-long",
        "space",
        "markup",
        "cjk",
        "cjk-digits",
        "longest",
    ],
)
def test_signed_event_with_odd_package_id_is_refused_or_stored_never_500(
    any_season: Season, package_id: str, status: int
) -> None:
    c = client(any_season)
    r = c.post("/v1/events", content=seal_event(any_season, package_id).to_bytes())
    assert r.status_code == status, r.text
    if status == 201:
        courier = as_person(c, any_season, "courier-sun")  # on the package's route
        assert c.get(f"/v1/packages/{package_id}", headers=courier).status_code == 200
    else:
        assert r.json()["error"] == "format"


def test_nul_anywhere_in_a_signed_event_is_a_format_refusal(any_season: Season) -> None:
    season = any_season
    c = client(season)
    c.post("/v1/events", content=seal_event(season).to_bytes())
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": ["S-001\x00", "S-002"]},
    )
    r = c.post("/v1/events", content=env.to_bytes())
    assert (r.status_code, r.json()["error"]) == (400, "format")
    assert season.log().size() == 2
