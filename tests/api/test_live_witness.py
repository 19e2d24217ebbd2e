"""Live witnessing over HTTP: `custody witness serve` (another authority's witness) and the log's
`custody serve`, which sends each new checkpoint to it (c2sp.org/tlog-witness), stores the
cosignature and serves it with the checkpoint; a history forked behind the witness's back is
answered 422, and the log opens a critical incident."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from crypto import merkle
from crypto.dsse import parse_envelope
from crypto.encoding import format_time
from crypto.note import Checkpoint, CosignatureVerifier, NoteVerifier, sign_checkpoint
from custody.demo import Season, seal_events, start_season
from custody.incidents.desk import list_incidents
from custody.service import open_reader
from custody.witness import format_add_checkpoint
from custody.witness_client import published
from tests.api.helpers import free_port
from tests.conftest import PASS, T0, fast_kdf

ROOT = Path(__file__).resolve().parents[2]
NAME = "shaanxi-witness"


def _run(argv: list[str], **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(what: str, ok: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"a server exited while waiting for {what}"
        try:
            if ok():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"never saw {what}")


@contextmanager
def running(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_live_witness_cosigns_and_a_fork_opens_an_incident(
    season: Season, tmp_path: Path
) -> None:
    other = start_season(tmp_path / "other", now=T0, passphrase=PASS, kdf=fast_kdf())
    key_file = next(other.home.people_dir().glob("secrecy-chen-*.key"))
    cosigner = CosignatureVerifier(NAME, other.keys["secrecy-chen"].signing.verify_key)
    authority = season.authority
    log_vkey = NoteVerifier(authority.log_origin, authority.log_key).vkey()
    wport, lport = free_port(), free_port()
    (season.home.path / "witnesses.json").write_text(
        json.dumps(
            {
                "quorum": 1,
                "witnesses": [
                    {"name": NAME, "vkey": cosigner.vkey(), "url": f"http://127.0.0.1:{wport}"}
                ],
            }
        )
    )
    events = seal_events(season, [f"PK-{n}" for n in range(8)])
    for line in events[:3]:
        season.log().submit(parse_envelope(line), now=season.now)
    n1 = season.log().size() + 1  # the size after one more event (a season may start with some)
    season.log().close()
    season.home.engine.dispose()

    witness_argv = ["--home", str(other.home.path), "--now", format_time(season.now)]
    witness_argv += [
        "witness",
        "serve",
        "--log-vkey",
        log_vkey,
        "--state",
        str(tmp_path / "w.json"),
    ]
    witness_argv += ["--key", str(key_file), "--name", NAME, "--init", "--port", str(wport)]
    witness = _run(witness_argv, CUSTODY_PASSPHRASE=PASS)
    serve_argv = ["--home", str(season.home.path), "--now", format_time(season.now), "serve"]
    serve_argv += ["--port", str(lport), "--desk-every", "0.3"]
    base = f"http://127.0.0.1:{lport}"
    with running(witness):
        _wait(
            "the witness", lambda: httpx.get(f"http://127.0.0.1:{wport}/livez").is_success, witness
        )
        with running(
            _run(serve_argv, CUSTODY_LOG_PASSPHRASE=PASS, CUSTODY_SYSTEM_PASSPHRASE=PASS)
        ) as serve:
            _wait(
                "a cosigned size 3",
                lambda: f"— {NAME} " in httpx.get(f"{base}/v1/checkpoint").text,
                serve,
            )
            # A new checkpoint is cosigned too (from the size the witness holds, with a proof).
            assert httpx.post(f"{base}/v1/events", content=events[3]).status_code == 201
            _wait(
                "a cosigned next size",
                lambda: f"— {NAME} " in httpx.get(f"{base}/v1/checkpoint/{n1}").text,
                serve,
            )
            witnessed = httpx.get(f"{base}/readyz").json()["witnessed"]
            assert witnessed["policy"] == "1 of 1" and witnessed["published"] is True
            log = open_reader(season.home)
            policy = season.home.require_witness_policy()
            assert published(log, policy, n1) and published(log, policy)

            # The operator shows the witness another history: the first n1 entries, then two
            # of its own, signed by the log key, with a valid proof from the size it holds.
            real = [merkle.leaf_hash(leaf) for _, leaf in log.entries()]
            forged_leaves = real[:n1] + [merkle.leaf_hash(b"forged-%d" % n) for n in range(2)]
            nodes = {
                (lv, ix): h
                for lv, ix, h in merkle.nodes_for_batch(0, forged_leaves, lambda *_: b"")
            }
            forged_root = merkle.root_from_nodes(n1 + 2, nodes)
            proof = merkle.consistency_proof_from_nodes(n1, n1 + 2, nodes)
            log_key = season.home.authority_key("log", PASS).signing
            forged = sign_checkpoint(
                Checkpoint(authority.log_origin, n1 + 2, forged_root), authority.log_origin, log_key
            )
            r = httpx.post(
                f"http://127.0.0.1:{wport}/add-checkpoint",
                content=format_add_checkpoint(n1, proof, forged),
            )
            assert r.status_code == 200  # the witness cannot know: consistent with what it saw
            # Meanwhile the real log grows to n1 + 3 in one append: the witness refuses its
            # proof (422) and the log sees two checkpoints its key signed that cannot both be
            # true.
            batch = b"[" + b",".join(events[4:7]) + b"]"
            assert httpx.post(f"{base}/v1/events", content=batch).status_code == 201
            _wait(
                "a log_fork incident",
                lambda: any(i.kind == "log_fork" for i in list_incidents(season.home.engine)),
                serve,
            )
        # A restart is refused now: the witness holds a checkpoint of this log's key (the
        # forged size n1 + 2) that the database does not extend (docs/adr/0012).
        refused = _run(serve_argv, CUSTODY_LOG_PASSPHRASE=PASS, CUSTODY_SYSTEM_PASSPHRASE=PASS)
        assert refused.wait(timeout=120) == 6
    (fork,) = [i for i in list_incidents(season.home.engine) if i.kind == "log_fork"]
    assert fork.severity == "critical"
    assert not published(open_reader(season.home), policy, n1 + 3)
