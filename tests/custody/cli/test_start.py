"""Fast start, checked by import graph (not by timing: the figures are in bench/bench_start.py).

`custody --help`, `custody label verify IMAGE` and `custody verify BUNDLE` run in a fresh
interpreter; the modules loaded when each has finished must not include the database layer,
the PDF library or the web framework: they belong to the commands that use them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from crypto.encoding import format_time
from custody.audit import export_bundle
from custody.demo import Season
from labels.payload import seal_manifest
from labels.qr import encode_qr
from labels.render import render_png
from tests.conftest import T0
from tests.custody.test_log import seal
from tests.labels.fixtures import typical_manifest

HEAVY = ("sqlalchemy", "alembic", "sqlmodel", "reportlab", "fastapi", "starlette", "uvicorn")

PROBE = """
import json, sys
from custody.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""


def _modules_after(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    out = tmp_path / "modules.json"
    subprocess.run([sys.executable, "-c", PROBE, str(out), *args], check=False, capture_output=True)
    result = json.loads(out.read_text())
    return result["code"], set(result["modules"])


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.fixture
def small(season: Season, tmp_path: Path) -> dict[str, Path]:
    """A trust bundle, a label image signed by the printer, and a small export bundle."""
    seal(season)
    bundle = tmp_path / "bundle"
    export_bundle(season.log(), bundle)
    text = seal_manifest(typical_manifest(T0), season.keys["print-qian"].signing)
    image = tmp_path / "label.png"
    image.write_bytes(render_png(typical_manifest(T0), encode_qr(text), dpi=200))
    return {"trust": season.out / "trust-bundle", "image": image, "bundle": bundle}


def test_help_imports_no_database_pdf_or_web(tmp_path: Path) -> None:
    code, modules = _modules_after(tmp_path, "--help")
    assert code == 0
    assert _heavy(modules) == []
    assert "custody.cli" in modules  # the probe really ran the CLI


def test_label_verify_imports_no_database_pdf_or_web(
    small: dict[str, Path], tmp_path: Path
) -> None:
    now = format_time(T0 + timedelta(minutes=1))
    code, modules = _modules_after(
        tmp_path,
        "--now",
        now,
        "label",
        "verify",
        str(small["image"]),
        "--trust",
        str(small["trust"]),
    )
    assert code == 0
    assert "zxingcpp" in modules  # the image was scanned
    assert _heavy(modules) == []


def test_verify_imports_no_database_pdf_or_web(
    small: dict[str, Path], season: Season, tmp_path: Path
) -> None:
    code, modules = _modules_after(
        tmp_path, "verify", str(small["bundle"]), "--pin", season.authority.id, "--workers", "1"
    )
    assert code == 0
    assert "custody.audit" in modules
    assert _heavy(modules) == []


def test_a_command_that_needs_the_database_still_loads_it(tmp_path: Path) -> None:
    """The probe can fail: `log status` on a missing home reaches the storage layer."""
    code, modules = _modules_after(tmp_path, "--home", str(tmp_path / "none"), "log", "status")
    assert code == 4
    assert "sqlalchemy" in modules
