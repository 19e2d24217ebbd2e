"""The log's clock decides: a statement's own time is a claim, judged against the receive time.

Pure rules as tables (no database), then the attacks of a backdating insider through the log."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from crypto.dsse import Envelope
from crypto.encoding import utc
from crypto.signing import SigningKey
from custody.errors import ClockError, RevokedError
from custody.events import Event, Kind
from custody.rules import DEFAULT_CLOCK, judge_time
from keys.model import Authority, Certificate, Revocation, RevocationReason, Role
from keys.trust import TrustStore

RECEIVED = utc(2027, 3, 1, 9, 0)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def _event(kind: Kind, time: datetime) -> Event:
    return Event(kind=kind, authority="a", time=time, place="", packages={}, actors={}, body={})


# (kind, statement time relative to the receive time, expected: "ok" | "late" | "refused")
CASES = [
    (Kind.OPEN, 0 * MIN, "ok"),
    (Kind.OPEN, 5 * MIN, "ok"),  # the skew allowed, after
    (Kind.OPEN, 6 * MIN, "refused"),  # dated in the future
    (Kind.OPEN, 48 * HOUR, "refused"),  # an opening dated inside a window two days away
    (Kind.OPEN, -5 * MIN, "ok"),
    (Kind.OPEN, -6 * MIN, "refused"),  # an online act may not arrive late
    (Kind.DISPATCH, -2 * HOUR, "refused"),
    (Kind.SEAL, -1 * HOUR, "refused"),
    (Kind.HANDOVER, -6 * MIN, "late"),  # captured offline, synced later
    (Kind.HANDOVER, -24 * HOUR, "late"),  # at the lag limit
    (Kind.HANDOVER, -24 * HOUR - MIN, "refused"),  # beyond the lag
    (Kind.INSPECT, -3 * HOUR, "late"),
    (Kind.INSPECT, 100 * 24 * HOUR, "refused"),  # an inspection dated next June
    (Kind.CHECKIN, -30 * MIN, "late"),
    (Kind.PATROL, -2 * HOUR, "late"),
    (Kind.HANDOVER, 10 * MIN, "refused"),  # offline capture never excuses a future date
]


@pytest.mark.parametrize(
    ("kind", "offset", "expected"),
    CASES,
    ids=[f"{k.value}{'+' if o >= timedelta(0) else ''}{o}-{e}" for k, o, e in CASES],
)
def test_clock_skew_table(kind: Kind, offset: timedelta, expected: str) -> None:
    event = _event(kind, RECEIVED + offset)
    if expected == "refused":
        with pytest.raises(ClockError):
            judge_time(event, RECEIVED, DEFAULT_CLOCK)
    else:
        assert judge_time(event, RECEIVED, DEFAULT_CLOCK) is (expected == "late")


def _trust_with(revocation_reason: RevocationReason | None) -> tuple[TrustStore, str]:
    """A trust store in memory (its standing rules are pure; no signature is checked here)."""
    root, log, system, person = (SigningKey(bytes([i]) * 32) for i in (1, 2, 3, 4))
    authority = Authority(
        "A", root.verify_key, log.verify_key, system.verify_key, "custody/test", utc(2027, 1, 1)
    )
    cert = Certificate(
        authority_id=authority.id,
        subject="courier-sun",
        name="孙立",
        organisation="",
        roles=frozenset({Role.COURIER}),
        signing_key=person.verify_key,
        encryption_key=bytes(32),
        not_before=utc(2027, 1, 1),
        not_after=utc(2027, 12, 31),
        issued_at=utc(2027, 1, 1),
    )
    revocations = {}
    if revocation_reason is not None:
        revocations[cert.key_id] = Revocation(
            authority.id, cert.key_id, REVOKED_AT, revocation_reason, issued_at=REVOKED_AT
        )
    envelope = Envelope("x", b"", ())
    return TrustStore(authority, envelope, {cert.key_id: cert}, revocations), cert.key_id


REVOKED_AT = utc(2027, 3, 1, 9, 0)

# (reason, statement time, receive time, refused?)
REVOCATIONS = [
    (RevocationReason.KEY_COMPROMISE, REVOKED_AT - 5 * MIN, REVOKED_AT - 6 * MIN, False),
    (RevocationReason.KEY_COMPROMISE, REVOKED_AT - 5 * MIN, REVOKED_AT + MIN, True),
    (RevocationReason.KEY_COMPROMISE, REVOKED_AT - 30 * 24 * HOUR, REVOKED_AT + HOUR, True),
    (RevocationReason.KEY_COMPROMISE, REVOKED_AT + MIN, REVOKED_AT + MIN, True),
    (RevocationReason.SUPERSEDED, REVOKED_AT - 5 * MIN, REVOKED_AT + MIN, False),
    (RevocationReason.SUPERSEDED, REVOKED_AT + MIN, REVOKED_AT + MIN, True),
    (RevocationReason.LEFT_POST, REVOKED_AT - 5 * MIN, REVOKED_AT + HOUR, False),
]


@pytest.mark.parametrize(
    ("reason", "claimed", "received", "refused"),
    REVOCATIONS,
    ids=[f"{r.value}-{i}" for i, (r, *_) in enumerate(REVOCATIONS)],
)
def test_revocation_is_judged_on_the_receive_time_for_compromise(
    reason: RevocationReason, claimed: datetime, received: datetime, refused: bool
) -> None:
    store, kid = _trust_with(reason)
    if refused:
        with pytest.raises(RevokedError):
            store.standing_at(kid, claimed, received=received)
    else:
        assert store.standing_at(kid, claimed, received=received).subject == "courier-sun"
