"""Proofs from a log that exists: a season home left by ``season_scale.py --keep`` (its database,
10M events on PostgreSQL in docs/benchmarks.md), read as the service reads it.

A new process opens the home as ``custody serve`` does for reading and asks for random
inclusion and consistency proofs at the log's size: the first proof (it reads the tree's top
into memory), then the medians and p99 of the next ones. The database server's caches are
left as they are; ``--cold`` first drops this machine's page cache (root only), so the pages
come from the disk.

    python bench/bench_proofs_db.py HOME [--proofs 300] [--json FILE]

HOME is the folder season_scale.py prints as ``season home:``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report
from bench_log import add_proof_figure, time_proofs

from custody.home import Home
from custody.service import open_reader


def _p99(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.99) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home", type=Path, help="the season's home folder")
    ap.add_argument("--proofs", type=int, default=300, help="proofs of each kind")
    ap.add_argument("--cold", action="store_true", help="drop the OS page cache first (root)")
    _report.add_arguments(ap)
    args = ap.parse_args()
    count = 50 if args.quick else args.proofs
    if args.cold:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    report = _report.Report("bench_proofs_db.py", args.quick)
    log = open_reader(Home(args.home))
    size = log.size()
    engine = log.engine.dialect.name
    rng = random.Random(11)
    t = time.perf_counter()
    log.inclusion_proof(rng.randrange(size), size)
    first = time.perf_counter() - t
    inc, con = time_proofs(log, size, count, seed=12)
    load = _report.load_average()
    mi, mc = statistics.median(inc) * 1e3, statistics.median(con) * 1e3
    print(f"log of {size:,} entries on {engine} (load {load}):")
    print(f"  first proof (reads the tree's top)  {first * 1e3:8.2f} ms")
    print(f"  inclusion, median of {count}        {mi:8.3f} ms   p99 {_p99(inc) * 1e3:.3f} ms")
    print(f"  consistency, median of {count}      {mc:8.3f} ms   p99 {_p99(con) * 1e3:.3f} ms")
    add_proof_figure(
        report,
        engine,
        size,
        mi,
        mc,
        inclusion_p99_ms=round(_p99(inc) * 1e3, 4),
        consistency_p99_ms=round(_p99(con) * 1e3, 4),
        first_proof_ms=round(first * 1e3, 2),
        cold=args.cold,
    )
    report.write(args.json)


if __name__ == "__main__":
    main()
