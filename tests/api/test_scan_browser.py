"""The courier's page in a real browser: Debian's Chromium, its fake camera fed a label video.

The app runs under uvicorn on 127.0.0.1 in a thread; Chromium (driven by Playwright, never
`playwright install`) opens /scan, grants the fake camera, and the page must say VALID for a
good label and REFUSED, with the reason, for a tampered one.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from api.app import Settings, create_app
from custody.demo import Season
from tests.api.helpers import good_label, label_png, serving_in_thread, stranger_label
from tests.conftest import PASS

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

WIDTH, HEIGHT = 1280, 720


def write_y4m(png: bytes, path: Path, frames: int = 3) -> Path:
    """A YUV4MPEG2 video (I420) of the label centred on a grey desk; Chromium loops it."""
    label = Image.open(io.BytesIO(png)).convert("RGB")
    label.thumbnail((WIDTH - 40, HEIGHT - 40))
    desk = Image.new("RGB", (WIDTH, HEIGHT), (190, 190, 190))
    desk.paste(label, ((WIDTH - label.width) // 2, (HEIGHT - label.height) // 2))
    y, cb, cr = desk.convert("YCbCr").split()
    half = (WIDTH // 2, HEIGHT // 2)
    planes = y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F25:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            fh.write(b"FRAME\n" + planes)
    return path


@pytest.fixture
def served(season: Season) -> Iterator[str]:
    settings = Settings(home=season.home.path, log_passphrase=PASS, clock=lambda: season.now)
    with serving_in_thread(create_app(settings)) as base:
        yield base


def open_scan_page(base: str, video: Path) -> tuple[str, str, str]:
    """(verdict state, title, reason + facts) once the page has judged a label."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
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
        try:
            page = browser.new_page()
            page.goto(f"{base}/scan")
            page.wait_for_selector(
                "#verdict[data-state='valid'], #verdict[data-state='refused'], "
                "#verdict[data-state='error']",
                timeout=30_000,
            )
            state = page.get_attribute("#verdict", "data-state") or ""
            title = page.inner_text("#verdict-title")
            detail = page.inner_text("#verdict-reason") + "\n" + page.inner_text("#facts")
            history = page.inner_text("#history")
        finally:
            browser.close()
    assert history.strip(), "every answer is also listed in the session's scans"
    return state, title, detail


def test_good_label_shows_valid_with_package_facts(
    season: Season, served: str, tmp_path: Path
) -> None:
    video = write_y4m(label_png(season, good_label(season)), tmp_path / "good.y4m")
    state, title, detail = open_scan_page(served, video)
    assert (state, title) == ("valid", "VALID"), detail
    assert "SX27-INT-0001" in detail
    assert "S0012345" in detail  # seal serials to compare with the bags in hand
    assert "print-qian" in detail


def test_tampered_label_shows_refused_with_the_reason(
    season: Season, served: str, tmp_path: Path
) -> None:
    video = write_y4m(label_png(season, stranger_label(season)), tmp_path / "tampered.y4m")
    state, title, detail = open_scan_page(served, video)
    assert (state, title) == ("refused", "REFUSED"), detail
    assert "unknown_signer" in detail  # the reason's stable code, beside its message
