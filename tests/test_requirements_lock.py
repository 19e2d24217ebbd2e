"""The deployment's lock file: every runtime dependency of pyproject.toml is in
requirements.lock, pinned with hashes, at a version its range (security floors included)
allows; the lock was made by the command the docs give. Offline and fast: it reads files."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
COMMAND = (
    "uv pip compile pyproject.toml --generate-hashes --python-version 3.11 "
    "--python-platform x86_64-manylinux_2_28 -o requirements.lock"
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;]+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")
# The lock is resolved for CPython 3.11 on x86-64 Linux (COMMAND): markers are judged there.
TARGET = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}


def locked() -> dict[str, tuple[Version, int]]:
    """Each pinned package of the lock: its version and how many hashes it carries."""
    pins: dict[str, tuple[Version, int]] = {}
    current: str | None = None
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = _PIN.match(line)
        if m:
            current = canonicalize_name(m.group(1))
            assert current not in pins, f"{current} is pinned twice"
            pins[current] = (Version(m.group(2)), 0)
        elif line.strip() and not line.startswith(" "):
            raise AssertionError(f"requirements.lock: not a pin: {line!r}")
        if current is not None:
            version, hashes = pins[current]
            pins[current] = (version, hashes + len(_HASH.findall(line)))
    return pins


def runtime() -> list[Requirement]:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    return [Requirement(r) for r in data["project"]["dependencies"]]


def floors() -> dict[str, Version]:
    """The security floors: dependency lines of pyproject.toml whose comment names a CVE."""
    out: dict[str, Version] = {}
    for line in PYPROJECT.read_text(encoding="utf-8").splitlines():
        text, _, comment = line.partition("#")
        if "CVE-" not in comment or '"' not in text:
            continue
        req = Requirement(text.strip().strip(",").strip('"'))
        lows = [Version(s.version) for s in req.specifier if s.operator in {">=", "=="}]
        assert lows, f"{req.name}: a security floor with no lower bound"
        out[canonicalize_name(req.name)] = max(lows)
    return out


def test_the_lock_pins_every_package_with_hashes() -> None:
    pins = locked()
    assert len(pins) >= len(runtime())
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert unhashed == [], f"pinned without --hash: {unhashed}"


@pytest.mark.parametrize("req", runtime(), ids=lambda r: r.name)
def test_each_runtime_dependency_is_locked_within_its_range(req: Requirement) -> None:
    pins = locked()
    name = canonicalize_name(req.name)
    if req.marker is not None and not req.marker.evaluate(TARGET):
        return  # not for the platform the lock is made for
    assert name in pins, f"{req.name} is a dependency of pyproject.toml but not in the lock"
    version, _ = pins[name]
    assert req.specifier.contains(version, prereleases=True), (
        f"{req.name}=={version} in requirements.lock is outside pyproject.toml's {req.specifier}"
    )
    for extra in sorted(req.extras):  # what an extra adds (from the installed metadata)
        for raw in metadata.requires(req.name) or []:
            sub = Requirement(raw)
            marker = sub.marker
            if (
                marker is not None
                and marker.evaluate({**TARGET, "extra": extra})
                and not marker.evaluate({**TARGET, "extra": ""})
            ):
                assert canonicalize_name(sub.name) in pins, (
                    f"{req.name}[{extra}] needs {sub.name}, which the lock lacks"
                )


def test_the_security_floors_hold_in_the_lock() -> None:
    pins = locked()
    found = floors()
    assert {"pillow", "h11", "starlette"} <= set(found), found
    for name, floor in found.items():
        assert name in pins, f"{name} has a security floor but is not in the lock"
        assert pins[name][0] >= floor, f"{name}=={pins[name][0]} is below its floor {floor}"


def test_the_lock_was_made_by_the_documented_command() -> None:
    head = LOCK.read_text(encoding="utf-8").splitlines()[:3]
    assert f"#    {COMMAND}" in head, head
    for doc in (ROOT / "README.md", ROOT / "docs" / "operations.md"):
        text = " ".join(doc.read_text(encoding="utf-8").replace("\\\n", " ").split())
        assert COMMAND in text, f"{doc.name} does not give the lock's refresh command"
