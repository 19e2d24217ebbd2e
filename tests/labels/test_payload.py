"""The CP1 label codec: round trip, an independent COSE verifier, and every refusal."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import base45
import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from crypto.signing import SigningKey
from custody import identity
from custody.demo import Season, start_season
from custody.errors import (
    CustodyError,
    ExpiredError,
    FormatError,
    NotYetValidError,
    RecusedError,
    RevokedError,
    RoleError,
    SignatureError,
    UnknownSignerError,
)
from custody.packages import Manifest
from keys.model import RevocationReason, Role
from keys.trust import TrustStore
from labels import payload
from labels.payload import (
    K_BAG,
    K_COPIES,
    K_SEALS,
    PREFIX,
    encode_cose,
    manifest_to_cbor,
    parse_label,
    seal_manifest,
    unwrap_text,
    verify_label,
    wrap_text,
)
from tests.conftest import PASS, T0, fast_kdf
from tests.labels.fixtures import resign, typical_manifest


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Season:
    """One season for the read-only tests of this module (enrolment is the slow part)."""
    return start_season(
        tmp_path_factory.mktemp("labels") / "season", now=T0, passphrase=PASS, kdf=fast_kdf()
    )


@pytest.fixture(scope="module")
def trust(shared: Season) -> TrustStore:
    return shared.trust()


def printer(season: Season) -> SigningKey:
    return season.keys["print-qian"].signing


def test_round_trip_reports_manifest_and_signer(shared: Season, trust: TrustStore) -> None:
    m = typical_manifest(T0)
    text = seal_manifest(m, printer(shared))
    result = verify_label(text, trust, now=T0 + timedelta(hours=1))
    assert result.manifest == m
    assert result.certificate.subject == "print-qian"
    assert result.key_id == printer(shared).key_id
    assert result.authority_id == trust.authority.id
    assert text.startswith(PREFIX)


def test_proposer_may_seal_too(shared: Season, trust: TrustStore) -> None:
    text = seal_manifest(typical_manifest(T0), shared.keys["prop-zhao"].signing)
    assert verify_label(text, trust, now=T0).certificate.subject == "prop-zhao"


def test_encoding_is_deterministic(shared: Season) -> None:
    m = typical_manifest(T0)
    assert manifest_to_cbor(m) == manifest_to_cbor(typical_manifest(T0))
    # Ed25519 is deterministic too: the same manifest gives the same label.
    assert seal_manifest(m, printer(shared)) == seal_manifest(m, printer(shared))


def _pycose_decode(cose: bytes) -> Sign1Message:
    """``Sign1Message.decode`` with a shim: pycose 1.1 expects cbor2 5's mutable list inside the
    tag, cbor2 6 returns a tuple (and a frozendict), so we hand pycose the tag's content as a
    list. pycose still rebuilds the Sig_structure and verifies Ed25519 itself."""
    outer = cbor2.loads(cose)
    assert outer.tag == 18
    protected, unprotected, body, signature = outer.value
    return Sign1Message.from_cose_obj([protected, dict(unprotected), body, signature], True)


def test_pycose_verifies_our_cose_sign1(shared: Season) -> None:
    """An independent COSE implementation accepts the signature, and refuses an altered one."""
    key = printer(shared)
    cose, _ = unwrap_text(seal_manifest(typical_manifest(T0), key))
    msg = _pycose_decode(cose)
    msg.key = OKPKey(crv=Ed25519, x=key.verify_key.raw)
    assert msg.verify_signature()
    assert msg.phdr_encoded  # the kid travels in the protected (signed) header
    assert cbor2.loads(msg.payload) == cbor2.loads(manifest_to_cbor(typical_manifest(T0)))
    tampered = bytearray(cose)
    tampered[-70] ^= 0x01  # a byte of the payload, just before the signature
    altered = _pycose_decode(bytes(tampered))
    altered.key = OKPKey(crv=Ed25519, x=key.verify_key.raw)
    assert not altered.verify_signature()


def test_pycose_signed_message_verifies_with_us(shared: Season, trust: TrustStore) -> None:
    """The other direction: a COSE_Sign1 made by pycose with the sealer's key is accepted."""
    from pycose.algorithms import EdDSA
    from pycose.headers import KID, Algorithm

    key = printer(shared)
    msg = Sign1Message(
        phdr={Algorithm: EdDSA, KID: payload.kid_of(key.key_id)},
        payload=manifest_to_cbor(typical_manifest(T0)),
    )
    msg.key = OKPKey(crv=Ed25519, x=key.verify_key.raw, d=key.seed())
    text = wrap_text(msg.encode(tag=True))
    assert verify_label(text, trust, now=T0).manifest == typical_manifest(T0)


def test_compression_only_when_it_pays(shared: Season) -> None:
    text = seal_manifest(typical_manifest(T0), printer(shared))
    cose, compressed = unwrap_text(text)
    raw = len(payload.PREFIX) + len(base45.b45encode(cose))
    assert len(text) <= raw
    assert compressed == (len(zlib.compress(cose, 9)) < len(cose))


# --- the refusal table ---------------------------------------------------------------------


def _b45(raw: bytes) -> str:
    return PREFIX + base45.b45encode(raw).decode()


def _nested(depth: int) -> bytes:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return cbor2.dumps(cbor2.CBORTag(18, [b"", {}, cbor2.dumps(value), b"\0" * 64]))


def _bomb() -> str:
    # ~1 MB of zeros deflates to about 1 kB: small enough to pass the text cap
    return _b45(zlib.compress(b"\xd2" + bytes(1_000_000), 9))


def _non_deterministic(season: Season) -> str:
    m = typical_manifest(T0)
    fields = cbor2.loads(manifest_to_cbor(m))
    body = cbor2.dumps(dict(sorted(fields.items(), reverse=True)))  # keys out of order
    return wrap_text(encode_cose(body, printer(season)))


def _unknown_key(_season: Season) -> str:
    return seal_manifest(typical_manifest(T0), SigningKey.generate())


def _tampered(season: Season) -> str:
    cose, _ = unwrap_text(seal_manifest(typical_manifest(T0), printer(season)))
    return _b45(cose.replace("第3考场".encode(), "第4考场".encode()))


def _inconsistent(season: Season) -> str:
    def drop_a_seal(fields: dict[int, Any]) -> None:
        fields[K_SEALS] = fields[K_SEALS][:2]  # 30 copies in bags of 10 need 3 seals

    return resign(typical_manifest(T0), printer(season), drop_a_seal)


def _zero_bag(season: Season) -> str:
    def zero(fields: dict[int, Any]) -> None:
        fields[K_BAG] = 0

    return resign(typical_manifest(T0), printer(season), zero)


def _wrong_type(season: Season) -> str:
    def text_copies(fields: dict[int, Any]) -> None:
        fields[K_COPIES] = "30"

    return resign(typical_manifest(T0), printer(season), text_copies)


def _unknown_field(season: Season) -> str:
    def extra(fields: dict[int, Any]) -> None:
        fields[99] = "x"

    return resign(typical_manifest(T0), printer(season), extra)


def _courier_seals(season: Season) -> str:
    return seal_manifest(typical_manifest(T0), season.keys["courier-sun"].signing)


def _unprotected_kid(season: Season) -> str:
    cose, _ = unwrap_text(seal_manifest(typical_manifest(T0), printer(season)))
    parts = list(cbor2.loads(cose).value)
    parts[1] = {4: b"12345678"}
    return _b45(cbor2.dumps(cbor2.CBORTag(18, parts)))


def _untagged(season: Season) -> str:
    cose, _ = unwrap_text(seal_manifest(typical_manifest(T0), printer(season)))
    return _b45(b"\x84" + cose[2:])  # the same array without tag 18 (first byte != 0xD2)


def _valid(season: Season) -> str:
    return seal_manifest(typical_manifest(T0), printer(season))


Build = Callable[[Season], str]

REFUSALS: list[tuple[str, Build, type[CustodyError], Any]] = [
    ("unrelated text", lambda s: "https://example.com/ticket/42", FormatError, T0),
    ("wrong prefix (EU DCC)", lambda s: "HC1:" + _valid(s)[4:], FormatError, T0),
    ("wrong version", lambda s: "CP2:" + _valid(s)[4:], FormatError, T0),
    ("invalid base45 characters", lambda s: PREFIX + "abc~", FormatError, T0),
    ("base45 value overflow", lambda s: PREFIX + ":::", FormatError, T0),
    ("truncated base45", lambda s: _valid(s)[:-1], FormatError, T0),
    ("truncated payload", lambda s: _valid(s)[:-30], FormatError, T0),
    ("empty payload", lambda s: PREFIX, FormatError, T0),
    ("neither COSE nor zlib", lambda s: _b45(b"\x01\x02\x03"), FormatError, T0),
    ("malformed CBOR", lambda s: _b45(b"\xd2\x84\xff\xff\xff"), FormatError, T0),
    ("deeply nested CBOR", lambda s: _b45(_nested(300)), FormatError, T0),
    ("oversized text", lambda s: PREFIX + "0" * 3000, FormatError, T0),
    ("oversized CBOR length claim", lambda s: _b45(b"\xd2\x5b" + b"\xff" * 8), FormatError, T0),
    ("decompression bomb", lambda s: _bomb(), FormatError, T0),
    ("corrupt zlib", lambda s: _b45(b"\x78\xda" + b"\x00" * 20), FormatError, T0),
    ("untagged COSE", _untagged, FormatError, T0),
    ("kid in unprotected header", _unprotected_kid, FormatError, T0),
    ("non-deterministic CBOR", _non_deterministic, FormatError, T0),
    ("unknown manifest field", _unknown_field, FormatError, T0),
    ("wrong field type", _wrong_type, FormatError, T0),
    ("unknown key id", _unknown_key, UnknownSignerError, T0),
    ("altered manifest", _tampered, SignatureError, T0),
    ("sealer without sealing role", _courier_seals, RoleError, T0),
    ("copy count vs seal serials", _inconsistent, FormatError, T0),
    ("zero bag size", _zero_bag, FormatError, T0),
    ("expired manifest", _valid, ExpiredError, T0 + timedelta(days=36)),
    ("manifest from the future", _valid, NotYetValidError, T0 - timedelta(minutes=1)),
]


@pytest.mark.parametrize(
    ("build", "error", "now"),
    [pytest.param(b, e, n, id=name) for name, b, e, n in REFUSALS],
)
def test_refusals(
    shared: Season, trust: TrustStore, build: Build, error: type[CustodyError], now: Any
) -> None:
    text = build(shared)
    with pytest.raises(error) as caught:
        verify_label(text, trust, now=now)
    assert caught.type is error  # the specific class, not a parent
    assert caught.value.message


# --- refusals that change the authority's records: a fresh season each ---------------------


def test_revoked_sealer_is_refused(season: Season) -> None:
    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=printer(season).key_id,
        reason=RevocationReason.LEFT_POST,
        effective_at=T0 - timedelta(hours=1),
        now=T0,
    )
    with pytest.raises(RevokedError):
        verify_label(_valid(season), season.trust(), now=T0)


def test_compromised_key_refused_even_for_backdated_manifest(season: Season) -> None:
    text = _valid(season)  # signed (claims) at T0, before the compromise
    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=printer(season).key_id,
        reason=RevocationReason.KEY_COMPROMISE,
        effective_at=T0 + timedelta(hours=1),
        now=T0 + timedelta(hours=1),
    )
    trust = season.trust()
    assert verify_label(text, trust, now=T0 + timedelta(minutes=30)).manifest
    with pytest.raises(RevokedError):
        verify_label(text, trust, now=T0 + timedelta(hours=2))


def test_superseded_key_still_valid_for_earlier_manifest(season: Season) -> None:
    text = _valid(season)
    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=printer(season).key_id,
        reason=RevocationReason.SUPERSEDED,
        effective_at=T0 + timedelta(hours=1),
        now=T0 + timedelta(hours=1),
    )
    assert verify_label(text, season.trust(), now=T0 + timedelta(hours=2)).manifest


def test_expired_sealer_is_refused(shared: Season, trust: TrustStore) -> None:
    late = T0 + timedelta(days=201)  # the season's certificates end at T0 + 200 days
    text = seal_manifest(typical_manifest(late), printer(shared))
    with pytest.raises(ExpiredError) as caught:
        verify_label(text, trust, now=late)
    assert caught.type is ExpiredError


def test_recused_sealer_is_refused(season: Season) -> None:
    enrolment = identity.enroll(
        season.home,
        root_passphrase=PASS,
        subject="print-ma",
        name="马力 Ma Li",
        organisation="保密印刷厂",
        roles=[Role.PRINTER],
        not_before=T0 - timedelta(days=1),
        not_after=T0 + timedelta(days=100),
        recusals=["exam:SX-2027-INT"],
        passphrase=PASS,
        now=T0,
        kdf=fast_kdf(),
    )
    from keys.keyfile import read_keyfile

    key = read_keyfile(enrolment.key_file, PASS).signing
    with pytest.raises(RecusedError):
        verify_label(seal_manifest(typical_manifest(T0), key), season.trust(), now=T0)


# --- properties ----------------------------------------------------------------------------

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.text(max_size=400))
def test_any_text_raises_only_custody_errors(shared: Season, text: str) -> None:
    _check_only_custody_errors(shared, text)


@FAST
@given(st.binary(max_size=600))
def test_any_bytes_under_prefix_raise_only_custody_errors(shared: Season, raw: bytes) -> None:
    _check_only_custody_errors(shared, _b45(raw))
    _check_only_custody_errors(shared, _b45(b"\xd2" + raw))
    _check_only_custody_errors(shared, _b45(zlib.compress(b"\xd2" + raw)))


_cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.integers(-5, 20) | st.text(max_size=3), inner, max_size=6)
    ),
    max_leaves=30,
)


@FAST
@given(st.lists(_cbor_values, min_size=0, max_size=5))
def test_any_cose_shaped_cbor_raises_only_custody_errors(shared: Season, parts: list[Any]) -> None:
    _check_only_custody_errors(shared, _b45(cbor2.dumps(cbor2.CBORTag(18, parts))))


@FAST
@given(st.dictionaries(st.integers(1, 16), _cbor_values, max_size=16))
def test_any_signed_manifest_map_raises_only_custody_errors(
    shared: Season, fields: dict[int, Any]
) -> None:
    """Even validly signed garbage fields end in a CustodyError (the sealer's fault, refused)."""
    try:
        body = cbor2.dumps(fields, canonical=True)
    except (ValueError, TypeError):
        return
    _check_only_custody_errors(shared, wrap_text(encode_cose(body, printer(shared))))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_changed_character_is_refused(shared: Season, data: st.DataObject) -> None:
    text = _valid(shared)
    i = data.draw(st.integers(len(PREFIX), len(text) - 1))
    c = data.draw(st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$%*+-./:"))
    if c == text[i]:
        return
    with pytest.raises(CustodyError):
        verify_label(text[:i] + c + text[i + 1 :], shared.trust(), now=T0)


def test_a_padding_bit_after_the_deflate_data_is_refused(shared: Season) -> None:
    """Found by the test above in CI: the bits after the final deflate block's end inflate to
    nothing and the checksum is over what is inflated, so a label whose last deflate byte has
    one of them set verified: two texts of one label. Every such bit is refused now, and the
    label as sealed still verifies."""
    padded: list[str] = []
    # a label whose deflate data ends inside a byte (about 7 in 8 do): the first of a few
    for n in range(40):
        text = seal_manifest(typical_manifest(T0, package_id=f"SX27-INT-{n:04d}"), printer(shared))
        padded = _padded_texts(text)
        if padded:
            break
    assert padded, "40 labels, each ending its deflate data on a byte boundary"
    for other in padded:
        with pytest.raises(FormatError, match="bits set after its end"):
            verify_label(other, shared.trust(), now=T0)
    verify_label(text, shared.trust(), now=T0)


def _padded_texts(text: str) -> list[str]:
    """``text`` again with each bit after its deflate data's end set in turn (the ones that
    inflate to the same bytes, under the same checksum)."""
    stream = base45.b45decode(text[len(PREFIX) :])
    cose = zlib.decompress(stream)
    at = len(stream) - 5  # the deflate data's last byte, before the Adler-32 checksum
    padded = []
    for bit in range(8):
        if stream[at] >> bit & 1:
            continue
        candidate = stream[:at] + bytes([stream[at] | 1 << bit]) + stream[at + 1 :]
        with contextlib.suppress(zlib.error):
            if zlib.decompress(candidate) == cose:
                padded.append(PREFIX + base45.b45encode(candidate).decode())
    return padded


def _check_only_custody_errors(season: Season, text: str) -> None:
    trust = _TRUST.get(id(season)) or _TRUST.setdefault(id(season), season.trust())
    with contextlib.suppress(CustodyError):
        verify_label(text, trust, now=T0)
    with contextlib.suppress(CustodyError):
        parse_label(text)


_TRUST: dict[int, TrustStore] = {}


def test_manifest_constructor_refuses_inconsistent_values() -> None:
    with pytest.raises(FormatError):
        typical_manifest(T0, seal_serials=("S1", "S2"))
    with pytest.raises(FormatError):
        typical_manifest(T0, closes_at=T0 + timedelta(days=5))
    with pytest.raises(FormatError):
        typical_manifest(T0, seal_serials=("S1", "S1", "S2"))
    assert isinstance(typical_manifest(T0), Manifest)


def test_docs_example_matches_the_codec(vectors: Path) -> None:
    """The example in docs/formats.md decodes with this codec (keeps the doc honest)."""
    doc = (Path(__file__).parents[2] / "docs" / "formats.md").read_text(encoding="utf-8")
    start = doc.index("<!-- label-example -->")
    example = doc[start:].split("```")[1].strip()
    unverified = parse_label(example)
    key = SigningKey(bytes(range(32)))
    assert unverified.kid == payload.kid_of(key.key_id)
    assert key.verify_key.is_valid(unverified.signed_bytes(), unverified.signature)
    assert unverified.payload == manifest_to_cbor(typical_manifest(T0))
