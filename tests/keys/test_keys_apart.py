"""Keys kept apart: the root key lives outside the serving home under its own passphrase; the
log and system keys each have their own; `custody serve` never runs on one shared secret."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from custody.cli import main
from custody.errors import PassphraseError
from keys.keyfile import read_keyfile

ROOT_PW = "root: offline media only"
LOG_PW = "log: the service's own"
SYSTEM_PW = "system: the desk's own"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUSTODY_PASSPHRASE", raising=False)
    monkeypatch.setenv("CUSTODY_ROOT_PASSPHRASE", ROOT_PW)
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE", LOG_PW)
    monkeypatch.setenv("CUSTODY_SYSTEM_PASSPHRASE", SYSTEM_PW)
    monkeypatch.setenv("CUSTODY_NEW_PASSPHRASE", "a courier's own passphrase")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["--json", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else {})


def test_init_writes_the_root_key_outside_the_home_under_its_own_passphrase(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "season"
    code, out = _run(capsys, "--home", str(home), "init", "--name", "陕西省人事考试中心")
    assert code == 0
    root = Path(out["root_key"])
    assert root.exists() and not root.resolve().is_relative_to(home.resolve())
    assert not any(p.name == "root.key" for p in home.rglob("*"))
    # each key opens with its own passphrase only
    assert read_keyfile(root, ROOT_PW)
    assert read_keyfile(home / "authority" / "log.key", LOG_PW)
    assert read_keyfile(home / "authority" / "system.key", SYSTEM_PW)
    for path, wrong in ((root, LOG_PW), (home / "authority" / "log.key", ROOT_PW)):
        with pytest.raises(PassphraseError):
            read_keyfile(path, wrong)


def test_one_shared_passphrase_is_refused_for_a_real_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("ROOT", "LOG", "SYSTEM"):
        monkeypatch.delenv(f"CUSTODY_{name}_PASSPHRASE", raising=False)
    monkeypatch.setenv("CUSTODY_PASSPHRASE", "one secret for everything")
    home = tmp_path / "season"
    code, out = _run(capsys, "--home", str(home), "init", "--name", "A")
    assert (code, out["error"]) == (2, "usage")
    assert not home.exists() or not any(home.iterdir())
    assert not (tmp_path / "season.root.key").exists()


def test_certificates_need_the_offline_root_key(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "season"
    assert _run(capsys, "--home", str(home), "init", "--name", "A")[0] == 0
    offline = tmp_path / "usb" / "root.key"
    offline.parent.mkdir()
    shutil.move(tmp_path / "season.root.key", offline)
    enroll = ["keys", "enroll", "--subject", "courier-li", "--name", "李伟", "--org", "机要交通"]
    enroll += ["--role", "courier", "--valid-days", "30"]
    code, out = _run(capsys, "--home", str(home), *enroll)
    assert (code, out["error"]) == (4, "not_found")  # the serving side cannot issue
    code, _ = _run(capsys, "--home", str(home), "--root-key", str(offline), *enroll)
    assert code == 0


def test_serve_refuses_the_shared_passphrase(
    env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "season"
    assert _run(capsys, "--home", str(home), "init", "--name", "A")[0] == 0
    monkeypatch.delenv("CUSTODY_LOG_PASSPHRASE")
    monkeypatch.delenv("CUSTODY_SYSTEM_PASSPHRASE")
    monkeypatch.setenv("CUSTODY_PASSPHRASE", LOG_PW)
    code, out = _run(capsys, "--home", str(home), "serve", "--port", "0")
    assert (code, out["error"]) == (2, "usage")
    # passphrases from files the service names (mounted secrets) are read
    (tmp_path / "log.pw").write_text(LOG_PW + "\n")
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE_FILE", str(tmp_path / "log.pw"))
    monkeypatch.setenv("CUSTODY_SYSTEM_PASSPHRASE", "not the system's")
    code, out = _run(capsys, "--home", str(home), "serve", "--port", "0")
    assert (code, out["error"]) == (11, "decryption")  # the log key opened; the system's did not
