"""Fast start, checked by import graph (not by timing: the figures are in bench/bench_start.py).

`custody --help`, `custody label verify IMAGE` and `custody verify BUNDLE` run in a fresh
interpreter; the modules loaded when each has finished must not include the database layer,
the PDF library or the web framework: they belong to the commands that use them.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from crypto.encoding import format_time
from custody.audit import export_bundle
from custody.cli.steps_cmd import STEP_COMMANDS
from custody.demo import Season
from labels.payload import seal_manifest
from labels.qr import encode_qr
from labels.render import render_png
from tests.conftest import T0
from tests.custody.test_log import seal
from tests.labels.fixtures import typical_manifest

# pydantic: typer 0.29 parses every parameter with it (about 95 ms of CPU at each start): the
# pin below 0.29 (pyproject.toml) keeps it out, and this keeps the pin honest.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "sqlmodel",
    "reportlab",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
)

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


def test_help_loads_no_command_module(tmp_path: Path) -> None:
    """The root's help lists every command from the index, without building any of them."""
    code, modules = _modules_after(tmp_path, "--help")
    assert code == 0
    loaded = sorted(m for m in modules if m.startswith("custody.cli.") and m.endswith("_cmd"))
    assert loaded == []


def test_a_command_loads_its_own_module_only(tmp_path: Path) -> None:
    code, modules = _modules_after(tmp_path, "label", "verify", "--help")
    assert code == 0
    loaded = sorted(m for m in modules if m.startswith("custody.cli.") and m.endswith("_cmd"))
    assert loaded == ["custody.cli.label_cmd"]


def test_the_index_matches_every_command_it_stands_for() -> None:
    """Each entry's help (English id) and panel are the ones its module gives, and every command
    it loads answers to its name: the root's help cannot drift from the commands."""
    import inspect

    import custody.cli as cli

    for entry in cli.ENTRIES:
        target = getattr(importlib.import_module(entry.module), entry.attribute)
        if entry.group:
            assert isinstance(target, typer.Typer), entry
            assert target.info.help == entry.help, entry.name
        else:
            assert inspect.getdoc(target) == entry.help, entry.name
        command = cli.load(entry)
        assert command.name == entry.name
        assert not getattr(command, "stand_in", False)
    names = [e.name for e in cli.ENTRIES]
    assert len(names) == len(set(names))
    assert {e.name for e in cli.ENTRIES if e.panel} == {name for name, _ in STEP_COMMANDS}


def test_loading_a_group_twice_wires_its_extra_commands_once() -> None:
    import custody.cli as cli

    entry = next(e for e in cli.ENTRIES if e.name == "log")
    first, second = cli.load(entry), cli.load(entry)
    assert isinstance(first, TyperGroup) and isinstance(second, TyperGroup)
    assert sorted(first.commands) == sorted(second.commands)
    assert {"check", "failover"} <= set(second.commands)


def test_the_index_covers_the_custody_report(tmp_path: Path) -> None:
    """A command added since (``custody report``) is in the index, and its help loads its
    own module only, without the database or the PDF library (they load when it runs)."""
    import custody.cli as cli

    assert "report" in {e.name for e in cli.ENTRIES}
    code, modules = _modules_after(tmp_path, "report", "--help")
    assert code == 0
    loaded = sorted(m for m in modules if m.startswith("custody.cli.") and m.endswith("_cmd"))
    assert loaded == ["custody.cli.report_cmd"]
    assert _heavy(modules) == []
