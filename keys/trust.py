"""The trust store: an authority, the certificates it issued and its revocations.

Rules:
- Every certificate and revocation is accepted only as a DSSE envelope that verifies under the
  authority's root key and names that authority; anything else raises ``IssuerError``.
- A key's standing is judged at a given time: inside its certificate's window and not revoked
  with an effective time at or before that moment.
- A trust bundle (what an offline device carries) is the authority statement, certificates and
  revocations, signed as a whole by the root key; a verifier may pin the root key id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from crypto.dsse import Envelope, parse_envelope, sign_envelope, verify_signatures
from crypto.encoding import (
    Fields,
    canonical_json,
    distinct_prefixes,
    format_time,
    parse_json_object,
)
from crypto.errors import (
    N_,
    ExpiredError,
    FormatError,
    IssuerError,
    NotYetValidError,
    Phrase,
    RevokedError,
    SignatureError,
    UnknownSignerError,
)
from crypto.signing import SigningKey, VerifyKey
from keys.model import (
    AUTHORITY_TYPE,
    CERTIFICATE_TYPE,
    REVOCATION_TYPE,
    TRUST_BUNDLE_TYPE,
    Authority,
    Certificate,
    Revocation,
    RevocationReason,
)


def _root_signed(env: Envelope, authority_root: VerifyKey, expected_type: str, what: str) -> bytes:
    if env.payload_type != expected_type:
        raise FormatError(
            N_("{what}: payload type {payload_type!r}, expected {expected_type!r}"),
            what=what,
            payload_type=env.payload_type,
            expected_type=expected_type,
        )
    check = verify_signatures(env, {authority_root.key_id: authority_root})
    if authority_root.key_id not in check.signed_by or check.unmatched:
        raise IssuerError(N_("{what} is not signed by this authority's root key"), what=what)
    return check.payload


def verify_authority(env: Envelope, pinned_root_id: str | None = None) -> Authority:
    """An authority statement is self-signed by its root key; pin the id to trust it."""
    if env.payload_type != AUTHORITY_TYPE:
        raise FormatError(
            N_("authority: payload type {payload_type!r}"), payload_type=env.payload_type
        )
    unverified = Authority.from_payload(env.payload)
    if pinned_root_id is not None and unverified.id != pinned_root_id:
        found, pinned = distinct_prefixes(unverified.id, pinned_root_id)
        raise IssuerError(
            N_("authority root key {found} is not the pinned {pinned}"), found=found, pinned=pinned
        )
    payload = _root_signed(env, unverified.root_key, AUTHORITY_TYPE, "authority statement")
    return Authority.from_payload(payload)


def verify_certificate(env: Envelope, authority: Authority) -> Certificate:
    payload = _root_signed(env, authority.root_key, CERTIFICATE_TYPE, "certificate")
    cert = Certificate.from_payload(payload)
    if cert.authority_id != authority.id:
        raise IssuerError(
            N_("certificate for {subject} names another authority"), subject=cert.subject
        )
    return cert


def verify_revocation(env: Envelope, authority: Authority) -> Revocation:
    payload = _root_signed(env, authority.root_key, REVOCATION_TYPE, "revocation")
    rev = Revocation.from_payload(payload)
    if rev.authority_id != authority.id:
        raise IssuerError(N_("revocation names another authority"))
    return rev


def issue_authority(authority: Authority, root: SigningKey) -> Envelope:
    return sign_envelope(AUTHORITY_TYPE, authority.payload(), [root])


def issue_certificate(cert: Certificate, root: SigningKey) -> Envelope:
    return sign_envelope(CERTIFICATE_TYPE, cert.payload(), [root])


def issue_revocation(rev: Revocation, root: SigningKey) -> Envelope:
    return sign_envelope(REVOCATION_TYPE, rev.payload(), [root])


@dataclass(frozen=True)
class Standing:
    """A key's certificate and whether it may sign at a moment."""

    certificate: Certificate
    revocation: Revocation | None


@dataclass(frozen=True)
class TrustStore:
    authority: Authority
    authority_envelope: Envelope
    certificates: Mapping[str, Certificate]
    revocations: Mapping[str, Revocation]
    certificate_envelopes: tuple[Envelope, ...] = ()
    revocation_envelopes: tuple[Envelope, ...] = ()
    signing_keys: Mapping[str, VerifyKey] = field(init=False)

    def __post_init__(self) -> None:
        # Every key that may sign a statement: certified people, and the authority's system key
        # (which signs incidents; it has no certificate and fills no person's slot).
        keys = {kid: cert.signing_key for kid, cert in self.certificates.items()}
        keys[self.authority.system_key.key_id] = self.authority.system_key
        object.__setattr__(self, "signing_keys", MappingProxyType(keys))

    @classmethod
    def build(
        cls,
        authority_envelope: Envelope,
        certificate_envelopes: Iterable[Envelope],
        revocation_envelopes: Iterable[Envelope],
        *,
        pinned_root_id: str | None = None,
    ) -> TrustStore:
        authority = verify_authority(authority_envelope, pinned_root_id)
        cert_envs = tuple(certificate_envelopes)
        rev_envs = tuple(revocation_envelopes)
        certs: dict[str, Certificate] = {}
        for env in cert_envs:
            cert = verify_certificate(env, authority)
            certs[cert.key_id] = cert
        revs: dict[str, Revocation] = {}
        for env in rev_envs:
            rev = verify_revocation(env, authority)
            earlier = revs.get(rev.key_id)
            if earlier is None or rev.effective_at < earlier.effective_at:
                revs[rev.key_id] = rev
        return cls(
            authority,
            authority_envelope,
            MappingProxyType(certs),
            MappingProxyType(revs),
            cert_envs,
            rev_envs,
        )

    def certificate(self, kid: str) -> Certificate:
        try:
            return self.certificates[kid]
        except KeyError:
            raise UnknownSignerError(
                N_("no certificate of this authority binds key {kid}"), kid=kid[:16]
            ) from None

    def standing_at(
        self, kid: str, at: datetime, *, received: datetime | None = None
    ) -> Certificate:
        """The key's certificate if it may sign at ``at``; raises the specific refusal otherwise.

        ``received`` is when the log received the statement (its own clock): a key revoked for
        compromise is refused for every statement received once the revocation was issued,
        whatever earlier time the statement claims (a thief dates nothing honestly)."""
        cert = self.certificate(kid)
        if at < cert.not_before:
            raise NotYetValidError(
                N_("certificate of {who} is not valid before {not_before}"),
                who=cert.describe(),
                not_before=format_time(cert.not_before),
            )
        if at > cert.not_after:
            raise ExpiredError(
                N_("certificate of {who} expired at {not_after}"),
                who=cert.describe(),
                not_after=format_time(cert.not_after),
            )
        rev = self.revocations.get(kid)
        if (
            rev is not None
            and rev.reason == RevocationReason.KEY_COMPROMISE
            and received is not None
            and rev.issued_at <= received
        ):
            raise RevokedError(
                N_(
                    "key of {who} was revoked for compromise (issued "
                    "{issued_at}): nothing it signs is accepted after that, "
                    "whatever time the statement claims"
                ),
                who=cert.describe(),
                issued_at=format_time(rev.issued_at),
            )
        if rev is not None and rev.effective_at <= at:
            raise RevokedError(
                N_("key of {who} was revoked ({reason}) effective {effective_at}"),
                who=cert.describe(),
                reason=rev.reason.value,
                effective_at=format_time(rev.effective_at),
            )
        return cert

    def certificates_of(self, subject: str) -> list[Certificate]:
        return sorted(
            (c for c in self.certificates.values() if c.subject == subject),
            key=lambda c: c.issued_at,
        )

    def current_certificate(self, subject: str, at: datetime) -> Certificate:
        """The newest certificate of a person that may sign at ``at``."""
        problems = []
        for cert in reversed(self.certificates_of(subject)):
            try:
                return self.standing_at(cert.key_id, at)
            except (ExpiredError, RevokedError) as e:
                problems.append(e)
        if problems:
            raise problems[0]
        raise UnknownSignerError(
            N_("nobody called {subject!r} is enrolled with this authority"), subject=subject
        )

    def to_bundle(self, root: SigningKey, issued_at: datetime) -> Envelope:
        if root.key_id != self.authority.id:
            raise IssuerError(N_("only the authority's root key signs its trust bundle"))
        payload = canonical_json(
            {
                "type": "custody.trust-bundle.v1",
                "authority": self.authority_envelope.to_json_obj(),
                "certificates": [e.to_json_obj() for e in self.certificate_envelopes],
                "revocations": [e.to_json_obj() for e in self.revocation_envelopes],
                "issued_at": format_time(issued_at),
            }
        )
        return sign_envelope(TRUST_BUNDLE_TYPE, payload, [root])


def load_trust_bundle(data: bytes, *, pinned_root_id: str | None = None) -> TrustStore:
    """Parse and verify a trust bundle file: the root key signs the whole and every part."""
    env = parse_envelope(data, what=Phrase("trust bundle"))
    if env.payload_type != TRUST_BUNDLE_TYPE:
        raise FormatError(
            N_("trust bundle: payload type {payload_type!r}"), payload_type=env.payload_type
        )
    f = Fields(
        parse_json_object(env.payload, what=Phrase("trust bundle")), what=Phrase("trust bundle")
    )
    f.expect("type", "custody.trust-bundle.v1")
    auth_env = parse_envelope(f.sub("authority").obj, what=Phrase("trust bundle authority"))
    authority = verify_authority(auth_env, pinned_root_id)
    try:
        _root_signed(env, authority.root_key, TRUST_BUNDLE_TYPE, "trust bundle")
    except IssuerError as e:
        raise SignatureError(N_("trust bundle signature does not verify under its root key")) from e
    certs = [
        parse_envelope(c, what=Phrase("trust bundle certificate")) for c in f.items("certificates")
    ]
    revs = [
        parse_envelope(r, what=Phrase("trust bundle revocation")) for r in f.items("revocations")
    ]
    return TrustStore.build(auth_env, certs, revs, pinned_root_id=authority.id)
