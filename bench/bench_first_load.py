"""First-load bytes of the courier's page and the secrecy officer's console, as sent before
and after the service compressed its page files.

For each page, headless Chromium (/usr/bin/chromium) opens it fresh and every distinct file it
(and, for the courier, its service worker) fetches is listed, API calls left out. Each file is
then fetched twice from the same service: ``Accept-Encoding: identity`` (what every client got
before the service compressed: the bytes of the file) and ``Accept-Encoding: gzip`` (the bytes
on the wire now). The browser's own count (Resource Timing ``encodedBodySize`` of the files it
loaded, which sent ``Accept-Encoding: gzip, deflate, br, zstd``) is given as a cross-check.

Run: python bench/bench_first_load.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from playwright.sync_api import sync_playwright

from bench.bench_device import CHROMIUM, PASS, serve
from custody.demo import start_season
from tests.conftest import fast_kdf

PAGES = {"courier": ("/courier/", {"width": 375, "height": 812}), "console": ("/console/", None)}
BROWSER_SIZES = """() => performance.getEntriesByType('resource').concat(
  performance.getEntriesByType('navigation')).map(e => [e.name, e.encodedBodySize])"""


def wire_bytes(url: str, encoding: str) -> int:
    with httpx.stream("GET", url, headers={"accept-encoding": encoding}) as r:
        r.raise_for_status()
        return sum(len(chunk) for chunk in r.iter_raw())


def page_files(base: str, path: str, viewport: dict[str, int] | None, browser: Any) -> Any:
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
    page = context.new_page()
    seen: set[str] = set()
    page.on("request", lambda r: seen.add(r.url))
    page.goto(f"{base}{path}")
    page.wait_for_selector("body[data-ready='true']")
    extra: set[str] = set()
    if path == "/courier/":
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        extra = set(
            page.evaluate(
                "caches.keys().then(names => Promise.all(names.map(n => caches.open(n)"
                ".then(c => c.keys())))).then(all => all.flat().map(r => r.url))"
            )
        )
        extra.add(f"{base}/courier/sw.js")
    in_browser = {u: n for u, n in page.evaluate(BROWSER_SIZES) if u.startswith(base)}
    context.close()
    urls = sorted({u for u in seen | extra if u.startswith(base) and "/v1/" not in u})
    return urls, in_browser


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="custody-bench-first-load-"))
    now = datetime.now(UTC).replace(microsecond=0)
    season = start_season(tmp / "season", now=now, passphrase=PASS, kdf=fast_kdf())
    season.log().close()
    base, server, thread = serve(season.home.path)
    figures: dict[str, Any] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            for name, (path, viewport) in PAGES.items():
                urls, in_browser = page_files(base, path, viewport, browser)
                files = {
                    u.removeprefix(base): {
                        "identity": wire_bytes(u, "identity"),
                        "gzip": wire_bytes(u, "gzip"),
                        "browser": in_browser.get(u),
                    }
                    for u in urls
                }
                before = sum(f["identity"] for f in files.values())
                after = sum(f["gzip"] for f in files.values())
                figures[name] = {
                    "files": len(files),
                    "before_bytes": before,
                    "after_bytes": after,
                    "after_vs_before": round(after / before, 3),
                    "browser_encoded_bytes": sum(f["browser"] or 0 for f in files.values()),
                    "per_file": files,
                }
                print(
                    f"{name}: {len(files)} files, first load {before:,} bytes before, "
                    f"{after:,} bytes gzip ({after / before:.1%}); the browser counted "
                    f"{figures[name]['browser_encoded_bytes']:,} encoded bytes"
                )
                for u, f in files.items():
                    print(f"  {u}: {f['identity']:,} -> {f['gzip']:,} (browser {f['browser']})")
            figures["chromium"] = browser.version
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
