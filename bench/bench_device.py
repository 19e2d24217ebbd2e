"""Courier device benchmark, in the same headless Chromium the browser tests drive.

- labels decoded and verified per second in the page (zxing-wasm decode of a camera-sized
  frame, then label.js's verification against the cached trust bundle), against zxing-wasm's
  raw decode of the same frame in the same run; and verification alone;
- unlocking a key file at the format's default cost (Argon2id, 2 passes over 64 MiB, then
  XChaCha20-Poly1305 and the Ed25519 key check), median of several;
- the first load in bytes: every file the page and its service worker fetch on a first visit
  (the server sends them uncompressed), with the wasm.

Run: python bench/bench_device.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvicorn
from PIL import Image
from playwright.sync_api import sync_playwright

from api.app import Settings, create_app
from crypto.sealing import KdfParams
from custody.demo import start_season
from custody.package_service import label_text, seal_package
from keys.keyfile import seal_keypair
from tests.api.helpers import free_port, label_png
from tests.conftest import fast_kdf
from tests.labels.fixtures import typical_manifest

CHROMIUM = "/usr/bin/chromium"
PASS = "bench passphrase"

IN_PAGE = """async ({png, label, rounds}) => {
  const blob = new Blob([Uint8Array.from(atob(png), c => c.charCodeAt(0))], {type: "image/png"});
  const bitmap = await createImageBitmap(blob);
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const frame = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  const c = window.custody;
  const trust = await c.loadCachedTrust();
  const now = Math.floor(Date.now() / 1000);
  const opts = {formats: ["QRCode"], tryHarder: true, maxNumberOfSymbols: 2};
  await c.readBarcodes(frame, opts);  // warm: wasm compiled, caches filled
  // Interleaved blocks, so a neighbour's load falls on both figures alike; medians of blocks.
  const rawRates = [], fullRates = [];
  const per = Math.max(1, Math.floor(rounds / 5));
  for (let b = 0; b < 5; b++) {
    let t = performance.now();
    for (let i = 0; i < per; i++) {
      const r = await c.readBarcodes(frame, opts);
      if (r.length !== 1 || r[0].text !== label) throw new Error("raw decode missed the label");
    }
    rawRates.push(per / ((performance.now() - t) / 1000));
    t = performance.now();
    for (let i = 0; i < per; i++) {
      const r = await c.readBarcodes(frame, opts);
      const v = await c.verifyLabel(r[0].text, trust, now);
      if (v.manifest.package_id !== "SX27-INT-0001") throw new Error("wrong package");
    }
    fullRates.push(per / ((performance.now() - t) / 1000));
  }
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const raw = median(rawRates), full = median(fullRates);
  const many = rounds * 20;
  let t = performance.now();
  for (let i = 0; i < many; i++) await c.verifyLabel(label, trust, now);
  const verify = many / ((performance.now() - t) / 1000);
  return {raw, full, verify, width: bitmap.width, height: bitmap.height};
}"""

UNLOCK = """async ({file, pass, rounds}) => {
  const out = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    const k = await window.custody.unlockKeyFile(file, pass);
    out.push(performance.now() - t);
    k.seed.fill(0);
  }
  return out;
}"""


def camera_frame(label: bytes) -> bytes:
    """The label on a grey desk in a 1280x720 frame, as the phone's camera sees it."""
    img = Image.open(io.BytesIO(label)).convert("RGB")
    img.thumbnail((1240, 680))
    desk = Image.new("RGB", (1280, 720), (190, 190, 190))
    desk.paste(img, ((1280 - img.width) // 2, (720 - img.height) // 2))
    out = io.BytesIO()
    desk.save(out, format="PNG")
    return out.getvalue()


def serve(home: Path) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    app = create_app(Settings(home=home, log_passphrase=PASS, desk_every=0))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def first_load_bytes(base: str, browser: Any) -> tuple[int, dict[str, int]]:
    """Bytes of every distinct file a fresh phone fetches on its first visit."""
    context = browser.new_context(viewport={"width": 375, "height": 812})
    page = context.new_page()
    seen: set[str] = set()
    page.on("request", lambda r: seen.add(r.url))
    page.goto(f"{base}/courier/")
    page.wait_for_selector("body[data-ready='true']")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    sw = page.evaluate(  # every cache the service worker filled, whatever its version's name
        "caches.keys().then(ns => Promise.all(ns.map(n => caches.open(n).then(c => c.keys()))))"
        ".then(ls => ls.flat().map(r => r.url))"
    )
    context.close()
    urls = {u for u in seen | set(sw) if u.startswith(base) and "/v1/" not in u}
    urls.add(f"{base}/courier/sw.js")  # the worker's own script: fetched by the browser
    sizes = {u.removeprefix(base): len(httpx.get(u).content) for u in sorted(urls)}
    return sum(sizes.values()), sizes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    args = ap.parse_args()
    rounds = 10 if args.quick else 60
    unlocks = 2 if args.quick else 5

    tmp = Path(tempfile.mkdtemp(prefix="custody-bench-device-"))
    now = datetime.now(UTC).replace(microsecond=0)
    season = start_season(tmp / "season", now=now, passphrase=PASS, kdf=fast_kdf())
    manifest = typical_manifest(now)
    seal_package(season.home, manifest, season.keys["print-qian"].signing, now=now)
    label = label_text(season.home, manifest.package_id)
    png = camera_frame(label_png(season, label, dpi=150))
    login_file = next(season.home.people_dir().glob("courier-sun-*.key"))
    # The format's default cost: what a real key file costs to unlock on the phone.
    default_file = seal_keypair(season.keys["courier-sun"], PASS, kdf=KdfParams.fresh())
    base, server, thread = serve(season.home.path)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            total, sizes = first_load_bytes(base, browser)
            page = browser.new_context(viewport={"width": 375, "height": 812}).new_page()
            page.goto(f"{base}/courier/")
            page.wait_for_selector("body[data-ready='true']")
            page.set_input_files("#keyfile", str(login_file))
            page.fill("#passphrase", PASS)
            page.click("#login-button")
            page.wait_for_selector("#login-status[data-state='ok']")
            rates = page.evaluate(
                IN_PAGE,
                {"png": base64.b64encode(png).decode(), "label": label, "rounds": rounds},
            )
            times = page.evaluate(
                UNLOCK, {"file": default_file.decode(), "pass": PASS, "rounds": unlocks}
            )
            version = browser.version
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    figures = {
        "chromium": version,
        "frame": f"{rates['width']}x{rates['height']}",
        "rounds": rounds,
        "raw_decode_per_s": round(rates["raw"], 1),
        "decode_and_verify_per_s": round(rates["full"], 1),
        "decode_and_verify_vs_raw": round(rates["full"] / rates["raw"], 3),
        "verify_only_per_s": round(rates["verify"], 1),
        "unlock_default_kdf_ms": [round(t) for t in times],
        "unlock_default_kdf_median_ms": round(statistics.median(times)),
        "first_load_bytes": total,
        "first_load_files": sizes,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    for k, v in figures.items():
        if k != "first_load_files":
            print(f"{k}: {v}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
