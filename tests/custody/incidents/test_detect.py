"""Every detector fires on its scenario (through the log, with the desk attached); a clean
season raises none."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta

import pytest

from crypto.note import Checkpoint, sign_checkpoint
from crypto.signing import SigningKey
from custody.demo import Season
from custody.errors import CustodyError
from custody.events import Kind
from custody.incidents.desk import list_incidents
from custody.incidents.detect import DetectionKind
from custody.sealed_text import seal_text
from tests.conftest import PASS, revoke_now
from tests.custody.incidents.conftest import desk_log
from tests.custody.test_audit import full_life
from tests.custody.test_log import EXAMINERS, SEALS, seal, to_storage, transfer, two


def _try(fn: Callable[[], object]) -> None:
    # The refusal is the point; the incident is what the test checks.
    with contextlib.suppress(CustodyError):
        fn()


def dispatch(season: Season, pkg: str = "PK-1", **kw: object) -> None:
    transfer(season, Kind.DISPATCH, pkg, "print-qian", "courier-sun", **kw)  # type: ignore[arg-type]


def forged(season: Season) -> None:
    seal(season)
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
    )
    sig = env.signatures[1]
    bad = bytes([sig.sig[0] ^ 1]) + sig.sig[1:]
    from dataclasses import replace

    env = replace(env, signatures=(env.signatures[0], replace(sig, sig=bad)))
    _try(lambda: season.submit(env))


def unknown_key(season: Season) -> None:
    seal(season)
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
    ).with_signature(SigningKey.generate())
    _try(lambda: season.submit(env))


def expired_key(season: Season) -> None:
    seal(season)
    late = season.now + timedelta(days=220)
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
        at=late,
    )
    season.now = late
    _try(lambda: season.submit(env))


def revoked_key(season: Season) -> None:
    seal(season)
    revoke_now(season)
    _try(lambda: dispatch(season))


def recused(season: Season) -> None:
    seal(season)
    dispatch(season)
    season.submit(
        season.event(
            Kind.REROUTE,
            ["PK-1"],
            actors={"officer": "secrecy-chen"},
            signers=["secrecy-chen"],
            body={"route": ["courier-he", "custodian-zhou"]},
        )
    )
    _try(lambda: transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-he"))


def off_route(season: Season) -> None:
    seal(season)
    dispatch(season)
    _try(lambda: transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "custodian-wu"))


def seal_mismatch(season: Season) -> None:
    seal(season)
    dispatch(season, seals=["S-001", "S-999"])


def seal_broken(season: Season) -> None:
    seal(season)
    to_storage(season)
    season.submit(
        season.event(
            Kind.INSPECT,
            ["PK-1"],
            actors={"inspector": "custodian-zhou"},
            signers=["custodian-zhou"],
            body={"broken_seals": ["S-002"]},
        )
    )


def _recover(season: Season, copies: int) -> None:
    seal(season)
    to_storage(season)
    season.now = season.log().package_state("PK-1").window_start + timedelta(minutes=1)
    two(season, Kind.OPEN, "PK-1", {"seals": SEALS})
    two(season, Kind.DISTRIBUTE, "PK-1", {"copies": 30})
    two(season, Kind.RECOVER, "PK-1", {"copies": copies})


def count_short(season: Season) -> None:
    _recover(season, 29)


def count_over(season: Season) -> None:
    _recover(season, 31)


def impossible_travel(season: Season) -> None:
    seal(season)
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
        place="西安 Xi'an",
    )
    season.submit(env)
    env = season.event(
        Kind.CHECKIN,
        ["PK-1"],
        actors={"escort": "courier-sun"},
        signers=["courier-sun"],
        place="榆林 Yulin",  # 440 km north, five minutes later
    )
    season.submit(env)


def overdue(season: Season) -> None:
    seal(season)
    dispatch(season)
    for _ in range(7):  # check-ins every hour keep the escort in good standing
        season.now += timedelta(minutes=55)
        season.submit(
            season.event(
                Kind.CHECKIN,
                ["PK-1"],
                actors={"escort": "courier-sun"},
                signers=["courier-sun"],
                at=season.now,
            )
        )
    desk_log(season).sweep(season.now)


def missed_checkin(season: Season) -> None:
    seal(season)
    dispatch(season)
    desk_log(season).sweep(season.now + timedelta(minutes=61))


def missed_patrol(season: Season) -> None:
    seal(season)
    to_storage(season)
    desk_log(season).sweep(season.now + timedelta(minutes=31))


def _open_at(season: Season, when: timedelta, signers: list[str]) -> None:
    seal(season)
    to_storage(season)
    start = season.log().package_state("PK-1").window_start
    season.now = start + when - timedelta(minutes=5)  # the log's clock; the event ticks to it
    env = season.event(
        Kind.OPEN, ["PK-1"], actors=EXAMINERS, signers=signers, body={"seals": SEALS}
    )
    _try(lambda: season.submit(env))


def opening_early(season: Season) -> None:
    _open_at(season, timedelta(hours=-1), list(EXAMINERS.values()))


def opening_alone(season: Season) -> None:
    _open_at(season, timedelta(minutes=5), ["examiner-zheng"])


def after_destruction(season: Season) -> None:
    full_life(season, "PK-1")
    _try(
        lambda: season.submit(
            season.event(
                Kind.INSPECT,
                ["PK-1"],
                actors={"inspector": "custodian-zhou"},
                signers=["custodian-zhou"],
            )
        )
    )


def log_fork(season: Season) -> None:
    seal(season)
    earlier = season.log().latest_checkpoint()
    dispatch(season)
    authority = season.trust().authority
    log_key = season.home.authority_key("log", PASS).signing
    forged_note = sign_checkpoint(
        Checkpoint(authority.log_origin, 2, b"\x07" * 32), authority.log_origin, log_key
    )
    proof = season.log().consistency_proof(1, 2)
    desk_log(season).report_checkpoints(earlier, forged_note, proof, season.now)


def leak_report(season: Season) -> None:
    seal(season)
    season.submit(
        season.event(
            Kind.LEAK_REPORT,
            [],
            actors={"reporter": "courier-li"},
            signers=["courier-li"],
            body={
                "packages": ["PK-1"],
                "text_sealed": sealed_as_json(season, "photos of the paper are on a chat group"),
            },
        )
    )


def sealed_as_json(season: Season, text: str) -> dict[str, object]:
    """A person's words as a statement carries them: sealed to the secrecy officers."""
    sealed = seal_text(text, season.log().trust, season.now, field="text")
    assert sealed is not None
    return sealed.as_json()


def public_report(season: Season) -> None:
    seal(season)
    desk_log(season).report_public("考题在网上流传 (questions seen online)", season.now)


def blocked_key_used(season: Season) -> None:
    off_route(season)  # blocks custodian-wu's key
    seal(season, "PK-2", route=["custodian-wu", "custodian-zhou"])
    _try(lambda: transfer(season, Kind.DISPATCH, "PK-2", "print-qian", "custodian-wu"))


def frozen_violation(season: Season) -> None:
    seal_mismatch(season)  # freezes PK-1
    _try(lambda: transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-li"))


SCENARIOS: list[tuple[Callable[[Season], None], DetectionKind]] = [
    (forged, DetectionKind.FORGED_SIGNATURE),
    (unknown_key, DetectionKind.UNKNOWN_KEY),
    (expired_key, DetectionKind.EXPIRED_KEY),
    (revoked_key, DetectionKind.REVOKED_KEY),
    (recused, DetectionKind.RECUSED_SIGNER),
    (off_route, DetectionKind.OFF_ROUTE),
    (seal_mismatch, DetectionKind.SEAL_MISMATCH),
    (seal_broken, DetectionKind.SEAL_BROKEN),
    (count_short, DetectionKind.COUNT_SHORT),
    (count_over, DetectionKind.COUNT_OVER),
    (impossible_travel, DetectionKind.IMPOSSIBLE_TRAVEL),
    (overdue, DetectionKind.OVERDUE),
    (missed_checkin, DetectionKind.MISSED_CHECKIN),
    (missed_patrol, DetectionKind.MISSED_PATROL),
    (opening_early, DetectionKind.OPENING_OUT_OF_WINDOW),
    (opening_alone, DetectionKind.OPENING_WITHOUT_BOTH),
    (after_destruction, DetectionKind.ACT_AFTER_DESTRUCTION),
    (log_fork, DetectionKind.LOG_FORK),
    (leak_report, DetectionKind.LEAK_REPORT),
    (public_report, DetectionKind.PUBLIC_REPORT),
    (blocked_key_used, DetectionKind.BLOCKED_KEY_USED),
    (frozen_violation, DetectionKind.FROZEN_VIOLATION),
]


@pytest.mark.parametrize(("scenario", "kind"), SCENARIOS, ids=[k.value for _, k in SCENARIOS])
def test_detector_fires_on_its_scenario(
    watched: Season, scenario: Callable[[Season], None], kind: DetectionKind
) -> None:
    scenario(watched)
    kinds = [i.kind for i in list_incidents(watched.home.engine)]
    assert kind.value in kinds, kinds
    # Each incident is a system statement on the log.
    for incident in list_incidents(watched.home.engine):
        assert incident.statements


def test_clean_season_raises_no_incident(watched: Season) -> None:
    for pkg in ("PK-1", "PK-2", "PK-3"):
        full_life(watched, pkg)
    desk_log(watched).sweep(watched.now + timedelta(days=1))
    assert list_incidents(watched.home.engine) == []
