"""C2SP signed notes, checkpoints and cosignatures: golden vectors through our code, refusals."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.encoding import b64encode
from crypto.merkle import leaf_hash
from crypto.note import (
    Checkpoint,
    CosignatureVerifier,
    NoteVerifier,
    cosign,
    cosignature_timestamp,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    parse_signer_key,
    parse_vkey,
    sign_checkpoint,
    sign_note,
    signature_line,
    signer_key_string,
    verify_cosignature,
    verify_note,
)
from crypto.signing import SigningKey
from custody.errors import (
    CustodyError,
    DuplicateSignatureError,
    FormatError,
    SignatureError,
    UnknownSignerError,
)


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    from tests.conftest import VECTORS

    path = VECTORS / "signed-note" / "signed_note_golden_vectors.json"
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


# --- golden vectors -------------------------------------------------------------------------


def test_c2sp_example_verifies(golden: dict[str, Any]) -> None:
    case = golden["c2sp_signed_note_example"]
    verifier = parse_vkey(case["vkey"])
    assert isinstance(verifier, NoteVerifier)
    assert verifier.vkey() == case["vkey"]
    note = verify_note(parse_note(case["note"].encode()), [verifier])
    assert note.text == "This is an example message.\n"
    assert [s.name for s in note.verified] == ["example.com/foo"]


def test_go_sign_golden_reproduced(golden: dict[str, Any]) -> None:
    case = golden["go_note_sign_golden"]
    name, key = parse_signer_key(case["skey"])
    assert name == "PeterNeumann"
    assert signer_key_string(name, key) == case["skey"]
    assert NoteVerifier(name, key.verify_key).vkey() == case["vkey"]
    # Ed25519 is deterministic: our signature is byte for byte Go's.
    assert sign_note(case["text"], name, key) == case["signed"]
    verify_note(parse_note(case["signed"]), [parse_vkey(case["vkey"])])


def test_second_signer_from_zero_seed(golden: dict[str, Any]) -> None:
    case = golden["go_note_second_signer"]
    key = SigningKey(bytes.fromhex(case["seed_hex"]))
    assert NoteVerifier("EnochRoot", key.verify_key).vkey() == case["vkey"]
    text = golden["go_note_sign_golden"]["text"]
    assert signature_line(text, "EnochRoot", key) == case["sig_line"]
    both = golden["go_note_sign_golden"]["signed"] + case["sig_line"]
    peter, enoch = parse_vkey(golden["go_note_sign_golden"]["vkey"]), parse_vkey(case["vkey"])
    note = verify_note(parse_note(both), [peter, enoch])
    assert [s.name for s in note.verified] == ["PeterNeumann", "EnochRoot"]
    only_enoch = verify_note(parse_note(both), [enoch])
    assert [s.name for s in only_enoch.unknown] == ["PeterNeumann"]


def test_sum_golang_org_checkpoint(golden: dict[str, Any]) -> None:
    case = golden["sum_golang_org_checkpoint"]
    checkpoint, note = open_checkpoint(case["note"].encode(), [parse_vkey(case["vkey"])])
    assert checkpoint.origin == "go.sum database tree"
    assert checkpoint.size == 35225469
    assert b64encode(checkpoint.root) == "vt5T6GaLCXvyHFl9VUvvItR43XZxfLgftEcTyO3eJCQ="
    assert checkpoint.body() == note.text
    with pytest.raises(FormatError):
        open_checkpoint(case["note"], [parse_vkey(case["vkey"])], origin="example.com/other")


def test_go_tree_note(golden: dict[str, Any]) -> None:
    case = golden["go_tree_note"]
    assert b64encode(leaf_hash(case["record"].encode())) == case["record_hash_b64"]
    checkpoint = parse_checkpoint(case["formatted"])
    assert checkpoint.size == 123456789012
    assert checkpoint.body() == case["formatted"]


# --- our own round trips ---------------------------------------------------------------------

LOG = SigningKey(b"\x11" * 32)
OTHER = SigningKey(b"\x22" * 32)
WITNESS = SigningKey(b"\x33" * 32)
LOG_NAME = "custody.example/log"
LOG_V = NoteVerifier(LOG_NAME, LOG.verify_key)
CP = Checkpoint(LOG_NAME, 7, leaf_hash(b"root"), ("ext one",))


def test_checkpoint_round_trip() -> None:
    signed = sign_checkpoint(CP, LOG_NAME, LOG)
    checkpoint, note = open_checkpoint(signed.encode(), [LOG_V], origin=LOG_NAME)
    assert checkpoint == CP
    assert [s.name for s in note.verified] == [LOG_NAME]
    assert parse_note(signed).to_text() == signed


def test_cosignature_round_trip_and_vkey() -> None:
    witness = CosignatureVerifier("witness.example/w1", WITNESS.verify_key)
    assert parse_vkey(witness.vkey()) == witness
    line = cosign(CP, "witness.example/w1", WITNESS, 1_700_000_000)
    assert verify_cosignature(CP, line, witness) == 1_700_000_000
    # A cosigned checkpoint still verifies for a client that knows only the log key, and the
    # cosignature for a client that knows both.
    signed = sign_checkpoint(CP, LOG_NAME, LOG) + line
    note = verify_note(parse_note(signed), [LOG_V, witness])
    assert cosignature_timestamp(note.signed_by("witness.example/w1")[0]) == 1_700_000_000
    assert verify_note(parse_note(signed), [LOG_V]).unknown[0].name == "witness.example/w1"


def test_cosignature_does_not_verify_as_a_plain_signature() -> None:
    # Same key, same name: the key hash (type byte 0x04 vs 0x01) keeps the two apart.
    line = cosign(CP, "w", WITNESS, 5)
    note = parse_note(CP.body() + "\n" + line)
    with pytest.raises(UnknownSignerError):
        verify_note(note, [NoteVerifier("w", WITNESS.verify_key)])


@pytest.mark.parametrize(
    "change",
    ["other-checkpoint", "other-time", "other-key"],
    ids=["other-checkpoint", "other-time", "other-key"],
)
def test_cosignature_refusals(change: str) -> None:
    witness = CosignatureVerifier("w", WITNESS.verify_key)
    line = cosign(CP, "w", WITNESS, 1000)
    if change == "other-checkpoint":
        other = Checkpoint(CP.origin, CP.size + 1, CP.root)
        with pytest.raises(SignatureError):
            verify_cosignature(other, line, witness)
    elif change == "other-time":
        raw = bytearray(base64.b64decode(line.split(" ")[2]))
        raw[4 + 7] ^= 1
        forged = f"— w {base64.b64encode(bytes(raw)).decode()}\n"
        with pytest.raises(SignatureError):
            verify_cosignature(CP, forged, witness)
    else:
        with pytest.raises(UnknownSignerError):
            verify_cosignature(CP, line, CosignatureVerifier("w", OTHER.verify_key))


# --- refusals -------------------------------------------------------------------------------

TEXT = "hello\n"
GOOD = sign_note(TEXT, "a", LOG)
GOOD_LINE = GOOD.split("\n\n")[1]
A = NoteVerifier("a", LOG.verify_key)
B = NoteVerifier("b", OTHER.verify_key)


def _bad_sig_by_a() -> str:
    sig = base64.b64decode(GOOD_LINE.split(" ")[2])
    flipped = sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
    return TEXT + "\n— a " + base64.b64encode(flipped).decode() + "\n"


PARSE_REFUSALS = [
    ("bad-utf8", GOOD.encode().replace(b"hello", b"he\xffllo")),
    ("control-char", GOOD.replace("hello", "he\rllo").encode()),
    ("nul", GOOD.replace("hello", "he\x00llo").encode()),
    ("missing-blank-line", (TEXT + GOOD_LINE).encode()),
    ("no-signatures", (TEXT + "\n").encode()),
    ("no-final-newline", GOOD.rstrip("\n").encode()),
    ("hyphen-not-em-dash", GOOD.replace("—", "-").encode()),
    ("no-space-after-dash", GOOD.replace("— ", "—").encode()),
    ("no-signature-after-name", (TEXT + "\n— a\n").encode()),
    ("empty-name", GOOD.replace("— a ", "—  ").encode()),
    ("plus-in-name", GOOD.replace("— a ", "— a+b ").encode()),
    ("bad-base64", GOOD.replace(GOOD_LINE.split(" ")[2][:4], "!!!!").encode()),
    ("unpadded-base64", GOOD.replace("=\n", "\n").encode()),
    ("signature-too-short", (TEXT + "\n— a AAAAAA==\n").encode()),
    ("too-many-signatures", (GOOD + GOOD_LINE * 100).encode()),
    ("too-large", (("x" * (1 << 20)) + GOOD).encode()),
]


@pytest.mark.parametrize("data", [d for _, d in PARSE_REFUSALS], ids=[i for i, _ in PARSE_REFUSALS])
def test_malformed_notes_refused(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_note(data)


VERIFY_REFUSALS: list[tuple[str, str, list[Any], type[CustodyError]]] = [
    ("known-key-bad-signature", _bad_sig_by_a(), [A], SignatureError),
    (
        "known-bad-among-good",
        sign_note(TEXT, "b", OTHER) + _bad_sig_by_a().split("\n\n")[1],
        [A, B],
        SignatureError,
    ),
    ("only-unknown-signatures", GOOD, [B], UnknownSignerError),
    ("same-name-other-key", GOOD, [NoteVerifier("a", OTHER.verify_key)], UnknownSignerError),
    ("same-key-other-name", GOOD, [NoteVerifier("c", LOG.verify_key)], UnknownSignerError),
    ("no-verifiers", GOOD, [], UnknownSignerError),
    ("known-key-twice", GOOD + GOOD_LINE, [A], DuplicateSignatureError),
    ("text-altered", GOOD.replace("hello", "jello"), [A], SignatureError),
    # The LAST blank line splits text from signatures: the first line becomes text.
    ("signature-pushed-into-text", GOOD + "\n" + GOOD_LINE, [A], SignatureError),
]


@pytest.mark.parametrize(
    ("data", "verifiers", "error"),
    [v[1:] for v in VERIFY_REFUSALS],
    ids=[v[0] for v in VERIFY_REFUSALS],
)
def test_verification_refusals(data: str, verifiers: list[Any], error: type[CustodyError]) -> None:
    note = parse_note(data.encode())
    with pytest.raises(error):
        verify_note(note, verifiers)


def test_unknown_signature_before_a_good_one_is_ignored() -> None:
    data = GOOD.replace("\n\n", "\n\n" + signature_line(TEXT, "b", OTHER))
    note = verify_note(parse_note(data), [A])
    assert [s.name for s in note.unknown] == ["b"]
    assert [s.name for s in note.verified] == ["a"]


ROOT_B64 = b64encode(b"\x07" * 32)
CHECKPOINT_REFUSALS = [
    ("non-canonical-size", f"o\n007\n{ROOT_B64}\n"),
    ("plus-size", f"o\n+7\n{ROOT_B64}\n"),
    ("negative-size", f"o\n-7\n{ROOT_B64}\n"),
    ("size-with-space", f"o\n 7\n{ROOT_B64}\n"),
    ("size-underscore", f"o\n1_000\n{ROOT_B64}\n"),
    ("arabic-indic-digits", f"o\n\u0667\n{ROOT_B64}\n"),
    ("size-too-big", f"o\n{1 << 64}\n{ROOT_B64}\n"),
    ("root-wrong-length", f"o\n7\n{b64encode(b'x' * 31)}\n"),
    ("root-not-base64", "o\n7\nnot base64!\n"),
    ("empty-origin", f"\n7\n{ROOT_B64}\n"),
    ("missing-root", "o\n7\n"),
    ("empty-extension", f"o\n7\n{ROOT_B64}\n\n"),
    ("no-final-newline", f"o\n7\n{ROOT_B64}"),
]


@pytest.mark.parametrize(
    "text", [t for _, t in CHECKPOINT_REFUSALS], ids=[i for i, _ in CHECKPOINT_REFUSALS]
)
def test_checkpoint_refusals(text: str) -> None:
    with pytest.raises(FormatError):
        parse_checkpoint(text)


def test_checkpoint_parsing_keeps_zero_and_extensions() -> None:
    cp = parse_checkpoint(f"o\n0\n{ROOT_B64}\nx y\nz\n")
    assert (cp.size, cp.extensions) == (0, ("x y", "z"))


@pytest.mark.parametrize(
    "vkey",
    [
        "a+00000000+" + b64encode(b"\x01" + LOG.verify_key.raw),
        "a+" + A.key_hash.hex() + "+" + b64encode(b"\x02" + LOG.verify_key.raw),
        "a+" + A.key_hash.hex().upper() + "+" + b64encode(b"\x01" + LOG.verify_key.raw),
        "a+" + A.key_hash.hex() + "+" + b64encode(b"\x01" + LOG.verify_key.raw[:31]),
        "a+" + A.key_hash.hex() + "+" + b64encode(b"\x01" + bytes(32)),
        "a b+" + A.key_hash.hex() + "+" + b64encode(b"\x01" + LOG.verify_key.raw),
        "a+" + A.key_hash.hex(),
    ],
    ids=[
        "hash-mismatch",
        "unknown-type",
        "uppercase-hash",
        "short-key",
        "small-order-key",
        "space-in-name",
        "no-key",
    ],
)
def test_bad_vkeys_refused(vkey: str) -> None:
    with pytest.raises(FormatError):
        parse_vkey(vkey)


# --- properties -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_parser_raises_only_format_errors(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_note(data)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, len(GOOD.encode()) - 1), bit=st.integers(0, 7))
def test_any_flipped_bit_is_refused(position: int, bit: int) -> None:
    data = bytearray(GOOD.encode())
    data[position] ^= 1 << bit
    with pytest.raises(CustodyError):
        verify_note(parse_note(bytes(data)), [A])
