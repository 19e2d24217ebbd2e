"""Identity services the CLI and the API share: create an authority, enrol, rotate, revoke.

Every function takes the time as an argument and stores only signed envelopes; the trust store
is rebuilt from those envelopes (and so re-verified) on every load.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from crypto.dsse import parse_envelope
from crypto.encoding import Fields, parse_json_object
from crypto.sealing import KdfParams
from crypto.signing import VerifyKey, check_ed25519_public_key, check_x25519_public_key
from custody.errors import (
    N_,
    ConflictError,
    FormatError,
    NotFoundError,
    Phrase,
    UsageError,
)
from custody.home import Home
from custody.store import identities
from custody.store.identities import NewCertificate, NewRevocation
from keys.keyfile import KeyPair, seal_keypair, write_new_file
from keys.model import (
    CERTIFICATE_TYPE,
    REVOCATION_TYPE,
    TRUST_BUNDLE_TYPE,
    Authority,
    Certificate,
    Revocation,
    RevocationReason,
    Role,
)
from keys.trust import (
    TrustStore,
    issue_authority,
    issue_certificate,
    issue_revocation,
    load_trust_bundle,
    verify_certificate,
    verify_revocation,
)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _taken_back_on_failure(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``init_authority`` takes back what it wrote when it fails (the three key files, the
    config, a new SQLite database, the folders it made), so the same command runs again
    instead of finding half a home; what existed before is never touched."""

    @functools.wraps(fn)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        home = args[0] if args else kwargs["home"]
        assert isinstance(home, Home)
        made_home = not home.path.exists()
        before = set(home.path.iterdir()) if home.path.is_dir() else set()
        ours = [home.authority_key_path(w) for w in ("root", "log", "system")]
        ours.append(home.config_path)
        existed = {p for p in ours if p.exists()}
        try:
            return fn(*args, **kwargs)
        except BaseException:
            engine = home.__dict__.pop("engine", None)
            if engine is not None:
                engine.dispose()
            for path in ours:
                if path not in existed:
                    path.unlink(missing_ok=True)
            if home.path.is_dir():
                for path in set(home.path.iterdir()) - before:
                    if path.is_file() and path.name.startswith("custody.db"):
                        path.unlink(missing_ok=True)
                keys = home.path / "authority"
                if keys not in before and keys.is_dir() and not any(keys.iterdir()):
                    keys.rmdir()
                if made_home and not any(home.path.iterdir()):
                    home.path.rmdir()
            raise

    return guarded


@dataclass(frozen=True)
class Enrolment:
    certificate: Certificate
    key_file: Path | None


@_taken_back_on_failure
def init_authority(
    home: Home,
    *,
    name: str,
    passphrase: str,
    now: datetime,
    database_url: str | None = None,
    kdf: KdfParams | None = None,
    rehearsal: bool = False,
    time_zone: str | None = None,
    log_passphrase: str | None = None,
    system_passphrase: str | None = None,
    given_keys: tuple[KeyPair, KeyPair, KeyPair] | None = None,
) -> Authority:
    """Create the authority: its root key beside the home (for offline media), its log and
    system keys inside it, each sealed under its own passphrase (``passphrase`` seals the
    root). Only a rehearsal home may use one passphrase for all three.

    ``given_keys`` (root, log, system) replaces fresh keys, for a rehearsal home only: the
    conformance vectors' season is made from published seeds (docs/vectors/season.json)."""
    if given_keys is not None and not rehearsal:
        raise UsageError(N_("an authority made from given keys is a rehearsal home only"))
    secrets = {
        "root": passphrase,
        "log": log_passphrase or passphrase,
        "system": system_passphrase or passphrase,
    }
    if not rehearsal and len(set(secrets.values())) != len(secrets):
        raise UsageError(
            N_(
                "each authority key needs its own passphrase: root, log and "
                "system (whoever runs the service must not be able to issue "
                "certificates)"
            ),
            hint=N_(
                "set CUSTODY_ROOT_PASSPHRASE, CUSTODY_LOG_PASSPHRASE and "
                "CUSTODY_SYSTEM_PASSPHRASE to three different passphrases"
            ),
        )
    if home.root_key_path.resolve().is_relative_to(home.path.resolve()):
        raise UsageError(
            N_("the root key must not be written inside the serving home ({root_key_path})"),
            root_key_path=home.root_key_path,
        )
    if home.root_key_path.exists():
        raise ConflictError(
            N_("{root_key_path} already exists; refusing to overwrite a root key"),
            root_key_path=home.root_key_path,
        )
    if home.exists():
        raise ConflictError(
            N_("{path} already holds an authority; refusing to mix two"), path=home.path
        )
    if not name.strip():
        raise UsageError(N_("the authority needs a name"))
    home.make_private()
    if given_keys is not None:
        root, log, system = given_keys
    else:
        root = KeyPair.generate("authority root", with_encryption=False)
        log = KeyPair.generate("authority log", with_encryption=False)
        system = KeyPair.generate("authority system", with_encryption=False)
    authority = Authority(
        name=name,
        root_key=root.signing.verify_key,
        log_key=log.signing.verify_key,
        system_key=system.signing.verify_key,
        log_origin=f"custody/{root.signing.key_id[:16]}",
        created_at=now,
    )
    for which, pair in (("root", root), ("log", log), ("system", system)):
        sealed = seal_keypair(pair, secrets[which], kdf=kdf or KdfParams.fresh())
        write_new_file(home.authority_key_path(which), sealed)
    home.write_config(authority.id, database_url, rehearsal=rehearsal, time_zone=time_zone)
    identities.add_authority(home.engine, authority, issue_authority(authority, root.signing))
    return authority


def load_trust(home: Home) -> TrustStore:
    trust = identities.trust(home.engine, pinned_root_id=home.config.text("authority_id"))
    if trust is None:
        raise NotFoundError(N_("no authority in the database of {path}"), path=home.path)
    return trust


@dataclass(frozen=True)
class Imported:
    certificates: tuple[str, ...]  # key ids newly stored
    revocations: tuple[str, ...]
    already: int  # items the home held already


def import_signed(home: Home, data: bytes) -> Imported:
    """Store root-signed certificates and revocations issued offline (a trust document, a
    trust bundle's content, or one envelope), after checking every one against this home's
    authority: all are stored, or none."""
    trust = load_trust(home)
    f = parse_json_object(data, what=Phrase("import file"))
    if f.get("payloadType") == TRUST_BUNDLE_TYPE:  # a trust bundle the offline side exported
        bundle = load_trust_bundle(data, pinned_root_id=trust.authority.id)
        envelopes = [*bundle.certificate_envelopes, *bundle.revocation_envelopes]
    elif "payloadType" in f:
        envelopes = [parse_envelope(f, what=Phrase("import file"))]
    else:
        doc = Fields(f, what=Phrase("import file"))
        envelopes = [
            parse_envelope(c, what=Phrase("certificate")) for c in doc.items("certificates")
        ]
        envelopes += [
            parse_envelope(r, what=Phrase("revocation")) for r in doc.items("revocations")
        ]
    certs = [e for e in envelopes if e.payload_type == CERTIFICATE_TYPE]
    revs = [e for e in envelopes if e.payload_type == REVOCATION_TYPE]
    if len(certs) + len(revs) != len(envelopes):
        raise FormatError(N_("import file: only certificates and revocations can be imported"))
    # the same checks as loading: root signature, authority, consistency with what is held
    TrustStore.build(
        trust.authority_envelope,
        [*trust.certificate_envelopes, *certs],
        [*trust.revocation_envelopes, *revs],
        pinned_root_id=trust.authority.id,
    )
    held_certs = {e.to_bytes() for e in trust.certificate_envelopes}
    held_revs = {e.to_bytes() for e in trust.revocation_envelopes}
    new_certs = [
        NewCertificate(verify_certificate(e, trust.authority), e)
        for e in certs
        if e.to_bytes() not in held_certs
    ]
    new_revs = [
        NewRevocation(verify_revocation(e, trust.authority), e)
        for e in revs
        if e.to_bytes() not in held_revs
    ]
    if not identities.add_records(home.engine, [*new_certs, *new_revs]):
        raise ConflictError(N_("a certificate for one of these keys is already held"))
    if new_certs or new_revs:
        home.bump_trust_version()
    return Imported(
        tuple(c.certificate.key_id for c in new_certs),
        tuple(r.revocation.key_id for r in new_revs),
        len(envelopes) - len(new_certs) - len(new_revs),
    )


def _store_trust_rows(
    home: Home,
    rows: list[NewCertificate | NewRevocation],
    *,
    key_file: tuple[Path, bytes] | None = None,
) -> None:
    """Store certificates and revocations in one transaction, with the key file they go with:
    all or nothing. The key file is written in full first (temporary name, fsync, link into
    place: never a partial file, never over another), then the rows are committed; if the
    commit fails the file is removed, so no stored byte, in the database or on disk, has
    changed. The file goes first because the other order could lose it after the commit: a
    certified (and, on rotation, superseding) key that nobody holds."""
    if key_file is not None:
        write_new_file(*key_file)
    try:
        # in this order: the database sees the first write first
        if not identities.add_records(home.engine, rows):
            first = rows[0]
            if isinstance(first, NewCertificate):
                key_id, done = first.certificate.key_id, Phrase("certified")
            else:
                key_id, done = first.revocation.key_id, Phrase("revoked")
            if len(rows) > 1:  # a rotation: another writer certified or revoked first
                raise ConflictError(
                    N_("key {key_id} or the key it supersedes changed meanwhile"),
                    hint=N_("list the keys (`custody keys list`) and try again"),
                    key_id=key_id[:16],
                )
            raise ConflictError(N_("key {key_id} is already {done}"), key_id=key_id[:16], done=done)
    except BaseException:
        if key_file is not None:
            key_file[0].unlink(missing_ok=True)
        raise
    home.bump_trust_version()


@dataclass(frozen=True)
class _Certified:
    """A certificate issued but not yet stored, with its record and the key file to write."""

    certificate: Certificate
    row: NewCertificate
    key_file: tuple[Path, bytes] | None  # (where, sealed bytes); None for device-made keys


def _stored(certify: Callable[_P, _Certified]) -> Callable[_P, Enrolment]:
    """``certify``, then its certificate and key file stored together (``_store_trust_rows``)."""

    @functools.wraps(certify)
    def enrol(*args: _P.args, **kwargs: _P.kwargs) -> Enrolment:
        home = args[0] if args else kwargs["home"]
        assert isinstance(home, Home)
        done = certify(*args, **kwargs)
        _store_trust_rows(home, [done.row], key_file=done.key_file)
        return Enrolment(done.certificate, done.key_file[0] if done.key_file else None)

    return enrol


def _certify(
    home: Home,
    *,
    root_passphrase: str,
    subject: str,
    name: str,
    organisation: str,
    roles: Iterable[Role],
    not_before: datetime,
    not_after: datetime,
    recusals: Iterable[str] = (),
    passphrase: str,
    now: datetime,
    key_out: Path | None = None,
    supersedes: str | None = None,
    scopes: Iterable[str] = (),
    kdf: KdfParams | None = None,
    pair: KeyPair | None = None,
    public_keys: tuple[bytes, bytes] | None = None,
) -> _Certified:
    """Generate a person's keys, seal them under their passphrase, certify the public keys.

    With ``public_keys`` (Ed25519, X25519) the keys were made on the person's own device:
    only the public halves are certified, after the weak-key checks, and no key file is
    written here.
    """
    trust = load_trust(home)
    if not subject or not subject.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(
            N_("person id {subject!r}: use letters, digits, '-', '_' or '.'"), subject=subject
        )
    role_set = frozenset(roles)
    if not role_set:
        raise UsageError(N_("enrolment needs at least one --role"))
    if supersedes is None and trust.certificates_of(subject):
        raise ConflictError(
            N_("{subject} is already enrolled"),
            hint=N_("use `custody keys rotate` for a new key"),
            subject=subject,
        )
    for tag in recusals:
        if ":" not in tag:
            raise UsageError(
                N_("recusal {tag!r} must be a scope tag such as exam:ID or position:ID"), tag=tag
            )
    for tag in scopes:
        kind, _, value = tag.partition(":")
        if kind not in ("site", "exam") or not value or value != value.strip():
            raise UsageError(
                N_("assignment {tag!r} must be a scope tag site:NAME or exam:ID"), tag=tag
            )
    if public_keys is not None:
        signing_raw, encryption_raw = public_keys
    else:
        pair = pair or KeyPair.generate(subject)
        assert pair.encryption is not None
        signing_raw, encryption_raw = pair.signing.verify_key.raw, pair.encryption.public_raw
    check_ed25519_public_key(signing_raw)
    check_x25519_public_key(encryption_raw)
    root = home.authority_key("root", root_passphrase)
    cert = Certificate(
        authority_id=trust.authority.id,
        subject=subject,
        name=name,
        organisation=organisation,
        roles=role_set,
        signing_key=VerifyKey(signing_raw),
        encryption_key=encryption_raw,
        not_before=not_before,
        not_after=not_after,
        issued_at=now,
        recusals=frozenset(recusals),
        supersedes=supersedes,
        scopes=frozenset(scopes),
    )
    envelope = issue_certificate(cert, root.signing)
    row = NewCertificate(cert, envelope)
    key_file: tuple[Path, bytes] | None = None
    if pair is not None:
        out = key_out or home.people_dir() / f"{subject}-{cert.key_id[:8]}.key"
        key_file = (out, seal_keypair(pair, passphrase, kdf=kdf))
    return _Certified(cert, row, key_file)


enroll = _stored(_certify)


def rotate(
    home: Home,
    *,
    root_passphrase: str,
    subject: str,
    passphrase: str,
    now: datetime,
    not_after: datetime | None = None,
    key_out: Path | None = None,
    kdf: KdfParams | None = None,
) -> Enrolment:
    """A new key for the same person and roles; the old key is superseded from ``now``.

    What the old key signed before ``now`` stays valid: the revocation's effective time is
    ``now``, and standing is always judged at a statement's own time.

    In one transaction with the new certificate: the old key's revocation. A failure at
    either leaves neither, and no new key file.
    """
    trust = load_trust(home)
    old = trust.current_certificate(subject, now)
    new = _certify(
        home,
        root_passphrase=root_passphrase,
        subject=subject,
        name=old.name,
        organisation=old.organisation,
        roles=old.roles,
        not_before=now,
        not_after=not_after or old.not_after,
        recusals=old.recusals,
        scopes=old.scopes,
        passphrase=passphrase,
        now=now,
        key_out=key_out,
        supersedes=old.key_id,
        kdf=kdf,
    )
    if old.key_id in trust.revocations:
        raise ConflictError(N_("key {key_id} is already revoked"), key_id=old.key_id[:16])
    root = home.authority_key("root", root_passphrase)
    note = f"superseded by {new.certificate.key_id}"
    rev = Revocation(trust.authority.id, old.key_id, now, RevocationReason.SUPERSEDED, now, note)
    revocation = NewRevocation(rev, issue_revocation(rev, root.signing))
    _store_trust_rows(home, [new.row, revocation], key_file=new.key_file)
    return Enrolment(new.certificate, new.key_file[0] if new.key_file else None)


MIN_KEY_PREFIX = 8  # hex digits: a shorter prefix could name the wrong person's key


def check_key_prefix(key_id: str) -> None:
    """Refuse a key id prefix shorter than ``MIN_KEY_PREFIX`` (before anything is asked)."""
    if len(key_id) < MIN_KEY_PREFIX:
        raise UsageError(
            N_("key id prefix {key_id!r} is shorter than the {min_key_prefix}-character minimum"),
            hint=N_("give at least the first 8 hex digits of the key id (`custody keys list`)"),
            key_id=key_id,
            min_key_prefix=MIN_KEY_PREFIX,
        )


def revoke(
    home: Home,
    *,
    root_passphrase: str,
    key_id: str,
    reason: RevocationReason,
    effective_at: datetime,
    now: datetime,
) -> Revocation:
    """Revoke a key (root-signed). Its ``note`` stays empty: a revocation goes to every device
    (trust bundle, directory), so it carries no person's words (docs/formats.md)."""
    check_key_prefix(key_id)
    trust = load_trust(home)
    matches = [k for k in trust.certificates if k.startswith(key_id)]
    if len(matches) != 1:
        raise NotFoundError(
            N_("no single certified key starts with {key_id!r}")
            if not matches
            else N_("key id prefix {key_id!r} is ambiguous"),
            key_id=key_id,
        )
    full = matches[0]
    if full in trust.revocations:
        raise ConflictError(N_("key {full} is already revoked"), full=full[:16])
    root = home.authority_key("root", root_passphrase)
    rev = Revocation(trust.authority.id, full, effective_at, reason, now)
    _store_trust_rows(home, [NewRevocation(rev, issue_revocation(rev, root.signing))])
    return rev


def export_trust_bundle(home: Home, *, root_passphrase: str, out: Path, now: datetime) -> Path:
    trust = load_trust(home)
    root = home.authority_key("root", root_passphrase)
    bundle = trust.to_bundle(root.signing, now)
    write_new_file(out, bundle.to_bytes() + b"\n", mode=0o644, replace=True)
    return out
