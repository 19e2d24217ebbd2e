"""The witness over HTTP (``POST /add-checkpoint``, api/witness.py) in process: each answer of
c2sp.org/tlog-witness with its status and media type, and the state file it keeps (written
before a cosignature leaves, untouched by every refusal)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.witness import (
    MAX_BODY,
    WitnessSettings,
    create_witness_app,
    load_witness_state,
    save_witness_state,
)
from crypto.merkle import MemoryTree
from crypto.note import Checkpoint, NoteVerifier, sign_checkpoint, verify_cosignature
from crypto.signing import SigningKey
from custody.errors import FormatError, NotFoundError
from custody.witness import Cosigner, WitnessState, format_add_checkpoint
from tests.conftest import T0

ORIGIN = "authority-a.example/log"
LOG_KEY = SigningKey(b"\x11" * 32)
WITNESS = Cosigner("authority-b.example/witness", SigningKey(b"\x12" * 32))


class Log:
    """A log in memory whose operator may show the witness another history."""

    def __init__(self, prefix: str, count: int) -> None:
        self.tree = MemoryTree()
        self.tree.extend([f"{prefix}{i}".encode() for i in range(count)])

    def grow(self, prefix: str, count: int) -> None:
        start = self.tree.size
        self.tree.extend([f"{prefix}{i}".encode() for i in range(start, start + count)])

    def signed(self, size: int | None = None, key: SigningKey = LOG_KEY) -> str:
        size = self.tree.size if size is None else size
        return sign_checkpoint(Checkpoint(ORIGIN, size, self.tree.root(size)), ORIGIN, key)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(ORIGIN, self.tree.size, self.tree.root())

    def request(self, old: int) -> bytes:
        proof = self.tree.consistency_proof(old, self.tree.size) if old else []
        return format_add_checkpoint(old, proof, self.signed())


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    path = tmp_path / "witness.json"
    save_witness_state(path, WitnessState())
    return path


@pytest.fixture
def witness(state_file: Path) -> TestClient:
    settings = WitnessSettings(
        state=state_file,
        cosigner=WITNESS,
        logs=[NoteVerifier(ORIGIN, LOG_KEY.verify_key)],
        clock=lambda: T0,
    )
    return TestClient(create_witness_app(settings))


def held_size(state_file: Path) -> int | None:
    record = load_witness_state(state_file).latest(ORIGIN)
    return None if record is None else record.checkpoint.size


def test_honest_growth_is_cosigned_and_the_state_is_kept_before_the_answer(
    witness: TestClient, state_file: Path
) -> None:
    log = Log("e", 5)
    r = witness.post("/add-checkpoint", content=log.request(0))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/x.tlog.signature")
    assert verify_cosignature(log.checkpoint(), r.text, WITNESS.verifier()) == int(T0.timestamp())
    assert held_size(state_file) == 5
    assert (state_file.stat().st_mode & 0o777) == 0o600

    log.grow("e", 4)
    r = witness.post("/add-checkpoint", content=log.request(5))
    assert r.status_code == 200, r.text
    assert verify_cosignature(log.checkpoint(), r.text, WITNESS.verifier())
    assert held_size(state_file) == 9
    assert witness.get("/livez").json() == {"ok": True}


def test_a_wrong_old_size_or_a_rollback_is_409_with_the_size_held(
    witness: TestClient, state_file: Path
) -> None:
    log = Log("e", 8)
    assert witness.post("/add-checkpoint", content=log.request(0)).status_code == 200
    before = state_file.read_bytes()
    log.grow("e", 2)
    r = witness.post("/add-checkpoint", content=log.request(3))
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("text/x.tlog.size")
    assert r.text.strip() == "8"
    rollback = format_add_checkpoint(6, [], log.signed(6))
    r = witness.post("/add-checkpoint", content=rollback)
    assert r.status_code == 409 and r.text.strip() == "8"
    # An old size beyond the checkpoint's own size is malformed, not a conflict.
    r = witness.post("/add-checkpoint", content=format_add_checkpoint(9, [], log.signed(6)))
    assert r.status_code == 400 and "9" in r.text
    assert state_file.read_bytes() == before


def test_a_fork_is_422_and_the_body_carries_the_checkpoint_it_cosigned(
    witness: TestClient, state_file: Path
) -> None:
    honest = Log("e", 6)
    assert witness.post("/add-checkpoint", content=honest.request(0)).status_code == 200
    before = state_file.read_bytes()
    forked = Log("e", 3)
    forked.grow("forged", 6)  # 9 entries, sharing the first 3 only; its own proof from 6
    r = witness.post("/add-checkpoint", content=forked.request(6))
    assert r.status_code == 422
    _, evidence = r.text.split("\n\n", 1)
    assert evidence == honest.signed()  # the log can check it: a checkpoint its key signed
    assert state_file.read_bytes() == before


def test_a_log_it_does_not_follow_is_404_and_another_key_is_403(
    witness: TestClient, state_file: Path
) -> None:
    stranger = SigningKey(b"\x13" * 32)
    tree = Log("e", 4)
    other_log = sign_checkpoint(
        Checkpoint("someone-else.example/log", 4, tree.tree.root()),
        "someone-else.example/log",
        stranger,
    )
    r = witness.post("/add-checkpoint", content=format_add_checkpoint(0, [], other_log))
    assert r.status_code == 404 and "someone-else.example/log" in r.text
    # The followed origin, signed by a key that is not the log's.
    r = witness.post(
        "/add-checkpoint", content=format_add_checkpoint(0, [], tree.signed(key=stranger))
    )
    assert r.status_code == 403
    assert held_size(state_file) is None


@pytest.mark.parametrize(
    "body",
    [b"", b"old x\n\nnot a note\n", b"old 0\n\n" + b"\xff\xfe not text\n"],
    ids=["empty", "bad-old-line", "not-utf8"],
)
def test_malformed_requests_are_400(witness: TestClient, state_file: Path, body: bytes) -> None:
    before = state_file.read_bytes()
    r = witness.post("/add-checkpoint", content=body)
    assert r.status_code == 400 and r.text.strip()
    assert state_file.read_bytes() == before


def test_a_proof_from_size_zero_is_refused_as_a_fork(witness: TestClient) -> None:
    log = Log("e", 6)
    body = format_add_checkpoint(0, log.tree.consistency_proof(3, 6), log.signed())
    r = witness.post("/add-checkpoint", content=body)
    # Nothing cosigned yet, so there is no checkpoint to show as evidence.
    assert r.status_code == 422 and r.text.endswith("\n\n")


def test_a_body_over_64_kib_is_413(witness: TestClient, state_file: Path) -> None:
    before = state_file.read_bytes()
    r = witness.post("/add-checkpoint", content=b"old 0\n" + b"A" * MAX_BODY)
    assert r.status_code == 413
    assert state_file.read_bytes() == before


def test_a_state_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"cosigned": "not a list"}))
    with pytest.raises(FormatError, match="not a witness state file"):
        load_witness_state(path)
    path.write_text(json.dumps({"cosigned": [1, 2]}))
    with pytest.raises(FormatError):
        load_witness_state(path)
    with pytest.raises(NotFoundError):
        load_witness_state(tmp_path / "missing.json")


def test_the_state_round_trips(tmp_path: Path) -> None:
    log = Log("e", 3)
    path = tmp_path / "witness.json"
    save_witness_state(path, WitnessState())
    settings = WitnessSettings(
        state=path,
        cosigner=WITNESS,
        logs=[NoteVerifier(ORIGIN, LOG_KEY.verify_key)],
        clock=lambda: T0,
    )
    with TestClient(create_witness_app(settings)) as c:
        assert c.post("/add-checkpoint", content=log.request(0)).status_code == 200
    state = load_witness_state(path)
    record = state.latest(ORIGIN)
    assert record is not None and record.note == log.signed()
    save_witness_state(path, state)
    assert load_witness_state(path) == state
