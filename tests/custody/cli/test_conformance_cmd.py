"""`custody conformance`: the vectors' season made by the CLI, then every vector submitted to a
real `custody serve` over HTTP, one pass per clock, each answer compared with its `expect`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from custody.conformance import OFFLINE_KINDS, OWN_LOG_KINDS
from tests.api.helpers import free_port

ROOT = Path(__file__).resolve().parents[3]
VECTORS = ROOT / "docs" / "vectors"
PASS = "conformance season passphrase"
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "CUSTODY_PASSPHRASE": PASS,
    "CUSTODY_LOG_PASSPHRASE": PASS,
    "CUSTODY_SYSTEM_PASSPHRASE": PASS,
}


def custody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"from custody.cli import main; raise SystemExit(main({list(argv)!r}))",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


class Serve:
    def __init__(self, home: Path, now: str) -> None:
        port = free_port()
        argv = [
            "--home",
            str(home),
            "--now",
            now,
            "serve",
            "--port",
            str(port),
            "--desk-every",
            "0",
            "--rate-per-address",
            "100000/minute",
            "--rate-per-key",
            "100000/minute",
        ]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from custody.cli import main; raise SystemExit(main({argv!r}))",
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                pytest.fail(f"custody serve exited with {self.proc.returncode}: {out}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        pytest.fail("custody serve did not answer")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


def test_conformance_against_a_live_service(tmp_path: Path) -> None:
    home = tmp_path / "season"
    made = custody("--home", str(home), "--json", "conformance", str(VECTORS), "--setup")
    assert made.returncode == 0, made.stdout + made.stderr
    clocks = json.loads(made.stdout)["clocks"]
    assert clocks == ["2027-03-02T03:00:00Z", "2027-03-03T09:00:00Z"]

    judged: dict[str, int] = {}
    for clock in clocks:
        serve = Serve(home, clock)
        try:
            run = custody(
                "--json", "conformance", str(VECTORS), "--url", serve.url, "--received", clock
            )
        finally:
            serve.stop()
        assert run.returncode == 0, run.stdout + run.stderr
        report = json.loads(run.stdout)
        assert report["ok"] is True and report["failed"] == []
        for kind, counts in report["per_kind"].items():
            assert counts["passed"] == counts["cases"]
            judged[kind] = judged.get(kind, 0) + counts["cases"]
    files = [json.loads(p.read_text("utf-8")) for p in VECTORS.glob("*.json")]
    files = [f for f in files if "cases" in f]
    # No route on a service (offline kinds, incident acts): checked by the verifiers only.
    offline = OFFLINE_KINDS | OWN_LOG_KINDS
    expected = {f["kind"]: len(f["cases"]) for f in files if f["kind"] not in offline}
    assert judged == expected  # every case judged once, in the pass of its input's clock
    assert report["offline_only"] == sum(len(f["cases"]) for f in files if f["kind"] in offline)

    # The same vectors again: the season is no longer fresh, and the command says so per case.
    serve = Serve(home, clocks[-1])
    try:
        again = custody("conformance", str(VECTORS), "--url", serve.url)
    finally:
        serve.stop()
    assert again.returncode == 10, again.stdout + again.stderr
    # Each disagreement is named with what was expected and what the service answered.
    assert "event.seal/accept: expected accept, got refuse" in again.stdout
    assert "not a fresh season" in again.stdout


def test_conformance_refuses_another_authority(tmp_path: Path) -> None:
    home = tmp_path / "other"
    init = custody("--home", str(home), "init", "--name", "Other", "--rehearsal")
    assert init.returncode == 0, init.stdout + init.stderr
    serve = Serve(home, "2027-03-03T09:00:00Z")
    try:
        run = custody("conformance", str(VECTORS), "--url", serve.url)
    finally:
        serve.stop()
    assert run.returncode == 2, run.stdout + run.stderr  # usage: not the vectors' authority
    assert "not the vectors'" in run.stderr


def test_conformance_needs_setup_or_url(tmp_path: Path) -> None:
    run = custody("--home", str(tmp_path / "h"), "conformance", str(VECTORS))
    assert run.returncode == 2
