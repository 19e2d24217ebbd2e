"""The bad-file table: every file argument of the CLI, given something that is not the file it
wants (a directory, a FIFO, /dev/zero, a symlink loop, a dangling symlink, a missing path, a
sparse file of 5 GiB, garbage bytes, JSON nested 100,000 deep, JSON with NaN), answers a clean
refusal: an exit code of its error class (never 0, never 70), no traceback, no hang, and the
message names the argument's path.

Rows that could hang or eat memory (FIFO, /dev/zero) run the CLI as a subprocess with a
timeout; the rest call its entry point in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto.encoding import format_time
from custody.cli import main
from custody.demo import Season, seal_events
from tests.conftest import PASS
from tests.custody.witness_helpers import write_policy

ROOT = Path(__file__).resolve().parents[3]


def _dir(tmp: Path) -> Path:
    (tmp / "a-folder").mkdir()
    return tmp / "a-folder"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "a-fifo")
    return tmp / "a-fifo"


def _loop(tmp: Path) -> Path:
    (tmp / "loop-a").symlink_to(tmp / "loop-b")
    (tmp / "loop-b").symlink_to(tmp / "loop-a")
    return tmp / "loop-a"


def _dangling(tmp: Path) -> Path:
    (tmp / "dangling").symlink_to(tmp / "nowhere")
    return tmp / "dangling"


def _huge(tmp: Path) -> Path:
    path = tmp / "huge"
    with path.open("wb") as f:
        f.truncate(5 << 30)  # sparse: 5 GiB that take no disk
    return path


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


BAD: dict[str, Callable[[Path], Path]] = {
    "directory": _dir,
    "fifo": _fifo,
    "dev-zero": lambda _: Path("/dev/zero"),
    "symlink-loop": _loop,
    "dangling-symlink": _dangling,
    "missing": lambda tmp: tmp / "missing",
    "5-GiB": _huge,
    "garbage": _write("garbage", bytes(range(256)) * 4),
    "deep-json": _write("deep", b"[" * 100_000 + b"]" * 100_000),
    "nan-json": _write("nan", b'{"format": NaN}'),
}
SUBPROCESS = {"fifo", "dev-zero"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A season with one event, its receipt, an export, a witness request and key files."""
    from custody.demo import start_season
    from tests.conftest import T0, fast_kdf

    tmp = tmp_path_factory.mktemp("world")
    season: Season = start_season(tmp / "season", now=T0, passphrase=PASS, kdf=fast_kdf())
    env = tmp / "event.json"
    env.write_bytes(seal_events(season, ["PK-1"])[0])
    home = str(season.home.path)
    os.environ["CUSTODY_PASSPHRASE"] = PASS
    now = format_time(season.now)
    assert (
        main(["--home", home, "--now", now, "event", "submit", str(env), "--receipts", str(tmp)])
        == 0
    )
    receipt = next(tmp.glob("*.receipt.json"))
    assert main(["--home", home, "export", "--out", str(tmp / "export")]) == 0
    assert (
        main(
            ["--home", home, "log", "witness-request", "--old-size", "0", "--out", str(tmp / "req")]
        )
        == 0
    )
    key = next(season.home.people_dir().glob("print-qian-*.key"))
    write_policy(season.home.path, 1)  # add-cosignature needs the home's witnesses
    return {
        "home": home,
        "now": now,
        "env": str(env),
        "receipt": str(receipt),
        "export": str(tmp / "export"),
        "req": str(tmp / "req"),
        "key": str(key),
        "trust": str(season.out / "trust-bundle"),
        "pin": season.authority.id,
        "vkey": "",
    }


# Each file argument: the command line with {B} where the bad path goes.
ARGS: dict[str, list[str]] = {
    "event-submit": ["event", "submit", "{B}"],
    "check-receipt:receipt": ["log", "check-receipt", "{B}", "{env}", "--trust", "{trust}"],
    "check-receipt:envelope": ["log", "check-receipt", "{receipt}", "{B}", "--trust", "{trust}"],
    "check-receipt:trust": ["log", "check-receipt", "{receipt}", "{env}", "--trust", "{B}"],
    "verify:bundle": ["verify", "{B}", "--pin", "{pin}"],
    "verify:trust": ["verify", "{export}", "--trust", "{B}"],
    "verify:since": ["verify", "{export}", "--pin", "{pin}", "--since", "{B}"],
    "verify:witness-policy": ["verify", "{export}", "--pin", "{pin}", "--witness-policy", "{B}"],
    "keys-import": ["keys", "import", "{B}"],
    "trust-show": ["trust", "show", "{B}"],
    "statement-sign:key": [
        "statement",
        "sign",
        "--key",
        "{B}",
        "--out",
        "{tmp}/o",
        "--payload",
        "{env}",
    ],
    "statement-sign:payload": [
        "statement",
        "sign",
        "--key",
        "{key}",
        "--out",
        "{tmp}/o",
        "--payload",
        "{B}",
    ],
    "statement-verify:envelope": [
        "statement",
        "verify",
        "{B}",
        "--trust",
        "{trust}",
        "--require",
        "s=printer",
    ],
    "statement-verify:trust": [
        "statement",
        "verify",
        "{env}",
        "--trust",
        "{B}",
        "--require",
        "s=printer",
    ],
    "label-verify:source": ["label", "verify", "{B}", "--trust", "{trust}"],
    "label-verify:trust": ["label", "verify", "CP1:x", "--trust", "{B}"],
    "add-cosignature": ["log", "add-cosignature", "{B}"],
    "witness-cosign:request": [
        "witness",
        "cosign",
        "{B}",
        "--log-vkey",
        "{vkey}",
        "--state",
        "{tmp}/st",
        "--key",
        "{key}",
        "--name",
        "w",
        "--init",
    ],
    "witness-cosign:state": [
        "witness",
        "cosign",
        "{req}",
        "--log-vkey",
        "{vkey}",
        "--state",
        "{B}",
        "--key",
        "{key}",
        "--name",
        "w",
    ],
    "witness-cosign:key": [
        "witness",
        "cosign",
        "{req}",
        "--log-vkey",
        "{vkey}",
        "--state",
        "{tmp}/st",
        "--key",
        "{B}",
        "--name",
        "w",
        "--init",
    ],
    "paper-propose:file": [
        "paper",
        "propose",
        "{B}",
        "--exam",
        "E",
        "--position",
        "P",
        "--paper-id",
        "PA",
        "--printer",
        "print-qian",
        "--officer",
        "examiner-zheng",
        "--officer",
        "supervisor-wang",
        "--window-start",
        "2027-03-02T08:00:00Z",
        "--window-end",
        "2027-03-02T09:00:00Z",
        "--key",
        "{key}",
    ],
}
# Rows where a file that exists but is no good parses to a refusal the argument's own parser
# names (its exit code is the format's or a verification's), not the reader's.
SKIP = {
    # verify:bundle wants a folder: a folder is not bad for it.
    ("verify:bundle", "directory"),
}


def _vkey(world: dict[str, str]) -> str:
    if not world["vkey"]:
        code = main(["--home", world["home"], "--json", "log", "vkey"])
        assert code == 0
    return world["vkey"]


def _argv(world: dict[str, str], row: str, bad: Path, tmp: Path) -> list[str]:
    values = {**world, "B": str(bad), "tmp": str(tmp)}
    return ["--home", world["home"], "--now", world["now"]] + [
        a.format(**values) for a in ARGS[row]
    ]


CASES = [(row, kind) for row in ARGS for kind in BAD if (row, kind) not in SKIP]


@pytest.mark.parametrize(("row", "kind"), CASES, ids=[f"{r}-{k}" for r, k in CASES])
def test_bad_file_is_refused_cleanly(
    world: dict[str, str],
    row: str,
    kind: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not world["vkey"]:
        capsys.readouterr()
        assert main(["--home", world["home"], "--json", "log", "vkey"]) == 0
        world["vkey"] = json.loads(capsys.readouterr().out)["vkey"]
    bad = BAD[kind](tmp_path)
    argv = _argv(world, row, bad, tmp_path)
    if kind in SUBPROCESS:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CUSTODY_PASSPHRASE": PASS}
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from custody.cli import main; raise SystemExit(main({argv!r}))",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,  # a FIFO read would block for ever: the timeout fails the test
            check=False,
        )
        code, err = done.returncode, done.stderr
    else:
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
    assert code not in (0, 70), (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if kind not in ("garbage", "deep-json", "nan-json"):
        # The reader's refusals name the path they refused.
        assert str(bad) in err.replace("\n", ""), err


@pytest.mark.parametrize(
    "name", ["考试 2027", "home %41 50%", "a#b?c&d=e"], ids=["chinese", "percent", "url-chars"]
)
def test_a_home_path_with_unicode_or_percent_works(tmp_path: Path, name: str) -> None:
    home = tmp_path / name / "家"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CUSTODY_ROOT_PASSPHRASE": "root passphrase one",
        "CUSTODY_LOG_PASSPHRASE": "log passphrase two",
        "CUSTODY_SYSTEM_PASSPHRASE": "system passphrase three",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = ["--home", str(home), "--json", *args]
        return subprocess.run(
            [
                sys.executable,
                "-c",
                f"from custody.cli import main; raise SystemExit(main({argv!r}))",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = run("init", "--name", "测试考试院")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (home / "custody.db").is_file()  # the database is where the home is, not elsewhere
    assert list(tmp_path.rglob("*.db")) == [home / "custody.db"]
    status = run("log", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["size"] == 0
    assert run("log", "check").returncode == 0
