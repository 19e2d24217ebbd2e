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
from tests.api.helpers import as_person, client, labels_printed
from tests.api.paper_helpers import submission
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
from tests.conftest import PASS
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
  const bytes = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
  const key = (h) => ({ seed: bytes(h), keyId: keyId(ed.getPublicKey(bytes(h))) });
  const m = (j) => ({ ...j, commitment: bytes(j.commitment) });
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


def local(dt: Any) -> str:
    """A time as a datetime-local field takes it (the browser's zone is UTC here)."""
    return str(dt.strftime("%Y-%m-%dT%H:%M"))


def propose_paper(served: Served) -> None:
    """A paper of prop-zhao's on the service (made as the page makes one), for the defaults."""
    season = served.season
    c = client(season)
    headers = as_person(c, season, "prop-zhao")
    got = c.get("/v1/proposition/recipients", headers=headers).json()
    body = submission(
        season, b"paper", log_public=base64.b64decode(got["log_key"]["key"]), at=season.now
    )
    r = c.post("/v1/papers", json=body, headers=headers)
    assert r.status_code == 201, r.text


NEW = "SX27-INT-0100"


def test_a_proposer_seals_a_package_and_prints_its_label(served: Served, tmp_path: Path) -> None:
    season = served.season
    propose_paper(served)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(
                viewport=DESKTOP, locale="zh-CN", timezone_id="UTC", accept_downloads=True
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{served.base}/proposition/")
            page.wait_for_selector("body[data-ready='true']")
            shot = Shots(page, tmp_path / "screenshots-seal", start=10)
            log_in(page, season, "prop-zhao")
            page.wait_for_selector("#seal-section:not([hidden])")
            page.wait_for_selector("#seal-paper option[value='SX-INT-P01-A@v1']", state="attached")
            # The paper's facts are the defaults.
            page.select_option("#seal-paper", "SX-INT-P01-A@v1")
            assert page.input_value("#seal-exam") == "SX-2027-INT"
            assert page.input_value("#seal-position") == "P01"
            assert page.input_value("#seal-paper-id") == "SX-INT-P01-A"
            commitment = page.input_value("#seal-commitment")
            assert len(commitment) == 64
            page.fill("#seal-package", NEW)
            start = season.now + timedelta(days=2)
            page.fill("#seal-opens", local(start))
            page.fill("#seal-closes", local(start + timedelta(hours=3)))
            page.fill("#seal-site", "西安市第一考点")
            page.fill("#seal-room", "第3考场")
            page.fill("#seal-place", "命题中心")
            # Refused in Chinese on the page: no seal serials, then no route.
            page.fill("#seal-pass", PASS)
            page.click("#seal-button")
            page.wait_for_selector("#seal-status[data-state='error']")
            assert "请填写封条编号" in page.inner_text("#seal-status")
            page.fill("#seal-seals", "S-100, S-101 S-102")
            page.click("#seal-button")
            page.locator("#seal-status", has_text="至少须有一名交接人").wait_for()
            page.select_option("#seal-step-person-0", "courier-sun")
            page.fill("#seal-step-place-0", "G65 服务区")
            page.select_option("#seal-step-person-1", "custodian-zhou")
            page.fill("#seal-step-place-1", "XA-01")
            shot("seal-refused-no-route")
            page.fill("#seal-pass", "a wrong passphrase")
            page.click("#seal-button")
            page.locator("#seal-status", has_text="口令错误").wait_for()
            assert package_service.all_package_ids(season.home) == ["SX27-INT-0001"]

            page.fill("#seal-pass", PASS)
            page.click("#seal-button")
            page.wait_for_selector("#seal-status[data-state='ok']", timeout=60_000)
            assert NEW in page.inner_text("#seal-status")
            assert page.inner_text("#seal-result dd[data-field='seal.state']") == "已封装"
            assert page.inner_text("#seal-result dd[data-field='seal.holder']") == "prop-zhao"
            shot("sealed")
            with page.expect_download() as got:
                page.click("#seal-pdf")
            pdf = Path(got.value.path()).read_bytes()
            assert not serious_violations(page)

            # The service's refusal, in its Chinese: the same package again.
            page.fill("#seal-pass", PASS)
            page.click("#seal-button")
            page.wait_for_selector("#seal-status[data-state='error']")
            refusal = page.inner_text("#seal-status")
            assert "(conflict)" in refusal and "已" in refusal, refusal
            shot("seal-refused-sealed-already")
            page.click("#lang")
            assert page.inner_text("#seal-h") == "Seal packages and print their labels"
            shot("seal-en")
            assert not errors, errors
            context.close()
        finally:
            browser.close()

    # The printer's path: the sheet rasterised and decoded is the label stored, and it verifies.
    (printed,) = labels_printed(pdf, tmp_path / "print")
    assert printed == package_service.label_text(season.home, NEW)
    verified = verify_label(printed, season.trust(), now=season.now + timedelta(minutes=5))
    m = verified.manifest
    assert (m.package_id, m.paper_id, m.paper_commitment.hex()) == (NEW, "SX-INT-P01-A", commitment)
    assert [(s.person, s.place) for s in m.route] == [
        ("prop-zhao", "命题中心"),
        ("courier-sun", "G65 服务区"),
        ("custodian-zhou", "XA-01"),
    ]
    assert (m.seal_serials, m.copy_count, m.bag_size) == (("S-100", "S-101", "S-102"), 30, 10)
    assert verified.certificate.subject == "prop-zhao"
    # Sealed on the log: held by its sealer, next to the courier; the seal event names the label.
    state = season.log().package_state(NEW)
    assert (str(state.status), state.holder, list(state.route)) == (
        "sealed",
        "prop-zhao",
        ["courier-sun", "custodian-zhou"],
    )
