"""Identities the authority issues: roles, the authority, certificates and revocations.

Rules:
- Certificates, revocations and the authority statement are DSSE envelopes signed by the
  authority's root key; the root key signs nothing else.
- A certificate binds one Ed25519 signing key and one X25519 encryption key to a person
  (``subject``, stable across key rotation), their roles, a validity window and recusals.
- A certificate's id is its signing key id. Rotation issues a new certificate whose
  ``supersedes`` names the old key id; the old key stays valid for what it signed before.
- Recusals are scope tags (``exam:<id>``, ``position:<id>``, ``package:<id>``); a person is
  withdrawn from any statement whose scope contains one of them.
- Assignments (``scopes``) are scope tags too (``site:<name>``, ``exam:<id>``): what a person's
  reads are limited to (a custodian's site, a chief examiner's exam; ``custody/access.py``).
  They grant no signing power. A certificate without assignments omits the field, so every
  certificate issued before it existed keeps its exact bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from crypto.encoding import Fields, b64encode, canonical_json, format_time, parse_json_object
from crypto.errors import N_, FormatError, Phrase, Said, Words
from crypto.signing import ED25519, X25519, VerifyKey, key_id

CERTIFICATE_TYPE = "application/vnd.custody.certificate.v1+json"
REVOCATION_TYPE = "application/vnd.custody.revocation.v1+json"
AUTHORITY_TYPE = "application/vnd.custody.authority.v1+json"
TRUST_BUNDLE_TYPE = "application/vnd.custody.trust-bundle.v1+json"


class Role(StrEnum):
    PROPOSER = "proposer"
    PRINTER = "printer"
    COURIER = "courier"
    CUSTODIAN = "custodian"
    CHIEF_EXAMINER = "chief_examiner"
    SUPERVISOR = "supervisor"
    DESTRUCTION_OFFICER = "destruction_officer"
    SECRECY_OFFICER = "secrecy_officer"
    AUDITOR = "auditor"


# The roles as message ids: a message naming a person's roles shows them in the reader's
# language (``Certificate.describe``); these marks put them in the catalogue.
ROLE_WORDS = (
    N_("proposer"),
    N_("printer"),
    N_("courier"),
    N_("custodian"),
    N_("chief_examiner"),
    N_("supervisor"),
    N_("destruction_officer"),
    N_("secrecy_officer"),
    N_("auditor"),
)
assert set(ROLE_WORDS) == {r.value for r in Role}


def parse_roles(values: tuple[str, ...], *, what: str) -> frozenset[Role]:
    roles = set()
    for value in values:
        try:
            roles.add(Role(value))
        except ValueError as e:
            known = ", ".join(r.value for r in Role)
            raise FormatError(
                N_("{what}: unknown role {value!r} (known: {known})"),
                what=what,
                value=value,
                known=known,
            ) from e
    return frozenset(roles)


class RevocationReason(StrEnum):
    KEY_COMPROMISE = "key_compromise"
    SUPERSEDED = "superseded"
    LEFT_POST = "left_post"
    CONFLICT_OF_INTEREST = "conflict_of_interest"
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class Authority:
    """The exam authority's public facts; its id is its root key id."""

    name: str
    root_key: VerifyKey
    log_key: VerifyKey
    system_key: VerifyKey
    log_origin: str
    created_at: datetime

    @property
    def id(self) -> str:
        return self.root_key.key_id

    def payload(self) -> bytes:
        return canonical_json(
            {
                "type": "custody.authority.v1",
                "name": self.name,
                "root_key": b64encode(self.root_key.raw),
                "log_key": b64encode(self.log_key.raw),
                "system_key": b64encode(self.system_key.raw),
                "log_origin": self.log_origin,
                "created_at": format_time(self.created_at),
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> Authority:
        f = Fields(parse_json_object(payload, what=Phrase("authority")), what=Phrase("authority"))
        f.expect("type", "custody.authority.v1")
        return cls(
            name=f.text("name"),
            root_key=VerifyKey(f.blob("root_key")),
            log_key=VerifyKey(f.blob("log_key")),
            system_key=VerifyKey(f.blob("system_key")),
            log_origin=f.text("log_origin"),
            created_at=f.time("created_at"),
        )


@dataclass(frozen=True)
class Certificate:
    authority_id: str
    subject: str
    name: str
    organisation: str
    roles: frozenset[Role]
    signing_key: VerifyKey
    encryption_key: bytes
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    recusals: frozenset[str] = frozenset()
    supersedes: str | None = None
    scopes: frozenset[str] = frozenset()
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.encryption_key) != 32:
            raise FormatError(N_("certificate: an X25519 public key is 32 bytes"))
        if self.not_after <= self.not_before:
            raise FormatError(N_("certificate: not_after must be later than not_before"))
        if not self.roles:
            raise FormatError(N_("certificate: at least one role is required"))
        object.__setattr__(self, "key_id", self.signing_key.key_id)

    @property
    def encryption_key_id(self) -> str:
        return key_id(X25519, self.encryption_key)

    def payload(self) -> bytes:
        body: dict[str, object] = {
            "type": "custody.certificate.v1",
            "authority": self.authority_id,
            "subject": self.subject,
            "name": self.name,
            "organisation": self.organisation,
            "roles": sorted(r.value for r in self.roles),
            "signing_key": {"alg": ED25519, "key": b64encode(self.signing_key.raw)},
            "encryption_key": {"alg": X25519, "key": b64encode(self.encryption_key)},
            "not_before": format_time(self.not_before),
            "not_after": format_time(self.not_after),
            "issued_at": format_time(self.issued_at),
            "recusals": sorted(self.recusals),
            "supersedes": self.supersedes,
        }
        if self.scopes:  # absent when empty: older certificates keep their bytes
            body["scopes"] = sorted(self.scopes)
        return canonical_json(body)

    @classmethod
    def from_payload(cls, payload: bytes) -> Certificate:
        what = "certificate"
        f = Fields(parse_json_object(payload, what=what), what=what)
        f.expect("type", "custody.certificate.v1")
        sk = f.sub("signing_key")
        sk.expect("alg", ED25519)
        ek = f.sub("encryption_key")
        ek.expect("alg", X25519)
        return cls(
            authority_id=f.text("authority"),
            subject=f.text("subject"),
            name=f.text("name"),
            organisation=f.text("organisation"),
            roles=parse_roles(f.texts("roles"), what=what),
            signing_key=VerifyKey(sk.blob("key")),
            encryption_key=ek.blob("key"),
            not_before=f.time("not_before"),
            not_after=f.time("not_after"),
            issued_at=f.time("issued_at"),
            recusals=frozenset(f.texts("recusals")),
            supersedes=f.opt_text("supersedes"),
            scopes=frozenset(f.texts("scopes")) if "scopes" in f.obj else frozenset(),
        )

    def describe(self) -> str:
        """Who holds the key, for messages (``Words``: in the reader's language where shown)."""
        return Words.of(
            Said(
                N_("{name} ({subject}, {roles}, key {key})"),
                {
                    "name": self.name,
                    "subject": self.subject,
                    "roles": Words.joined(sorted(self.roles), ","),
                    "key": self.key_id[:16],
                },
            )
        )


@dataclass(frozen=True)
class Revocation:
    authority_id: str
    key_id: str
    effective_at: datetime
    reason: RevocationReason
    issued_at: datetime
    note: str = ""

    def payload(self) -> bytes:
        return canonical_json(
            {
                "type": "custody.revocation.v1",
                "authority": self.authority_id,
                "key_id": self.key_id,
                "effective_at": format_time(self.effective_at),
                "reason": self.reason.value,
                "issued_at": format_time(self.issued_at),
                "note": self.note,
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> Revocation:
        what = "revocation"
        f = Fields(parse_json_object(payload, what=what), what=what)
        f.expect("type", "custody.revocation.v1")
        try:
            reason = RevocationReason(f.text("reason"))
        except ValueError as e:
            raise FormatError(
                N_("revocation: unknown reason {text!r}"), text=f.text("reason")
            ) from e
        return cls(
            authority_id=f.text("authority"),
            key_id=f.text("key_id"),
            effective_at=f.time("effective_at"),
            reason=reason,
            issued_at=f.time("issued_at"),
            note=f.text("note"),
        )
