"""A gaokao-shaped season written straight through the append path, measured as it grows.

Shape: provinces, each with exam sites, each with exam rooms; every room gets sealed paper
packages (one per subject session), printed at the provincial print works and carried along a
route of couriers to the site's custodian. Every statement is a real DSSE envelope signed by
the enrolled keys of the demo season's people (printer, couriers): a seal, a dispatch, then
countersigned handovers along the route. The statements are generated first (in parallel, to
a file of envelope lines, so signing costs nothing to the measured appends), then appended by
the service as `custody serve` opens it (``open_writer``, signature workers on every core) in
batches, each acknowledged after its commit.

Measured: the append rate in windows as the log grows (at 10k, 100k, 1M... events), the
database's bytes per event, proof times at the final size, and (``--verify``) the export and
a full offline verification of it.

    CUSTODY_BENCH_PG=postgresql://postgres@127.0.0.1:5432/test \\
        python bench/season_scale.py --events 1000000 --json FILE [--verify]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report
import _season
from bench_log import CORES, _fresh_pg, db_bytes, raw_rates, time_proofs

from crypto.dsse import Envelope, parse_envelope
from crypto.signing import SigningKey
from custody.demo import seal_body
from custody.events import Event, Kind, parse_event, statement_id
from custody.service import ServiceSecrets, open_writer

PROVINCES = ["BJ", "SH", "GD", "JS", "ZJ", "SD", "HN", "SC", "HB", "HE", "FJ", "AH"]
SUBJECTS = ["YW", "SX", "WY", "WL", "HX", "SW", "ZZ", "LS", "DL"]
COURIERS = ["courier-sun", "courier-li"]
STEPS = 10  # statements per package: seal, dispatch, eight handovers along the route


def package_ids(count: int) -> Iterator[str]:
    """GK27-<province>-S<site>-R<room>-<subject>: sites of 30 rooms, rooms of 9 sessions."""
    n = 0
    for site in range(10_000):
        for prov in PROVINCES:
            for room in range(30):
                for subject in SUBJECTS:
                    if n == count:
                        return
                    yield f"GK27-{prov}-S{site:04d}-R{room:02d}-{subject}"
                    n += 1


def _wave(args: tuple[int, list[str], str, dict[str, bytes]]) -> bytes:
    """One wave of packages: every package's whole chain, as envelope lines, by round."""
    wave, pids, authority, seeds = args
    keys = {p: SigningKey(seed) for p, seed in seeds.items()}
    t0 = _season.T0 + timedelta(seconds=wave * STEPS)
    window = (_season.T0 + timedelta(days=60), _season.T0 + timedelta(days=61))
    route = [COURIERS[i % 2] for i in range(STEPS)]
    rounds: list[list[bytes]] = [[] for _ in range(STEPS)]
    for pid in pids:
        body = seal_body(
            position="P-01", paper="PA", copies=32, seals=["S1", "S2"], window=window, route=route
        )
        env = Event(
            Kind.SEAL, authority, t0, "print-works", {pid: None}, {"sealer": "print-qian"}, body
        ).sign([keys["print-qian"]])
        rounds[0].append(env.to_bytes())
        prev, holder = statement_id(env.payload), "print-qian"
        for step in range(1, STEPS):
            to = route[step - 1]
            ev = Event(
                Kind.DISPATCH if step == 1 else Kind.HANDOVER,
                authority,
                t0 + timedelta(seconds=step),
                "road",
                {pid: prev},
                {"releaser": holder, "receiver": to},
                {"seals": ["S1", "S2"]},
            )
            env = ev.sign([keys[holder], keys[to]])
            rounds[step].append(env.to_bytes())
            prev, holder = statement_id(env.payload), to
    return b"".join(b"%d\n" % len(r) + b"\n".join(r) + b"\n" for r in rounds)


def generate(
    path: Path, events: int, wave_size: int, authority: str, seeds: dict[str, bytes]
) -> int:
    pids = list(package_ids(events // STEPS))
    waves = [pids[i : i + wave_size] for i in range(0, len(pids), wave_size)]
    with path.open("wb") as fh, ProcessPoolExecutor(CORES) as pool:
        jobs = [(w, ws, authority, seeds) for w, ws in enumerate(waves)]
        for chunk in pool.map(_wave, jobs):
            fh.write(chunk)
    return len(pids) * STEPS


def batches(path: Path) -> Iterator[list[bytes]]:
    with path.open("rb") as fh:
        while header := fh.readline():
            count = int(header)
            yield [fh.readline().rstrip(b"\n") for _ in range(count)]


def main() -> None:
    ap = argparse.ArgumentParser()
    _report.add_arguments(ap)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--wave", type=int, default=1000, help="Packages appended together.")
    ap.add_argument("--verify", action="store_true", help="Export and verify it all at the end.")
    ap.add_argument(
        "--keep", action="store_true", help="Keep the PostgreSQL database (its URL is printed)."
    )
    args = ap.parse_args()
    events = 20_000 if args.quick else args.events
    pg = os.environ.get("CUSTODY_BENCH_PG")
    url = _fresh_pg(pg, keep=args.keep) if pg else None
    if url and args.keep:
        print(f"database kept after the run: {url}")
    engine = "postgresql" if url else "sqlite"
    report = _report.Report("season_scale.py", args.quick)
    print(f"load average at start: {_report.load_average()}")
    one, allc = raw_rates(20000)
    limit = allc / 2
    print(f"raw Ed25519 verify {one:,.0f}/s (one core), {allc:,.0f}/s ({CORES} cores): "
          f"limit {limit:,.0f} countersigned handovers/s")  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="custody-season-"))
    s = _season.season(url, folder)
    print(f"season home: {s.home.path}")  # what bench_proofs_db.py reads afterwards
    seeds = {p: s.keys[p].signing.seed() for p in ("print-qian", *COURIERS)}
    t = time.perf_counter()
    total = generate(folder / "season.jsonl", events, args.wave, s.authority.id, seeds)
    print(f"generated {total:,} signed statements in {time.perf_counter() - t:.0f} s")

    log = open_writer(s.home, ServiceSecrets(log=_season.PASS, system=_season.PASS), workers=CORES)
    # the signature workers start before the clock does (once per writer): the rate at 10,000
    # events is the log's at that size, not the workers' start
    log.start_workers()
    size_before = db_bytes(url, s.home.path)
    marks = sorted({m for m in (10_000, 100_000, 1_000_000, 10_000_000) if m <= total} | {total})
    window: list[float] = []  # seconds per event over the last 10,000 events
    rates: dict[int, float] = {}
    every = max(10_000, total // 20)  # the whole curve: a rate for each twentieth of the season
    curve: list[tuple[int, float, float]] = []  # (events, events/s over the step, 1-min load)
    step_t, step_n = time.perf_counter(), 0
    appended = 0
    started = time.perf_counter()

    def waves() -> Iterator[tuple[list[Envelope], datetime]]:
        for raw in batches(folder / "season.jsonl"):
            envs = [parse_envelope(line, what="event envelope") for line in raw]
            yield envs, parse_event(envs[0].payload).time

    # one transaction per wave; the workers check the next wave's signatures while one
    # commits (``submit_batches``), so a wave's time is the time between two results
    t = time.perf_counter()
    for result in log.submit_batches(waves()):
        took = time.perf_counter() - t
        t = time.perf_counter()
        assert not result.rejected, result.rejected[0].error
        done = len(result.receipts)
        appended += done
        window.extend([took / done] * done)
        window = window[-10_000:]
        if appended - step_n >= every:
            now = time.perf_counter()
            curve.append((appended, (appended - step_n) / (now - step_t), os.getloadavg()[0]))
            print(f"  {appended:>10,} events: {curve[-1][1]:,.0f} events/s over the last "
                  f"{appended - step_n:,} (load {curve[-1][2]:.2f})", flush=True)  # fmt: skip
            step_t, step_n = now, appended
        for m in marks:
            if m not in rates and appended >= m:
                rates[m] = 1 / statistics.fmean(window)
                print(f"  at {m:>10,} events: {rates[m]:,.0f} events/s over the last "
                      f"{len(window):,} (load {_report.load_average()})")  # fmt: skip
    elapsed = time.perf_counter() - started
    log.close()
    size = log.size()
    grown = db_bytes(url, s.home.path) - size_before
    print(f"appended {appended:,} events in {elapsed:.0f} s ({appended / elapsed:,.0f}/s); "
          f"log size {size:,}; database grew {grown / 1e6:,.0f} MB = {grown / size:,.0f} "
          "bytes per event")  # fmt: skip
    inc, con = time_proofs(log, size, 300, seed=7)
    print(f"proofs at {size:,}: inclusion {statistics.median(inc) * 1e3:.3f} ms, "
          f"consistency {statistics.median(con) * 1e3:.3f} ms (medians of 300)")  # fmt: skip
    extra: dict[str, Any] = {}
    for m, r in rates.items():
        extra[f"rate_at_{m}"] = round(r, 1)
    report.add(
        f"season_append_ratio_{engine}",
        appended / elapsed / limit,
        limit=limit,
        limit_is="handovers/s: half the raw Ed25519 verify rate on all cores, same run",
        events=appended,
        seconds=round(elapsed, 1),
        curve=[[n, round(r, 1), round(load, 2)] for n, r, load in curve],
        **extra,
    )
    report.add(f"season_bytes_per_event_{engine}", grown / size, unit="bytes", limit=1200,
               limit_is="goal: at most 1.2 KB per event", events=size)  # fmt: skip
    report.add(f"season_proof_median_ms_{engine}", max(statistics.median(inc),
               statistics.median(con)) * 1e3, unit="ms", limit=1.0,
               limit_is="goal: under 1 ms median", leaves=size)  # fmt: skip
    if args.verify:
        from custody.audit import export_bundle, verify_bundle

        t = time.perf_counter()
        out = folder / "export"
        export_bundle(log, out)
        exported = time.perf_counter() - t
        export_mb = sum(f.stat().st_size for f in out.iterdir()) / 1e6
        t = time.perf_counter()
        rep = verify_bundle(out, s.trust(), workers=CORES)
        took = time.perf_counter() - t
        assert rep.ok, rep.problems[:3]
        print(f"export {export_mb:,.0f} MB in {exported:.0f} s; full verify {took:.0f} s = "
              f"{rep.signatures / took:,.0f} signatures/s = {rep.signatures / took / allc:.2f} "
              "of raw on all cores")  # fmt: skip
        report.add(f"season_verify_ratio_{engine}", rep.signatures / took / allc, limit=allc,
                   limit_is="raw Ed25519 verify on all cores", seconds=round(took, 1),
                   export_mb=round(export_mb, 1))  # fmt: skip
    print(f"load average at end: {_report.load_average()}")
    report.write(args.json)


if __name__ == "__main__":
    main()
