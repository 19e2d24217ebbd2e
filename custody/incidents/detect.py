"""Breach detectors: pure functions from (event or refusal, states, time, policy) to detections.

Nothing here reads the clock, opens a file or touches the database: time is an argument, the
place registry and limits come in a ``Policy``, package states come in as ``PackageState``s.

Detectors and what they fire on:
- ``detect_refusal``: a refused submission whose refusal is a breach sign: forged/invalid
  signature, unknown key, expired or revoked key (suspect key named), recused signer, holder
  not on the planned route, opening before/after the window or without both persons, any act
  after destruction, a move of a frozen package, a blocked key used again. Chain and format
  refusals of honest devices (a stale previous-event id) are not incidents. The rules are a
  table, ``REFUSAL_RULES`` (error class -> rule), looked up by the refusal's class, most
  specific first.
- ``detect_accepted``: findings of an accepted event (seal serials differ from the manifest;
  copies short or over on recovery), a seal reported broken (``body.broken_seals``), a leak
  reported by an enrolled person (``leak_report`` event).
- ``detect_travel``: the same package seen at two registered places further apart than the
  policy's maximum speed allows in the time between.
- ``sweep``: over (state, since) pairs and ``now``: handover/receipt overdue (dwell limit per
  status), a missed escort check-in while in transit, a missed patrol while stored, recovery
  overdue after the window.
- ``detect_fork``: two verified checkpoints of one log that are not consistent.
- ``detect_public_report``: unsigned text from a candidate or the public (untrusted: it opens
  an incident but triggers no automatic containment).
- ``detect_break_glass``: a paper opened with a standby share standing in for an officer.

Severities, the ladder and the limits are the policy's (``policy.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from crypto.dsse import Envelope, verify_signatures
from crypto.encoding import format_time
from crypto.note import Checkpoint, NoteVerifier, open_checkpoint
from custody.errors import (
    N_,
    ClockError,
    ClosedError,
    CustodyError,
    DuplicateSignatureError,
    ExpiredError,
    FormatError,
    FrozenError,
    KeyBlockedError,
    LogConsistencyError,
    Phrase,
    RecusedError,
    RevokedError,
    RoleError,
    RouteError,
    Said,
    SignatureError,
    ThresholdError,
    UnknownSignerError,
    WindowError,
)
from custody.events import Event, Kind
from custody.i18n import said_in
from custody.incidents.policy import Place, Policy, Severity
from custody.rules import Outcome, PackageState, Status, finding_said
from custody.witness import check_checkpoint_consistency
from keys.trust import TrustStore


class DetectionKind(StrEnum):
    FORGED_SIGNATURE = "forged_signature"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED_KEY = "expired_key"
    REVOKED_KEY = "revoked_key"
    BLOCKED_KEY_USED = "blocked_key_used"
    RECUSED_SIGNER = "recused_signer"
    OFF_ROUTE = "off_route"
    SEAL_MISMATCH = "seal_mismatch"
    SEAL_BROKEN = "seal_broken"
    COUNT_SHORT = "count_short"
    COUNT_OVER = "count_over"
    IMPOSSIBLE_TRAVEL = "impossible_travel"
    OVERDUE = "overdue"
    MISSED_CHECKIN = "missed_checkin"
    MISSED_PATROL = "missed_patrol"
    OPENING_OUT_OF_WINDOW = "opening_out_of_window"
    OPENING_WITHOUT_BOTH = "opening_without_both"
    CLOCK_SKEW = "clock_skew"
    ACT_AFTER_DESTRUCTION = "act_after_destruction"
    FROZEN_VIOLATION = "frozen_violation"
    LOG_FORK = "log_fork"
    LEAK_REPORT = "leak_report"
    PUBLIC_REPORT = "public_report"
    BREAK_GLASS = "break_glass"


# Each kind as people read it (reports and notices show the Chinese, then the code).
KIND_NAMES: Mapping[str, str] = {
    "forged_signature": "签名伪造",
    "unknown_key": "未认证的密钥",
    "expired_key": "密钥已过期",
    "revoked_key": "密钥已吊销",
    "blocked_key_used": "使用已封锁的密钥",
    "recused_signer": "回避人员签名",
    "off_route": "偏离路线",
    "seal_mismatch": "封条编号不符",
    "seal_broken": "封条破损",
    "count_short": "份数短少",
    "count_over": "份数多出",
    "impossible_travel": "不可能的行程",
    "overdue": "超时未交接",
    "missed_checkin": "未按时报平安",
    "missed_patrol": "未按时巡查",
    "opening_out_of_window": "时间窗外启封",
    "opening_without_both": "启封人员不全",
    "clock_skew": "时间偏差",
    "act_after_destruction": "销毁后仍有操作",
    "frozen_violation": "冻结期间操作",
    "log_fork": "日志分叉",
    "leak_report": "泄密举报",
    "public_report": "公众举报",
    "break_glass": "紧急授权",
}


SEVERITY: Mapping[DetectionKind, Severity] = {
    DetectionKind.FORGED_SIGNATURE: Severity.HIGH,
    DetectionKind.UNKNOWN_KEY: Severity.HIGH,
    DetectionKind.EXPIRED_KEY: Severity.HIGH,
    DetectionKind.REVOKED_KEY: Severity.HIGH,
    DetectionKind.BLOCKED_KEY_USED: Severity.HIGH,
    DetectionKind.RECUSED_SIGNER: Severity.HIGH,
    DetectionKind.OFF_ROUTE: Severity.HIGH,
    DetectionKind.SEAL_MISMATCH: Severity.HIGH,
    DetectionKind.SEAL_BROKEN: Severity.HIGH,
    DetectionKind.COUNT_SHORT: Severity.CRITICAL,
    DetectionKind.COUNT_OVER: Severity.HIGH,
    DetectionKind.IMPOSSIBLE_TRAVEL: Severity.HIGH,
    DetectionKind.OVERDUE: Severity.MEDIUM,
    DetectionKind.CLOCK_SKEW: Severity.MEDIUM,
    DetectionKind.MISSED_CHECKIN: Severity.MEDIUM,
    DetectionKind.MISSED_PATROL: Severity.MEDIUM,
    DetectionKind.OPENING_OUT_OF_WINDOW: Severity.HIGH,
    DetectionKind.OPENING_WITHOUT_BOTH: Severity.HIGH,
    DetectionKind.ACT_AFTER_DESTRUCTION: Severity.HIGH,
    DetectionKind.FROZEN_VIOLATION: Severity.HIGH,
    DetectionKind.LOG_FORK: Severity.CRITICAL,
    DetectionKind.LEAK_REPORT: Severity.CRITICAL,
    DetectionKind.PUBLIC_REPORT: Severity.HIGH,
    # An emergency opening: a malfunction and tampering leave the same trace, so it is always
    # reviewed; the exam goes on, so nothing is frozen by it (the paper has no package here).
    DetectionKind.BREAK_GLASS: Severity.HIGH,
}


@dataclass(frozen=True)
class Detection:
    """One breach sign. ``subject`` joins detections into one open incident with ``kind``."""

    kind: DetectionKind
    severity: Severity
    detail: str
    at: datetime
    subject: str
    # The detail in Chinese (the catalogue's rendering of the same sentence): what officers
    # read; ``detail`` stays the English of logs and JSON.
    detail_zh: str = ""
    package_id: str | None = None
    paper: str | None = None
    statements: tuple[str, ...] = ()
    checkpoints: tuple[str, ...] = ()
    suspect_keys: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    # False for unsigned reports: they open an incident but contain nothing by themselves.
    trusted: bool = True

    def evidence(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "at": format_time(self.at),
            "detail": self.detail,
            "detail_zh": self.detail_zh or self.detail,
            "statements": list(self.statements),
            "checkpoints": list(self.checkpoints),
            "suspect_keys": list(self.suspect_keys),
            "facts": dict(self.facts),
        }


# The statuses as words in a sentence (the catalogue gives them in Chinese).
STATUS_WORDS: Mapping[str, str] = {
    "sealed": N_("sealed"),
    "in_transit": N_("in transit"),
    "stored": N_("stored"),
    "opened": N_("open"),  # not "opened": that id is an incident's time column
    "distributed": N_("distributed"),
    "recovered": N_("recovered after use"),
    "returned": N_("returned"),
    "destroyed": N_("destroyed"),
}


def _detection(
    kind: DetectionKind,
    said: Said,
    at: datetime,
    *,
    state: PackageState | None = None,
    subject: str | None = None,
    **kw: Any,
) -> Detection:
    return Detection(
        kind=kind,
        severity=SEVERITY[kind],
        detail=said.english,
        detail_zh=said_in(said, "zh"),
        at=at,
        subject=subject or (state.package_id if state is not None else kind.value),
        package_id=state.package_id if state is not None else None,
        paper=state.paper if state is not None else None,
        **kw,
    )


# -- refusals --------------------------------------------------------------------------------


def _signers(env: Envelope, trust: TrustStore) -> tuple[frozenset[str], tuple[str, ...]]:
    """(key ids whose signature verifies, key ids named by signatures that do not verify)."""
    try:
        check = verify_signatures(env, trust.signing_keys)
    except DuplicateSignatureError:
        return frozenset(), ()
    named = tuple(env.signatures[i].keyid or "" for i in check.unmatched)
    return check.signed_by, named


@dataclass(frozen=True)
class Refusal:
    """A refused submission, with what the rules read from it worked out once."""

    error: CustodyError
    event: Event | None
    states: Mapping[str, PackageState | None]
    trust: TrustStore
    at: datetime
    has_envelope: bool
    signed: frozenset[str]  # key ids whose signature verifies
    unmatched: tuple[str, ...]  # key ids named by signatures that do not verify
    facts: Mapping[str, Any]

    @classmethod
    def of(
        cls,
        error: CustodyError,
        event: Event | None,
        envelope: Envelope | None,
        states: Mapping[str, PackageState | None],
        trust: TrustStore,
        at: datetime,
    ) -> Refusal:
        signed, unmatched = _signers(envelope, trust) if envelope is not None else (frozenset(), ())
        facts: dict[str, Any] = {"refusal": error.code, "message": error.message}
        if event is not None:
            facts["event_kind"] = event.kind.value
        return cls(error, event, states, trust, at, envelope is not None, signed, unmatched, facts)

    @property
    def state(self) -> PackageState | None:
        """The state of the first package the refused event names, if known."""
        if self.event is not None and self.event.package_ids:
            return self.states.get(self.event.package_ids[0])
        return None

    @property
    def opening(self) -> bool:
        return self.event is not None and self.event.kind == Kind.OPEN

    def keys_where(self, bad: type[CustodyError]) -> tuple[str, ...]:
        """Known keys that signed (or were named) and stand refused with ``bad`` at the
        event's time."""
        when = self.event.time if self.event is not None else self.at
        named = {k for k in self.unmatched if k in self.trust.certificates}
        found = []
        for kid in sorted(self.signed | named):
            try:
                self.trust.standing_at(kid, when, received=self.at)
            except bad:
                found.append(kid)
            except CustodyError:
                continue
        return tuple(found)

    def detection(
        self,
        kind: DetectionKind,
        *,
        detail: Said | None = None,
        suspects: tuple[str, ...] = (),
        subject: str | None = None,
        facts: Mapping[str, Any] | None = None,
    ) -> list[Detection]:
        """The one detection a refusal makes (detail: the refusal's message by default)."""
        return [
            _detection(
                kind,
                Said(self.error.template, self.error.params) if detail is None else detail,
                self.at,
                state=self.state,
                subject=subject,
                statements=(self.event.id,) if self.event is not None else (),
                suspect_keys=suspects,
                facts=self.facts if facts is None else facts,
            )
        ]


Rule = Callable[[Refusal], list[Detection]]


def _plain(kind: DetectionKind) -> Rule:
    """A refusal that is the breach itself: its message is the detail."""
    return lambda r: r.detection(kind)


def _after_destruction(r: Refusal) -> list[Detection]:
    what = r.facts.get("event_kind", "statement")
    return r.detection(
        DetectionKind.ACT_AFTER_DESTRUCTION,
        detail=Said(N_("a {what} was attempted after destruction"), {"what": what}),
    )


def _standing(kind: DetectionKind, bad: type[CustodyError]) -> Rule:
    """A key signed outside its standing: the keys refused with ``bad`` are the suspects."""

    def rule(r: Refusal) -> list[Detection]:
        suspects = r.keys_where(bad)
        return r.detection(kind, subject=_first(suspects), suspects=suspects)

    return rule


def _recused(r: Refusal) -> list[Detection]:
    scope = {
        tag
        for pid in (r.event.package_ids if r.event is not None else ())
        if (s := r.states.get(pid)) is not None
        for tag in s.scope
    }
    suspects = tuple(sorted(kid for kid in r.signed if r.trust.certificates[kid].recusals & scope))
    return r.detection(DetectionKind.RECUSED_SIGNER, suspects=suspects)


def _unknown_key(r: Refusal) -> list[Detection]:
    strangers = tuple(sorted(k for k in r.unmatched if k not in r.trust.certificates))
    return r.detection(
        DetectionKind.UNKNOWN_KEY,
        subject=_first(strangers),
        facts={**r.facts, "unknown_keys": list(strangers)},
    )


def _forged(r: Refusal) -> list[Detection]:
    return r.detection(
        DetectionKind.FORGED_SIGNATURE,
        subject=_first(r.unmatched),
        facts={**r.facts, "keys_named": list(r.unmatched)},
    )


def _malformed(r: Refusal) -> list[Detection]:
    """A format refusal is an honest device's mistake, unless it names keys whose signatures
    do not verify."""
    return _forged(r) if r.has_envelope and r.unmatched else []


def _clock(r: Refusal) -> list[Detection]:
    # An opening dated into its window but received before it is a backdating attempt.
    return r.detection(
        DetectionKind.OPENING_OUT_OF_WINDOW if r.opening else DetectionKind.CLOCK_SKEW
    )


def _short_handed(r: Refusal) -> list[Detection]:
    """Too few or the wrong signers: a breach sign only for an opening."""
    return r.detection(DetectionKind.OPENING_WITHOUT_BOTH) if r.opening else []


def _off_route(r: Refusal) -> list[Detection]:
    if r.event is None:
        return []
    receiver = r.event.actors.get("receiver", "")
    state = r.state
    suspects = tuple(sorted(k for k in r.signed if r.trust.certificates[k].subject == receiver))
    return r.detection(
        DetectionKind.OFF_ROUTE,
        suspects=suspects,
        facts={
            **r.facts,
            "receiver": receiver,
            "planned": state.next_holder if state else None,
        },
    )


def _blocked_key_used(r: Refusal) -> list[Detection]:
    assert isinstance(r.error, KeyBlockedError)
    suspects = tuple(sorted(r.error.key_ids))
    return r.detection(DetectionKind.BLOCKED_KEY_USED, subject=_first(suspects), suspects=suspects)


def _first(keys: tuple[str, ...]) -> str | None:
    return keys[0] if keys else None


# Which refusals are breach signs. Looked up along the refusal's class hierarchy, most specific
# class first (a ``RecusedError`` is a ``RoleError``: the recusal rule decides). A class in no
# row (chain refusals, ``VerificationError`` itself) is an honest device's mistake until shown
# otherwise: no detection.
REFUSAL_RULES: Mapping[type[CustodyError], Rule] = {
    ClosedError: _after_destruction,
    RevokedError: _standing(DetectionKind.REVOKED_KEY, RevokedError),
    ExpiredError: _standing(DetectionKind.EXPIRED_KEY, ExpiredError),
    RecusedError: _recused,
    UnknownSignerError: _unknown_key,
    SignatureError: _forged,
    DuplicateSignatureError: _forged,
    FormatError: _malformed,
    ClockError: _clock,
    WindowError: _plain(DetectionKind.OPENING_OUT_OF_WINDOW),
    ThresholdError: _short_handed,
    RoleError: _short_handed,
    RouteError: _off_route,
    FrozenError: _plain(DetectionKind.FROZEN_VIOLATION),
    KeyBlockedError: _blocked_key_used,
}


def refusal_rule(error: CustodyError) -> Rule | None:
    """The rule for a refusal: the row of its class, or of the nearest class it derives from."""
    for cls in type(error).__mro__:
        rule = REFUSAL_RULES.get(cls)
        if rule is not None:
            return rule
    return None


def detect_refusal(
    error: CustodyError,
    event: Event | None,
    envelope: Envelope | None,
    states: Mapping[str, PackageState | None],
    trust: TrustStore,
    at: datetime,
) -> list[Detection]:
    """Which breach, if any, a refused submission is a sign of."""
    refusal = Refusal.of(error, event, envelope, states, trust, at)
    rule = refusal_rule(error)
    return rule(refusal) if rule is not None else []


# -- accepted events -------------------------------------------------------------------------


def detect_accepted(event: Event, outcome: Outcome, at: datetime) -> list[Detection]:
    """Findings of an accepted event, seals reported broken, and people's leak reports."""
    out: list[Detection] = []
    for f in outcome.findings:
        if f.kind == "seal_mismatch":
            kind = DetectionKind.SEAL_MISMATCH
        elif f.kind == "count_mismatch":
            recovered = int(f.evidence.get("recovered", 0))
            distributed = int(f.evidence.get("distributed", 0))
            kind = (
                DetectionKind.COUNT_SHORT if recovered < distributed else DetectionKind.COUNT_OVER
            )
        else:
            continue
        state = outcome.states.get(f.package_id)
        out.append(
            _detection(
                kind,
                finding_said(f.kind, f.evidence, f.detail),
                at,
                state=state,
                statements=(event.id,),
                facts=dict(f.evidence),
            )
        )
    if event.kind == Kind.PAPER_ACT and event.body.get("act_kind") == "break_glass":
        act = event.body.get("act")
        digest = hashlib.sha256(json.dumps(act, sort_keys=True).encode()).hexdigest()
        out.append(
            detect_break_glass(
                str(event.body.get("paper", "")),
                at,
                digest,
                Said(
                    N_(
                        "a standby share stood in for an absent officer (see the act on the "
                        "log, statement {statement})"
                    ),
                    {"statement": event.id[:16]},
                ),
            )
        )
    broken = event.body.get("broken_seals")
    if isinstance(broken, list) and broken:
        for pid in event.package_ids:
            out.append(
                _detection(
                    DetectionKind.SEAL_BROKEN,
                    Said(
                        N_("seal(s) {seals} reported broken at {at}"),
                        {"seals": ", ".join(map(str, broken)), "at": event.kind.value},
                    ),
                    at,
                    state=outcome.states.get(pid),
                    statements=(event.id,),
                    facts={"broken_seals": [str(s) for s in broken]},
                )
            )
    if event.kind == Kind.LEAK_REPORT:
        out.append(_leak_detection(event, at))
    return out


def _leak_detection(event: Event, at: datetime) -> Detection:
    named = event.body.get("packages")
    packages = [p for p in named if isinstance(p, str)] if isinstance(named, list) else []
    paper = event.body.get("paper") if isinstance(event.body.get("paper"), str) else None
    reporter = event.actors.get("reporter", "")
    said = Said(
        N_("leak reported by {reporter} (statement {statement})"),
        {"reporter": reporter, "statement": event.id[:16]},
    )
    return Detection(
        kind=DetectionKind.LEAK_REPORT,
        severity=SEVERITY[DetectionKind.LEAK_REPORT],
        # The reporter's own words stay in their signed statement (``event.id``), not copied
        # into the desk's statements: free text may hold personal data (docs/formats.md).
        detail=said.english,
        detail_zh=said_in(said, "zh"),
        at=at,
        subject=packages[0] if packages else (paper or event.id),
        package_id=packages[0] if packages else None,
        paper=paper,
        statements=(event.id,),
        facts={"reporter": reporter, "packages": packages},
    )


def distance_km(a: Place, b: Place) -> float:
    """Great-circle distance (haversine, mean Earth radius 6371 km)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


def detect_travel(
    state: PackageState,
    previous: tuple[str, datetime, str] | None,
    event: Event,
    policy: Policy,
    at: datetime,
) -> Detection | None:
    """``previous`` = (place, time, statement id) where the package was last seen."""
    if previous is None:
        return None
    here, there = policy.places.get(event.place), policy.places.get(previous[0])
    if here is None or there is None:
        return None
    km = distance_km(there, here)
    if km <= policy.same_site_km:
        return None
    hours = (event.time - previous[1]).total_seconds() / 3600
    reachable = policy.max_speed_kmh * max(hours, 0.0)
    if km <= reachable:
        return None
    speed = (
        Said(N_("instantly"))
        if hours <= 0
        else Said(N_("at {speed} km/h"), {"speed": f"{km / hours:.0f}"})
    )
    said = Said(
        N_(
            "package {package_id} seen at {place} and {then}, {km} km apart, {minutes} min "
            "later ({speed}; the limit is {limit} km/h)"
        ),
        {
            "package_id": state.package_id,
            "place": previous[0],
            "then": event.place,
            "km": f"{km:.0f}",
            "minutes": f"{hours * 60:.0f}",
            "speed": speed,
            "limit": f"{policy.max_speed_kmh:.0f}",
        },
    )
    return _detection(
        DetectionKind.IMPOSSIBLE_TRAVEL,
        said,
        at,
        state=state,
        statements=(previous[2], event.id),
        facts={
            "from": previous[0],
            "to": event.place,
            "km": round(km, 1),
            "minutes": round(hours * 60),
        },
    )


# -- the periodic sweep ----------------------------------------------------------------------


@dataclass(frozen=True)
class Watched:
    state: PackageState
    since: datetime  # when the package entered its current status


def sweep(items: Iterable[Watched], now: datetime, policy: Policy) -> list[Detection]:
    """Time-based detections over every live package at ``now``."""
    out: list[Detection] = []
    for w in items:
        s = w.state
        if s.status == Status.DESTROYED:
            continue
        dwelling = {"status": s.status.value, "since": format_time(w.since), "holder": s.holder}
        silent = {"holder": s.holder, "last": format_time(s.last_time)}
        limit = policy.dwell.get(s.status)
        if limit is not None and now - w.since > limit:
            detail = Said(
                N_(
                    "package {package_id} has been {status} since {since} (limit {limit}); "
                    "the handover or receipt is overdue"
                ),
                {
                    "package_id": s.package_id,
                    "status": Phrase(STATUS_WORDS.get(s.status.value, s.status.value)),
                    "since": format_time(w.since),
                    "limit": str(limit),
                },
            )
            out.append(_swept(DetectionKind.OVERDUE, detail, s, now, dwelling))
        if (
            s.status in {Status.OPENED, Status.DISTRIBUTED}
            and now > s.window_end + policy.recovery_grace
        ):
            detail = Said(
                N_(
                    "package {package_id} is still {status} after its window closed at "
                    "{window_end}; recovery is overdue"
                ),
                {
                    "package_id": s.package_id,
                    "status": Phrase(STATUS_WORDS.get(s.status.value, s.status.value)),
                    "window_end": format_time(s.window_end),
                },
            )
            out.append(_swept(DetectionKind.OVERDUE, detail, s, now, dwelling))
        quiet = now - s.last_time
        if s.status == Status.IN_TRANSIT and quiet > policy.checkin_every:
            detail = Said(
                N_(
                    "no check-in from escort {holder} with package {package_id} since {last} "
                    "(every {every})"
                ),
                {
                    "holder": s.holder,
                    "package_id": s.package_id,
                    "last": format_time(s.last_time),
                    "every": str(policy.checkin_every),
                },
            )
            out.append(_swept(DetectionKind.MISSED_CHECKIN, detail, s, now, silent))
        if s.status in {Status.STORED, Status.RETURNED} and quiet > policy.patrol_every:
            detail = Said(
                N_(
                    "no patrol of the room holding package {package_id} since {last} "
                    "(every {every})"
                ),
                {
                    "package_id": s.package_id,
                    "last": format_time(s.last_time),
                    "every": str(policy.patrol_every),
                },
            )
            out.append(_swept(DetectionKind.MISSED_PATROL, detail, s, now, silent))
    return out


def _swept(
    kind: DetectionKind, detail: Said, s: PackageState, now: datetime, facts: Mapping[str, Any]
) -> Detection:
    """A sweep's detection: about the package's state as its last event left it."""
    return _detection(kind, detail, now, state=s, statements=(s.last_event,), facts=dict(facts))


# -- checkpoints and reports -----------------------------------------------------------------


def detect_fork(
    old_note: str, new_note: str, proof: Sequence[bytes], trust: TrustStore, at: datetime
) -> Detection | None:
    """Two checkpoints signed by the authority's log key that cannot both be true.

    Both notes are verified first (a note that does not verify proves nothing and is refused
    with its error); sizes and roots come only from the verified notes.
    """
    authority = trust.authority
    verifier = NoteVerifier(authority.log_origin, authority.log_key)
    old, _ = open_checkpoint(old_note, [verifier], origin=authority.log_origin)
    new, _ = open_checkpoint(new_note, [verifier], origin=authority.log_origin)
    if old.size > new.size:
        old, new = new, old
        old_note, new_note = new_note, old_note
    try:
        check_checkpoint_consistency(old, new, proof)
    except LogConsistencyError as e:
        said = Said(e.template, e.params)
        return Detection(
            kind=DetectionKind.LOG_FORK,
            severity=SEVERITY[DetectionKind.LOG_FORK],
            detail=said.english,
            detail_zh=said_in(said, "zh"),
            at=at,
            subject=f"log:{authority.log_origin}",
            checkpoints=(old_note, new_note),
            facts={"old": _describe(old), "new": _describe(new)},
        )
    return None


def _describe(c: Checkpoint) -> dict[str, Any]:
    return {"origin": c.origin, "size": c.size, "root": c.root.hex()}


MAX_REPORT_CHARS = 4000


def public_report_plaintext(text: str, contact: str = "") -> bytes:
    """What is sealed of a public report: its text and the reporter's contact, as canonical
    JSON (``{"contact": ..., "text": ...}``); refuses an empty or too long report."""
    text = text.strip()
    if not text:
        raise FormatError(N_("a report needs some text"))
    if len(text) > MAX_REPORT_CHARS:
        raise FormatError(
            N_("a report holds at most {max_report_chars} characters"),
            max_report_chars=MAX_REPORT_CHARS,
        )
    return json.dumps(
        {"contact": contact[:200], "text": text},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def detect_public_report(
    plaintext: bytes,
    sealed: Sequence[Mapping[str, str]],
    at: datetime,
    *,
    package_id: str | None = None,
) -> Detection:
    """A leak reported by a candidate or the public: unsigned, so untrusted.

    The report's text and contact are personal data: the detection (and so the log) holds
    only their SHA-256 and the sealed boxes (``sealed``: one per secrecy officer, made by the
    desk from ``public_report_plaintext``), never the words or the phone number."""
    digest = hashlib.sha256(plaintext).hexdigest()
    said = Said(
        N_("public report {report} (text and contact sealed to {officers} secrecy officer(s))"),
        {"report": digest[:16], "officers": len(sealed)},
    )
    return Detection(
        kind=DetectionKind.PUBLIC_REPORT,
        severity=SEVERITY[DetectionKind.PUBLIC_REPORT],
        detail=said.english,
        detail_zh=said_in(said, "zh"),
        at=at,
        subject=f"report:{digest[:16]}",
        package_id=package_id,
        facts={"sha256": digest, "sealed": [dict(box) for box in sealed]},
        trusted=False,
    )


def detect_break_glass(
    paper_ref: str, at: datetime, act_sha256: str, summary: str | Said
) -> Detection:
    """A paper opened by break-glass (a secrecy officer's standby share stood in)."""
    said = Said(
        N_("break-glass opening of {paper}: {summary}"),
        {"paper": paper_ref, "summary": summary},
    )
    return Detection(
        kind=DetectionKind.BREAK_GLASS,
        severity=SEVERITY[DetectionKind.BREAK_GLASS],
        detail=said.english,
        detail_zh=said_in(said, "zh"),
        at=at,
        subject=f"paper:{paper_ref}:{act_sha256[:16]}",
        paper=paper_ref.split("@", maxsplit=1)[0],
        statements=(act_sha256,),
        facts={"paper": paper_ref, "act_sha256": act_sha256},
    )
