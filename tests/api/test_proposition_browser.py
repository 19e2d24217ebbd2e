"""The proposition centre's page in a real browser (Debian's Chromium): the proposer logs in
with their key file, is refused in Chinese for a wrong passphrase and for missing recipients,
then encrypts a paper in the browser and uploads it. The test then opens the stored paper with
the project's own Python code (the printer's part and the log's part of the key) to the same
bytes, and checks that no request the browser sent carried the plaintext.

Screenshots are saved under the test's tmp dir and, with CUSTODY_SCREENSHOTS=DIR, copied there
(docs/screenshots/proposition/ for the closing note).
"""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from custody import paper_service
from tests.api.paper_helpers import open_as_printer_and_log
from tests.api.test_console_browser import launch
from tests.api.test_courier_browser import (
    CHROMIUM,
    Served,
    Shots,
    log_in,
    serious_violations,
    served,
)
from tests.conftest import PASS

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
__all__ = ["served"]  # the fixture, shared with the courier's test

DESKTOP = {"width": 1280, "height": 900}
# A structured interview paper, a little over two 1 MiB chunks: three secretstream chunks.
LINE = "结构化面试题本（正式卷）\n第一题：请结合实际谈谈你对公共服务中保密工作的理解。\n"
PAPER = LINE.encode() * 24000
MARKER = "请结合实际谈谈你对公共服务中保密工作的理解".encode()


def local(dt: Any) -> str:
    """A time as a datetime-local field takes it (the browser's zone is UTC here)."""
    return str(dt.strftime("%Y-%m-%dT%H:%M"))


def fill_form(page: Any, served: Served, paper_file: Path) -> None:
    start = served.season.now + timedelta(days=2)
    page.fill("#exam", "SX-2027-INT")
    page.fill("#position", "P01")
    page.fill("#paper-id", "SX-INT-P01-A")
    page.fill("#title", "结构化面试题本 P01 正式卷")
    page.fill("#window-start", local(start))
    page.fill("#window-end", local(start + timedelta(hours=3)))
    page.set_input_files("#paper-file", str(paper_file))


def test_a_paper_is_encrypted_in_the_browser_and_opens_to_the_same_bytes(
    served: Served, tmp_path: Path
) -> None:
    season = served.season
    paper_file = tmp_path / "interview-P01.txt"
    paper_file.write_bytes(PAPER)
    bodies: list[bytes] = []
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="UTC")
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: bodies.append(r.post_data_buffer or b""))
            page.goto(f"{served.base}/proposition/")
            page.wait_for_selector("body[data-ready='true']")
            shot = Shots(page, tmp_path / "screenshots-proposition")
            assert page.inner_text("h1") == "命题中心"
            shot("start")
            log_in(page, season, "prop-zhao")
            assert "prop-zhao" in page.inner_text("#login-status")
            # The recipients come from root-signed certificates checked in the page.
            page.wait_for_selector("#printer option[value='print-qian']", state="attached")
            assert page.locator("#officers input").count() >= 2
            fill_form(page, served, paper_file)

            # Refusals, in Chinese: recipients missing, then a wrong passphrase.
            page.fill("#upload-pass", PASS)
            page.click("#upload-button")
            page.wait_for_selector("#upload-status[data-state='error']")
            assert "缺少收件人" in page.inner_text("#upload-status")
            assert "印制单位" in page.inner_text("#upload-status")
            page.select_option("#printer", "print-qian")
            page.check("#officer-examiner-zheng")
            page.click("#upload-button")
            page.wait_for_selector("#upload-status[data-state='error']")
            assert "至少选择两名开启人员" in page.inner_text("#upload-status")
            shot("refused-missing-recipients")
            page.check("#officer-supervisor-wang")
            page.select_option("#standby", "secrecy-chen")
            page.fill("#upload-pass", "a wrong passphrase")
            page.click("#upload-button")
            # (expect, not wait_for_function: a string predicate is eval'd, which the page's
            # CSP refuses when the first check does not already pass)
            sync_api.expect(page.locator("#upload-status")).to_contain_text(
                "口令错误", timeout=60_000
            )
            assert page.get_attribute("#upload-status", "data-state") == "error"
            shot("refused-wrong-passphrase")
            assert paper_service.list_papers(season.home) == []

            page.fill("#upload-pass", PASS)
            page.click("#upload-button")
            page.wait_for_selector("#upload-status[data-state='ok']", timeout=60_000)
            assert "SX-INT-P01-A@v1" in page.inner_text("#upload-status")
            row = page.wait_for_selector("#papers tr[data-paper='SX-INT-P01-A@v1']")
            shot("uploaded")
            commitment = page.inner_text("#upload-result dd[data-field='prop.col.commitment']")
            assert commitment in row.inner_text()
            assert "有效" in row.inner_text()
            assert not serious_violations(page)
            page.click("#lang")
            assert page.inner_text("h1") == "Proposition centre"
            assert "Active" in page.inner_text("#papers")
            shot("uploaded-en")
            assert not errors, errors
            context.close()
        finally:
            browser.close()

    log = season.log()
    (stored,) = paper_service.list_papers(season.home)
    assert (stored.ref, stored.commitment, stored.keys_held) == ("SX-INT-P01-A@v1", commitment, 5)
    state = paper_service.load_state(season.home, stored.ref)
    assert [r.subject for r in state.proposal.recipients] == [
        "print-qian",
        "examiner-zheng",
        "supervisor-wang",
        "secrecy-chen",
        "custody-log",
    ]
    # The printer's part and the log's part give K; the file decrypts to the very bytes.
    assert open_as_printer_and_log(season, log, stored.ref) == PAPER
    # Nothing the browser sent held the plaintext: not in clear, not in base64.
    sent = b"".join(bodies)
    upload = next(b for b in bodies if b.startswith(b'{"proposal"'))
    assert MARKER not in sent
    for shift in range(3):
        probe = base64.b64encode(PAPER[shift : shift + 300])[8:200]
        assert probe not in sent
    stored_bytes = paper_service.blob_path(season.home, commitment).read_bytes()
    assert base64.b64encode(stored_bytes) in upload  # the ciphertext is what went up
    assert MARKER not in stored_bytes
