"""Certificates issued offline (the root key on offline media, a copy of the home) are imported
into the serving home, which never holds the root key: checked against the authority, all or
nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from custody.cli import main
from tests.keys.test_keys_apart import env  # noqa: F401 - the three passphrases

ENROLL = ["keys", "enroll", "--subject", "courier-li", "--name", "李伟", "--org", "机要交通"]
ENROLL += ["--role", "courier", "--valid-days", "30"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["--json", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else {})


@pytest.fixture
def homes(env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, Path]:  # noqa: F811
    serving = tmp_path / "season"
    assert _run(capsys, "--home", str(serving), "init", "--name", "陕西省人事考试中心")[0] == 0
    usb = tmp_path / "usb"
    usb.mkdir()
    root = usb / "root.key"
    shutil.move(tmp_path / "season.root.key", root)  # the root key lives offline from now on
    offline = usb / "season"
    shutil.copytree(serving, offline)  # the offline machine works on a copy of the home
    return serving, offline, root


def test_offline_enrolment_is_imported_into_the_serving_home(
    homes: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serving, offline, root = homes
    assert _run(capsys, "--home", str(offline), "--root-key", str(root), *ENROLL)[0] == 0
    bundle = tmp_path / "usb" / "bundle"
    code, _ = _run(
        capsys,
        "--home",
        str(offline),
        "--root-key",
        str(root),
        "trust",
        "export",
        "--out",
        str(bundle),
    )
    assert code == 0
    code, out = _run(capsys, "--home", str(serving), "keys", "import", str(bundle))
    assert code == 0 and len(out["certificates"]) == 1
    code, out = _run(capsys, "--home", str(serving), "keys", "list")
    assert "courier-li" in json.dumps(out, ensure_ascii=False)
    code, out = _run(capsys, "--home", str(serving), "keys", "import", str(bundle))
    assert (code, out["certificates"], out["already_held"]) == (0, [], 1)


def test_a_tampered_or_foreign_bundle_is_refused_and_nothing_stored(
    homes: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serving, offline, root = homes
    assert _run(capsys, "--home", str(offline), "--root-key", str(root), *ENROLL)[0] == 0
    bundle = tmp_path / "bundle"
    export = ["trust", "export", "--out", str(bundle)]
    assert _run(capsys, "--home", str(offline), "--root-key", str(root), *export)[0] == 0
    doc = json.loads(bundle.read_text())
    doc["signatures"][0]["sig"] = "A" * 86 + "=="
    bundle.write_text(json.dumps(doc))
    code, out = _run(capsys, "--home", str(serving), "keys", "import", str(bundle))
    assert code in (3, 10) and out["error"] in ("format", "signature")
    # another authority's certificates
    other = tmp_path / "other"
    assert _run(capsys, "--home", str(other), "init", "--name", "另一个考试院")[0] == 0
    other_root = tmp_path / "other.root.key"
    assert _run(capsys, "--home", str(other), "--root-key", str(other_root), *ENROLL)[0] == 0
    foreign = tmp_path / "foreign"
    export = ["trust", "export", "--out", str(foreign)]
    assert _run(capsys, "--home", str(other), "--root-key", str(other_root), *export)[0] == 0
    code, out = _run(capsys, "--home", str(serving), "keys", "import", str(foreign))
    assert code == 10
    code, out = _run(capsys, "--home", str(serving), "keys", "list")
    assert "courier-li" not in json.dumps(out, ensure_ascii=False)
