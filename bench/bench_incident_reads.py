"""What login, authorisation and access recording cost the incident list (issue 12's benchmark
names it; the route arrived with issue 14's console).

Same app, same home, same run: ``GET /v1/incidents?limit=50`` as a logged-in secrecy officer
(token checked, policy asked, the read recorded on the access log, ``--flush`` as the service's
``--access-flush``, then answered) against the same page built by a bare route added to the same
app for the benchmark only (the incidents read and shaped the same way, with none of the login,
policy or recording). In-process (Starlette's test client), interleaved rounds, medians; a
disk-waiting SQLite commit in the home's folder is timed between rounds.

    python bench/bench_incident_reads.py            # the figures in docs/benchmarks.md
    python bench/bench_incident_reads.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _season
from fastapi import Request
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from api.incident_routes import incident_out
from crypto.encoding import parse_time
from custody.incidents.desk import page_incidents
from custody.sessions import Challenge, sign_login


def _setup(incidents: int, flush: str = "full") -> tuple[Any, TestClient]:
    s = _season.season()
    log = s.log()
    for n in range(incidents):
        log.report_public(f"试题泄露线索 {n} a leak seen online", s.now)
    log.close()
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

    @app.get("/bench/unauthenticated/incidents")
    def bare(request: Request) -> dict[str, Any]:
        service = request.app.state.backend
        ladder = tuple(service.log.desk.policy.ladder)
        page, total = page_incidents(service.home.engine, offset=0, limit=50)
        return {"items": [incident_out(i, ladder) for i in page], "total": total}

    c = TestClient(app)
    got = c.post("/v1/login/challenge").json()
    ch = Challenge(got["challenge"], got["origin"], parse_time(got["expires_at"]))
    statement = sign_login(ch, s.keys["secrecy-chen"].signing)
    token = c.post(
        "/v1/login", content=statement.to_bytes(), headers={"content-type": "application/json"}
    ).json()["token"]
    c.headers["authorization"] = f"Bearer {token}"
    return s, c


def _rate(c: TestClient, path: str, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        r = c.get(path)
        assert r.status_code == 200, r.text
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    ap.add_argument(
        "--flush",
        choices=("full", "lazy", "queued"),
        default="full",
        help="access records' disk flush",
    )
    args = ap.parse_args()
    incidents, seconds, rounds = (20, 1.0, 2) if args.quick else (200, 3.0, 5)
    s, c = _setup(incidents, args.flush)
    disk: list[float] = []
    authed, bare = "/v1/incidents?limit=50", "/bench/unauthenticated/incidents"
    assert c.get(authed).json()["items"] == c.get(bare).json()["items"]  # the same page
    _rate(c, authed, 0.5)
    _rate(c, bare, 0.5)
    a_rates, u_rates = [], []
    for _ in range(rounds):  # interleaved, so a noisy neighbour hits both alike
        u_rates.append(_rate(c, bare, seconds))
        a_rates.append(_rate(c, authed, seconds))
        disk.append(_season.commit_ms(s.home.path))
    a, u = statistics.median(a_rates), statistics.median(u_rates)
    figures = {
        "incidents": incidents,
        "page": 50,
        "access_flush": args.flush,
        "rounds": rounds,
        "seconds_per_round": seconds,
        "unauthenticated_reads_per_s": round(u, 1),
        "authenticated_reads_per_s": round(a, 1),
        "cost": round(1 - a / u, 3),
        "disk_commit_ms": round(statistics.median(disk), 2),
        "disk_commit_ms_range": [round(min(disk), 2), round(max(disk), 2)],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"incident list, unauthenticated (bare route)      {u:9.1f} reads/s")
    print(f"incident list, logged in + policy + access log   {a:9.1f} reads/s")
    print(f"cost of login, authorisation and recording       {figures['cost']:9.1%}  (goal < 20%)")
    print(
        f"one disk-waiting SQLite commit (median, range)    {figures['disk_commit_ms']:9.2f} ms "
        f"{figures['disk_commit_ms_range']}"
    )
    print(f"load average                                     {figures['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
