"""The witness policy file (witnesses.json), parsed from bytes, and counting cosignatures."""

from __future__ import annotations

import json

import pytest

from crypto.note import Checkpoint, NoteSignature, cosign, parse_note
from custody.errors import FormatError, ThresholdError
from custody.witnesses import check_quorum, count_cosignatures, witness_policy_from_json
from tests.custody.witness_helpers import WITNESSES, policy_document

W1, W2, W3 = WITNESSES
LOG_NAME = "authority.example/custody-log"
LOG_VKEY = f"{LOG_NAME}+0fae3d10+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c"


def doc(quorum: object, witnesses: object, **extra: object) -> bytes:
    return json.dumps({"quorum": quorum, "witnesses": witnesses, **extra}).encode()


def entry(w: object = W1, **over: object) -> dict[str, object]:
    from custody.witness import Cosigner

    assert isinstance(w, Cosigner)
    return {"name": w.name, "vkey": w.verifier().vkey(), **over}


def test_a_policy_parses() -> None:
    policy = witness_policy_from_json(policy_document(2))
    assert policy.quorum == 2
    assert [w.name for w in policy.witnesses] == [w.name for w in WITNESSES]
    assert policy.describe() == "2 of 3"


BAD = [
    ("not-json", b"{"),
    ("list", b"[]"),
    ("unknown-field", doc(1, [entry()], quorom=1)),
    ("no-quorum", json.dumps({"witnesses": [entry()]}).encode()),
    ("quorum-zero", doc(0, [entry()])),
    ("quorum-above-n", doc(2, [entry()])),
    ("quorum-text", doc("1", [entry()])),
    ("no-witnesses", doc(1, [])),
    ("witness-not-object", doc(1, ["x"])),
    ("witness-unknown-field", doc(1, [entry(endpoint="https://w")])),
    ("url-http-not-loopback", doc(1, [entry(url="http://witness.example/")])),
    ("url-not-a-url", doc(1, [entry(url="ftp://w")])),
    ("name-differs-from-vkey", doc(1, [entry(name="someone-else")])),
    ("bad-vkey", doc(1, [entry(vkey="witness.example/w1+00000000+AAAA")])),
    ("hash-mismatch", doc(1, [entry(vkey=W1.verifier().vkey().replace("+", "+0", 1)[:-1])])),
    (
        "note-key-not-cosignature",
        doc(1, [{"name": LOG_VKEY.split("+", maxsplit=1)[0], "vkey": LOG_VKEY}]),
    ),
    ("same-witness-twice", doc(1, [entry(), entry()])),
]


@pytest.mark.parametrize("data", [b for _, b in BAD], ids=[i for i, _ in BAD])
def test_bad_policies_are_format_errors(data: bytes) -> None:
    with pytest.raises(FormatError):
        witness_policy_from_json(data)


def test_one_key_under_two_names_is_refused() -> None:
    from crypto.note import CosignatureVerifier

    alias = CosignatureVerifier("alias", W1.key.verify_key).vkey()
    with pytest.raises(FormatError, match="two names"):
        witness_policy_from_json(doc(1, [entry(), {"name": "alias", "vkey": alias}]))


CHECKPOINT = Checkpoint("authority.example/custody-log", 5, b"\x07" * 32)


def sigs(*lines: str) -> tuple[NoteSignature, ...]:
    return parse_note(CHECKPOINT.body() + "\n" + "".join(lines)).signatures


def test_count_takes_listed_witnesses_once_and_not_a_forgery() -> None:
    policy = witness_policy_from_json(policy_document(2))
    good1 = cosign(CHECKPOINT, W1.name, W1.key, 1800000000)
    good1_later = cosign(CHECKPOINT, W1.name, W1.key, 1800000060)
    # W2's name and key hash over a signature by W3's key: a forgery, not counted.
    w2_hash = sigs(cosign(CHECKPOINT, W2.name, W2.key, 1))[0].key_hash
    bad = sigs(cosign(CHECKPOINT, W2.name, W3.key, 1800000000))[0]
    forged_sig = NoteSignature(W2.name, w2_hash, bad.signature)
    stranger = cosign(CHECKPOINT, "stranger", W3.key, 1800000000)
    count = count_cosignatures(
        policy, CHECKPOINT, [*sigs(good1, good1_later, stranger), forged_sig]
    )
    assert count.valid == (W1.name,)
    assert count.invalid == (W2.name,)
    assert not count.ok
    with pytest.raises(ThresholdError):
        check_quorum(count)
    count = count_cosignatures(
        policy, CHECKPOINT, sigs(good1, cosign(CHECKPOINT, W3.name, W3.key, 1800000000))
    )
    assert count.ok
    check_quorum(count)


def test_a_cosignature_of_another_checkpoint_is_not_counted() -> None:
    policy = witness_policy_from_json(policy_document(1))
    other = Checkpoint(CHECKPOINT.origin, 6, b"\x08" * 32)
    count = count_cosignatures(policy, CHECKPOINT, sigs(cosign(other, W1.name, W1.key, 1)))
    assert count.valid == ()
    assert count.invalid == (W1.name,)
