"""HTTP service benchmark: 50 concurrent clients against `custody serve`'s app (one worker; `--workers N` for the events).

Figures, each against a yardstick measured in the same run:
- ``api_label_vs_trivial_ratio``: label verifications per second (POST /v1/labels/verify)
  over a trivial endpoint's requests per second, same app, same server, same clients; p99 of
  both is recorded (goal: ratio at least 0.5, p99 at most twice the trivial one's).
- ``api_single_vs_batched_ratio``: countersigned handovers submitted one per request
  (POST /v1/events, 50 clients) over the library's batched rate (``submit_many``) on the same
  engine (goal at least 0.5).

The load generator is a small keep-alive HTTP/1.1 client on asyncio (httpx would cost more
CPU than the server it measures on a 2-core machine).

    python bench/bench_api.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report
import _season

from custody.demo import Season
from custody.events import parse_event
from custody.service import ServiceSecrets, open_writer
from labels.payload import seal_manifest

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, season: Season, clock: str, workers: int = 1) -> None:
        self.port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "_api_server.py"), str(season.home.path),
             str(self.port), clock, str(workers)],
            env=env,
        )  # fmt: skip
        # Ready when every worker process has answered, not when the port accepts: uvicorn's
        # supervisor listens before its workers have imported the app (seconds each), and a
        # load started then would time the workers' start-up, not the service.
        deadline = time.monotonic() + 120
        seen: set[int] = set()
        while time.monotonic() < deadline:
            pid = self._answering_pid()
            if pid is not None:
                seen.add(pid)
                if len(seen) >= workers:
                    return
            else:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the service did not start ({len(seen)} of {workers} workers answered)")

    def _answering_pid(self) -> int | None:
        """The process id of the worker that answers one request on a new connection."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
                conn.sendall(
                    b"GET /bench/trivial HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                )
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
        except OSError:
            return None
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            return None
        return int(json.loads(body)["pid"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, bytes]:
    writer.write(head + body)
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    data = await reader.readexactly(length) if length else b""
    return int(status_line.split()[1]), data


def _head(method: str, path: str, body: bytes, ctype: str) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()


async def _load(
    port: int, jobs: list[tuple[str, str, bytes, str]], expect: set[int]
) -> tuple[float, list[float]]:
    """Run ``jobs`` (method, path, body, content type) on CLIENTS keep-alive connections;
    returns requests/s and the latency of each request."""
    queue: asyncio.Queue[tuple[str, str, bytes, str]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                try:
                    method, path, body, ctype = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t = time.perf_counter()
                status, data = await _request(
                    reader, writer, _head(method, path, body, ctype), body
                )
                latencies.append(time.perf_counter() - t)
                if status not in expect:
                    raise RuntimeError(f"{path}: HTTP {status}: {data[:300]!r}")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return len(jobs) / (time.perf_counter() - start), latencies


def _p99(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.99) - 1)] * 1e3


def labels(report: _report.Report, quick: bool) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "labels"))
    from fixtures import typical_manifest  # the test suite's typical label

    s = _season.season()
    key = s.keys["print-qian"].signing
    texts = [
        seal_manifest(typical_manifest(_season.T0, package_id=f"SX27-B-{i:04d}"), key).encode()
        for i in range(200)
    ]
    n = 3000 if quick else 20000
    server = Server(s, _season.T0.isoformat())
    try:
        warm = [("GET", "/bench/trivial", b"", "text/plain")] * 500
        asyncio.run(_load(server.port, warm, {200}))
        trivial_jobs = [("GET", "/bench/trivial", b"", "text/plain")] * n
        label_jobs = [("POST", "/v1/labels/verify", texts[i % 200], "text/plain") for i in range(n)]
        trivial, t_lat = asyncio.run(_load(server.port, trivial_jobs, {200}))
        load_t = _report.load_average()
        label, l_lat = asyncio.run(_load(server.port, label_jobs, {200}))
        load_l = _report.load_average()
    finally:
        server.stop()
    print(
        f"| trivial endpoint (GET) | {trivial:,.0f} req/s | p50 {statistics.median(t_lat) * 1e3:.1f} ms | p99 {_p99(t_lat):.1f} ms | {load_t} |"
    )
    print(
        f"| POST /v1/labels/verify | {label:,.0f} req/s | p50 {statistics.median(l_lat) * 1e3:.1f} ms | p99 {_p99(l_lat):.1f} ms | {load_l} |"
    )
    report.add(
        "api_label_vs_trivial_ratio",
        label / trivial,
        limit=trivial,
        limit_is=f"req/s of a trivial endpoint, same app and server, {CLIENTS} clients, same run",
        goal=">= 0.5, p99 at most twice the trivial endpoint's",
        label_rate=round(label, 1),
        label_p99_ms=round(_p99(l_lat), 2),
        trivial_p99_ms=round(_p99(t_lat), 2),
        requests=n,
        clients=CLIENTS,
    )


def _batched_rate(packages: int) -> float:
    """The library's batched rate on the same engine: rounds of ``packages`` handovers."""
    s = _season.season()
    log = open_writer(s.home, ServiceSecrets(log=_season.PASS, system=_season.PASS))
    stream = _season.handover_stream(s, packages, 3)
    seals = next(stream)
    log.submit_many(seals, now=parse_event(seals[0].payload).time)
    t = time.perf_counter()
    n = 0
    for batch in stream:
        result = log.submit_many(batch, now=parse_event(batch[0].payload).time)
        assert not result.rejected, result.rejected[0].error
        n += len(result.receipts)
    rate = n / (time.perf_counter() - t)
    log.close()
    return rate


def singles(report: _report.Report, quick: bool, workers: int = 1) -> None:
    packages = 1000 if quick else 5000
    s = _season.season()
    log = open_writer(s.home, ServiceSecrets(log=_season.PASS, system=_season.PASS))
    stream = _season.handover_stream(s, packages, 1)
    seals = next(stream)
    log.submit_many(seals, now=_season.T0)
    log.close()
    dispatches = next(stream)  # independent of each other: any order, any client
    clock = (_season.T0 + timedelta(seconds=2)).isoformat()
    # The yardstick is taken before and after the requests and averaged: this machine's speed
    # drifts by a third within minutes, and one ratio must not rest on one side of a drift.
    before = _batched_rate(packages)
    server = Server(s, clock, workers)
    try:
        jobs = [("POST", "/v1/events", env.to_bytes(), "application/json") for env in dispatches]
        single, lat = asyncio.run(_load(server.port, jobs, {201}))
        load_s = _report.load_average()
        # The same bodies to an endpoint that only reads them: no handler could answer faster.
        ceiling_jobs = [("POST", "/bench/trivial", body, ctype) for _, _, body, ctype in jobs]
        ceiling, c_lat = asyncio.run(_load(server.port, ceiling_jobs, {200}))
        load_c = _report.load_average()
    finally:
        server.stop()
    after = _batched_rate(packages)
    batched = (before + after) / 2
    load_b = _report.load_average()
    print(
        f"| POST /v1/events, one handover a request, {workers} server process(es) | {single:,.0f} handovers/s | p50 {statistics.median(lat) * 1e3:.1f} ms | p99 {_p99(lat):.1f} ms | {load_s} |"
    )
    print(
        f"| POST /bench/trivial, the same bodies read and dropped | {ceiling:,.0f} req/s | p50 {statistics.median(c_lat) * 1e3:.1f} ms | p99 {_p99(c_lat):.1f} ms | {load_c} |"
    )
    print(
        f"| library, batches of {packages} (submit_many), mean of before and after | {batched:,.0f} handovers/s ({before:,.0f}, {after:,.0f}) | | | {load_b} |"
    )
    report.add(
        "api_single_vs_batched_ratio",
        single / batched,
        limit=batched,
        limit_is=f"handovers/s of the library's submit_many, batches of {packages}, SQLite, same "
        "run: the mean of one measure before the requests and one after",
        batched_before=round(before, 1),
        batched_after=round(after, 1),
        goal=">= 0.5",
        single_rate=round(single, 1),
        p99_ms=round(_p99(lat), 2),
        clients=CLIENTS,
        server_workers=workers,
    )
    report.add(
        "api_trivial_vs_batched_ratio",
        ceiling / batched,
        limit=batched,
        limit_is="the ceiling of api_single_vs_batched_ratio on this machine: a trivial POST "
        "endpoint reading the same bodies, same server and clients, over the same batched rate",
        trivial_rate=round(ceiling, 1),
        trivial_p99_ms=round(_p99(c_lat), 2),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    _report.add_arguments(ap)
    ap.add_argument("--only", choices=["labels", "events"])
    ap.add_argument(
        "--workers", type=int, default=1, help="server processes for the events (serve --workers)"
    )
    args = ap.parse_args()
    report = _report.Report("bench_api.py", args.quick)
    print(f"load average at start: {_report.load_average()}\n")
    print(f"## HTTP service, {CLIENTS} clients, one worker; events on {args.workers} (SQLite)\n")
    print("| what | rate | p50 | p99 | load average |\n|---|---:|---:|---:|---|")
    if args.only in (None, "labels"):
        labels(report, args.quick)
    if args.only in (None, "events"):
        singles(report, args.quick, args.workers)
    print(f"\nload average at end: {_report.load_average()}")
    report.write(args.json)
    if args.json:
        print(json.dumps({k: v["value"] for k, v in report.figures.items()}))


if __name__ == "__main__":
    main()
