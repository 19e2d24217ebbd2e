"""The short CI budget of the coverage-guided fuzzing (fuzz/fuzz_parsers.py, atheris): every
parser of outside bytes, seeded with real inputs from a season, for a few thousand inputs each;
a crash (any exception but our own errors) fails the test with the input libFuzzer saved.
Findings of longer runs become regression inputs here (``REGRESSIONS``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crypto.encoding import b64encode, format_time
from crypto.errors import FormatError
from crypto.note import NoteVerifier, parse_vkey
from custody.demo import Season
from custody.incidents.acts import Act, seal_note
from custody.incidents.policy import note_recipients
from custody.witness import format_add_checkpoint
from tests.api.helpers import good_label, seal_event

pytest.importorskip("atheris", reason="atheris (libFuzzer for Python) is not installed")

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "fuzz" / "fuzz_parsers.py"
RUNS = int(os.environ.get("CUSTODY_FUZZ_RUNS", "4000"))
# Seconds per target at most: a minute in the suite; a long run (CUSTODY_FUZZ_RUNS raised)
# sets CUSTODY_FUZZ_SECONDS too (docs/operations.md).
SECONDS = int(os.environ.get("CUSTODY_FUZZ_SECONDS", "60"))

# Inputs that once crashed a parser (none found so far); each must now be refused cleanly.
REGRESSIONS: dict[str, list[bytes]] = {
    "envelope": [b'{"payload":"","payloadType":"x","signatures":[{}]}'],
    "note": [b"a\n\n\xe2\x80\x94 \n"],
    # Found by the vkey target: a key name holding bytes that are not UTF-8 (as a command-line
    # argument decodes them) raised UnicodeEncodeError from key_hash, not a FormatError.
    "vkey": [b"cwstod\x88/0638082b306307d6+92d7595d+AR7A3ckgxna03eeEIehvKirNwdBcfxcmAB6XtzOUDvzP"],
}


def test_a_key_name_that_is_not_utf8_is_a_format_error() -> None:
    for text in REGRESSIONS["vkey"]:
        with pytest.raises(FormatError):
            parse_vkey(text.decode("utf-8", "surrogateescape"))


def seeds(season: Season) -> dict[str, list[bytes]]:
    env = seal_event(season, "PK-1")
    season.submit(env)
    log = season.log()
    note = log.latest_checkpoint()
    authority = season.authority
    sealed = seal_note("ok", note_recipients(season.trust(), season.now))
    act = Act(authority.id, "INC-1", "acknowledge", "secrecy-chen", season.now, sealed, None).sign(
        season.keys["secrecy-chen"].signing
    )
    key_file = next(season.home.people_dir().glob("*.key"))
    index = log.size() - 1
    receipt = json.dumps(
        {
            "format": "custody-receipt/v1",
            "index": index,
            "statement_id": "0" * 64,
            "received": format_time(season.now),
            "tree_size": log.size(),
            "checkpoint": note,
            "inclusion_proof": [b64encode(h) for h in log.inclusion_proof(index, log.size())],
        }
    ).encode()
    return {
        "envelope": [env.to_bytes()],
        "event": [env.payload],
        "leaf": [log.leaf(0)],
        "note": [note.encode()],
        "checkpoint": [note.split("\n\n", 1)[0].encode() + b"\n"],
        "vkey": [NoteVerifier(authority.log_origin, authority.log_key).vkey().encode()],
        "label": [good_label(season).encode()],
        "keyfile": [key_file.read_bytes()],
        "trust-bundle": [(season.out / "trust-bundle").read_bytes()],
        "witness-request": [format_add_checkpoint(0, [], note)],
        "act": [act.to_bytes()],
        "receipt": [receipt],
    }


def targets() -> list[str]:
    done = subprocess.run(
        [sys.executable, str(HARNESS), "--list"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.split(":", 1)[1].split()


def test_every_target_has_seeds(season: Season) -> None:
    assert set(targets()) == set(seeds(season))


@pytest.mark.parametrize(
    "target",
    [
        "envelope",
        "event",
        "leaf",
        "note",
        "checkpoint",
        "vkey",
        "label",
        "keyfile",
        "trust-bundle",
        "witness-request",
        "act",
        "receipt",
    ],
)
def test_fuzz_target_short_budget(season: Season, target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n, data in enumerate(seeds(season)[target] + REGRESSIONS.get(target, [])):
        (corpus / f"seed-{n}").write_bytes(data)
    done = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            target,
            str(corpus),
            f"-runs={RUNS}",
            f"-max_total_time={SECONDS}",
            f"-artifact_prefix={tmp_path}/",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=SECONDS + 240,
        check=False,
    )
    crashes = list(tmp_path.glob("crash-*")) + list(tmp_path.glob("timeout-*"))
    assert done.returncode == 0 and not crashes, (
        [c.read_bytes()[:200] for c in crashes],
        done.stderr[-3000:],
    )
    stats = re.findall(r"#(\d+)\s+DONE\s+cov: (\d+)", done.stderr)
    assert stats, done.stderr[-2000:]
    print(f"fuzz {target}: {stats[-1][0]} executions, coverage {stats[-1][1]}, no crash")
