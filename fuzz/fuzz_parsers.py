"""Coverage-guided fuzzing (atheris, libFuzzer) of every parser of outside bytes.

Each target feeds arbitrary bytes to one parser; the parser may refuse them only with one of
our errors (``CustodyError``: a format error, a verification error). Any other exception, a
hang or a crash is a finding: libFuzzer stops, writes the input to ``crash-*``, and exits
non-zero. A finding becomes a regression test (tests/test_fuzz_parsers.py, ``REGRESSIONS``).

Usage:
    python fuzz/fuzz_parsers.py TARGET [CORPUS_DIR ...] [-runs=N] [-max_total_time=S]
    python fuzz/fuzz_parsers.py --list
The short CI budget runs every target for a few thousand inputs from seeds made from a real
season (tests/test_fuzz_parsers.py); a long run is documented in docs/operations.md.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    from crypto import merkle
    from crypto.dsse import parse_envelope
    from crypto.errors import CustodyError
    from crypto.note import parse_checkpoint, parse_note, parse_vkey
    from custody.events import parse_event, parse_leaf
    from custody.incidents.acts import parse_act
    from custody.receipts import parse_receipt
    from custody.witness import parse_add_checkpoint
    from keys.keyfile import parse_keyfile
    from keys.trust import load_trust_bundle
    from labels.payload import parse_label


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _note_and_checkpoint(data: bytes) -> None:
    note = parse_note(data)
    parse_checkpoint(note.text)


def _act(data: bytes) -> None:
    parse_act(parse_envelope(data))


def _receipt(data: bytes) -> None:
    """A receipt read, its checkpoint note read, and its proof run against that root (the
    log key's signature aside: the fuzzer cannot forge one, and it is checked before the proof
    in custody.receipts.verify_receipt)."""
    receipt = parse_receipt(data)
    checkpoint = parse_checkpoint(parse_note(receipt.checkpoint).text)
    leaf = merkle.leaf_hash(b"fuzz")
    merkle.verify_inclusion(
        leaf, receipt.index, checkpoint.size, list(receipt.inclusion_proof), checkpoint.root
    )


TARGETS: dict[str, Callable[[bytes], object]] = {
    "envelope": parse_envelope,
    "event": parse_event,
    "leaf": parse_leaf,
    "note": _note_and_checkpoint,
    "checkpoint": lambda d: parse_checkpoint(_text(d)),
    "vkey": lambda d: parse_vkey(_text(d)),
    "label": parse_label,
    "keyfile": parse_keyfile,
    "trust-bundle": load_trust_bundle,
    "witness-request": parse_add_checkpoint,
    "act": _act,
    "receipt": _receipt,
}


def one_input(target: Callable[[bytes], object]) -> Callable[[bytes], None]:
    def test_one_input(data: bytes) -> None:
        # A refusal in our own words is what a parser of outside bytes must do.
        with contextlib.suppress(CustodyError):
            target(data)

    return test_one_input


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.stdout.write("targets: " + " ".join(TARGETS) + "\n")
        raise SystemExit(0 if "--list" in argv else 2)
    name = argv.pop(1)
    atheris.Setup(argv, one_input(TARGETS[name]))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
