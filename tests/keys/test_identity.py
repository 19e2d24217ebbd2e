"""Certificates, revocations, rotation, trust bundles and the multi-signer rule."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.dsse import parse_envelope, sign_envelope, verify_signatures
from crypto.encoding import canonical_json
from crypto.signing import SigningKey
from custody import identity
from custody.demo import Season, start_season
from custody.errors import (
    ConflictError,
    CustodyError,
    DuplicateSignatureError,
    ExpiredError,
    FormatError,
    IssuerError,
    NotYetValidError,
    PassphraseError,
    RecusedError,
    RevokedError,
    RoleError,
    SignatureError,
    ThresholdError,
    UnknownSignerError,
    UsageError,
    WeakKeyError,
)
from keys.keyfile import KeyPair, open_keypair, read_keyfile, seal_keypair
from keys.model import RevocationReason, Role
from keys.statements import require, verify_statement
from keys.trust import issue_certificate, load_trust_bundle, verify_certificate
from tests.conftest import PASS, T0, fast_kdf

T = "application/vnd.custody.test+json"
HANDOVER = [
    require("releaser", Role.COURIER, person="courier-sun"),
    require("receiver", Role.CUSTODIAN, person="custodian-zhou"),
]
SCOPE = ["exam:SX-2027-INT"]


def handover(season: Season, *signers: str) -> object:
    return season.sign(T, {"kind": "handover"}, *signers)


def test_countersigned_statement_verifies(season: Season) -> None:
    env = season.sign(T, {"k": 1}, "courier-sun", "custodian-zhou")
    check = verify_statement(env, season.trust(), HANDOVER, at=season.now, scope=SCOPE)
    assert check.ok
    assert {s: c.subject for s, c in check.filled.items()} == {
        "releaser": "courier-sun",
        "receiver": "custodian-zhou",
    }


def test_missing_receiver_reports_which_slot(season: Season) -> None:
    from keys.statements import check_statement

    env = season.sign(T, {"k": 1}, "courier-sun")
    check = check_statement(env, season.trust(), HANDOVER, at=season.now, scope=SCOPE)
    assert [r.slot for r in check.missing] == ["receiver"]
    assert set(check.filled) == {"releaser"}
    with pytest.raises(ThresholdError):
        verify_statement(env, season.trust(), HANDOVER, at=season.now, scope=SCOPE)


def test_two_couriers_are_not_releaser_and_receiver(season: Season) -> None:
    """'Any two' signatures are not enough: each slot needs its own role."""
    env = season.sign(T, {"k": 1}, "courier-sun", "courier-li")
    reqs = [require("releaser", Role.COURIER), require("receiver", Role.CUSTODIAN)]
    with pytest.raises(RoleError):
        verify_statement(env, season.trust(), reqs, at=season.now)


def test_one_person_cannot_fill_two_slots(season: Season) -> None:
    env = season.sign(T, {"k": 1}, "courier-sun")
    reqs = [require("a", Role.COURIER), require("b", Role.COURIER)]
    with pytest.raises(ThresholdError):
        verify_statement(env, season.trust(), reqs, at=season.now)


def test_duplicate_signature_by_one_key_refused(season: Season) -> None:
    env = season.sign(T, {"k": 1}, "courier-sun", "courier-sun", "custodian-zhou")
    with pytest.raises(DuplicateSignatureError):
        verify_statement(env, season.trust(), HANDOVER, at=season.now)


def test_unknown_signer_refused(season: Season) -> None:
    stranger = SigningKey.generate()
    env = season.sign(T, {"k": 1}, "courier-sun", "custodian-zhou").with_signature(stranger)
    with pytest.raises(UnknownSignerError):
        verify_statement(env, season.trust(), HANDOVER, at=season.now)


def test_forged_signature_under_known_key_id_refused(season: Season) -> None:
    from crypto.dsse import Envelope, Signature

    env = season.sign(T, {"k": 1}, "courier-sun", "custodian-zhou")
    bad = Signature(env.signatures[0].keyid, bytes(64))
    forged = Envelope(env.payload_type, env.payload, (bad, env.signatures[1]))
    with pytest.raises(SignatureError):
        verify_statement(forged, season.trust(), HANDOVER, at=season.now)


def test_recused_signer_refused(season: Season) -> None:
    env = season.sign(T, {"k": 1}, "courier-he", "custodian-zhou")
    reqs = [require("releaser", Role.COURIER), HANDOVER[1]]
    with pytest.raises(RecusedError):
        verify_statement(env, season.trust(), reqs, at=season.now, scope=SCOPE)
    # Outside the recused exam the same person may sign.
    assert verify_statement(env, season.trust(), reqs, at=season.now, scope=["exam:OTHER"]).ok


@pytest.mark.parametrize(
    ("offset", "error"),
    [(timedelta(days=-2), NotYetValidError), (timedelta(days=201), ExpiredError)],
    ids=["not-yet-valid", "expired"],
)
def test_certificate_window(season: Season, offset: timedelta, error: type) -> None:
    env = season.sign(T, {"k": 1}, "courier-sun", "custodian-zhou")
    with pytest.raises(error):
        verify_statement(env, season.trust(), HANDOVER, at=season.now + offset)


def test_revocation_effective_from_its_time(season: Season) -> None:
    sun = season.keys["courier-sun"].signing.key_id
    eff = season.now + timedelta(hours=1)
    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=sun,
        reason=RevocationReason.KEY_COMPROMISE,
        effective_at=eff,
        now=season.now,
    )
    env = season.sign(T, {"k": 1}, "courier-sun", "custodian-zhou")
    trust = season.trust()
    assert verify_statement(env, trust, HANDOVER, at=eff - timedelta(seconds=1)).ok
    with pytest.raises(RevokedError):
        verify_statement(env, trust, HANDOVER, at=eff)


def test_rotation_keeps_old_signatures_valid(season: Season) -> None:
    before = season.now
    old_env = season.sign(T, {"k": 1}, "courier-sun", "custodian-zhou")
    later = before + timedelta(hours=2)
    new = identity.rotate(
        season.home,
        root_passphrase=PASS,
        subject="courier-sun",
        passphrase=PASS,
        now=later,
        kdf=fast_kdf(),
    )
    assert new.certificate.supersedes == season.keys["courier-sun"].signing.key_id
    trust = season.trust()
    assert verify_statement(old_env, trust, HANDOVER, at=before).ok
    with pytest.raises(RevokedError):
        verify_statement(old_env, trust, HANDOVER, at=later)
    season.keys["courier-sun"] = read_keyfile(new.key_file, PASS)
    new_env = season.sign(T, {"k": 1}, "courier-sun", "custodian-zhou")
    assert verify_statement(new_env, trust, HANDOVER, at=later).ok
    assert trust.current_certificate("courier-sun", later).key_id == new.certificate.key_id


def test_certificate_from_another_authority_refused(season: Season, tmp_path: Path) -> None:
    other = start_season(tmp_path / "other", now=T0, passphrase=PASS, kdf=fast_kdf())
    foreign = other.trust().certificate(other.keys["courier-sun"].signing.key_id)
    other_root = other.home.authority_key("root", PASS).signing
    env = issue_certificate(foreign, other_root)
    with pytest.raises(IssuerError):
        verify_certificate(env, season.trust().authority)
    # Even re-signed under the wrong root with our authority id, it does not verify.
    relabelled = replace(foreign, authority_id=season.trust().authority.id)
    with pytest.raises(IssuerError):
        verify_certificate(issue_certificate(relabelled, other_root), season.trust().authority)


def test_enrolment_refuses_duplicates_and_bad_input(season: Season) -> None:
    common = {
        "root_passphrase": PASS,
        "name": "X",
        "organisation": "Y",
        "not_before": T0,
        "not_after": T0 + timedelta(days=1),
        "passphrase": PASS,
        "now": T0,
        "kdf": fast_kdf(),
    }
    with pytest.raises(ConflictError):
        identity.enroll(season.home, subject="courier-sun", roles=[Role.COURIER], **common)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        identity.enroll(season.home, subject="bad id!", roles=[Role.COURIER], **common)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        identity.enroll(season.home, subject="nobody", roles=[], **common)  # type: ignore[arg-type]
    with pytest.raises(PassphraseError):
        identity.enroll(
            season.home,
            subject="p2",
            roles=[Role.COURIER],
            **{**common, "root_passphrase": "wrong"},  # type: ignore[arg-type]
        )


def test_key_file_wrong_passphrase_leaves_file_unchanged(tmp_path: Path) -> None:
    pair = KeyPair.generate("someone")
    path = tmp_path / "k.key"
    path.write_bytes(seal_keypair(pair, PASS, kdf=fast_kdf()))
    before = path.read_bytes()
    with pytest.raises(PassphraseError):
        read_keyfile(path, "not the passphrase")
    assert path.read_bytes() == before
    assert read_keyfile(path, PASS).signing.key_id == pair.signing.key_id
    assert pair.signing.seed().hex() not in before.decode()


def _sealed() -> bytes:
    return seal_keypair(KeyPair.generate("x"), PASS, kdf=fast_kdf())


def _edit(data: bytes, **changes: object) -> bytes:
    obj = json.loads(data)
    for dotted, value in changes.items():
        target = obj
        *path, last = dotted.split("__")
        for p in path:
            target = target[p]
        target[last] = value
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("mangle", "error"),
    [
        (lambda d: d[: len(d) // 2], FormatError),
        (lambda d: b"", FormatError),
        (lambda d: b"\xff\xfe", FormatError),
        (lambda d: _edit(d, format="custody-keyfile/v0"), FormatError),
        (lambda d: _edit(d, kdf__alg="scrypt"), FormatError),
        (lambda d: _edit(d, kdf__opslimit=3), PassphraseError),
        (lambda d: _edit(d, label="someone else"), PassphraseError),
        (lambda d: _edit(d, public__ed25519="A" * 43 + "="), PassphraseError),
        (lambda d: _edit(d, ciphertext="AAAA"), PassphraseError),
        (lambda d: _edit(d, kdf__memlimit=1 << 40), PassphraseError),
    ],
    ids=[
        "truncated",
        "empty",
        "not-utf8",
        "wrong-format",
        "unknown-kdf",
        "kdf-param-changed",
        "label-changed",
        "public-key-swapped",
        "ciphertext-replaced",
        "absurd-memlimit",
    ],
)
def test_malformed_or_altered_key_files_refused(mangle: object, error: type) -> None:
    data = mangle(_sealed())  # type: ignore[operator]
    with pytest.raises(error):
        open_keypair(data, PASS)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_byte_change_to_a_key_file_is_refused(data: st.DataObject) -> None:
    sealed = _SEALED_ONCE
    i = data.draw(st.integers(0, len(sealed) - 2))  # the last byte is the newline
    flip = data.draw(st.integers(1, 255))
    changed = sealed[:i] + bytes([sealed[i] ^ flip]) + sealed[i + 1 :]
    with pytest.raises(CustodyError):
        open_keypair(changed, PASS)


_SEALED_ONCE = _sealed()


@pytest.fixture(scope="module")
def bundle_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    s = start_season(tmp_path_factory.mktemp("b") / "s", now=T0, passphrase=PASS, kdf=fast_kdf())
    return (s.out / "trust-bundle").read_bytes()


def test_trust_bundle_verifies_and_pins(bundle_bytes: bytes) -> None:
    trust = load_trust_bundle(bundle_bytes)
    assert len(trust.certificates) == 12
    assert load_trust_bundle(bundle_bytes, pinned_root_id=trust.authority.id)
    with pytest.raises(IssuerError):
        load_trust_bundle(bundle_bytes, pinned_root_id="00" * 32)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_byte_change_to_a_trust_bundle_is_refused(
    bundle_bytes: bytes, data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(bundle_bytes) - 2))
    flip = data.draw(st.integers(1, 255))
    changed = bundle_bytes[:i] + bytes([bundle_bytes[i] ^ flip]) + bundle_bytes[i + 1 :]
    with pytest.raises(CustodyError):
        load_trust_bundle(changed)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_byte_change_to_a_certificate_is_refused(
    bundle_bytes: bytes, data: st.DataObject
) -> None:
    trust = load_trust_bundle(bundle_bytes)
    env_bytes = trust.certificate_envelopes[0].to_bytes()
    i = data.draw(st.integers(0, len(env_bytes) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = env_bytes[:i] + bytes([env_bytes[i] ^ flip]) + env_bytes[i + 1 :]
    with pytest.raises(CustodyError):
        verify_certificate(parse_envelope(changed), trust.authority)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_byte_change_to_a_signed_statement_is_refused(
    bundle_bytes: bytes, data: st.DataObject
) -> None:
    trust = load_trust_bundle(bundle_bytes)
    signer = _STATEMENT_SIGNERS
    env = sign_envelope(T, canonical_json({"k": "v"}), signer)
    env_bytes = env.to_bytes()
    i = data.draw(st.integers(0, len(env_bytes) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = env_bytes[:i] + bytes([env_bytes[i] ^ flip]) + env_bytes[i + 1 :]
    keys = {k.key_id: k.verify_key for k in signer}
    with pytest.raises(CustodyError):
        check = verify_signatures(parse_envelope(changed), keys)
        if check.unmatched or check.signed_by != set(keys):
            raise SignatureError("changed envelope")
    del trust


_STATEMENT_SIGNERS = [SigningKey.generate(), SigningKey.generate()]


def test_weak_key_refused_at_enrolment(season: Season) -> None:
    class Weak:
        raw = bytes(32)

    from crypto.signing import check_ed25519_public_key

    with pytest.raises(WeakKeyError):
        check_ed25519_public_key(Weak.raw)
