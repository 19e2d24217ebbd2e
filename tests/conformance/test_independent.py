"""The independent verifier (written from docs/formats.md alone) agrees with every vector.

It must import nothing of the project, and it must be able to disagree: an expectation turned
around in a copy of the vectors is caught."""

from __future__ import annotations

import ast
import json
import shutil
from collections import Counter
from pathlib import Path

from tests.conformance import independent_verifier

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"
PROJECT = {"crypto", "keys", "labels", "custody", "api", "tests"}


def test_it_imports_nothing_of_the_project() -> None:
    tree = ast.parse(Path(independent_verifier.__file__).read_text("utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & PROJECT, sorted(imported & PROJECT)
    assert imported <= {
        "__future__",
        "base64",
        "binascii",
        "hashlib",
        "itertools",
        "json",
        "re",
        "sys",
        "zlib",
        "collections",
        "dataclasses",
        "datetime",
        "pathlib",
        "typing",
        "cbor2",
        "nacl",
    }, sorted(imported)


def test_it_agrees_with_every_vector() -> None:
    results = independent_verifier.run(VECTORS)
    files = [
        json.loads(p.read_text("utf-8")) for p in VECTORS.glob("*.json") if p.name != "season.json"
    ]
    assert len(results) == sum(len(f["cases"]) for f in files)
    wrong = [f"{r.kind}/{r.name}: expected {r.expected}, got {r.got}" for r in results if not r.ok]
    assert not wrong, "\n".join(wrong)
    counts = Counter(r.kind for r in results)
    print("\nvectors per kind (independent verifier, all agree):")
    for kind in sorted(counts):
        print(f"  {kind}: {counts[kind]}")
    print(f"  total: {sum(counts.values())}")


def test_it_catches_a_wrong_expectation(tmp_path: Path) -> None:
    copy = tmp_path / "vectors"
    shutil.copytree(VECTORS, copy)
    path = copy / "event.open.json"
    doc = json.loads(path.read_text("utf-8"))
    case = next(c for c in doc["cases"] if c["name"] == "before-window")
    case["expect"] = "accept"  # a wrong claim: an opening before its window
    path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    results = independent_verifier.run(copy)
    wrong = [r for r in results if not r.ok]
    assert [(r.kind, r.name, r.got) for r in wrong] == [
        ("event.open", "before-window", "refuse window")
    ]


def test_it_catches_a_wrong_act_or_gate_expectation(tmp_path: Path) -> None:
    """The incident acts and the blocked-key gate are judged, not waved through: a suspect's
    act and a blocked key's statement claimed accepted are caught."""
    copy = tmp_path / "vectors"
    shutil.copytree(VECTORS, copy)
    for file, name in (
        ("incident-act.json", "suspect-acknowledges"),
        ("event.blocked-key.json", "blocked-key-signs"),
    ):
        path = copy / file
        doc = json.loads(path.read_text("utf-8"))
        next(c for c in doc["cases"] if c["name"] == name)["expect"] = "accept"
        path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    results = independent_verifier.run(copy)
    assert sorted((r.kind, r.name, r.got) for r in results if not r.ok) == [
        ("event.blocked-key", "blocked-key-signs", "refuse blocked_key"),
        ("incident-act", "suspect-acknowledges", "refuse role"),
    ]
