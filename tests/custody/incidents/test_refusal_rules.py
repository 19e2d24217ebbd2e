"""The refusal rules as a table, with no database: which refusal class is a sign of which breach,
looked up along the class hierarchy, most specific class first."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from crypto.encoding import utc
from custody.errors import (
    ChainError,
    ClockError,
    ClosedError,
    ConflictError,
    CustodyError,
    DuplicateSignatureError,
    ExpiredError,
    FormatError,
    FrozenError,
    KeyBlockedError,
    NotYetValidError,
    RecusedError,
    RevokedError,
    RoleError,
    RouteError,
    SignatureError,
    ThresholdError,
    UnknownSignerError,
    VerificationError,
    WeakKeyError,
    WindowError,
)
from custody.events import Event, Kind
from custody.incidents.detect import REFUSAL_RULES, DetectionKind, detect_refusal
from keys.trust import TrustStore

T0 = utc(2027, 3, 1, 8, 0)
# No envelope and no signer: the rules never consult the trust store.
NO_TRUST = cast(TrustStore, SimpleNamespace(certificates={}))
D = DetectionKind

# refusal class, kind for a dispatch, kind for an opening (None: not a breach sign)
TABLE: list[tuple[type[CustodyError], DetectionKind | None, DetectionKind | None]] = [
    (ClosedError, D.ACT_AFTER_DESTRUCTION, D.ACT_AFTER_DESTRUCTION),
    (RevokedError, D.REVOKED_KEY, D.REVOKED_KEY),
    (ExpiredError, D.EXPIRED_KEY, D.EXPIRED_KEY),
    (NotYetValidError, D.EXPIRED_KEY, D.EXPIRED_KEY),  # an ExpiredError
    (RecusedError, D.RECUSED_SIGNER, D.RECUSED_SIGNER),  # a RoleError: the recusal rule wins
    (UnknownSignerError, D.UNKNOWN_KEY, D.UNKNOWN_KEY),
    (SignatureError, D.FORGED_SIGNATURE, D.FORGED_SIGNATURE),
    (WeakKeyError, D.FORGED_SIGNATURE, D.FORGED_SIGNATURE),  # a SignatureError
    (DuplicateSignatureError, D.FORGED_SIGNATURE, D.FORGED_SIGNATURE),
    (FormatError, None, None),  # without signatures naming keys: an honest mistake
    (ClockError, D.CLOCK_SKEW, D.OPENING_OUT_OF_WINDOW),
    (WindowError, D.OPENING_OUT_OF_WINDOW, D.OPENING_OUT_OF_WINDOW),
    (ThresholdError, None, D.OPENING_WITHOUT_BOTH),
    (RoleError, None, D.OPENING_WITHOUT_BOTH),
    (RouteError, D.OFF_ROUTE, D.OFF_ROUTE),
    (FrozenError, D.FROZEN_VIOLATION, D.FROZEN_VIOLATION),
    (KeyBlockedError, D.BLOCKED_KEY_USED, D.BLOCKED_KEY_USED),
    (ChainError, None, None),
    (VerificationError, None, None),
    (ConflictError, None, None),
]


def _event(kind: Kind) -> Event:
    return Event(
        kind=kind,
        authority="auth-1",
        time=T0,
        place="",
        packages={"PK-1": "0" * 64},
        actors={"receiver": "custodian-wu"},
        body={},
    )


def _kinds(error: CustodyError, event: Event | None) -> list[DetectionKind]:
    return [d.kind for d in detect_refusal(error, event, None, {}, NO_TRUST, T0)]


@pytest.mark.parametrize(
    ("refusal", "on_dispatch", "on_opening"), TABLE, ids=[c.__name__ for c, _, _ in TABLE]
)
def test_refusal_rules(
    refusal: type[CustodyError],
    on_dispatch: DetectionKind | None,
    on_opening: DetectionKind | None,
) -> None:
    kw: dict[str, Any] = {"key_ids": ("ab" * 32,)} if refusal is KeyBlockedError else {}
    error = refusal("refused", **kw)
    assert _kinds(error, _event(Kind.DISPATCH)) == ([on_dispatch] if on_dispatch else [])
    assert _kinds(error, _event(Kind.OPEN)) == ([on_opening] if on_opening else [])


def test_every_row_of_the_table_is_tested() -> None:
    assert set(REFUSAL_RULES) <= {c for c, _, _ in TABLE}


def test_an_off_route_refusal_without_an_event_is_no_sign() -> None:
    assert _kinds(RouteError("refused"), None) == []


def test_a_detection_keeps_the_refusal_in_its_facts() -> None:
    (d,) = detect_refusal(FrozenError("frozen"), _event(Kind.DISPATCH), None, {}, NO_TRUST, T0)
    assert d.facts == {"refusal": "frozen", "message": "frozen", "event_kind": "dispatch"}
    assert d.statements == (_event(Kind.DISPATCH).id,)
    assert d.subject == "frozen_violation"  # no package state known: the kind is the subject
