"""Where the CPU of a full verification goes: the main process (the replay) and the workers
(parse, hash, verify), per event, against raw Ed25519 in the same process.

Made for back-to-back comparisons of two versions of the code on one export, on a machine
other jobs share (the wall clock there measures the neighbours as much as the code):

    python bench/verify_cpu.py --folder /tmp/exp --events 50000      # makes the export once
    PYTHONPATH=/path/to/other/tree python bench/verify_cpu.py --folder /tmp/exp

Each run verifies in a fresh process; the workers' CPU is counted once they have ended.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _report
import _season
import nacl.bindings as sodium
import nacl.signing

from crypto import merkle
from crypto.note import Checkpoint, sign_checkpoint
from custody.audit import _RootBuilder, load_trust_document, trust_document, verify_log

CORES = os.cpu_count() or 1


def _raw(n: int) -> tuple[float, float]:
    """Raw Ed25519 verifications of 200-byte messages: per CPU-second, per wall second."""
    key = nacl.signing.SigningKey.generate()
    signed = [bytes(key.sign(os.urandom(200))) for _ in range(256)]
    pk = bytes(key.verify_key)
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        sodium.crypto_sign_open(signed[i % 256], pk)
    return n / (time.process_time() - cpu), n / (time.perf_counter() - t)


def raw_rates(n: int) -> tuple[float, float]:
    """Raw verifications per CPU-second in this process, and per second on every core."""
    per_cpu, _ = _raw(n)
    with ProcessPoolExecutor(CORES) as pool:
        list(pool.map(_raw, [200] * CORES))  # the workers started and warm
        t = time.perf_counter()
        list(pool.map(_raw, [n] * CORES))
        return per_cpu, CORES * n / (time.perf_counter() - t)


def make_export(folder: Path, events: int) -> None:
    """events.jsonl (the season's exam policy, then chains of 1,000 handovers per package, as
    bench_log's verify part makes them), checkpoint.note, trust.json and the root id."""
    import bench_log

    folder.mkdir(parents=True)
    s = _season.season(folder=folder)
    trust = s.trust()
    length = 1000
    packages = max(1, events // length)
    seeds = [s.keys[p].signing.seed() for p in ("print-qian", "courier-sun", "courier-li")]
    per = max(1, packages // (CORES * 4))
    jobs = [
        (i, min(per, packages - i), length, trust.authority.id, *seeds)
        for i in range(0, packages, per)
    ]
    tree = _RootBuilder()
    log = s.log()
    first = [leaf for _, leaf in log.entries(0, log.size())]
    with (folder / "events.jsonl").open("wb") as fh, ProcessPoolExecutor(CORES) as pool:
        for leaf in first:
            fh.write(leaf + b"\n")
            tree.append(merkle.leaf_hash(leaf))
        for chunk in pool.map(bench_log._gen_chains, jobs):
            fh.write(chunk)
            for line in chunk.splitlines():
                tree.append(merkle.leaf_hash(line))
    size = packages * length + len(first)
    origin = trust.authority.log_origin
    key = s.home.authority_key("log", _season.PASS).signing
    note = sign_checkpoint(Checkpoint(origin, size, tree.root()), origin, key)
    (folder / "checkpoint.note").write_text(note)
    (folder / "trust.json").write_bytes(trust_document(trust))
    (folder / "root_id").write_text(trust.authority.id)


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _events(path: Path) -> object:
    """The lines as this version's ``custody verify`` reads them (blocks where it can)."""
    try:
        from custody.audit import stream_blocks  # absent from older versions
        from custody.parallel import LineBlocks
    except ImportError:

        def lines() -> Iterator[bytes]:
            with path.open("rb") as fh:
                yield from fh

        return lines()
    return LineBlocks(stream_blocks(path))


def main() -> None:
    ap = argparse.ArgumentParser()
    _report.add_arguments(ap)
    ap.add_argument("--folder", type=Path, required=True, help="The export (made if absent).")
    ap.add_argument("--events", type=int, default=50_000, help="Size of the export it makes.")
    args = ap.parse_args()
    report = _report.Report("verify_cpu.py", args.quick)
    if not (args.folder / "events.jsonl").exists():
        make_export(args.folder, args.events)
    folder = args.folder
    raw_cpu, raw_all = raw_rates(20000)
    trust = load_trust_document(
        (folder / "trust.json").read_bytes(), pinned_root_id=(folder / "root_id").read_text()
    )
    note = (folder / "checkpoint.note").read_text()
    main0, workers0 = _cpu()
    t = time.perf_counter()
    result = verify_log(trust, note, _events(folder / "events.jsonl"), workers=CORES)  # type: ignore[arg-type]
    wall = time.perf_counter() - t
    main1, workers1 = _cpu()
    assert result.ok, result.problems[:3]
    n, sigs = result.checked, result.signatures
    main_us = (main1 - main0) / n * 1e6
    workers_us = (workers1 - workers0) / n * 1e6
    sig_us = sigs / raw_cpu / n * 1e6
    share = sig_us / (main_us + workers_us)
    print(
        f"{n:,} events, {sigs:,} signatures, {wall:.1f} s = {sigs / wall / raw_all:.2f} of raw "
        f"on {CORES} cores (load average {_report.load_average()})\n"
        f"CPU per event: main process {main_us:.1f} µs, workers {workers_us:.1f} µs, of which "
        f"signatures at the raw rate {sig_us:.1f} µs: {share:.2f} of the CPU is signatures"
    )
    report.add(
        "verify_cpu_ratio",
        share,
        limit=raw_cpu,
        limit_is="raw verifications per CPU-second in this process, just before",
        main_cpu_us_per_event=round(main_us, 1),
        workers_cpu_us_per_event=round(workers_us, 1),
        signatures_cpu_us_per_event=round(sig_us, 1),
    )
    report.add(
        "verify_ratio",
        sigs / wall / raw_all,
        limit=raw_all,
        limit_is="signatures/s: raw Ed25519 verify on all cores, just before",
        goal=">= 0.7",
        events=n,
        seconds=round(wall, 2),
    )
    report.write(args.json)


if __name__ == "__main__":
    main()
