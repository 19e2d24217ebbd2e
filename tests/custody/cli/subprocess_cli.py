"""Run the `custody` command line in a fresh interpreter, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENTRY = "from custody.cli import entry; entry()"


def run_custody(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """``custody ARGS`` in a subprocess (PYTHONPATH inherited), text output captured."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
