"""Run the `custody` command line in a fresh interpreter, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENTRY = "from custody.cli import entry; entry()"


def run_custody(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: int = 600,
    inherit: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``custody ARGS`` in a subprocess, text output captured. ``env`` is added to this
    process's environment (PYTHONPATH inherited), or replaces it when ``inherit`` is false."""
    full_env = {**os.environ, **(env or {})} if inherit else dict(env or {})
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
