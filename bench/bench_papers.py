"""Encrypted-paper throughput and memory against raw libsodium secretstream, same run.

Usage: python bench/bench_papers.py [--size-mib 1024] [--small-mib 64] [--rounds 2] [--quick]
[--json FILE]

Each measurement runs in a fresh subprocess that reports its wall time and its peak resident
set size (ru_maxrss), so memory is measured per operation and is comparable across sizes.
"raw" is the loop any libsodium user would write: read 1 MiB, push/pull, write, with the same
file I/O as ours; "ours" is crypto/stream.py (header binding, commitment hashing in a helper
thread, temp-file-and-rename output). The input file is generated on the fly and deleted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1 << 20


def _child(op: str, src: str, dst: str, key_hex: str) -> None:
    sys.path.insert(0, str(ROOT))
    import nacl.bindings as s

    from crypto.stream import StreamHeader, decrypt_to_path, encrypt_stream

    key = bytes.fromhex(key_hex)
    header = StreamHeader("BENCH", 1, "top-secret", CHUNK)
    start = time.perf_counter()
    if op == "raw-encrypt":
        st = s.crypto_secretstream_xchacha20poly1305_state()
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            fo.write(s.crypto_secretstream_xchacha20poly1305_init_push(st, key))
            chunk = fi.read(CHUNK)
            while True:
                nxt = fi.read(CHUNK) if len(chunk) == CHUNK else b""
                tag = (
                    s.crypto_secretstream_xchacha20poly1305_TAG_FINAL
                    if not nxt
                    else s.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
                )
                fo.write(s.crypto_secretstream_xchacha20poly1305_push(st, chunk, None, tag))
                if not nxt:
                    break
                chunk = nxt
    elif op == "raw-decrypt":
        st = s.crypto_secretstream_xchacha20poly1305_state()
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            s.crypto_secretstream_xchacha20poly1305_init_pull(st, fi.read(24), key)
            while True:
                block = fi.read(CHUNK + 17)
                plain, tag = s.crypto_secretstream_xchacha20poly1305_pull(st, block)
                fo.write(plain)
                if tag == s.crypto_secretstream_xchacha20poly1305_TAG_FINAL:
                    break
    elif op == "ours-encrypt":
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            encrypt_stream(fi, fo, key, header)
    elif op == "ours-decrypt":
        with open(src, "rb") as fi:
            decrypt_to_path(fi, key, header, Path(dst))
    else:
        raise SystemExit(f"unknown op {op}")
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec from the parent.
    status = Path("/proc/self/status").read_text()
    rss_kib = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "maxrss_kib": rss_kib}))


def run(op: str, src: Path, dst: Path, key_hex: str) -> dict[str, float]:
    dst.unlink(missing_ok=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", op, str(src), str(dst), key_hex],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def make_input(path: Path, mib: int) -> None:
    block = os.urandom(16 * CHUNK)
    with path.open("wb") as fh:
        for i in range(0, mib, 16):
            fh.write(block[: min(16, mib - i) * CHUNK])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def measure(folder: Path, mib: int, rounds: int, key_hex: str) -> dict[str, dict[str, float]]:
    plain = folder / f"plain-{mib}"
    make_input(plain, mib)
    best: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for op, src, dst in (
            ("raw-encrypt", plain, folder / "raw.ct"),
            ("ours-encrypt", plain, folder / "ours.ct"),
            ("raw-decrypt", folder / "raw.ct", folder / "raw.pt"),
            ("ours-decrypt", folder / "ours.ct", folder / "ours.pt"),
        ):
            r = run(op, src, dst, key_hex)
            if op not in best or r["seconds"] < best[op]["seconds"]:
                best[op] = r
    assert _sha256(folder / "ours.pt") == _sha256(plain), "round trip failed"
    for name in ("raw.ct", "ours.ct", "raw.pt", "ours.pt"):
        (folder / name).unlink(missing_ok=True)
    plain.unlink()
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=4)
    parser.add_argument("--quick", action="store_true", help="A run of a few minutes.")
    parser.add_argument("--json", type=Path, metavar="FILE", help="Write the figures here.")
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _report

    if args.quick:
        args.size_mib, args.small_mib, args.rounds = (
            min(args.size_mib, 256),
            min(args.small_mib, 32),
            1,
        )
    report = _report.Report("bench_papers.py", args.quick)
    print(f"load average at start: {_report.load_average()}")
    key_hex = os.urandom(32).hex()
    with tempfile.TemporaryDirectory(prefix="bench-papers-", dir=ROOT / "bench") as tmp:
        folder = Path(tmp)
        small = measure(folder, args.small_mib, args.rounds, key_hex)
        large = measure(folder, args.size_mib, args.rounds, key_hex)
    print(
        f"| operation ({args.size_mib} MiB) | raw MiB/s | ours MiB/s | ratio | "
        f"ours peak RSS {args.small_mib} MiB | ours peak RSS {args.size_mib} MiB | "
        "raw peak RSS |"
    )
    print("|---|---|---|---|---|---|---|")
    for op in ("encrypt", "decrypt"):
        raw, ours = large[f"raw-{op}"], large[f"ours-{op}"]
        raw_rate = args.size_mib / raw["seconds"]
        ours_rate = args.size_mib / ours["seconds"]
        print(
            f"| {op} | {raw_rate:.0f} | {ours_rate:.0f} | {ours_rate / raw_rate:.2f} | "
            f"{small[f'ours-{op}']['maxrss_kib'] / 1024:.1f} MiB | "
            f"{ours['maxrss_kib'] / 1024:.1f} MiB | {raw['maxrss_kib'] / 1024:.1f} MiB |"
        )
        report.add(f"papers_{op}_vs_raw_ratio", ours_rate / raw_rate, limit=raw_rate,
                   limit_is="MiB/s of a plain libsodium secretstream loop, same run",
                   goal=">= 0.8", peak_rss_mib=round(ours["maxrss_kib"] / 1024, 1),
                   mib=args.size_mib)  # fmt: skip
    print(f"load average at end: {_report.load_average()}")
    report.write(args.json)


if __name__ == "__main__":
    main()
