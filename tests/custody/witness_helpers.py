"""Witnesses for tests: real Ed25519 keys, a witnesses.json, cosignatures by custody.witness."""

from __future__ import annotations

import json
from pathlib import Path

from crypto.note import NoteVerifier, parse_note
from crypto.signing import SigningKey
from custody.demo import Season
from custody.witness import Cosigner, WitnessState, witness_cosign

WITNESSES = [
    Cosigner(f"witness.example/w{n}", SigningKey(bytes([0x40 + n]) * 32)) for n in (1, 2, 3)
]


def policy_document(quorum: int, witnesses: list[Cosigner] = WITNESSES) -> bytes:
    return (
        json.dumps(
            {
                "quorum": quorum,
                "witnesses": [{"name": w.name, "vkey": w.verifier().vkey()} for w in witnesses],
            },
            indent=2,
        ).encode()
        + b"\n"
    )


def write_policy(home: Path, quorum: int, witnesses: list[Cosigner] = WITNESSES) -> Path:
    path = home / "witnesses.json"
    path.write_bytes(policy_document(quorum, witnesses))
    return path


def cosign_latest(season: Season, witness: Cosigner) -> str:
    """The witness checks the log's latest checkpoint (from scratch) and returns its line."""
    authority = season.trust().authority
    note = season.log().latest_checkpoint()
    _, line = witness_cosign(
        WitnessState(),
        NoteVerifier(authority.log_origin, authority.log_key),
        note,
        [],
        witness,
        season.now,
    )
    return line


def checkpoint_text(note: str) -> str:
    return parse_note(note).text
