"""What login, authorisation and access recording cost a read (issue 12; goal: under 20%).

Same app, same home, same run: ``GET /v1/packages/{id}`` (or, with ``--route timeline``,
``GET /v1/packages/{id}/timeline``) as a logged-in courier (token checked, key's standing
re-checked, policy asked, the read recorded on the access log, then answered) against the same
read with none of that, served by a bare route added to the same app for the benchmark only
(what the route did before issue 12). In-process (Starlette's test client, no sockets), so the
figure is the service's own work, not the network's. Between rounds it times a small SQLite
commit that waits for the disk in the home's folder (``disk_commit_ms``): with
``--flush full`` every read waits for one such commit (shared by concurrent reads).

    python bench/bench_access.py            # the figures in docs/benchmarks.md
    python bench/bench_access.py --route timeline
    python bench/bench_access.py --quick    # a smoke run
    python bench/bench_access.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _season
from fastapi import Request
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from crypto.encoding import parse_time
from custody.demo import seal_body
from custody.events import Kind
from custody.sessions import Challenge, sign_login
from custody.store.states import state_as_dict
from custody.views import Views


def _setup(packages: int, flush: str = "full") -> tuple[Any, TestClient, list[str]]:
    s = _season.season()
    ids = [f"PK-{n:05d}" for n in range(packages)]
    window = (s.now + timedelta(days=2), s.now + timedelta(days=2, hours=2))
    log = s.log()
    envs = []
    for pid in ids:
        body = seal_body(
            position="P",
            paper="PA",
            copies=1,
            seals=["S"],
            window=window,
            route=["courier-sun", "custodian-zhou"],
        )
        body["destination"] = {"site": "西安考点", "room": "1"}
        envs.append(
            s.event(
                Kind.SEAL,
                [pid],
                actors={"sealer": "print-qian"},
                signers=["print-qian"],
                body=body,
                prevs={pid: None},
                at=s.now,
            )
        )
    log.submit_many(envs, now=s.now)
    app = create_app(
        Settings(
            home=s.home.path,
            log_passphrase=_season.PASS,
            clock=lambda: s.now,
            desk_every=0,
            rate_per_address="1000000/minute",
            rate_per_key="1000000/minute",
            access_flush=flush,
        )
    )

    @app.get("/bench/unauthenticated/{package_id}")
    def bare(package_id: str, request: Request) -> dict[str, Any]:
        service = request.app.state.backend
        state = service.log.package_state(package_id)
        return {
            "package_id": package_id,
            "state": state_as_dict(state),
            "history": service.log.package_history(package_id),
        }

    @app.get("/bench/unauthenticated/{package_id}/timeline")
    def bare_timeline(package_id: str, request: Request) -> dict[str, Any]:
        service = request.app.state.backend
        events = Views(service.home, service.log).timeline(package_id)
        return {"package_id": package_id, "events": [e.as_dict() for e in events]}

    c = TestClient(app)
    got = c.post("/v1/login/challenge").json()
    ch = Challenge(got["challenge"], got["origin"], parse_time(got["expires_at"]))
    statement = sign_login(ch, s.keys["courier-sun"].signing)
    token = c.post(
        "/v1/login", content=statement.to_bytes(), headers={"content-type": "application/json"}
    ).json()["token"]
    c.headers["authorization"] = f"Bearer {token}"
    return s, c, ids


def _rate(c: TestClient, paths: list[str], seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        r = c.get(paths[n % len(paths)])
        assert r.status_code == 200, r.text
        n += 1
    return n / (time.perf_counter() - t0)


def _rate_concurrent(c: TestClient, paths: list[str], seconds: float, clients: int) -> float:
    """Reads per second of ``clients`` threads, each with its own client on the same app."""
    from concurrent.futures import ThreadPoolExecutor

    headers = dict(c.headers)

    def one(k: int) -> int:
        own = TestClient(c.app, headers=headers)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            r = own.get(paths[(n * clients + k) % len(paths)])
            assert r.status_code == 200, r.text
            n += 1
        return n

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(one, range(clients)))
    return total / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (second run)")
    ap.add_argument(
        "--flush",
        choices=("full", "lazy", "queued"),
        default="full",
        help="access records' disk flush",
    )
    ap.add_argument(
        "--route", choices=("package", "timeline"), default="package", help="the read measured"
    )
    args = ap.parse_args()
    packages, seconds, rounds = (50, 1.0, 2) if args.quick else (1000, 5.0, 5)
    s, c, ids = _setup(packages, args.flush)
    tail = "/timeline" if args.route == "timeline" else ""
    authed = [f"/v1/packages/{p}{tail}" for p in ids]
    bare = [f"/bench/unauthenticated/{p}{tail}" for p in ids]
    disk: list[float] = []
    _rate(c, authed[:10], 0.5)  # warm up both paths
    _rate(c, bare[:10], 0.5)
    a_rates, u_rates = [], []
    for _ in range(rounds):  # interleaved, so a noisy neighbour hits both alike
        u_rates.append(_rate(c, bare, seconds))
        a_rates.append(_rate(c, authed, seconds))
        disk.append(_season.commit_ms(s.home.path))
    a, u = statistics.median(a_rates), statistics.median(u_rates)
    ca_rates, cu_rates = [], []
    for _ in range(rounds):
        cu_rates.append(_rate_concurrent(c, bare, seconds, args.clients))
        ca_rates.append(_rate_concurrent(c, authed, seconds, args.clients))
        disk.append(_season.commit_ms(s.home.path))
    ca, cu = statistics.median(ca_rates), statistics.median(cu_rates)
    recorded = c.app.state.backend.access.size()  # what is queued is committed first
    figures = {
        "packages": packages,
        "route": args.route,
        "access_flush": args.flush,
        "rounds": rounds,
        "seconds_per_round": seconds,
        "unauthenticated_reads_per_s": round(u, 1),
        "authenticated_reads_per_s": round(a, 1),
        "cost": round(1 - a / u, 3),
        "clients": args.clients,
        "concurrent_unauthenticated_reads_per_s": round(cu, 1),
        "concurrent_authenticated_reads_per_s": round(ca, 1),
        "concurrent_cost": round(1 - ca / cu, 3),
        "access_records": recorded,
        "disk_commit_ms": round(statistics.median(disk), 2),
        "disk_commit_ms_range": [round(min(disk), 2), round(max(disk), 2)],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"{args.route} read, unauthenticated (bare route)   {u:9.1f} reads/s")
    print(f"{args.route} read, logged in + policy + access log {a:9.1f} reads/s")
    print(f"cost of login, authorisation and recording     {figures['cost']:9.1%}  (goal < 20%)")
    print(f"{args.clients} clients at once, unauthenticated          {cu:9.1f} reads/s")
    print(f"{args.clients} clients at once, logged in + recorded     {ca:9.1f} reads/s")
    print(
        f"cost with {args.clients} clients at once                   {figures['concurrent_cost']:9.1%}"
    )
    print(f"access records written                         {figures['access_records']:9d}")
    print(
        f"one disk-waiting SQLite commit (median, range)  {figures['disk_commit_ms']:9.2f} ms "
        f"{figures['disk_commit_ms_range']}"
    )
    print(f"load average                                   {figures['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
