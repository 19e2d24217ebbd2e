"""Start-time benchmark: CPU time of `custody --help`, `custody label verify IMG` and
`custody verify SMALL`, each against `python -c pass` measured in the same run.

Each command runs in a fresh interpreter, as from a shell; its CPU time (user + system, read
from the children's resource usage) is the median of ``--repeat`` runs. The figure that counts
is the CPU time beyond the interpreter's own start: goal under 0.3 s (issue 11).
``--tree DIR`` measures another checkout the same way (e.g. the main branch, for a before/after).

Run: python bench/bench_start.py [--quick] [--repeat 10] [--json FILE] [--tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "labels"))

import nacl.pwhash
from fixtures import typical_manifest

from crypto.encoding import format_time, utc
from crypto.sealing import KdfParams
from custody.audit import export_bundle
from custody.demo import seal_body, start_season
from custody.events import Kind
from labels.payload import seal_manifest
from labels.qr import encode_qr
from labels.render import render_png

ROOT = Path(__file__).resolve().parents[1]
T0 = utc(2027, 3, 1, 8)
ENTRY = "import sys; from custody.cli import entry; sys.argv[0] = 'custody'; entry()"
GOAL_S = 0.3


def cpu_of(argv: list[str], env: dict[str, str]) -> float:
    """CPU seconds (user + system) one child process used. It runs in the system's temporary
    folder, so that PYTHONPATH (not the current folder) decides which tree is imported."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        argv, env=env, capture_output=True, check=False, cwd=tempfile.gettempdir()
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode()[-600:]
        raise SystemExit(f"{argv[3:]} exited {done.returncode}: {output}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_cpu(argv: list[str], env: dict[str, str], repeat: int) -> float:
    return statistics.median(cpu_of(argv, env) for _ in range(repeat))


def fixtures(folder: Path) -> dict[str, str]:
    """A season's trust bundle, a signed label as an image, and a small export (one seal)."""
    kdf = KdfParams.fresh(nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)
    season = start_season(folder / "season", now=T0, passphrase="bench passphrase", kdf=kdf)
    start = season.now + timedelta(hours=4)
    body = seal_body(
        position="P-01",
        paper="PAPER-A",
        copies=30,
        seals=["S1", "S2"],
        window=(start, start + timedelta(hours=2)),
        route=["print-qian@PRT-01", "courier-sun@ROAD"],
    )
    season.submit(
        season.event(
            Kind.SEAL, ["PK-1"], actors={"sealer": "print-qian"}, signers=["print-qian"], body=body
        )
    )
    export_bundle(season.log(), folder / "bundle")
    manifest = typical_manifest(T0)
    text = seal_manifest(manifest, season.keys["print-qian"].signing)
    image = folder / "label.png"
    image.write_bytes(render_png(manifest, encode_qr(text), dpi=200))
    return {
        "trust": str(season.out / "trust-bundle"),
        "image": str(image),
        "bundle": str(folder / "bundle"),
        "pin": season.authority.id,
        "now": format_time(T0 + timedelta(minutes=1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 runs of each instead of 10")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--tree", type=Path, help="measure this checkout instead (PYTHONPATH)")
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    tree = (args.tree or ROOT).resolve()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory(prefix="custody-bench-start-") as tmp:
        f = fixtures(Path(tmp))
        py = sys.executable
        commands = {
            "custody --help": [py, "-c", ENTRY, "--help"],
            "custody label verify IMG": [
                *(py, "-c", ENTRY, "--now", f["now"], "label", "verify", f["image"]),
                *("--trust", f["trust"]),
            ],
            "custody verify SMALL": [
                *(py, "-c", ENTRY, "verify", f["bundle"], "--pin", f["pin"]),
                *("--workers", "1"),
            ],
        }
        base = median_cpu([py, "-c", "pass"], env, repeat)
        rows = []
        for name, argv in commands.items():
            cpu = median_cpu(argv, env, repeat)
            rows.append({"command": name, "cpu_s": cpu, "beyond_python_s": cpu - base})
    result = {
        "tree": str(tree),
        "python": platform.python_version(),
        "repeat": repeat,
        "loadavg": os.getloadavg(),
        "python_c_pass_cpu_s": base,
        "goal_beyond_python_s": GOAL_S,
        "commands": rows,
    }
    print(f"tree {tree}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"| command | CPU s (median of {repeat}) | beyond `python -c pass` | goal < {GOAL_S} s |")
    print("|---|---:|---:|---|")
    print(f"| `python -c pass` | {base:.3f} | - | |")
    for r in rows:
        ok = "met" if r["beyond_python_s"] < GOAL_S else "NOT met"
        print(f"| `{r['command']}` | {r['cpu_s']:.3f} | {r['beyond_python_s']:.3f} | {ok} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
