"""Every example of docs/formats.md is what the code produces, byte for byte.

The examples marked ``<!-- example: NAME -->`` are regenerated from the vectors' season through
the real HTTP app and compared; the error table is regenerated from the error classes; the key
file example (random salt and nonce) is opened with its passphrase and must hold the keys it
claims."""

from __future__ import annotations

import json
import re

import pytest

from crypto.signing import SigningKey
from keys.keyfile import open_keypair
from tests.conformance import doc_examples
from tests.conformance.generate import seed


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return doc_examples.examples()


def test_every_example_in_the_document_is_what_the_code_writes(generated: dict[str, str]) -> None:
    doc = doc_examples.DOC.read_text("utf-8")
    marked = dict(doc_examples.MARK.findall(doc))
    assert sorted(marked) == sorted(generated), "examples without a block, or blocks without one"
    stale = [name for name, text in marked.items() if text != generated[name]]
    assert not stale, (
        f"stale examples (run python -m tests.conformance.doc_examples --write): {stale}"
    )
    assert doc_examples.render(doc, generated) == doc  # the error table too


def test_the_examples_say_what_the_text_says(generated: dict[str, str]) -> None:
    """Facts the prose states about the examples."""
    seal = json.loads(generated["event-seal"])
    assert seal["body"]["route"][0] != seal["actors"]["sealer"]  # the route starts after the sealer
    assert seal["body"]["classification"] == "top-secret"
    dispatch = json.loads(generated["event-dispatch"])
    assert set(dispatch["actors"]) == {"releaser", "receiver", "witness"}
    link = dispatch["packages"]["doc.PK1"]
    assert re.fullmatch(r"[0-9a-f]{64}", link)
    assert f'"statement_id":"{link}"' in generated["api-entry"]  # entry 0 is the seal it links to
    refused = generated["api-post-event-refused"]
    assert "-> 422 application/json" in refused and '"error":"threshold"' in refused


def test_the_key_file_example_opens_with_its_passphrase() -> None:
    doc = doc_examples.DOC.read_text("utf-8")
    block = doc.split("<!-- keyfile-example -->\n```\n", 1)[1].split("```", 1)[0]
    pair = open_keypair(block.strip().encode(), "correct horse battery staple")
    assert pair.signing.key_id == SigningKey(seed("person doc.courier1")).key_id
    assert pair.label == "doc.courier1"
