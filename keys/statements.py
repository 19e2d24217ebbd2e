"""Verifying signed statements: which certified people signed, and which required one is missing.

Rules:
- Each required signer is a *slot* (releaser, receiver, witness...) with the roles that may fill
  it and, where the step names one, the exact person. Every slot needs its own person: two slots
  are never filled by one person, whatever keys they hold ("releaser AND receiver", never
  "any two").
- Signatures are counted by distinct certified key; a person signing twice (even with two of
  their keys) is refused.
- Every signer's standing (validity window, revocation) is judged at the statement's time, and
  a signer recused for any scope tag of the statement cannot fill a slot.
- Any signature that matches no certified key, or fails, refuses the whole statement.
- ``check_statement`` reports; ``verify_statement`` raises the most specific refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from crypto.dsse import Envelope, SignatureCheck, verify_signatures
from crypto.encoding import format_time
from crypto.errors import (
    N_,
    CustodyError,
    DuplicateSignatureError,
    Phrase,
    RecusedError,
    RoleError,
    Said,
    SignatureError,
    ThresholdError,
    UnknownSignerError,
    VerificationError,
    Words,
)
from keys.model import Certificate, Role
from keys.trust import TrustStore

# The signer slots the rules ask for, as message ids (``SignerRequirement.describe`` shows a
# slot in the reader's language; these marks put them in the catalogue). Numbered slots
# (``officer-1``) and any other slot are shown as they are.
SLOT_WORDS = (
    N_("sealer"),
    N_("releaser"),
    N_("receiver"),
    N_("custodian2"),
    N_("witness"),
    N_("inspector"),
    N_("escort"),
    N_("examiner"),
    N_("officer"),
    N_("reporter"),
    N_("actor"),
    N_("destroyer"),
    N_("standby"),
    N_("system"),
)


@dataclass(frozen=True)
class SignerRequirement:
    slot: str
    roles: frozenset[Role]
    person: str | None = None

    def describe(self) -> str:
        """The slot, for messages (``Words``: in the reader's language where shown)."""
        params: dict[str, object] = {
            "slot": Phrase(self.slot),
            "roles": Words.joined(sorted(self.roles), "/"),
        }
        if self.person:
            params["person"] = self.person
            return Words.of(Said(N_("{slot} ({roles} {person})"), params))
        return Words.of(Said(N_("{slot} ({roles})"), params))


_REQUIRED: dict[tuple[str, tuple[Role, ...], str | None], SignerRequirement] = {}


def require(slot: str, *roles: Role, person: str | None = None) -> SignerRequirement:
    """The slot (requirements are immutable: one is made per slot, roles and person, and
    reused by every statement that asks for it; a replay asks for one per event)."""
    key = (slot, roles, person)
    req = _REQUIRED.get(key)
    if req is None:
        if len(_REQUIRED) >= 4096:  # people named by the statements read: bounded
            _REQUIRED.clear()
        req = _REQUIRED[key] = SignerRequirement(slot, frozenset(roles), person)
    return req


@dataclass(frozen=True)
class StatementCheck:
    """What a verifier learned about one envelope."""

    payload_type: str
    payload: bytes
    filled: Mapping[str, Certificate]
    missing: tuple[SignerRequirement, ...]
    signers: tuple[Certificate, ...]
    problems: tuple[CustodyError, ...]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.problems

    def summary(self) -> str:
        return self.said().english

    def said(self) -> Said:
        """``summary`` as a sentence for people (rendered in the reader's language)."""
        params: dict[str, object] = {
            "filled": len(self.filled),
            "n": len(self.filled) + len(self.missing),
        }
        if self.missing:
            params["missing"] = Words.listed((r.describe() for r in self.missing), ", ")
            return Said(N_("signed by {filled}/{n} required signers; missing {missing}"), params)
        return Said(N_("signed by {filled}/{n} required signers"), params)


def _assign(
    requirements: list[SignerRequirement],
    eligible: Mapping[str, list[Certificate]],
    used: frozenset[str],
) -> dict[str, Certificate] | None:
    """Fill every slot with a distinct person (small backtracking matching)."""
    if not requirements:
        return {}
    first, rest = requirements[0], requirements[1:]
    for cert in eligible[first.slot]:
        if cert.subject in used:
            continue
        tail = _assign(rest, eligible, used | {cert.subject})
        if tail is not None:
            return {first.slot: cert, **tail}
    return None


def _first_choices(
    requirements: list[SignerRequirement], eligible: Mapping[str, list[Certificate]]
) -> dict[str, Certificate] | None:
    """``_assign``'s answer when its first choice for every slot succeeds (the usual case:
    one eligible person per slot), without its search; None when a slot needs the search."""
    filled: dict[str, Certificate] = {}
    used: set[str] = set()
    for req in requirements:
        for cert in eligible[req.slot]:
            if cert.subject not in used:
                filled[req.slot] = cert
                used.add(cert.subject)
                break
        else:
            return None
    return filled


def _best_partial(
    requirements: list[SignerRequirement], eligible: Mapping[str, list[Certificate]]
) -> dict[str, Certificate]:
    filled: dict[str, Certificate] = {}
    used: set[str] = set()
    for req in requirements:
        for cert in eligible[req.slot]:
            if cert.subject not in used:
                filled[req.slot] = cert
                used.add(cert.subject)
                break
    return filled


def check_statement(
    env: Envelope,
    trust: TrustStore,
    requirements: Iterable[SignerRequirement],
    *,
    at: datetime,
    scope: Iterable[str] = (),
    sigcheck: SignatureCheck | None = None,
    received: datetime | None = None,
) -> StatementCheck:
    """Judge an envelope against signer slots at time ``at``.

    ``sigcheck`` lets a caller that already verified the signatures (e.g. in a worker
    process) pass the result in, so only the cheap standing and slot checks run here.
    """
    reqs = list(requirements)
    scope_tags = frozenset(scope)
    problems: list[CustodyError] = []
    if sigcheck is None:
        try:
            sigcheck = verify_signatures(env, trust.signing_keys)
        except DuplicateSignatureError as e:
            return StatementCheck(env.payload_type, env.payload, {}, tuple(reqs), (), (e,))
    for index in sigcheck.unmatched:
        hint = env.signatures[index].keyid
        if hint in trust.certificates:
            problems.append(
                SignatureError(
                    N_("signature {index} claims key of {who} but does not verify"),
                    index=index,
                    who=trust.certificates[hint].describe(),
                )
            )
        else:
            problems.append(
                UnknownSignerError(
                    N_("signature {index} is by a key no certificate binds"), index=index
                )
            )

    signers: list[Certificate] = []
    persons: set[str] = set()
    for kid in sorted(sigcheck.signed_by):
        try:
            cert = trust.standing_at(kid, at, received=received)
        except VerificationError as e:
            problems.append(e)
            continue
        if cert.subject in persons:
            problems.append(
                DuplicateSignatureError(
                    N_("{subject} signed this statement with two keys"), subject=cert.subject
                )
            )
            continue
        persons.add(cert.subject)
        signers.append(cert)

    eligible: dict[str, list[Certificate]] = {}
    for req in reqs:
        eligible[req.slot] = [
            c
            for c in signers
            if c.roles & req.roles
            and (req.person is None or c.subject == req.person)
            and not (c.recusals & scope_tags)
        ]
    filled = _first_choices(reqs, eligible)
    if filled is None:
        filled = _assign(reqs, eligible, frozenset())
    if filled is None:
        filled = _best_partial(reqs, eligible)
    missing = tuple(r for r in reqs if r.slot not in filled)
    if missing:
        used = {c.subject for c in filled.values()}
        spare = [c for c in signers if c.subject not in used]
        for req in missing:
            problems.append(_why_missing(req, spare, scope_tags, at))
    return StatementCheck(
        env.payload_type, sigcheck.payload, filled, missing, tuple(signers), tuple(problems)
    )


def _why_missing(
    req: SignerRequirement, signers: list[Certificate], scope: frozenset[str], at: datetime
) -> CustodyError:
    candidates = [c for c in signers if req.person is None or c.subject == req.person]
    for cert in candidates:
        if cert.roles & req.roles and cert.recusals & scope:
            tags = ", ".join(sorted(cert.recusals & scope))
            return RecusedError(
                N_("{who} is recused from {tags}; cannot sign as {slot}"),
                who=cert.describe(),
                tags=tags,
                slot=Phrase(req.slot),
            )
    for cert in candidates:
        if not cert.roles & req.roles:
            return RoleError(
                N_("{who} does not hold a role that may sign as {slot}"),
                who=cert.describe(),
                slot=req.describe(),
            )
    return ThresholdError(
        N_("missing signer: {slot} has not signed (statement time {at})"),
        slot=req.describe(),
        at=format_time(at),
    )


_PRIORITY: tuple[type[CustodyError], ...] = (
    DuplicateSignatureError,
    SignatureError,
    UnknownSignerError,
)


def most_specific(problems: tuple[CustodyError, ...]) -> CustodyError | None:
    """The refusal to report first: forged or duplicated signatures, then unknown signers,
    then the first standing or slot problem found."""
    for kind in _PRIORITY:
        for problem in problems:
            if type(problem) is kind:
                return problem
    return problems[0] if problems else None


def verify_statement(
    env: Envelope,
    trust: TrustStore,
    requirements: Iterable[SignerRequirement],
    *,
    at: datetime,
    scope: Iterable[str] = (),
) -> StatementCheck:
    """As ``check_statement``, but raises the most specific refusal found."""
    check = check_statement(env, trust, requirements, at=at, scope=scope)
    problem = most_specific(check.problems)
    if problem is not None:
        raise problem
    return check
