"""The trust boundary's attacks replayed against a real `custody serve` process (HTTP on
loopback, the service's own clock): each answered with its own status and error code, nothing
of the attacker's stored, an incident where a detector knows the refusal.

Run with ``-s`` to see the table of attacks and answers."""

from __future__ import annotations

from datetime import timedelta

import httpx

from custody import identity
from custody.demo import Season
from custody.events import Kind
from custody.incidents.model import list_incidents
from keys.model import RevocationReason
from tests.api.helpers import people_entries
from tests.api.test_serve import _serve
from tests.conftest import PASS
from tests.custody.test_log import SEALS, seal, to_storage, transfer

EXAMINERS = {"examiner": "examiner-zheng", "supervisor": "supervisor-wang"}


def test_attacks_against_custody_serve(season: Season) -> None:
    # the season before the attacks (made through the library, on the season's clock)
    seal(season, "PK-A", opens_in=timedelta(days=2))
    to_storage(season, "PK-A")
    seal(season, "PK-B", route=["courier-sun", "courier-li", "custodian-zhou"])
    seal(season, "PK-C", route=["courier-sun"])
    seal(season, "PK-D", route=["courier-sun"], witness=True)
    seal(season, "PK-E", route=["courier-he"], exam="SX-2027-OTHER")
    seal(season, "PK-F", route=["courier-he"])
    seal(season, "PK-G")
    transfer(season, Kind.DISPATCH, "PK-G", "print-qian", "courier-sun")
    seal(season, "PK-H", route=["custodian-wu"])
    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=season.keys["courier-li"].signing.key_id,
        reason=RevocationReason.KEY_COMPROMISE,
        effective_at=season.now + timedelta(minutes=1),
        now=season.now,
    )
    now = season.now  # the service's clock from here on
    window = season.log().package_state("PK-A").window_start

    def ev(kind: Kind, pkgs: list[str], actors: dict[str, str], at: object = None, **kw: object):  # type: ignore[no-untyped-def]
        return season.event(
            kind,
            pkgs,
            actors=actors,
            signers=list(dict.fromkeys(actors.values())),
            body={"seals": SEALS},
            at=at or now,  # type: ignore[arg-type]
            **kw,  # type: ignore[arg-type]
        )

    transfer_actors = {"releaser": "print-qian", "receiver": "courier-sun"}
    attacks = [
        (
            "open dated inside a window two days away",
            ev(Kind.OPEN, ["PK-A"], EXAMINERS, at=window + timedelta(minutes=5)),
            (422, "clock"),
        ),
        (
            "inspect by a courier, dated next June",
            ev(Kind.INSPECT, ["PK-C"], {"inspector": "courier-li"}, at=now + timedelta(days=100)),
            (422, "clock"),
        ),
        (
            "inspect by a courier with no part in the package",
            ev(Kind.INSPECT, ["PK-H"], {"inspector": "courier-sun"}),
            (403, "role"),
        ),
        (
            "compromised key, dated 4 min before its revocation",
            ev(Kind.INSPECT, ["PK-B"], {"inspector": "courier-li"}, at=now - timedelta(minutes=4)),
            (422, "revoked"),
        ),
        (
            "two packages dispatched, the second needs a witness",
            ev(Kind.DISPATCH, ["PK-C", "PK-D"], transfer_actors),
            (422, "mixed_packages"),
        ),
        (
            "two packages to a courier recused from the second's exam",
            ev(
                Kind.DISPATCH,
                ["PK-E", "PK-F"],
                {"releaser": "print-qian", "receiver": "courier-he"},
            ),
            (403, "recused"),
        ),
        (
            "handover off the planned route",
            ev(Kind.HANDOVER, ["PK-G"], {"releaser": "courier-sun", "receiver": "custodian-wu"}),
            (403, "route"),
        ),
        (
            "a key the incident desk blocked",
            ev(Kind.DISPATCH, ["PK-H"], {"releaser": "print-qian", "receiver": "custodian-wu"}),
            (403, "blocked_key"),
        ),
    ]
    before = people_entries(season)
    proc, base = _serve(season)
    seen = []
    try:
        for name, env, _ in attacks:
            r = httpx.post(
                f"{base}/v1/events",
                content=env.to_bytes(),
                headers={"content-type": "application/json"},
                timeout=30,
            )
            seen.append((name, r.status_code, r.json().get("error")))
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    width = max(len(n) for n, *_ in seen)
    print("\nattack".ljust(width + 2), "status  code")
    for name, status, code in seen:
        print(name.ljust(width), f" {status}    {code}")
    assert [(s, c) for _, s, c in seen] == [want for *_, want in attacks]
    assert people_entries(season) == before  # nothing of the attacker's stored
    kinds = {i.kind for i in list_incidents(season.home.engine)}
    assert {"opening_out_of_window", "off_route", "revoked_key", "blocked_key_used"} <= kinds
