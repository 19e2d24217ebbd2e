"""The `custody` CLI for identities: a session that enrols, rotates, revokes, then is refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from custody.cli import main
from tests.conftest import PASS


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    monkeypatch.setenv("CUSTODY_NEW_PASSPHRASE", PASS)
    monkeypatch.setenv("CUSTODY_HOME", str(tmp_path / "home"))

    def run(*args: str, now: str = "2027-03-01T08:00:00Z") -> tuple[int, str, str]:
        code = main(["--now", now, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _json(out: str) -> dict:  # type: ignore[type-arg]
    return json.loads(out)


def test_keys_session(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("--json", "init", "--rehearsal", "--name", "测试考试院 Test Authority")
    assert code == 0, out
    authority_id = _json(out)["authority_id"]

    code, out, err = cli(
        "--json",
        "keys",
        "enroll",
        "--subject",
        "courier-a",
        "--name",
        "甲 A",
        "--org",
        "交通",
        "--role",
        "courier",
        "--valid-days",
        "30",
        "--recuse",
        "exam:E1",
    )
    assert code == 0, err
    first = _json(out)
    assert first["roles"] == ["courier"] and first["recusals"] == ["exam:E1"]
    key_file = Path(first["key_file"])
    assert key_file.exists() and PASS not in key_file.read_text()
    cli(
        "keys",
        "enroll",
        "--subject",
        "custodian-b",
        "--name",
        "乙 B",
        "--org",
        "考点",
        "--role",
        "custodian",
    )

    code, out, _ = cli("--json", "keys", "rotate", "courier-a", now="2027-03-02T08:00:00Z")
    assert code == 0
    assert _json(out)["supersedes"] == first["key_id"]

    code, out, _ = cli("--json", "keys", "list", now="2027-03-02T09:00:00Z")
    statuses = {(k["subject"], k["status"]) for k in _json(out)["keys"]}
    assert ("courier-a", "revoked (superseded)") in statuses
    assert ("courier-a", "valid") in statuses

    custodian_key = next(k for k in _json(out)["keys"] if k["subject"] == "custodian-b")["key_id"]
    code, out, _ = cli("--json", "keys", "revoke", custodian_key[:12], "--reason", "left_post")
    assert code == 0

    bundle = tmp_path / "bundle.json"
    code, out, _ = cli("--json", "trust", "export", "--out", str(bundle))
    assert code == 0 and bundle.exists()
    code, out, _ = cli("--json", "trust", "show", str(bundle), "--pin", authority_id)
    assert code == 0 and _json(out)["certificates"] == 3

    # Sign a handover with both people, verify it; then refusals with clear exit codes.
    payload = tmp_path / "handover.json"
    payload.write_text('{"kind":"handover","package":"PK-1"}')
    env = tmp_path / "h.dsse.json"
    rotated = sorted(key_file.parent.glob("courier-a-*.key"), key=lambda p: p.stat().st_mtime)[-1]
    code, _, err = cli(
        "statement", "sign", "--key", str(rotated), "--payload", str(payload), "--out", str(env)
    )
    assert code == 0, err
    code, out, _ = cli(
        "--json",
        "statement",
        "verify",
        str(env),
        "--trust",
        str(bundle),
        "--require",
        "releaser=courier",
        "--require",
        "receiver=custodian",
        now="2027-03-02T10:00:00Z",
    )
    assert code == 10
    assert _json(out)["error"] == "threshold"


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["keys", "list"], 4, "not_found"),
        (
            ["keys", "enroll", "--subject", "x", "--name", "x", "--org", "o", "--role", "pilot"],
            2,
            None,
        ),
        (["trust", "show", "/nonexistent/bundle"], 4, "not_found"),
        (["--now", "yesterday", "keys", "list"], 2, "usage"),
    ],
    ids=["no-home", "unknown-role", "missing-bundle", "bad-time"],
)
def test_cli_refusals_have_exit_codes(cli, args: list[str], code: int, error: str | None) -> None:  # type: ignore[no-untyped-def]
    got, out, err = cli(*args)
    assert got == code
    assert "Traceback" not in out + err


def test_wrong_passphrase_is_a_clean_error(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    assert cli("init", "--rehearsal", "--name", "A")[0] == 0
    monkeypatch.setenv("CUSTODY_PASSPHRASE", "wrong")
    code, _, err = cli(
        "keys", "enroll", "--subject", "x", "--name", "x", "--org", "o", "--role", "courier"
    )
    assert code == 11
    assert "wrong passphrase" in err and "Traceback" not in err


def test_init_twice_refused(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("init", "--rehearsal", "--name", "A")[0] == 0
    code, _, err = cli("init", "--rehearsal", "--name", "B")
    assert code == 5 and "refusing" in err


def test_device_keys_enrolled_and_weak_keys_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init", "--rehearsal", "--name", "A")[0] == 0
    key, pub = tmp_path / "li.key", tmp_path / "li.pub.json"
    assert (
        cli("keys", "keygen", "--label", "courier-li", "--out", str(key), "--public-out", str(pub))[
            0
        ]
        == 0
    )
    code, out, err = cli(
        "--json",
        "keys",
        "enroll",
        "--subject",
        "courier-li",
        "--name",
        "李伟",
        "--org",
        "交通",
        "--role",
        "courier",
        "--public-keys",
        str(pub),
    )
    assert code == 0, err
    enrolled = json.loads(out)
    assert enrolled["key_file"] is None
    from keys.keyfile import read_keyfile

    assert read_keyfile(key, PASS).signing.key_id == enrolled["key_id"]

    good = json.loads(pub.read_text())
    weak_ed = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  # the identity point (small order)
    weak_x = "A" * 43 + "="  # X25519 u = 0 (low order)
    non_canonical = "7v///////////////////////////////////////38="  # y = p + 1, not reduced
    for label, ed, x in (
        ("small-order", weak_ed, good["x25519"]),
        ("non-canonical", non_canonical, good["x25519"]),
        ("low-order-x25519", good["ed25519"], weak_x),
    ):
        bad = tmp_path / f"{label}.json"
        bad.write_text(json.dumps({**good, "ed25519": ed, "x25519": x}))
        code, out, err = cli(
            "--json",
            "keys",
            "enroll",
            "--subject",
            f"p-{label}",
            "--name",
            "x",
            "--org",
            "o",
            "--role",
            "courier",
            "--public-keys",
            str(bad),
        )
        assert code == 10, (label, out)
        assert json.loads(out)["error"] == "weak_key"
    code, out, _ = cli("--json", "keys", "list")
    assert [k["subject"] for k in json.loads(out)["keys"]] == ["courier-li"]


@pytest.mark.parametrize("made_before", [False, True], ids=["new folder", "folder made by hand"])
def test_init_makes_a_private_home(cli, tmp_path: Path, made_before: bool) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    if made_before:
        home.mkdir(mode=0o755)
    shell_umask = os.umask(0o022)  # a usual shell's: files 0644, folders 0755
    try:
        assert cli("init", "--rehearsal", "--name", "A")[0] == 0
        enroll = ("keys", "enroll", "--subject", "x", "--name", "x", "--org", "o")
        assert cli(*enroll, "--role", "courier")[0] == 0
        assert os.umask(0o022) == 0o022  # the caller's umask is back after each command
    finally:
        os.umask(shell_umask)
    config = home / "custody.json"
    db = home / "custody.db"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(config.stat().st_mode) & 0o077 == 0
    # Everything the commands wrote under the home: keys, people, WAL files.
    written = list(home.rglob("*"))
    assert any(p.parent.name == "people" for p in written)
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
