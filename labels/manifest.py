"""Sealed packages: what a package holds, where it goes, and who may seal it (pure).

It lives in ``labels`` (below ``custody``) because the label codec builds and checks it;
``custody.packages`` re-exports it.

Rules:
- A manifest is only constructed valid: every field is checked in ``__post_init__`` and a bad
  one raises ``FormatError`` naming the field.
- Ids (package, exam, session, position, paper, people) are 1-32 characters of
  ``A-Z a-z 0-9 . _ -``; places (site, room, route places) are 1-32 characters of any script.
- Copies and seals: copies are packed in inner bags of at most ``bag_size`` copies and every
  inner bag carries one numbered seal, so ``len(seal_serials) == ceil(copy_count / bag_size)``;
  serials are distinct. A signature over a manifest that breaks this is still refused.
- Times are whole UTC seconds; ``issued_at <= opens_at < closes_at`` and
  ``issued_at < expires_at``; a manifest is usable only within ``[issued_at, expires_at]``.
- The planned route is 1-8 ordered (person, place) steps, no person twice in a row.
- Sealing: the sealer's key must stand (certified, in validity, not revoked) at ``issued_at``
  and hold the proposer or printer role, and must not be recused for the package's exam,
  position or package scope. A key revoked for compromise is refused for anything it signed,
  whatever ``issued_at`` claims, once the revocation is in force at the time of checking:
  a thief can back-date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from crypto.encoding import format_time
from crypto.errors import (
    N_,
    ExpiredError,
    FormatError,
    NotYetValidError,
    RecusedError,
    RevokedError,
    RoleError,
)
from crypto.vocabulary import Classification, check_id
from keys.model import Certificate, RevocationReason, Role
from keys.trust import TrustStore

SEALING_ROLES = frozenset({Role.PROPOSER, Role.PRINTER})
MAX_PLACE = 32
MAX_SEALS = 16
MAX_ROUTE = 8
MAX_COPIES = 10_000
COMMITMENT_SIZE = 32


def _check_id(value: object, what: str) -> None:
    check_id(value, f"manifest: {what}")


def _check_place(value: object, what: str) -> None:
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_PLACE
        or any(ord(c) < 0x20 for c in value)
    ):
        raise FormatError(
            N_("manifest: {what} must be 1-{max_place} printable characters"),
            what=what,
            max_place=MAX_PLACE,
        )


def _check_time(value: object, what: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.microsecond:
        raise FormatError(
            N_("manifest: {what} must be an aware UTC time in whole seconds"), what=what
        )


@dataclass(frozen=True)
class RouteStep:
    """One planned holder of the package and where they hold it."""

    person: str
    place: str

    def __post_init__(self) -> None:
        _check_id(self.person, "route person")
        _check_place(self.place, "route place")


@dataclass(frozen=True)
class Manifest:
    """The signed facts of one sealed package (what its QR label carries)."""

    package_id: str
    exam_id: str
    session: str
    position: str
    paper_id: str
    paper_commitment: bytes
    copy_count: int
    bag_size: int
    seal_serials: tuple[str, ...]
    site: str
    room: str
    opens_at: datetime
    closes_at: datetime
    route: tuple[RouteStep, ...]
    classification: Classification
    issued_at: datetime
    expires_at: datetime

    def __post_init__(self) -> None:
        for name in ("package_id", "exam_id", "session", "position", "paper_id"):
            _check_id(getattr(self, name), name.replace("_", " "))
        _check_place(self.site, "destination site")
        _check_place(self.room, "destination room")
        if not isinstance(self.paper_commitment, bytes) or len(self.paper_commitment) != 32:
            raise FormatError(
                N_("manifest: paper commitment must be {commitment_size} bytes"),
                commitment_size=COMMITMENT_SIZE,
            )
        for name in ("copy_count", "bag_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_COPIES:
                raise FormatError(
                    N_("manifest: {field} must be 1-{max_copies}"),
                    field=name.replace("_", " "),
                    max_copies=MAX_COPIES,
                )
        serials = self.seal_serials
        if not isinstance(serials, tuple) or not 0 < len(serials) <= MAX_SEALS:
            raise FormatError(
                N_("manifest: 1-{max_seals} seal serials are required"), max_seals=MAX_SEALS
            )
        for serial in serials:
            _check_id(serial, "seal serial")
        if len(set(serials)) != len(serials):
            raise FormatError(N_("manifest: a seal serial is listed twice"))
        bags = -(-self.copy_count // self.bag_size)
        if len(serials) != bags:
            raise FormatError(
                N_(
                    "manifest: {copy_count} copies in bags of {bag_size} make "
                    "{bags} sealed bag(s), but {n_serials} seal serial(s) are "
                    "listed"
                ),
                copy_count=self.copy_count,
                bag_size=self.bag_size,
                bags=bags,
                n_serials=len(serials),
            )
        for name in ("opens_at", "closes_at", "issued_at", "expires_at"):
            _check_time(getattr(self, name), name.replace("_", " "))
        if not self.opens_at < self.closes_at:
            raise FormatError(N_("manifest: the opening window must end after it starts"))
        if self.opens_at < self.issued_at:
            raise FormatError(
                N_("manifest: the opening window starts before the package was sealed")
            )
        if not self.issued_at < self.expires_at:
            raise FormatError(N_("manifest: expiry must be later than issue"))
        if not isinstance(self.route, tuple) or not 0 < len(self.route) <= MAX_ROUTE:
            raise FormatError(
                N_("manifest: the planned route needs 1-{max_route} steps"), max_route=MAX_ROUTE
            )
        for a, b in zip(self.route, self.route[1:], strict=False):
            if a.person == b.person:
                raise FormatError(
                    N_("manifest: route names {person} twice in a row"), person=a.person
                )
        if not isinstance(self.classification, Classification):
            raise FormatError(N_("manifest: unknown classification"))

    @property
    def scope(self) -> frozenset[str]:
        """The recusal scope tags this package falls under."""
        return frozenset(
            {f"exam:{self.exam_id}", f"position:{self.position}", f"package:{self.package_id}"}
        )

    def check_current(self, now: datetime) -> None:
        """Refuse a manifest used before its issue or after its expiry."""
        if now < self.issued_at:
            raise NotYetValidError(
                N_("manifest of {package_id} is issued at {issued_at}, later than now ({now})"),
                package_id=self.package_id,
                issued_at=format_time(self.issued_at),
                now=format_time(now),
            )
        if now > self.expires_at:
            raise ExpiredError(
                N_("manifest of {package_id} expired at {expires_at}"),
                package_id=self.package_id,
                expires_at=format_time(self.expires_at),
            )

    def facts(self) -> dict[str, object]:
        """A JSON-ready view (for --json output and reports)."""
        return {
            "package_id": self.package_id,
            "exam_id": self.exam_id,
            "session": self.session,
            "position": self.position,
            "paper_id": self.paper_id,
            "paper_commitment": self.paper_commitment.hex(),
            "copy_count": self.copy_count,
            "bag_size": self.bag_size,
            "seal_serials": list(self.seal_serials),
            "destination": {"site": self.site, "room": self.room},
            "window": {
                "opens_at": format_time(self.opens_at),
                "closes_at": format_time(self.closes_at),
            },
            "route": [{"person": s.person, "place": s.place} for s in self.route],
            "classification": self.classification.slug,
            "issued_at": format_time(self.issued_at),
            "expires_at": format_time(self.expires_at),
        }


def check_sealer(
    trust: TrustStore, key_id: str, manifest: Manifest, *, now: datetime
) -> Certificate:
    """The sealer's certificate if ``key_id`` may seal ``manifest``; raises the refusal otherwise.

    ``now`` is when the check happens: it matters only for revocations for key compromise.
    """
    cert = trust.standing_at(key_id, manifest.issued_at)
    rev = trust.revocations.get(key_id)
    if (
        rev is not None
        and rev.reason is RevocationReason.KEY_COMPROMISE
        and rev.effective_at <= now
    ):
        raise RevokedError(
            N_(
                "sealer key of {who} was revoked for compromise on "
                "{effective_at}; nothing it signed is trusted"
            ),
            who=cert.describe(),
            effective_at=format_time(rev.effective_at),
        )
    if not cert.roles & SEALING_ROLES:
        raise RoleError(
            N_("{who} holds no sealing role (proposer or printer)"), who=cert.describe()
        )
    recused = cert.recusals & manifest.scope
    if recused:
        raise RecusedError(
            N_("{who} is recused from {recused}"),
            who=cert.describe(),
            recused=", ".join(sorted(recused)),
        )
    return cert


def epoch(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
