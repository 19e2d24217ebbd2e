"""Who may read what: the one access policy every read route asks (pure).

A route never decides by itself: it builds the facts of what was asked for (a package, a log
entry, the trust document...) and asks one ``may_...`` function, or ``require`` for a refusal
with the right class. Every function is pure over a ``Principal`` (or ``None``: no login) and
frozen facts, so the table of ``tests/api/test_access_table.py`` exercises exactly this.

Rules:
- Without a login (``None``): the checkpoints, the authority's and the log's public keys
  (``/healthz``), label verification (text or photo), and logging in. Nothing about people,
  packages, incidents or log entries.
- Anyone logged in reads the packages whose route, holder or sealer names them, and Merkle
  proofs (hashes only).
- courier: exactly that (the packages routed through them).
- custodian: also every package whose destination site is one of their ``site:``
  assignments (certificate ``scopes``): two custodians of one site both see its packages.
- chief examiner and supervisor: also every package of an exam in their ``exam:``
  assignments.
- secrecy officer: every package, incident, log entry and person of the authority, and the
  access log. One authority is one province's exam centre (one log per authority), so "their
  province" is the whole authority.
- auditor: everything read-only, the export and the access log.
- What people wrote into an incident (act notes, a public report's text and contact) is
  sealed to the secrecy officers' keys: only a secrecy officer opens it (``may_open_sealed``),
  and the opening is on the access log like any read of personal data.
- A log entry is readable by whoever may read one of its packages; an entry that names no
  package (incidents, keys, leak reports) only by secrecy officers and auditors.
- The trust document: every certificate in full (organisation, recusals) for secrecy officers
  and auditors; every other login gets the directory (display name, roles, key, validity).
- Recusal does not hide anything already readable: it withdraws a person from signing, and a
  recused courier is still named on no route of that exam.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from custody.errors import N_, ForbiddenError, LoginRequiredError, Words
from custody.events import Event
from keys.model import Certificate, Role

ALL_SEEING = frozenset({Role.SECRECY_OFFICER, Role.AUDITOR})
SITE_SCOPED = frozenset({Role.CUSTODIAN})
EXAM_SCOPED = frozenset({Role.CHIEF_EXAMINER, Role.SUPERVISOR})


@dataclass(frozen=True)
class Principal:
    """A logged-in person, as their certificate says at the moment of the request."""

    subject: str
    key_id: str
    name: str
    roles: frozenset[Role]
    scopes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, cert: Certificate) -> Principal:
        return cls(cert.subject, cert.key_id, cert.name, cert.roles, cert.scopes)

    def assigned(self, kind: str) -> frozenset[str]:
        """The values of this person's assignments of one kind (``site``, ``exam``)."""
        prefix = kind + ":"
        return frozenset(s[len(prefix) :] for s in self.scopes if s.startswith(prefix))

    @property
    def sees_all(self) -> bool:
        return bool(self.roles & ALL_SEEING)


@dataclass(frozen=True)
class PackageFacts:
    """What the policy needs of a package: its exam, destination site and the people on it."""

    package_id: str
    exam: str
    site: str
    people: frozenset[str]  # its route, its holder, its sealer

    @classmethod
    def build(cls, package_id: str, *, exam: str, site: str, people: Iterable[str]) -> PackageFacts:
        return cls(package_id, exam, site, frozenset(p for p in people if p))


def package_objects(facts: PackageFacts) -> list[str]:
    """What a read of a package names on the access log: it and the people on it."""
    return [f"package:{facts.package_id}", *(f"person:{p}" for p in sorted(facts.people))]


def seal_facts(seal: Event) -> tuple[str, str, tuple[str, ...]]:
    """A package's exam, destination site and sealers, from its first event (its seal)."""
    body = seal.body
    dest = body.get("destination")
    site = str(dest.get("site", "")) if isinstance(dest, dict) else ""
    return str(body.get("exam", "")), site, tuple(seal.actors.values())


class Read(StrEnum):
    """What can be read, for messages and the access log."""

    PACKAGE = "package"
    ENTRY = "entry"
    PROOF = "proof"
    TRUST = "trust"
    INCIDENTS = "incidents"
    ACCESS_LOG = "access_log"
    EXPORT = "export"
    SEALED = "sealed"


def may_read_package(p: Principal | None, pkg: PackageFacts) -> bool:
    if p is None:
        return False
    if p.sees_all or p.subject in pkg.people:
        return True
    if p.roles & SITE_SCOPED and pkg.site in p.assigned("site"):
        return True
    return bool(p.roles & EXAM_SCOPED and pkg.exam in p.assigned("exam"))


def may_read_entry(p: Principal | None, packages: Iterable[PackageFacts]) -> bool:
    """A log entry (its envelope) that touches ``packages`` (empty: no package named)."""
    if p is None:
        return False
    if p.sees_all:
        return True
    return any(may_read_package(p, pkg) for pkg in packages)


def may_read_proofs(p: Principal | None) -> bool:
    return p is not None


def may_read_people(p: Principal | None) -> bool:
    """Every certificate in full: organisations and recusal lists."""
    return p is not None and p.sees_all


def may_read_directory(p: Principal | None) -> bool:
    """The least a device needs about people: display name, roles, key, validity."""
    return p is not None


def may_read_incidents(p: Principal | None) -> bool:
    return p is not None and p.sees_all


def may_read_custody_reports(p: Principal | None) -> bool:
    """A custody report (every package of a scope, its holders and signers by name): secrecy
    officers (their province is the authority) and auditors."""
    return p is not None and p.sees_all


def may_read_access_log(p: Principal | None) -> bool:
    return p is not None and p.sees_all


def may_export(p: Principal | None) -> bool:
    return p is not None and Role.AUDITOR in p.roles


def may_propose(p: Principal | None) -> bool:
    """A paper proposed from the proposition page, and the certificates of those it may be
    sealed to (printers, opening officers, secrecy officers): proposers only."""
    return p is not None and Role.PROPOSER in p.roles


def may_seal(p: Principal | None) -> bool:
    """A package sealed from the proposition page (and the exams' policies it needs): the
    roles a label's sealer must hold, proposers and printers."""
    return p is not None and bool(p.roles & {Role.PROPOSER, Role.PRINTER})


def may_read_papers(p: Principal | None) -> bool:
    """The list of papers: those who see everything all of them, a proposer their own."""
    return p is not None and (p.sees_all or Role.PROPOSER in p.roles)


def may_open_sealed(p: Principal | None) -> bool:
    """What people wrote into an incident (notes, a public report's text and contact) is
    sealed to the secrecy officers' keys; only a secrecy officer's read of it is answered."""
    return p is not None and Role.SECRECY_OFFICER in p.roles


def require(allowed: bool, p: Principal | None, what: str) -> Principal:
    """The principal if ``allowed``; otherwise ``LoginRequiredError`` without a login and
    ``ForbiddenError`` with one (its message names what was refused, never whose it is)."""
    if p is None:
        raise LoginRequiredError(
            N_("reading {what} needs a login"),
            hint=N_("log in: POST /v1/login (see docs/formats.md)"),
            what=what,
        )
    if not allowed:
        roles = Words.joined(sorted(p.roles), ",")
        raise ForbiddenError(
            N_("{what} is outside what {subject} ({roles}) may read"),
            what=what,
            subject=p.subject,
            roles=roles,
        )
    return p


__all__ = [
    "PackageFacts",
    "Principal",
    "Read",
    "may_export",
    "may_open_sealed",
    "may_propose",
    "may_read_access_log",
    "may_read_directory",
    "may_read_entry",
    "may_read_incidents",
    "may_read_package",
    "may_read_papers",
    "may_read_people",
    "may_read_proofs",
    "require",
]
