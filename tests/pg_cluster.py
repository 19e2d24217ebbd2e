"""A real PostgreSQL cluster of the test's own (initdb, pg_ctl) on a loopback port, in a
folder of its own, that a test may stop, SIGKILL, restart, or stand up as a streaming standby.

PostgreSQL refuses to run as root: under root the server commands run as the ``postgres``
account (``runuser``), and the folder is that account's. Tests that need it skip when the
server binaries are not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)


def _bin_dir() -> Path | None:
    for d in BIN_DIRS:
        if (Path(d) / "initdb").exists():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class Cluster:
    """One PostgreSQL data folder and its server on 127.0.0.1:``port`` (trust auth)."""

    def __init__(self, root: Path, name: str) -> None:
        bindir = _bin_dir()
        if bindir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin = bindir
        self.data = root / name
        self.port = free_port()
        self.root = root
        self.log = root / f"{name}.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_as_server_user(), *args], capture_output=True, text=True, check=True, timeout=120
        )

    def init(self, **settings: str) -> Cluster:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.configure(**settings)
        return self

    def configure(self, **settings: str) -> None:
        lines = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "on",
            **settings,
        }
        conf = self.data / "postgresql.auto.conf"
        text = "".join(f"{k} = {v}\n" for k, v in lines.items())
        self._run("sh", "-c", f"cat >> {conf} <<'EOF'\n{text}EOF")

    def start(self, attempts: int = 10) -> None:
        """Start the server; after a SIGKILL its last backends may still be exiting on a busy
        machine, so a refused start is retried (a second apart) before it fails with the
        server's own log."""
        for attempt in range(attempts):
            try:
                self._run(
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "start",
                )
                return
            except subprocess.CalledProcessError as e:
                if attempt == attempts - 1:
                    tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                    raise AssertionError(f"{self.data} does not start:\n{tail}") from e
                time.sleep(1)

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def _children(self, pid: int) -> list[int]:
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
        return out

    def kill9(self) -> None:
        """The machine is lost: SIGKILL the postmaster and every backend it started (by pid),
        so no backend finishes a commit after the kill."""
        pid = self.postmaster_pid()
        victims = [pid, *self._children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        for victim in victims:
            while time.monotonic() < deadline and _alive(victim):
                time.sleep(0.02)

    def promote(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "promote")

    def standby_of(self, primary: Cluster, app_name: str) -> Cluster:
        """A streaming standby, cloned from ``primary`` with pg_basebackup (-R)."""
        self._run(
            str(self.bin / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(self.data),
            "-R",
            "-X",
            "stream",
            "-d",
            f"application_name={app_name}",
        )
        self.configure(hot_standby="on")
        return self

    def stop_quietly(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass


def _alive(pid: int) -> bool:
    """Running (a zombie has finished: it only waits to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cluster_root() -> Path:
    """A folder the server account may use (pytest's tmp_path is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="custody-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    return root
