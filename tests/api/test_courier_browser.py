"""The courier's device in a real browser: Debian's Chromium, a phone-sized window, its fake
camera fed a printed label, the network cut and restored by the test.

The app runs under uvicorn on 127.0.0.1 in a thread with the real clock (the device signs with
its own clock, as a phone does). Every label is judged on the device: the test fails if the page
asks the server about a label. Screenshots of each step are saved under the test's tmp dir and,
with CUSTODY_SCREENSHOTS=DIR, copied there too (docs/screenshots/ for the closing note).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import Settings, create_app
from crypto.dsse import Envelope
from custody.demo import Season, start_season
from custody.errors import CustodyError
from custody.events import Event, Kind, parse_event
from custody.identity import revoke
from custody.package_service import label_text, seal_event, seal_package
from custody.service import open_reader
from keys.model import RevocationReason
from labels.payload import verify_label
from tests.api.helpers import (
    blank_png,
    forged_label,
    label_png,
    serving_in_thread,
    stranger_label,
)
from tests.api.test_scan_browser import write_y4m
from tests.conftest import PASS, fast_kdf
from tests.labels.fixtures import resign, typical_manifest

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

PHONE = {"width": 375, "height": 812}
PACKAGE = "SX27-INT-0001"


@dataclass
class Served:
    base: str
    season: Season
    label: str


def key_file(season: Season, subject: str) -> Path:
    (found,) = season.home.people_dir().glob(f"{subject}-*.key")
    return found


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A season on the real clock, one package sealed on the log, the service over HTTP."""
    now = datetime.now(UTC).replace(microsecond=0)
    season = start_season(tmp_path / "season", now=now, passphrase=PASS, kdf=fast_kdf())
    yield from serve(season, typical_manifest(now), handover_witness=False)


@pytest.fixture
def served_open_window(tmp_path: Path) -> Iterator[Served]:
    """As ``served``, but the season began an hour ago and the package's opening window is
    open now: the exam room's acts can be signed."""
    now = datetime.now(UTC).replace(microsecond=0)
    season = start_season(
        tmp_path / "season", now=now - timedelta(hours=1), passphrase=PASS, kdf=fast_kdf()
    )
    season.now = now - timedelta(minutes=30)  # sealed half an hour ago, on the log's clock then
    manifest = typical_manifest(
        season.now,
        opens_at=now - timedelta(minutes=20),
        closes_at=now + timedelta(hours=2),
    )
    yield from serve(season, manifest, handover_witness=False)


@pytest.fixture
def served_witnessed(tmp_path: Path) -> Iterator[Served]:
    """A package of an exam whose policy on the log asks a supervisor to witness handovers."""
    now = datetime.now(UTC).replace(microsecond=0)
    season = start_season(tmp_path / "season", now=now, passphrase=PASS, kdf=fast_kdf())
    season.publish_exam_policy("SX-2027-WIT", handover_witness=True)
    yield from serve(season, typical_manifest(now, exam_id="SX-2027-WIT"), handover_witness=True)


def serve(season: Season, manifest: Any, *, handover_witness: bool) -> Iterator[Served]:
    """``manifest`` sealed on the season's log, then the service over HTTP on a free port."""
    printer = season.keys["print-qian"].signing
    seal_package(season.home, manifest, printer, now=season.now)
    label = label_text(season.home, manifest.package_id)
    sealer = season.trust().certificate(printer.key_id)
    season.submit(
        seal_event(
            manifest, label, sealer, season.authority.id, printer, handover_witness=handover_witness
        )
    )
    season.log().close()
    settings = Settings(home=season.home.path, log_passphrase=PASS, desk_every=0)
    with serving_in_thread(create_app(settings)) as base:
        yield Served(base, season, label)


class Shots:
    """Numbered screenshots of one scenario, kept as test artefacts."""

    def __init__(self, page: Any, out: Path, start: int = 0) -> None:
        self.page, self.out, self.n = page, out, start
        out.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> None:
        self.n += 1
        path = self.out / f"{self.n:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if target := os.environ.get("CUSTODY_SCREENSHOTS"):
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / path.name)


def launch(p: Any, video: Path) -> Any:
    return p.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ],
    )


def open_app(browser: Any, base: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport=PHONE, locale="zh-CN", device_scale_factor=1)
    page = context.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/courier/")
    page.wait_for_selector("body[data-ready='true']")
    assert page.evaluate("navigator.serviceWorker.ready.then(r => !!r.active)")
    assert not errors, errors
    return context, page, asked


def log_in(page: Any, season: Season, subject: str) -> None:
    page.set_input_files("#keyfile", str(key_file(season, subject)))
    page.fill("#passphrase", PASS)
    page.click("#login-button")
    page.wait_for_selector("#login-status[data-state='ok'], #login-status[data-state='error']")
    assert page.get_attribute("#login-status", "data-state") == "ok", page.inner_text(
        "#login-status"
    )


def scan(page: Any) -> str:
    """Open the camera until the page has judged a label; 'valid' or 'refused: REASON'."""
    page.click("#camera")
    page.wait_for_selector("#verdict[data-state='valid'], #verdict[data-state='refused']")
    state = page.get_attribute("#verdict", "data-state") or ""
    return state if state == "valid" else f"{state}: {page.inner_text('#verdict-reason')}"


def serious_violations(page: Any) -> list[dict[str, Any]]:
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("axe.run(document).then(r => r.violations)")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def test_scan_offline_two_signatures_queue_and_sync_with_proof(
    served: Served, tmp_path: Path
) -> None:
    season = served.season
    video = write_y4m(label_png(season, served.label), tmp_path / "good.y4m")
    shots_dir = tmp_path / "screenshots"
    with sync_api.sync_playwright() as p:
        browser = launch(p, video)
        try:
            context, page, asked = open_app(browser, served.base)
            shot = Shots(page, shots_dir)
            assert page.inner_text("h1") == "试卷交接"  # Chinese first
            shot("start")
            log_in(page, season, "courier-sun")
            assert "孙立" in page.inner_text("#login-status")
            shot("logged-in")

            # Online once: the device learns the package's latest state (its chain head).
            assert scan(page) == "valid"
            context.set_offline(True)
            page.wait_for_selector("#net[data-state='offline']")
            assert scan(page) == "valid"
            assert "未联网" in page.inner_text("#verdict-where")
            facts = page.inner_text("#facts")
            for fact in (PACKAGE, "S0012345", "S0012347", "钱峰", "西安市第一考点", "绝密"):
                assert fact in facts
            shot("valid-offline")

            for serial in ("S0012345", "S0012346", "S0012347"):
                page.check(f"#seal-list input[value='{serial}']")
            page.fill("#seal-count", "3")
            assert page.get_attribute("#seal-status", "data-state") == "ok"
            page.fill("#place", "保密印刷厂 PRT-01")
            shot("seals-checked")

            # The releaser (the printer) unlocks their own key file on this phone.
            page.set_input_files("#slot-releaser-file", str(key_file(season, "print-qian")))
            page.fill("#slot-releaser-pass", "a wrong passphrase")
            page.click("#slot-releaser-sign")
            page.wait_for_selector("#slot-releaser-status[data-state='error']")
            assert "decryption" in page.inner_text("#slot-releaser-status")
            page.fill("#slot-releaser-pass", PASS)
            page.click("#slot-releaser-sign")
            page.wait_for_selector(".slot[data-slot='releaser'] .signed")
            page.click("#sign-receiver")  # the courier, already unlocked at login
            page.wait_for_selector(".slot[data-slot='receiver'] .signed")
            shot("both-signed")
            page.click("#queue")
            page.wait_for_selector("#outbox li[data-state='queued']")
            assert "未同步" in page.inner_text("#outbox")
            page.click("#sync")  # offline: nothing is sent, the statement stays queued
            page.wait_for_timeout(500)
            assert page.locator("#outbox li[data-state='queued']").count() == 1
            statement = page.get_attribute("#outbox li", "data-statement")
            assert_no_secret_stored(page, season, "courier-sun", "print-qian")
            assert not on_log(season, statement), "nothing reaches the log while offline"
            shot("queued-offline")

            context.set_offline(False)
            page.wait_for_selector(
                "#outbox li[data-state='synced'][data-proof='ok']", timeout=30_000
            )
            assert "包含证明已在本机核验" in page.inner_text("#outbox")
            shot("synced-receipt-proof")

            # The escort's "all well" while the package travels: one signature, synced, proven.
            page.click(f"#mine li[data-package='{PACKAGE}'] button.checkin")
            proven = page.locator("#outbox li[data-state='synced'][data-proof='ok']")
            sync_api.expect(proven).to_have_count(2, timeout=30_000)
            shot("checkin-synced")

            assert not [u for u in asked if "/v1/labels/" in u], "labels are judged on the device"
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            assert serious_violations(page) == []
            page.click("#lang")
            assert page.inner_text("h1") == "Paper handover"
            sync_api.expect(page.locator("#outbox")).to_contain_text("synced: log entry")
            shot("english")

            # The app itself opens with no network (service worker), outbox intact.
            context.set_offline(True)
            page.reload()
            page.wait_for_selector("body[data-ready='true']")
            assert page.locator("#outbox li[data-state='synced']").count() == 2
            assert page.is_hidden("#logout"), "the session ended with the page"
            assert page.locator("#mine button").count() == 0
            shot("reopened-offline")

            # Another courier's inspection finds a seal missing: the desk opens an incident
            # and freezes the package (system statements on the log).
            inspect = person_event(
                served,
                Kind.INSPECT,
                {"inspector": "courier-sun"},
                {"seals": ["S0012345", "S0012346"]},
                ["courier-sun"],
            )
            answer = httpx.post(f"{served.base}/v1/events", json=inspect)
            assert answer.status_code == 201
            assert [f["kind"] for f in answer.json()["findings"]] == ["seal_mismatch"]

            # The secrecy officer's console, on a desktop: the handover is on the timeline.
            console = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            desk = console.new_page()
            desk.goto(f"{served.base}/console/")
            desk.wait_for_selector("body[data-ready='true']")
            officer = Shots(desk, shots_dir)
            officer.n = shot.n  # one numbered sequence for the closing note
            log_in(desk, season, "secrecy-chen")
            row = desk.wait_for_selector(f"#packages tr[data-package='{PACKAGE}']")
            assert row.get_attribute("data-state") == "in_transit"
            assert "孙立" in row.inner_text() and "运送中 · 已冻结" in row.inner_text()
            incident = desk.wait_for_selector("#incidents tr[data-status='open']")
            for shown in ("封条不符", "高", PACKAGE):
                assert shown in incident.inner_text(), incident.inner_text()
            assert "已核验" in desk.inner_text("#checkpoint")
            desk.select_option("#f-state", "sealed")  # the service filters (GET /v1/packages)
            sync_api.expect(desk.locator("#packages tbody tr")).to_have_count(0)
            desk.select_option("#f-state", "in_transit")
            sync_api.expect(desk.locator("#packages tbody tr")).to_have_count(1)
            officer("console-packages")
            desk.click(f"#packages tr[data-package='{PACKAGE}'] a")
            desk.wait_for_selector("#timeline-summary[data-state='ok']")
            kinds = desk.eval_on_selector_all("#timeline li", "els => els.map(e => e.dataset.kind)")
            assert kinds == ["seal", "dispatch", "checkin", "inspect", "freeze"]
            assert desk.locator("#timeline li[data-verified='true']").count() == 5
            assert "✓ 钱峰 Qian Feng" in desk.inner_text("#timeline")
            assert "✓ 孙立 Sun Li" in desk.inner_text("#timeline")
            assert "孙立" in desk.inner_text("#access")  # the courier's device read it
            assert serious_violations(desk) == []
            officer("console-timeline")
        finally:
            browser.close()

    entry = on_log(season, statement)
    assert entry is not None
    event = parse_event(entry.payload)
    assert event.kind is Kind.DISPATCH
    assert dict(event.actors) == {"releaser": "print-qian", "receiver": "courier-sun"}
    assert dict(event.body) == {"seals": ["S0012345", "S0012346", "S0012347"]}
    assert len(entry.signatures) == 2

    # A replay of the same statement gets the same receipt and changes nothing.
    first = json.loads(entry.to_bytes())
    size = open_reader(season.home).size()
    again = httpx.post(f"{served.base}/v1/events", json=first)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["statement_id"] == statement
    assert open_reader(season.home).size() == size


STORED = """async () => {
    const db = await new Promise((ok, no) => {
      const r = indexedDB.open("custody-courier");
      r.onsuccess = () => ok(r.result);
      r.onerror = () => no(r.error);
    });
    const out = {};
    for (const name of db.objectStoreNames) {
      out[name] = await new Promise((ok) => {
        const tx = db.transaction(name).objectStore(name);
        const keys = tx.getAllKeys(), values = tx.getAll();
        values.onsuccess = () => ok({keys: keys.result, values: values.result});
      });
    }
    out.local = {...localStorage};
    out.session = {...sessionStorage};
    return JSON.stringify(out);
}"""


def assert_no_secret_stored(page: Any, season: Season, *people: str) -> None:
    """Nothing the page keeps holds a seed, the passphrase or a session token."""
    stored = page.evaluate(STORED)
    assert '"outbox"' in stored and '"settings"' in stored  # the stores were read
    for person in people:
        seed = season.keys[person].signing.seed()
        assert base64.b64encode(seed).decode() not in stored
        assert seed.hex() not in stored
    assert PASS not in stored
    assert "v4.public." not in stored


def on_log(season: Season, statement: str | None) -> Envelope | None:
    log = open_reader(season.home)
    for i in range(log.size()):
        env = log.entry(i)
        if parse_event(env.payload).id == statement:
            return env
    return None


def test_tampered_label_is_refused_offline_with_the_reason(served: Served, tmp_path: Path) -> None:
    season = served.season
    video = write_y4m(label_png(season, stranger_label(season)), tmp_path / "tampered.y4m")
    with sync_api.sync_playwright() as p:
        browser = launch(p, video)
        try:
            context, page, asked = open_app(browser, served.base)
            shot = Shots(page, tmp_path / "screenshots-refused", start=20)
            log_in(page, season, "courier-sun")
            context.set_offline(True)
            assert scan(page).startswith("refused")
            assert page.inner_text("#verdict-title") == "拒绝"
            reason = page.inner_text("#verdict-reason")
            # what the code means, in Chinese, then the code and the verifier's own detail
            assert reason.startswith("签名密钥不在本考试机构的名录中（unknown_signer）"), reason
            assert "no certified key has kid" in reason
            assert page.is_hidden("#handover")
            assert serious_violations(page) == []
            shot("refused-offline")
            assert not [u for u in asked if "/v1/labels/" in u]
        finally:
            browser.close()


def parity_cases(served: Served) -> dict[str, str]:
    """Labels good and bad, each as the QR text: every way a label is refused, by its cause."""
    season = served.season
    now = season.now
    printer = season.keys["print-qian"].signing
    courier = season.keys["courier-sun"].signing
    body = served.label[len("CP1:") :]
    return {
        "good": served.label,
        "stranger key": stranger_label(season),
        "forged signature": forged_label(season),
        "wrong prefix": "XP1:" + body,
        "version 2": "CP2:" + body,
        "not base45": served.label[:-1] + "a",
        "dangling base45": served.label + "0",
        "seals do not match the bags": resign(
            typical_manifest(now), printer, lambda f: f.update({9: ["S1", "S2"]})
        ),
        "copies out of range": resign(
            typical_manifest(now), printer, lambda f: f.update({7: 0, 9: ["S1"]})
        ),
        "unknown key in manifest": resign(
            typical_manifest(now), printer, lambda f: f.update({16: 1})
        ),
        "signed by a courier": resign(typical_manifest(now), courier, lambda f: None),
        "issued in the future": resign(
            typical_manifest(now + timedelta(hours=2)), printer, lambda f: None
        ),
        "expired": resign(
            typical_manifest(now - timedelta(hours=2), expires_at=now - timedelta(hours=1)),
            printer,
            lambda f: None,
        ),
    }


def test_device_and_library_judge_every_label_alike(served: Served, tmp_path: Path) -> None:
    """The device's verifier (label.js) and the library's (labels.payload.verify_label) give
    the same verdict and the same error code for each label."""
    season = served.season
    cases = parity_cases(served)
    expected: dict[str, str] = {}
    for name, text in cases.items():
        try:
            verify_label(text, season.trust(), now=datetime.now(UTC))
            expected[name] = "valid"
        except CustodyError as e:
            expected[name] = e.code
    assert expected["good"] == "valid" and expected["stranger key"] == "unknown_signer"
    assert len(set(expected.values())) >= 6, expected  # the table covers distinct causes
    video = write_y4m(label_png(season, served.label), tmp_path / "good.y4m")
    with sync_api.sync_playwright() as p:
        browser = launch(p, video)
        try:
            _, page, _ = open_app(browser, served.base)
            log_in(page, season, "courier-sun")
            got = page.evaluate(
                """async (cases) => {
                    const trust = await window.custody.loadCachedTrust();
                    const now = Math.floor(Date.now() / 1000);
                    const out = {};
                    for (const [name, text] of Object.entries(cases)) {
                      try {
                        await window.custody.verifyLabel(text, trust, now);
                        out[name] = "valid";
                      } catch (e) { out[name] = e.code ?? String(e); }
                    }
                    return out;
                }""",
                cases,
            )
        finally:
            browser.close()
    assert got == expected, {k: (got.get(k), v) for k, v in expected.items()}


def test_a_statement_the_log_refuses_is_shown_with_its_reason(
    served: Served, tmp_path: Path
) -> None:
    """Signed offline, but meanwhile the package moved on the log: the device's statement
    points at an old chain head, and the page shows the log's refusal with its code."""
    season = served.season
    video = write_y4m(label_png(season, served.label), tmp_path / "good.y4m")
    with sync_api.sync_playwright() as p:
        browser = launch(p, video)
        try:
            context, page, _ = open_app(browser, served.base)
            shot = Shots(page, tmp_path / "screenshots-conflict", start=21)
            log_in(page, season, "courier-sun")
            assert scan(page) == "valid"
            context.set_offline(True)
            page.set_input_files("#slot-releaser-file", str(key_file(season, "print-qian")))
            page.fill("#slot-releaser-pass", PASS)
            page.click("#slot-releaser-sign")
            page.click("#sign-receiver")
            page.click("#queue")
            page.wait_for_selector("#outbox li[data-state='queued']")

            # Meanwhile, another device dispatched the package (a different place, so
            # a different statement on the same chain head).
            other = person_event(
                served,
                Kind.DISPATCH,
                {"releaser": "print-qian", "receiver": "courier-sun"},
                {"seals": ["S0012345", "S0012346", "S0012347"]},
                ["print-qian", "courier-sun"],
            )
            assert httpx.post(f"{served.base}/v1/events", json=other).status_code == 201

            context.set_offline(False)
            page.wait_for_selector("#outbox li[data-state='refused']", timeout=30_000)
            text = page.inner_text("#outbox li[data-state='refused']")
            # The page shows the log's own answer: the same envelope sent again gets it too.
            stored = json.loads(page.evaluate(STORED))
            (queued,) = stored["outbox"]["values"]
            again = httpx.post(f"{served.base}/v1/events", json=queued["envelope"])
            assert again.status_code in (403, 409, 422)
            assert "被拒绝" in text and f"({again.json()['error']})" in text, text
            # ... in the page's language: Chinese (the service gives message_zh beside message).
            assert again.json()["message_zh"] in text
            assert again.json()["message_zh"] != again.json()["message"]
            shot("refused-by-the-log")
        finally:
            browser.close()


def test_receive_at_the_site_three_people_sign_on_one_phone(served: Served, tmp_path: Path) -> None:
    """At the exam site: the courier releases, the custodian receives and a second custodian
    co-signs, each unlocking their own key file on the courier's phone, offline."""
    season = served.season
    dispatch = person_event(
        served,
        Kind.DISPATCH,
        {"releaser": "print-qian", "receiver": "courier-sun"},
        {"seals": ["S0012345", "S0012346", "S0012347"]},
        ["print-qian", "courier-sun"],
    )
    assert httpx.post(f"{served.base}/v1/events", json=dispatch).status_code == 201
    video = write_y4m(label_png(season, served.label), tmp_path / "good.y4m")
    with sync_api.sync_playwright() as p:
        browser = launch(p, video)
        try:
            context, page, _ = open_app(browser, served.base)
            shot = Shots(page, tmp_path / "screenshots-receive", start=30)
            log_in(page, season, "courier-sun")
            assert scan(page) == "valid"
            context.set_offline(True)
            assert scan(page) == "valid"
            assert "入库签收" in page.inner_text("#kind")
            for serial in ("S0012345", "S0012346", "S0012347"):
                page.check(f"#seal-list input[value='{serial}']")
            page.fill("#seal-count", "3")
            page.fill("#place", "西安市第一考点 保密室")
            page.click("#sign-releaser")  # nobody signs before the second custodian is named
            page.wait_for_selector("#handover-status[data-state='error']")
            assert page.locator(".signed").count() == 0
            choose(page, "custodian2", "custodian-wu")
            page.click("#sign-releaser")
            page.wait_for_selector(".slot[data-slot='releaser'] .signed")
            for slot, person in (("receiver", "custodian-zhou"), ("custodian2", "custodian-wu")):
                page.set_input_files(f"#slot-{slot}-file", str(key_file(season, person)))
                page.fill(f"#slot-{slot}-pass", PASS)
                page.click(f"#slot-{slot}-sign")
                page.wait_for_selector(f".slot[data-slot='{slot}'] .signed")
            shot("receive-three-signed")
            page.click("#queue")
            page.wait_for_selector("#outbox li[data-state='queued']")
            statement = page.get_attribute("#outbox li", "data-statement")
            context.set_offline(False)
            proven = "#outbox li[data-state='synced'][data-proof='ok']"
            page.wait_for_selector(proven, timeout=30_000)
            shot("receive-synced")
        finally:
            browser.close()
    entry = on_log(season, statement)
    assert entry is not None
    event = parse_event(entry.payload)
    assert event.kind is Kind.RECEIVE
    assert dict(event.actors) == {
        "releaser": "courier-sun",
        "receiver": "custodian-zhou",
        "custodian2": "custodian-wu",
    }
    assert len(entry.signatures) == 3


SEALS = ("S0012345", "S0012346", "S0012347")


def check_seals(page: Any) -> None:
    for serial in SEALS:
        page.check(f"#seal-list input[value='{serial}']")
    page.fill("#seal-count", "3")


def choose(page: Any, slot: str, person: str) -> None:
    """Pick the person for a slot, then wait until the page has drawn the slot anew with them
    (the page redraws the slots on each choice: acting before it is done acts on old ones)."""
    page.select_option(f"#choose-{slot}", person)
    sync_api.expect(page.locator(f".slot[data-slot='{slot}'] h3")).not_to_contain_text("—")
    sync_api.expect(page.locator(f"#choose-{slot}")).to_have_value(person)
    sync_api.expect(page.locator("#handover")).not_to_have_attribute("data-rendering", "1")


def unlock_and_sign(page: Any, season: Season, slot: str, person: str) -> None:
    page.set_input_files(f"#slot-{slot}-file", str(key_file(season, person)))
    page.fill(f"#slot-{slot}-pass", PASS)
    page.click(f"#slot-{slot}-sign")
    page.wait_for_selector(  # an unlock's refusal is said in the slot's own status line
        f".slot[data-slot='{slot}'] .signed, #slot-{slot}-status[data-state='error']"
    )
    signed = page.locator(f".slot[data-slot='{slot}'] .signed")
    assert signed.count() == 1, page.inner_text("#handover")


def queue(page: Any, n: int) -> None:
    page.click("#queue")
    sync_api.expect(page.locator("#outbox li[data-state='queued']")).to_have_count(n)


def test_the_exam_rooms_acts_signed_on_one_phone_offline_then_synced(
    served_open_window: Served, tmp_path: Path
) -> None:
    """After the package is in the site's store, the custodian's phone carries it to its end
    with no network: a patrol, the opening, distribution, recovery, the return into store and
    the destruction, each signed by its own people on the phone, each chained to the one before
    it on the device, then all synced and proven."""
    served = served_open_window
    season = served.season
    for kind, actors in (
        (Kind.DISPATCH, {"releaser": "print-qian", "receiver": "courier-sun"}),
        (
            Kind.RECEIVE,
            {"releaser": "courier-sun", "receiver": "custodian-zhou", "custodian2": "custodian-wu"},
        ),
    ):
        event = person_event(served, kind, actors, {"seals": list(SEALS)}, list(actors.values()))
        assert httpx.post(f"{served.base}/v1/events", json=event).status_code == 201
    video = write_y4m(label_png(season, served.label), tmp_path / "good.y4m")
    with sync_api.sync_playwright() as p:
        browser = launch(p, video)
        try:
            context, page, _ = open_app(browser, served.base)
            shot = Shots(page, tmp_path / "screenshots-acts", start=40)
            log_in(page, season, "custodian-zhou")
            assert scan(page) == "valid"  # online once: the device learns the chain head
            context.set_offline(True)
            offered = page.eval_on_selector_all("#act option", "os => os.map(o => o.value)")
            assert offered == ["inspect", "patrol", "open", "destroy"]

            # A patrol of the store: the custodian logged in is the inspector, one signature.
            page.select_option("#act", "patrol")
            assert "周静" in page.inner_text(".slot[data-slot='inspector'] h3")
            check_seals(page)
            page.fill("#place", "西安市第一考点 保密室")
            page.click("#sign-inspector")
            page.wait_for_selector(".slot[data-slot='inspector'] .signed")
            queue(page, 1)

            # The opening: the chief examiner and the supervisor, each with their key file.
            assert scan(page) == "valid"
            page.select_option("#act", "open")
            choose(page, "examiner", "examiner-zheng")
            page.set_input_files("#slot-examiner-file", str(key_file(season, "examiner-zheng")))
            choose(page, "supervisor", "supervisor-wang")  # redraws every slot
            # The key file picked for the examiner before the redraw is still there, and signs.
            assert page.eval_on_selector("#slot-examiner-file", "i => i.files.length") == 1
            check_seals(page)
            page.fill("#slot-examiner-pass", PASS)
            page.click("#slot-examiner-sign")
            page.wait_for_selector(".slot[data-slot='examiner'] .signed")
            unlock_and_sign(page, season, "supervisor", "supervisor-wang")
            shot("open-signed")
            queue(page, 2)

            for kind, n in (("distribute", 3), ("recover", 4)):
                assert scan(page) == "valid"
                assert page.input_value("#act") == kind  # the only act the state allows next
                choose(page, "examiner", "examiner-zheng")
                choose(page, "supervisor", "supervisor-wang")
                assert page.input_value("#act-copies") == "30"  # the copies, then those handed out
                unlock_and_sign(page, season, "examiner", "examiner-zheng")
                unlock_and_sign(page, season, "supervisor", "supervisor-wang")
                queue(page, n)

            # Back into store: the examiner releases, the custodian (logged in) receives.
            assert scan(page) == "valid"
            page.select_option("#act", "return")
            assert page.input_value("#choose-receiver") == "custodian-zhou"
            unlock_and_sign(page, season, "releaser", "examiner-zheng")
            page.click("#sign-receiver")
            page.wait_for_selector(".slot[data-slot='receiver'] .signed")
            queue(page, 5)

            # The destruction certificate: the officer and a witness; nobody signs before both
            # are named, and the copies destroyed are part of what they sign.
            assert scan(page) == "valid"
            page.select_option("#act", "destroy")
            choose(page, "officer", "destroy-feng")
            page.click("#slot-officer-sign")  # no key file chosen: nothing happens
            assert page.locator(".signed").count() == 0
            choose(page, "witness", "supervisor-wang")
            assert page.input_value("#act-method") == "粉碎"
            unlock_and_sign(page, season, "officer", "destroy-feng")
            unlock_and_sign(page, season, "witness", "supervisor-wang")
            shot("destroy-signed")
            queue(page, 6)
            assert scan(page) == "valid"  # the label stays valid; the package's chain is closed
            assert page.get_attribute("#handover-status", "data-state") == "warn"
            assert "已销毁" in page.inner_text("#handover-status")

            context.set_offline(False)
            proven = page.locator("#outbox li[data-state='synced'][data-proof='ok']")
            try:
                sync_api.expect(proven).to_have_count(6, timeout=60_000)
            except AssertionError:
                pytest.fail(page.inner_text("#outbox"))
            assert page.locator("#outbox li[data-state='refused']").count() == 0
            shot("acts-synced")
        finally:
            browser.close()

    log = open_reader(season.home)
    events = [parse_event(log.entry(i).payload) for i in range(log.size())]
    mine = [e for e in events if PACKAGE in e.packages]
    assert [e.kind.value for e in mine] == [
        "seal",
        "dispatch",
        "receive",
        "patrol",
        "open",
        "distribute",
        "recover",
        "return",
        "destroy",
    ]
    for before, after in itertools.pairwise(mine):
        assert after.packages[PACKAGE] == before.id  # each chained to the one before it
    by_kind = {e.kind.value: e for e in mine}
    assert dict(by_kind["open"].actors) == {
        "examiner": "examiner-zheng",
        "supervisor": "supervisor-wang",
    }
    assert dict(by_kind["distribute"].body) == {"copies": 30}
    assert dict(by_kind["return"].actors) == {
        "releaser": "examiner-zheng",
        "receiver": "custodian-zhou",
    }
    assert dict(by_kind["destroy"].body) == {"copies": {PACKAGE: 30}, "method": "粉碎"}
    assert dict(by_kind["destroy"].actors) == {
        "officer": "destroy-feng",
        "witness": "supervisor-wang",
    }


def test_a_dispatch_the_exam_has_witnessed_needs_the_supervisor_on_the_phone(
    served_witnessed: Served, tmp_path: Path
) -> None:
    """The exam's policy on the log asks a supervising witness at every handover: the phone
    asks for one before anyone signs, and the log accepts the three signatures."""
    served = served_witnessed
    season = served.season
    video = write_y4m(label_png(season, served.label), tmp_path / "good.y4m")
    with sync_api.sync_playwright() as p:
        browser = launch(p, video)
        try:
            _context, page, _ = open_app(browser, served.base)
            log_in(page, season, "courier-sun")
            assert scan(page) == "valid"
            assert page.input_value("#act") == "dispatch"
            slots = page.eval_on_selector_all(".slot", "els => els.map(e => e.dataset.slot)")
            assert slots == ["releaser", "receiver", "witness"]
            check_seals(page)
            page.click("#sign-receiver")  # the witness is not named yet: refused on the phone
            page.wait_for_selector("#handover-status[data-state='error']")
            choose(page, "witness", "supervisor-wang")
            page.click("#sign-receiver")
            page.wait_for_selector(".slot[data-slot='receiver'] .signed")
            unlock_and_sign(page, season, "releaser", "print-qian")
            unlock_and_sign(page, season, "witness", "supervisor-wang")
            page.click("#queue")
            proven = page.locator("#outbox li[data-state='synced'][data-proof='ok']")
            sync_api.expect(proven).to_have_count(1, timeout=30_000)
            statement = page.get_attribute("#outbox li", "data-statement")
        finally:
            browser.close()
    entry = on_log(season, statement)
    assert entry is not None
    assert dict(parse_event(entry.payload).actors) == {
        "releaser": "print-qian",
        "receiver": "courier-sun",
        "witness": "supervisor-wang",
    }
    assert len(entry.signatures) == 3


def test_the_releaser_signs_on_their_own_phone_through_two_qr_codes(
    served: Served, tmp_path: Path
) -> None:
    """The courier's phone holds the handover; the printer signs it on their own phone: the
    courier's phone shows the statement as a QR code, the printer's phone (logged in with the
    printer's key) scans it, shows what is to be signed, signs, and shows the signature as a QR
    code that the courier's phone scans and verifies. Each phone's camera is fed what the other
    phone's screen shows. Nobody's key leaves their phone."""
    season = served.season
    courier_camera = write_y4m(label_png(season, served.label), tmp_path / "courier.y4m")
    printer_camera = write_y4m(blank_png(), tmp_path / "printer.y4m")
    shots_dir = tmp_path / "screenshots-relay"
    with sync_api.sync_playwright() as p:
        courier_browser = launch(p, courier_camera)
        printer_browser = launch(p, printer_camera)
        try:
            _, courier, _ = open_app(courier_browser, served.base)
            _, printer, _ = open_app(printer_browser, served.base)
            shot = Shots(courier, shots_dir, start=50)
            log_in(courier, season, "courier-sun")
            log_in(printer, season, "courier-li")  # first, someone the statement does not name
            assert scan(courier) == "valid"
            check_seals(courier)
            courier.fill("#place", "保密印刷厂 PRT-01")
            courier.click("#slot-releaser-relay-scan")  # nothing to sign yet: said, not scanned
            courier.wait_for_selector("#slot-releaser-status[data-state='error']")
            courier.click("#slot-releaser-relay")
            courier.wait_for_selector("#relay-code")
            assert courier.is_disabled("#place"), "the statement is frozen once shown"
            shot("statement-code")
            write_y4m(courier.locator("#relay-code").screenshot(), printer_camera)

            printer.click("#cosign")
            printer.wait_for_selector("#cosign-status[data-state='error']")
            assert "没有指定" in printer.inner_text("#cosign-status")
            assert printer.is_hidden("#cosign-confirm")
            printer.click("#logout")
            log_in(printer, season, "print-qian")
            printer.click("#cosign")
            printer.wait_for_selector("#cosign-confirm:visible")
            summary = printer.inner_text("#cosign-summary")
            for shown in ("发运", PACKAGE, "孙立", "钱峰", "S0012345", "保密印刷厂 PRT-01"):
                assert shown in summary, summary
            printer.click("#cosign-confirm")
            printer.wait_for_selector("#cosign-code:visible")
            on_printer = Shots(printer, shots_dir, start=shot.n)
            on_printer("signature-code")
            shot.n = on_printer.n
            write_y4m(printer.locator("#cosign-code").screenshot(), courier_camera)

            courier.click("#slot-releaser-relay-scan")
            courier.wait_for_selector(".slot[data-slot='releaser'] .signed")
            courier.click("#sign-receiver")
            courier.wait_for_selector(".slot[data-slot='receiver'] .signed")
            queue(courier, 1)
            proven = courier.locator("#outbox li[data-state='synced'][data-proof='ok']")
            sync_api.expect(proven).to_have_count(1, timeout=30_000)
            statement = courier.get_attribute("#outbox li", "data-statement")
            shot("relayed-synced")
            assert_no_secret_stored(courier, season, "print-qian", "courier-sun")
        finally:
            courier_browser.close()
            printer_browser.close()
    entry = on_log(season, statement)
    assert entry is not None
    event = parse_event(entry.payload)
    assert event.kind is Kind.DISPATCH
    assert dict(event.actors) == {"releaser": "print-qian", "receiver": "courier-sun"}
    assert len(entry.signatures) == 2


def person_event(
    served: Served, kind: Kind, actors: dict[str, str], body: dict[str, Any], signers: list[str]
) -> dict[str, Any]:
    """A statement made on another device, chained to the package's head as the log has it."""
    season = served.season
    head = httpx.get(
        f"{served.base}/v1/packages/{PACKAGE}",
        headers={"authorization": f"Bearer {token_of(served, signers[0])}"},
    ).json()["state"]["last_event"]
    env = Event(
        kind=kind,
        authority=season.authority.id,
        time=datetime.now(UTC).replace(microsecond=0),
        place="another gate",
        packages={PACKAGE: head},
        actors=actors,
        body=body,
    ).sign([season.keys[s].signing for s in signers])
    return dict(json.loads(env.to_bytes()))


def token_of(served: Served, person: str) -> str:
    from crypto.encoding import parse_time
    from custody.sessions import Challenge, sign_login

    got = httpx.post(f"{served.base}/v1/login/challenge").json()
    challenge = Challenge(got["challenge"], got["origin"], parse_time(got["expires_at"]))
    statement = sign_login(challenge, served.season.keys[person].signing)
    r = httpx.post(
        f"{served.base}/v1/login",
        content=statement.to_bytes(),
        headers={"content-type": "application/json"},
    )
    return str(r.json()["token"])


def test_a_sealer_revoked_for_compromise_voids_their_labels_on_the_device(
    served: Served, tmp_path: Path
) -> None:
    """Revoked for key_compromise after sealing: the label's own time no longer saves it, on
    the device as in the library; a revocation for leaving the post, effective later, does
    not void a label issued before it."""
    season = served.season
    now = datetime.now(UTC).replace(microsecond=0)
    printer = season.keys["print-qian"].signing
    proposer = season.keys["prop-zhao"].signing
    earlier = resign(typical_manifest(now - timedelta(minutes=1)), proposer, lambda f: None)
    revoke(
        season.home,
        root_passphrase=PASS,
        key_id=printer.key_id,
        reason=RevocationReason.KEY_COMPROMISE,
        effective_at=now,
        now=now,
    )
    revoke(
        season.home,
        root_passphrase=PASS,
        key_id=proposer.key_id,
        reason=RevocationReason.LEFT_POST,
        effective_at=now + timedelta(minutes=1),
        now=now,
    )
    cases = {"compromised sealer": served.label, "sealer left later": earlier}
    expected = {}
    for name, text in cases.items():
        try:
            verify_label(text, season.trust(), now=datetime.now(UTC))
            expected[name] = "valid"
        except CustodyError as e:
            expected[name] = e.code
    assert expected == {"compromised sealer": "revoked", "sealer left later": "valid"}
    video = write_y4m(label_png(season, served.label), tmp_path / "good.y4m")
    with sync_api.sync_playwright() as p:
        browser = launch(p, video)
        try:
            context, page, _ = open_app(browser, served.base)
            log_in(page, season, "courier-sun")  # the bundle now carries both revocations
            context.set_offline(True)
            assert scan(page).startswith("refused")
            assert "签名人的密钥已吊销（revoked）" in page.inner_text("#verdict-reason")
            page.click("#label-text >> xpath=ancestor::details/summary")
            page.fill("#label-text", earlier)
            page.click("#check-text")
            page.wait_for_selector("#verdict[data-state='valid']")
        finally:
            browser.close()
