"""The project's conformance vectors (docs/vectors/, issue 16) run through the courier page's
own code in Chromium: every label case (label.js against the vector season's trust document at
the vectors' clock) and every key-file case (keyfile.js with the vectors' passphrase) must end
as the file expects: accepted, or refused with the expected error code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_courier_browser import (
    CHROMIUM,
    Served,
    launch,
    open_app,
    served,  # noqa: F401 - the server fixture
    sync_api,
)

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
    pytest.mark.skipif(not (VECTORS / "label.json").exists(), reason="no conformance vectors"),
]

RUN = """async ({trust, received, labels, keyfiles, passphrase}) => {
  const c = window.custody;
  const verified = c.verifyBundle(trust, null);
  const now = Date.parse(received) / 1000;
  const out = {label: {}, keyfile: {}};
  for (const k of labels) {
    try { await c.verifyLabel(k.input, verified, now); out.label[k.name] = "accept"; }
    catch (e) { out.label[k.name] = `refuse ${e.code ?? e}`; }
  }
  for (const k of keyfiles) {
    try { await c.unlockKeyFile(k.input, passphrase); out.keyfile[k.name] = "accept"; }
    catch (e) { out.keyfile[k.name] = `refuse ${e.code ?? e}`; }
  }
  return out;
}"""


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((VECTORS / name).read_text(encoding="utf-8")))


def test_label_and_keyfile_vectors_in_the_browser(
    served: Served,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    season, labels, keyfiles = load("season.json"), load("label.json"), load("keyfile.json")
    assert len(labels["cases"]) >= 40 and len(keyfiles["cases"]) >= 15
    assert all(not case["setup"] for case in labels["cases"])  # labels are judged offline
    with sync_api.sync_playwright() as p:
        browser = launch(p, tmp_path / "no-camera.y4m")
        try:
            _, page, _ = open_app(browser, served.base)
            got = page.evaluate(
                RUN,
                {
                    "trust": season["trust"],
                    "received": labels["received"],
                    "labels": labels["cases"],
                    "keyfiles": keyfiles["cases"],
                    "passphrase": keyfiles["passphrase"],
                },
            )
        finally:
            browser.close()
    for kind, cases in (("label", labels["cases"]), ("keyfile", keyfiles["cases"])):
        wrong = {c["name"]: (got[kind][c["name"]], c["expect"]) for c in cases}
        wrong = {k: v for k, v in wrong.items() if v[0] != v[1]}
        assert not wrong, f"{kind}: (device, expected) {wrong}"
