"""The figures a benchmark script writes with ``--json FILE``: each with the limit it was measured
against (a raw rate from the same run, or the goal it is held to) and the load average of the
machine at the moment it was taken (these machines are shared: a figure without its load is
not comparable with another one).

The ratio names (issue 15) are stable; docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The two options every benchmark script takes."""
    parser.add_argument("--quick", action="store_true", help="A run of a few minutes.")
    parser.add_argument("--json", type=Path, metavar="FILE", help="Write the figures here.")


class Report:
    """Figures of one run, written as JSON (``--json``) besides the printed tables."""

    def __init__(self, script: str, quick: bool) -> None:
        self.script = script
        self.quick = quick
        self.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.load_at_start = load_average()
        self.figures: dict[str, dict[str, Any]] = {}

    def add(
        self,
        name: str,
        value: float,
        *,
        limit: float | None = None,
        limit_is: str = "",
        unit: str = "",
        goal: str = "",
        **extra: Any,
    ) -> None:
        """One figure: ``value`` (a ratio, or a measure with ``unit``), the ``limit`` it was
        measured against (``limit_is`` says what that limit is), and the load average now."""
        self.figures[name] = {
            "value": round(value, 4),
            "unit": unit,
            "limit": None if limit is None else round(limit, 3),
            "limit_is": limit_is,
            "goal": goal,
            "load_average": load_average(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **extra,
        }

    def write(self, path: Path | None) -> None:
        if path is None:
            return
        doc = {
            "script": self.script,
            "quick": self.quick,
            "started": self.started,
            "load_average_at_start": self.load_at_start,
            "load_average_at_end": load_average(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "commit": _commit(),
            "argv": sys.argv[1:],
            "figures": self.figures,
        }
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    return out.stdout.strip()
