"""Label benchmark: QR encoders, PNG / SVG / PDF-sheet labels per second, decode+verify per second.

Every figure is quoted against the raw library measured in the same run: the fastest raw QR
encoder (labels/s over QR symbols/s) and raw Ed25519 verification (verifies/s). The big run
renders 10,000 labels to PDF sheets with a progress bar and reports peak memory after 1,000
and after 10,000 labels (constant memory means the two are close).

Run: python bench/bench_labels.py [--labels 300] [--big 10000] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import io
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "labels"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report
import nacl.pwhash
from fixtures import typical_manifest
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from crypto.encoding import utc
from crypto.sealing import KdfParams
from custody.demo import start_season
from labels.payload import parse_label, seal_manifest, verify_label
from labels.qr import ENCODERS, encode_qr
from labels.render import render_png, render_svg
from labels.scan import scan_label
from labels.sheet import write_sheets

T0 = utc(2027, 3, 1, 8)


def rate(n: int, fn: Callable[[], object], repeat: int = 3) -> float:
    """Best of ``repeat`` runs of ``fn`` (which does ``n`` items), in items per second."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--big", type=int, default=10_000)
    _report.add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.labels, args.big = min(args.labels, 100), min(args.big, 1000)
    report = _report.Report("bench_labels.py", args.quick)
    print(f"load average at start: {_report.load_average()}")
    n = args.labels
    tmp = Path(tempfile.mkdtemp(prefix="custody-bench-labels-"))
    kdf = KdfParams.fresh(nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)
    season = start_season(tmp / "season", now=T0, passphrase="bench passphrase", kdf=kdf)
    trust = season.trust()
    key = season.keys["print-qian"].signing
    manifests = [typical_manifest(T0, package_id=f"SX27-INT-{i:04d}") for i in range(n)]
    texts = [seal_manifest(m, key) for m in manifests]
    symbol0 = encode_qr(texts[0])

    rows: list[tuple[str, str, str]] = []

    # raw QR encoders, same inputs; each result must scan back to its text
    encoder_rates = {}
    for name, encode in ENCODERS.items():
        reps = n if name == "zxing" else max(20, n // 10)
        encoder_rates[name] = rate(reps, lambda e=encode, r=reps: [e(t) for t in texts[:r]])
        png = render_png(manifests[0], encode(texts[0]))
        assert scan_label(png) == texts[0], f"{name} produced an unreadable symbol"
    raw_qr = max(encoder_rates.values())
    for name, r in sorted(encoder_rates.items(), key=lambda kv: -kv[1]):
        rows.append((f"raw QR encode: {name}", f"{r:,.0f}", f"{r / raw_qr:.3f}"))

    png_rate = rate(
        n, lambda: [render_png(m, encode_qr(t)) for m, t in zip(manifests, texts, strict=True)]
    )
    svg_rate = rate(
        n, lambda: [render_svg(m, encode_qr(t)) for m, t in zip(manifests, texts, strict=True)]
    )
    pdf = tmp / "sheet.pdf"

    def sheet() -> None:
        pairs = ((m, encode_qr(t)) for m, t in zip(manifests, texts, strict=True))
        write_sheets(pairs, pdf, total=n)

    pdf_rate = rate(n, sheet)
    rows += [
        ("label PNG (300 dpi, QR + CJK text)", f"{png_rate:,.0f}", f"{png_rate / raw_qr:.3f}"),
        ("label SVG", f"{svg_rate:,.0f}", f"{svg_rate / raw_qr:.3f}"),
        ("label on A4 PDF sheet (10 a page)", f"{pdf_rate:,.0f}", f"{pdf_rate / raw_qr:.3f}"),
    ]

    # verification: raw Ed25519 vs the whole label check, from text and from a photo
    unverified = [parse_label(t) for t in texts]
    vk = key.verify_key
    raw_verify = rate(n, lambda: [vk.is_valid(u.signed_bytes(), u.signature) for u in unverified])
    text_verify = rate(n, lambda: [verify_label(t, trust, now=T0) for t in texts])
    k = max(20, n // 5)
    images = [
        Image.open(io.BytesIO(render_png(m, encode_qr(t), dpi=200))).convert("L")
        for m, t in zip(manifests[:k], texts[:k], strict=True)
    ]
    scan_verify = rate(k, lambda: [verify_label(scan_label(i), trust, now=T0) for i in images])
    rows += [
        ("raw Ed25519 verify (pynacl)", f"{raw_verify:,.0f}", "1 (verify)"),
        ("verify label text (parse + verify + rules)", f"{text_verify:,.0f}",
         f"{text_verify / raw_verify:.3f} (verify)"),
        ("decode 200 dpi label image + verify", f"{scan_verify:,.0f}",
         f"{scan_verify / raw_verify:.3f} (verify)"),
    ]  # fmt: skip

    print(f"Labels benchmark, {platform.python_version()} on {platform.machine()}, "
          f"{n} labels (decode: {k}); typical manifest {len(texts[0])} characters, "
          f"QR {symbol0.designator} ({symbol0.size} modules)\n")  # fmt: skip
    report.add(
        "label_png_vs_qr_ratio",
        png_rate / raw_qr,
        limit=raw_qr,
        limit_is="labels/s: the fastest raw QR encoder, same run",
    )
    report.add(
        "label_pdf_vs_qr_ratio",
        pdf_rate / raw_qr,
        limit=raw_qr,
        limit_is="labels/s: the fastest raw QR encoder, same run",
    )
    report.add(
        "label_verify_vs_raw_ratio",
        text_verify / raw_verify,
        limit=raw_verify,
        limit_is="raw Ed25519 verifications/s (pynacl), same run",
    )
    report.add("label_scan_vs_raw_ratio", scan_verify / raw_verify, limit=raw_verify,
               limit_is="raw Ed25519 verifications/s (pynacl), same run")  # fmt: skip
    print("| what | per second | ratio to raw |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")

    if args.big:
        big = args.big
        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        marks: dict[int, float] = {}
        done = 0

        def advance(step: int) -> None:
            nonlocal done
            done += step
            progress.advance(task, step)
            if done in (1000, big):
                marks[done] = peak_mb()

        def stream():  # type: ignore[no-untyped-def]
            for i in range(big):
                m = typical_manifest(T0 + timedelta(seconds=i), package_id=f"SX27-B-{i:05d}")
                yield m, encode_qr(seal_manifest(m, key))

        start = time.perf_counter()
        with progress:
            task = progress.add_task(f"{big:,} labels to PDF", total=big)
            files = write_sheets(stream(), tmp / "big.pdf", total=big, advance=advance)
        elapsed = time.perf_counter() - start
        size = sum(f.stat().st_size for f in files) / 1e6
        print(f"\n{big:,} labels (sealed, encoded, drawn) in {elapsed:.1f} s "
              f"({big / elapsed:,.0f} labels/s) into {len(files)} PDF files, {size:.0f} MB; "
              f"peak RSS {marks.get(1000, 0):.0f} MB after 1,000 labels, "
              f"{marks.get(big, 0):.0f} MB after {big:,}")  # fmt: skip
        report.add("label_sheet_peak_rss_mb", marks.get(big, 0), unit="MB",
                   limit=marks.get(1000, 0), limit_is="peak RSS after 1,000 labels (flat: equal)",
                   labels=big, rate=round(big / elapsed, 1))  # fmt: skip
    print(f"load average at end: {_report.load_average()}")
    report.write(args.json)


if __name__ == "__main__":
    main()
