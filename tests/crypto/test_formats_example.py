"""The worked example in docs/formats.md ("Log: Merkle tree, checkpoints, cosignatures") is
what the code produces, byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crypto.merkle import MemoryTree, consistency_proof_nodes, inclusion_proof_nodes
from crypto.note import (
    Checkpoint,
    CosignatureVerifier,
    NoteVerifier,
    cosign,
    sign_checkpoint,
)
from crypto.signing import SigningKey

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
LOG_NAME = "authority.example/custody-log"
WITNESS_NAME = "witness.example/w1"


@pytest.fixture(scope="module")
def section() -> str:
    text = DOC.read_text()
    start = text.index("## Log: Merkle tree, checkpoints, cosignatures")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    t = MemoryTree()
    for i in range(5):
        t.append(f"entry {i}".encode())
    return t


def test_stored_node_table(section: str, tree: MemoryTree) -> None:
    rows = re.findall(r"^\| \((\d), (\d)\) \| [^|]+ \| `([0-9a-f]{64})` \|$", section, re.M)
    assert len(rows) == len(tree.nodes) == 8
    for level, index, value in rows:
        assert tree.nodes[(int(level), int(index))].hex() == value


def test_roots_and_proofs(section: str, tree: MemoryTree) -> None:
    assert tree.root(3).hex() in section
    assert tree.root(5).hex() in section
    assert inclusion_proof_nodes(2, 5) == [(0, 3), (1, 0), (0, 4)]
    assert consistency_proof_nodes(3, 5) == [(0, 2), (0, 3), (1, 0), (0, 4)]
    assert tree.consistency_proof(3, 5) == [tree.nodes[n] for n in consistency_proof_nodes(3, 5)]


def test_signed_checkpoint_and_cosignature(section: str, tree: MemoryTree) -> None:
    log, witness = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)
    checkpoint = Checkpoint(LOG_NAME, 5, tree.root(5))
    assert sign_checkpoint(checkpoint, LOG_NAME, log) in section
    assert NoteVerifier(LOG_NAME, log.verify_key).vkey() in section
    assert CosignatureVerifier(WITNESS_NAME, witness.verify_key).vkey() in section
    assert cosign(checkpoint, WITNESS_NAME, witness, 1_800_000_000) in section
