"""The secrecy officer's console in a real browser (Debian's Chromium, a desktop window): the
officer logs in with their key file, sees the incident queue and one incident's ladder, signs
an acknowledgement in the browser, and the page finds the act's statement on the log and
checks it there; the checkpoint's witness cosignatures are checked in the browser too.

Uses the courier test's service (uvicorn on 127.0.0.1, the real clock). Screenshots are saved
under the test's tmp dir and, with CUSTODY_SCREENSHOTS=DIR, copied there too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from crypto.dsse import parse_envelope
from custody.events import Kind, parse_event
from custody.incidents.acts import open_note, parse_act
from custody.service import open_reader
from tests.api.helpers import as_person
from tests.api.test_courier_browser import (
    CHROMIUM,
    PACKAGE,
    Served,
    Shots,
    key_file,
    log_in,
    person_event,
    serious_violations,
    served,
)
from tests.conftest import PASS
from tests.custody.witness_helpers import WITNESSES, cosign_latest, write_policy

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
__all__ = ["served"]  # the fixture, shared with the courier's test

DESKTOP = {"width": 1280, "height": 900}


def launch(p: Any) -> Any:
    return p.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ],
    )


def open_incident(served: Served) -> None:
    """The printer hands the package to a courier off its route: refused, and the desk opens
    INC-00001 (off_route), freezes the package and blocks the receiver's key."""
    off = person_event(
        served,
        Kind.DISPATCH,
        {"releaser": "print-qian", "receiver": "courier-li"},
        {"seals": ["S0012345", "S0012346", "S0012347"]},
        ["print-qian", "courier-li"],
    )
    r = httpx.post(f"{served.base}/v1/events", json=off)
    assert (r.status_code, r.json()["error"]) == (403, "route"), r.text


def cosign(served: Served) -> None:
    """Two of three listed witnesses cosign the latest checkpoint (quorum 2)."""
    write_policy(served.season.home.path, 2)
    for w in WITNESSES[:2]:
        r = httpx.post(
            f"{served.base}/v1/cosignatures",
            content=cosign_latest(served.season, w).encode(),
            headers={"content-type": "text/plain"},
        )
        assert r.status_code == 201, r.text


def test_the_officer_acknowledges_an_incident_signed_in_the_browser(
    served: Served, tmp_path: Path
) -> None:
    season = served.season
    open_incident(served)
    cosign(served)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
            page = context.new_page()
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{served.base}/console/")
            page.wait_for_selector("body[data-ready='true']")
            shot = Shots(page, tmp_path / "screenshots-console", start=40)
            assert page.inner_text("h1") == "保密工作台"
            log_in(page, season, "secrecy-chen")
            assert "陈" in page.inner_text("#login-status")

            # The queue, from GET /v1/incidents.
            row = page.wait_for_selector("#incidents tr[data-incident='INC-00001']")
            assert row.get_attribute("data-status") == "open"
            for shown in ("偏离路线", "高", "待确认", PACKAGE):
                assert shown in row.inner_text(), row.inner_text()
            # The checkpoint and its witnesses, checked in this browser.
            page.wait_for_selector("#witness-summary[data-state='ok']")
            assert page.locator("#witnesses li[data-ok='true']").count() == 2
            assert page.locator("#witnesses li[data-ok='false']").count() == 1  # w3: none
            assert "2 / 3" in page.inner_text("#witness-summary")
            # The package table from GET /v1/packages; the overdue filter asks the service.
            pkg = page.wait_for_selector(f"#packages tr[data-package='{PACKAGE}']")
            assert "已冻结" in pkg.inner_text()
            page.check("#f-overdue")
            sync_api.expect(page.locator("#packages tbody tr")).to_have_count(0)
            assert any("/v1/packages?" in u and "overdue=true" in u for u in asked)
            page.uncheck("#f-overdue")
            sync_api.expect(page.locator("#packages tbody tr")).to_have_count(1)
            shot("console-queue")

            # One incident: its ladder, deadline, scope; the acts the officer may sign.
            page.click("#incidents tr[data-incident='INC-00001'] a")
            page.wait_for_selector("#incident-section[data-incident='INC-00001']")
            assert page.locator("#ladder li").count() == 3
            assert page.locator("#ladder li[data-current='true']").count() == 1
            facts = page.inner_text("#incident-facts")
            assert PACKAGE in facts and "SX-2027-INT" in facts
            assert page.is_enabled("#act-buttons button[data-act='acknowledge']")
            assert page.is_visible("#act-buttons button[data-act='unblock']")
            assert "李" in page.inner_text("#act-key")  # courier-li's key is blocked
            shot("console-incident-ladder")

            # A wrong passphrase signs nothing.
            size = open_reader(season.home).size()
            page.fill("#act-pass", "not the passphrase")
            page.click("#act-buttons button[data-act='acknowledge']")
            page.wait_for_selector("#act-status[data-state='error']")
            assert "decryption" in page.inner_text("#act-status")
            assert open_reader(season.home).size() == size

            page.fill("#act-note", "已接手，正在核查 taken in hand")
            page.fill("#act-pass", PASS)
            page.click("#act-buttons button[data-act='acknowledge']")
            page.wait_for_selector("#act-status[data-state='ok']", timeout=30_000)
            index = int(page.get_attribute("#act-status", "data-index") or "-1")
            assert "包含证明已在本浏览器核验" in page.inner_text("#act-status")
            page.wait_for_selector("#incident-section[data-status='acknowledged']")
            assert page.locator("#incident-acts li[data-act='acknowledge']").count() == 1
            assert page.is_hidden("#act-buttons button[data-act='acknowledge']")
            sync_api.expect(
                page.locator("#incidents tr[data-incident='INC-00001']")
            ).to_have_attribute("data-status", "acknowledged")
            shot("console-acknowledged")

            # Lifting the block on courier-li's key: the key is chosen from the incident's.
            page.select_option("#act-key", season.keys["courier-li"].signing.key_id)
            page.fill("#act-pass", PASS)
            page.click("#act-buttons button[data-act='unblock']")
            page.wait_for_selector("#act-status[data-state='ok']:has-text('解除密钥封禁')")
            sync_api.expect(page.locator("#incident-acts li[data-act='unblock']")).to_have_count(1)
            assert page.is_hidden("#act-buttons button[data-act='unblock']")
            assert "李伟" in page.inner_text("#incident-facts")  # under "keys unblocked"

            # Who read what, for the whole authority.
            page.click("#access-search")
            sync_api.expect(
                page.locator("#access-log tbody tr[data-who='secrecy-chen']").first
            ).to_be_visible()
            assert "GET /v1/incidents" in page.inner_text("#access-log")
            page.locator("#access-section").scroll_into_view_if_needed()
            shot("console-access-log")

            stored = page.evaluate(
                "indexedDB.databases().then(d => JSON.stringify([d, {...localStorage}, "
                "{...sessionStorage}]))"
            )
            seed = season.keys["secrecy-chen"].signing.seed()
            assert seed.hex() not in stored and PASS not in stored and "v4.public." not in stored
            assert serious_violations(page) == []
            page.click("#lang")
            assert page.inner_text("h1") == "Secrecy console"
            assert "Incident INC-00001" in page.inner_text("#incident-h")
            assert "acknowledged" in page.inner_text("#incident-facts")
            assert "Logged in" in page.inner_text("#login-status")  # status lines too
            assert "recorded on the log" in page.inner_text("#act-status")
            shot("console-english")
            assert not errors, errors
            assert all(u.startswith(served.base) for u in asked), "no CDN, no other origin"
        finally:
            browser.close()

    # The act is on the log: the desk's statement holds the envelope the browser signed.
    log = open_reader(season.home)
    assert index == size  # the statement right after the refused dispatch's entries
    event = parse_event(log.entry(index).payload)
    assert event.kind is Kind.INCIDENT
    assert event.body["action"] == "acknowledge" and event.body["incident"] == "INC-00001"
    env = parse_envelope(json.dumps(event.body["act"]).encode())
    act = parse_act(env)
    assert (act.act, act.person) == ("acknowledge", "secrecy-chen")
    # The note was sealed in the browser: on the public log only its boxes and hash; the
    # secrecy officer's own X25519 key opens it (libsodium's sealed box, as the CLI's notes).
    assert "taken in hand" not in log.entry(index).payload.decode("utf-8")
    assert act.note_sealed is not None
    officer = season.keys["secrecy-chen"].encryption
    assert officer is not None
    assert open_note(act.note_sealed, officer.key_id, officer) == "已接手，正在核查 taken in hand"
    assert [s.keyid for s in env.signatures] == [season.keys["secrecy-chen"].signing.key_id]
    assert key_file(season, "secrecy-chen").exists()


def test_the_officer_downloads_a_custody_report(served: Served, tmp_path: Path) -> None:
    """The custody report panel: a package's report downloaded as a PDF (Chinese, the
    package's events by name), and a reversed period refused with the service's reason."""
    season = served.season
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(viewport=DESKTOP, locale="zh-CN", accept_downloads=True)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{served.base}/console/")
            page.wait_for_selector("body[data-ready='true']")
            shot = Shots(page, tmp_path / "screenshots-console", start=45)
            log_in(page, season, "secrecy-chen")
            page.wait_for_selector(f"#packages tr[data-package='{PACKAGE}']")
            assert page.is_visible("#report-section")
            assert page.inner_text("#report-h") == "保管报告"

            page.select_option("#r-kind", "package")
            page.select_option("#r-package", PACKAGE)
            with page.expect_download() as got:
                page.click("#report-button")
            download = got.value
            pdf = tmp_path / "report.pdf"
            download.save_as(pdf)
            assert download.suggested_filename == f"custody-report-{PACKAGE}.pdf"
            assert pdf.read_bytes().startswith(b"%PDF")
            page.wait_for_selector("#report-status[data-state='ok']")
            assert "已下载" in page.inner_text("#report-status")
            text = subprocess.run(
                ["pdftotext", str(pdf), "-"], capture_output=True, check=True, text=True
            ).stdout
            assert "保管报告" in text and PACKAGE in text and "封装" in text
            assert "已为本报告重新核验" in text

            # A period the wrong way round: the service refuses it, the page says why.
            page.select_option("#r-kind", "period")
            assert page.is_visible("#r-from") and page.is_hidden("#r-package")
            page.fill("#r-from", "2027-03-02T08:00:00")
            page.fill("#r-to", "2027-03-01T08:00:00")
            page.click("#report-button")
            page.wait_for_selector("#report-status[data-state='error']")
            assert "invalid_request" in page.inner_text("#report-status")
            assert "时段为空" in page.inner_text("#report-status")

            # The exam's report, downloaded the same way.
            page.select_option("#r-kind", "exam")
            assert page.input_value("#r-exam") == "SX-2027-INT"
            with page.expect_download() as got:
                page.click("#report-button")
            assert got.value.suggested_filename == "custody-report-SX-2027-INT.pdf"
            page.wait_for_selector("#report-status[data-state='ok']")
            page.locator("#report-section").scroll_into_view_if_needed()
            shot("console-custody-report")
            assert serious_violations(page) == []
            assert not errors, errors
        finally:
            browser.close()
    # Both reports are on the access log, naming the package and the officer who read them.
    with httpx.Client(base_url=served.base) as h:
        auditor = as_person(h, season, "auditor-chu")  # type: ignore[arg-type]
        got = h.get("/v1/access", params={"object": f"package:{PACKAGE}"}, headers=auditor)
    reads = [(r["who"], r["route"]) for r in got.json()["records"]]
    assert reads.count(("secrecy-chen", "GET /v1/reports/custody")) == 2
