"""Packages sealed on the proposition page, in a real browser (Debian's Chromium).

- The page's own builders (``/proposition/seal.js``) make, from the same manifest and seed,
  exactly the label text of the conformance vectors (docs/vectors/label.json) and of the
  Python code, and exactly the seal event envelope ``custody package seal`` signs.
- A proposer seals a package through the page: refused in Chinese for what is missing, then
  sealed; the label PDF the page offers is rasterised (pdftoppm) and decoded as a printer's
  sheet to the very label, which verifies; the package is sealed on the log.

Screenshots are saved under the test's tmp dir and, with CUSTODY_SCREENSHOTS=DIR, copied there
(docs/screenshots/proposition/ for the closing note).
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from crypto.dsse import sign_envelope
from crypto.signing import SigningKey
from custody import package_service
from custody.events import EVENT_TYPE
from custody.packages import Manifest
from labels.payload import manifest_from_fields, parse_label, seal_manifest, verify_label
from tests.api.helpers import labels_printed
from tests.api.test_console_browser import launch
from tests.api.test_courier_browser import (
    CHROMIUM,
    Served,
    Shots,
    log_in,
    serious_violations,
    served,
)
from tests.conformance.generate import seed
from tests.labels.fixtures import typical_manifest

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
__all__ = ["served"]  # the fixture, shared with the courier's test

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"
DESKTOP = {"width": 1280, "height": 900}

BUILD = """async ({manifests, seeds, event}) => {
  const s = await import('/proposition/seal.js');
  const { ed } = await import('/courier/vendor/crypto.js');
  const { keyId } = await import('/courier/lib.js');
  const key = (h) => { const seed = Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
                       return { seed, keyId: keyId(ed.getPublicKey(seed)) }; };
  const m = (j) => ({ ...j, commitment: Uint8Array.from(j.commitment.match(/../g), (x) => parseInt(x, 16)) });
  const labels = manifests.map((j, i) => s.sealManifest(m(j), key(seeds[i])));
  const sealed = s.sealPackage(m(event.manifest), key(event.seed), event.opts);
  return { labels, sealed };
}"""


def js_manifest(m: Manifest) -> dict[str, Any]:
    """A manifest as the page holds it (times in Unix seconds, the commitment in hex)."""
    return {
        "package_id": m.package_id,
        "exam": m.exam_id,
        "session": m.session,
        "position": m.position,
        "paper": m.paper_id,
        "commitment": m.paper_commitment.hex(),
        "copies": m.copy_count,
        "bag_size": m.bag_size,
        "seals": list(m.seal_serials),
        "site": m.site,
        "room": m.room,
        "opens": int(m.opens_at.timestamp()),
        "closes": int(m.closes_at.timestamp()),
        "route": [{"person": s.person, "place": s.place} for s in m.route],
        "classification": m.classification.slug,
        "issued": int(m.issued_at.timestamp()),
        "expires": int(m.expires_at.timestamp()),
    }


def vector_seeds() -> dict[bytes, bytes]:
    """kid (8 bytes) -> seed, for every person of the vectors' season."""
    season = json.loads((VECTORS / "season.json").read_text(encoding="utf-8"))
    out = {}
    for env in season["trust"]["certificates"]:
        subject = json.loads(base64.b64decode(env["payload"]))["subject"]
        s = seed(f"person {subject}")
        out[bytes.fromhex(SigningKey(s).key_id)[:8]] = s
    return out


def test_the_page_builds_the_vectors_labels_and_the_clis_seal_event(served: Served) -> None:
    cases = json.loads((VECTORS / "label.json").read_text(encoding="utf-8"))["cases"]
    wanted = [c["input"] for c in cases if c["name"] in ("accept", "accept-printer")]
    assert len(wanted) == 2
    seeds = vector_seeds()
    manifests, keys = [], []
    for text in wanted:
        parsed = parse_label(text)
        manifests.append(js_manifest(manifest_from_fields(parsed.fields)))
        keys.append(seeds[parsed.kid].hex())
    # formats.md's example: the typical manifest, signed by the seed 0..31.
    doc_key = SigningKey(bytes(range(32)))
    example = typical_manifest(served.season.now, package_id="SX27-INT-0002")
    wanted.append(seal_manifest(example, doc_key))
    manifests.append(js_manifest(example))
    keys.append(bytes(range(32)).hex())
    # The seal event, as the CLI signs it (the sealer's own first step dropped from the route).
    season = served.season
    printer = season.keys["print-qian"].signing
    sealed = typical_manifest(season.now, package_id="SX27-INT-0003")
    label = seal_manifest(sealed, printer)
    event = package_service.seal_event_of(
        sealed, label, "print-qian", season.authority.id, handover_witness=True
    )
    envelope = sign_envelope(EVENT_TYPE, event.payload(), [printer])
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.goto(f"{served.base}/proposition/")
            page.wait_for_selector("body[data-ready='true']")
            got = page.evaluate(
                BUILD,
                {
                    "manifests": manifests,
                    "seeds": keys,
                    "event": {
                        "manifest": js_manifest(sealed),
                        "seed": printer.seed().hex(),
                        "opts": {
                            "sealer": "print-qian",
                            "authority": season.authority.id,
                            "handoverWitness": True,
                        },
                    },
                },
            )
        finally:
            browser.close()
    assert got["labels"] == wanted
    assert got["sealed"]["label"] == label
    assert got["sealed"]["seal"] == envelope.to_json_obj()
