"""Merkle tree benchmark: building the stored-node set, and proof times at 1M and 10M leaves.

The stored nodes live in memory, one bytearray per level (32 bytes per node, so 10M leaves
take about 640 MB), read through the same ``NodeGetter`` the database layer provides. Figures
are quoted against the raw SHA-256 rate measured in the same run: each leaf costs one leaf
hash plus on average one interior hash, so 0.5 of the raw rate is the ceiling for building.

Run: python bench/bench_merkle.py [--max-leaves 10000000] [--queries 2000] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report
from rich.progress import Progress

from crypto.merkle import (
    consistency_proof,
    consistency_proof_from_nodes,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_from_nodes,
    inclusion_proof_nodes,
    leaf_hash,
    nodes_for_batch,
    root,
    verify_consistency,
    verify_inclusion,
)

CHUNK = 1 << 16


class LevelStore:
    """Stored nodes as one contiguous bytearray per level (appends arrive in index order)."""

    def __init__(self) -> None:
        self.levels: list[bytearray] = []

    def get(self, level: int, index: int) -> bytes:
        if level >= len(self.levels) or index < 0:
            raise KeyError((level, index))
        start = index * 32
        arr = self.levels[level]
        if start + 32 > len(arr):
            raise KeyError((level, index))
        return bytes(arr[start : start + 32])

    def get_many(self, nodes: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return {n: self.get(*n) for n in nodes}

    def store(self, nodes: list[tuple[int, int, bytes]]) -> None:
        levels = self.levels
        for level, _idx, h in nodes:
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += h

    def nbytes(self) -> int:
        return sum(len(a) for a in self.levels)


def raw_sha256_rate(count: int) -> float:
    """Interior-node-shaped SHA-256 calls per second (65-byte input), plain hashlib."""
    a, b = b"\x01" * 32, b"\x02" * 32
    sha = hashlib.sha256
    start = time.perf_counter()
    for _ in range(count):
        a = sha(b"\x01" + a + b).digest()
    return count / (time.perf_counter() - start)


def grow(store: LevelStore, size: int, target: int, progress: Progress, task: object) -> float:
    """Append leaves ``size..target-1``; returns the seconds spent."""
    elapsed = 0.0
    while size < target:
        n = min(CHUNK, target - size)
        start = time.perf_counter()
        hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(size, size + n)]
        store.store(nodes_for_batch(size, hashes, store.get))
        elapsed += time.perf_counter() - start
        size += n
        progress.advance(task, n)  # type: ignore[arg-type]
    return elapsed


def time_each(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99) - 1] * 1e6


def proof_rows(store: LevelStore, size: int, queries: int, rng: random.Random) -> list[str]:
    rows = []
    tree_root = root(size, store.get)
    idx = [rng.randrange(size) for _ in range(queries)]
    olds = [rng.randrange(1, size) for _ in range(queries)]
    it = iter(range(10**9))

    def incl() -> None:
        i = idx[next(it) % queries]
        inclusion_proof(i, size, store.get)

    def incl_one_query() -> None:
        i = idx[next(it) % queries]
        inclusion_proof_from_nodes(i, size, store.get_many(inclusion_proof_nodes(i, size)))

    def cons() -> None:
        m = olds[next(it) % queries]
        consistency_proof(m, size, store.get)

    def cons_one_query() -> None:
        m = olds[next(it) % queries]
        consistency_proof_from_nodes(m, size, store.get_many(consistency_proof_nodes(m, size)))

    proofs_i = [(i, inclusion_proof(i, size, store.get)) for i in idx[:200]]
    proofs_c = [(m, consistency_proof(m, size, store.get)) for m in olds[:200]]
    roots_c = {m: root(m, store.get) for m, _ in proofs_c}
    jt = iter(range(10**9))

    def verify_i() -> None:
        i, p = proofs_i[next(jt) % len(proofs_i)]
        verify_inclusion(store.get(0, i), i, size, p, tree_root)

    def verify_c() -> None:
        m, p = proofs_c[next(jt) % len(proofs_c)]
        verify_consistency(m, size, roots_c[m], tree_root, p)

    nodes_i = max(len(inclusion_proof_nodes(i, size)) for i in idx)
    nodes_c = max(len(consistency_proof_nodes(m, size)) for m in olds)
    for name, fn, nodes in [
        ("inclusion proof (getter per node)", incl, nodes_i),
        ("inclusion proof (node list + one fetch)", incl_one_query, nodes_i),
        ("consistency proof (getter per node)", cons, nodes_c),
        ("consistency proof (node list + one fetch)", cons_one_query, nodes_c),
        ("verify inclusion", verify_i, 0),
        ("verify consistency", verify_c, 0),
    ]:
        median, p99 = time_each(fn, queries)
        rows.append(f"| {size:,} | {name} | {nodes or '-'} | {median:.1f} µs | {p99:.1f} µs |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-leaves", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    _report.add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.max_leaves, args.queries = min(args.max_leaves, 1_000_000), min(args.queries, 500)
    report = _report.Report("bench_merkle.py", args.quick)
    print(f"load average at start: {_report.load_average()}")
    rng = random.Random(5)
    sizes = [s for s in (1_000_000, 10_000_000) if s <= args.max_leaves] or [args.max_leaves]

    raw = raw_sha256_rate(1_000_000)
    store = LevelStore()
    rows: list[str] = []
    build_seconds = 0.0
    size = 0
    with Progress() as progress:
        task = progress.add_task("building the tree", total=sizes[-1])
        for target in sizes:
            build_seconds += grow(store, size, target, progress, task)
            size = target
            rows.extend(proof_rows(store, size, args.queries, rng))
    raw_after = raw_sha256_rate(1_000_000)
    raw = max(raw, raw_after)
    build_rate = size / build_seconds

    print(
        f"Python {platform.python_version()}, {platform.machine()}, one core, "
        f"OpenSSL {__import__('ssl').OPENSSL_VERSION.split()[1]}.\n"
    )
    print("| measure | value | ratio to raw SHA-256 |")
    print("|---|---|---|")
    print(f"| raw SHA-256, 65-byte input (hashlib, same run) | {raw:,.0f} hashes/s | 1 |")
    print(
        f"| tree building, {size:,} leaves (leaf hash + stored nodes, batch path) | "
        f"{build_rate:,.0f} leaves/s | {build_rate / raw:.2f} (ceiling 0.5: two hashes a leaf) |"
    )
    print(
        f"| stored nodes at {size:,} leaves | {store.nbytes() / 2**20:,.0f} MiB "
        f"({store.nbytes() // 32:,} hashes) | |"
    )
    print()
    print(f"Proofs over the in-memory stored-node set, {args.queries} random queries each:\n")
    print("| tree size | operation | stored nodes read (max) | median | p99 |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row)
    report.add("merkle_build_vs_sha256_ratio", build_rate / raw, limit=raw,
               limit_is="raw SHA-256 calls/s (65-byte input), same run; ceiling 0.5",
               leaves=size)  # fmt: skip
    print(f"load average at end: {_report.load_average()}")
    report.write(args.json)


if __name__ == "__main__":
    main()
