"""The log's side of live witnessing (custody/witness_client.py) against a real witness served
over HTTP in this process (api/witness.py under uvicorn): a round brings each witness up to the
latest checkpoint, a witness that lost track is caught up after its 409, a forged history shown
to the witness opens a critical incident, and a witness that cannot be used is reported as
failed without storing anything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from api.witness import WitnessSettings, create_witness_app, save_witness_state
from crypto import merkle
from crypto.dsse import parse_envelope
from crypto.note import Checkpoint, NoteVerifier, sign_checkpoint
from crypto.signing import SigningKey
from custody.demo import Season, seal_events
from custody.incidents.desk import list_incidents
from custody.witness import Cosigner, WitnessState, format_add_checkpoint
from custody.witness_client import published, send_to_witnesses
from custody.witnesses import WitnessPolicy, witness_policy_from_json
from tests.api.helpers import free_port, serving_in_thread
from tests.conftest import PASS

WITNESS = Cosigner("witness.example/live", SigningKey(b"\x21" * 32))
IMPOSTOR = Cosigner("witness.example/live", SigningKey(b"\x22" * 32))  # same name, other key
QUIET = Cosigner("witness.example/offline-only", SigningKey(b"\x23" * 32))


@contextmanager
def serving(settings: WitnessSettings) -> Iterator[str]:
    """The witness app under uvicorn on a loopback port, in a thread of this process."""
    with serving_in_thread(create_witness_app(settings)) as base:
        yield base


def settings_for(season: Season, state: Path, log: NoteVerifier | None = None) -> WitnessSettings:
    save_witness_state(state, WitnessState())
    authority = season.authority
    followed = log or NoteVerifier(authority.log_origin, authority.log_key)
    return WitnessSettings(state=state, cosigner=WITNESS, logs=[followed], clock=lambda: season.now)


@pytest.fixture
def witness(season: Season, tmp_path: Path) -> Iterator[str]:
    """A witness following the season's log; its URL."""
    with serving(settings_for(season, tmp_path / "witness-state.json")) as url:
        yield url


def policy(*entries: tuple[Cosigner, str | None], quorum: int = 1) -> WitnessPolicy:
    listed = []
    for w, url in entries:
        item = {"name": w.name, "vkey": w.verifier().vkey()}
        if url is not None:
            item["url"] = url
        listed.append(item)
    return witness_policy_from_json(json.dumps({"quorum": quorum, "witnesses": listed}).encode())


def submit(season: Season, lines: list[bytes]) -> None:
    for line in lines:
        season.log().submit(parse_envelope(line), now=season.now)


def test_a_round_cosigns_then_the_witness_is_current_then_cosigns_growth(
    season: Season, witness: str
) -> None:
    events = seal_events(season, [f"PK-{n}" for n in range(5)])
    submit(season, events[:2])
    log = season.log()
    live = policy((WITNESS, witness), (QUIET, None))
    assert not published(log, live)

    (first,) = send_to_witnesses(log, live, season.now)  # the witness without a url is not asked
    assert (first.witness, first.status) == (WITNESS.name, "cosigned")
    assert first.size == log.size() and first.as_dict()["status"] == "cosigned"
    assert published(log, live) and published(log, live, first.size)

    (again,) = send_to_witnesses(log, live, season.now)
    assert (again.status, again.size) == ("current", first.size)

    submit(season, events[2:])  # growth: the witness is sent a proof from the size it holds
    (grown,) = send_to_witnesses(log, live, season.now)
    assert grown.status == "cosigned" and grown.size == first.size + 3
    assert published(log, live, grown.size)


def test_a_witness_ahead_of_what_the_log_stored_is_caught_up_after_its_409(
    season: Season, witness: str
) -> None:
    submit(season, seal_events(season, ["PK-1", "PK-2"]))
    log = season.log()
    held = log.size()
    # The witness cosigned the latest checkpoint, but its answer never reached the log.
    r = httpx.post(
        f"{witness}/add-checkpoint", content=format_add_checkpoint(0, [], log.latest_checkpoint())
    )
    assert r.status_code == 200
    submit(season, seal_events(season, ["PK-3"]))
    live = policy((WITNESS, witness))
    (outcome,) = send_to_witnesses(log, live, season.now)
    assert outcome.status == "cosigned" and outcome.size == held + 1
    assert published(log, live)
    assert not published(log, live, held)  # that answer was lost: nothing stored for it


def test_a_forged_history_shown_to_the_witness_opens_a_critical_incident(
    season: Season, witness: str
) -> None:
    events = seal_events(season, [f"PK-{n}" for n in range(6)])
    submit(season, events[:2])
    log = season.log()
    live = policy((WITNESS, witness))
    (first,) = send_to_witnesses(log, live, season.now)
    assert first.status == "cosigned"
    n1 = first.size
    # The operator shows the witness another history: the log's entries, then two of its own,
    # signed by the log's key with a valid proof from the size the witness holds.
    real = [merkle.leaf_hash(leaf) for _, leaf in log.entries()]
    forged = real[:n1] + [merkle.leaf_hash(b"forged-%d" % n) for n in range(2)]
    nodes = {(lv, ix): h for lv, ix, h in merkle.nodes_for_batch(0, forged, lambda *_: b"")}
    origin = season.authority.log_origin
    note = sign_checkpoint(
        Checkpoint(origin, n1 + 2, merkle.root_from_nodes(n1 + 2, nodes)),
        origin,
        season.home.authority_key("log", PASS).signing,
    )
    proof = merkle.consistency_proof_from_nodes(n1, n1 + 2, nodes)
    r = httpx.post(f"{witness}/add-checkpoint", content=format_add_checkpoint(n1, proof, note))
    assert r.status_code == 200  # consistent with all the witness saw
    submit(season, events[2:5])  # the real log grows past the forged size

    (outcome,) = send_to_witnesses(log, live, season.now)
    assert outcome.status == "fork" and outcome.incident is not None
    (fork,) = [i for i in list_incidents(season.home.engine) if i.kind == "log_fork"]
    assert fork.id == outcome.incident and fork.severity == "critical"
    assert not published(log, live, n1 + 3)


def test_a_witness_holding_a_larger_size_is_ahead(season: Season, witness: str) -> None:
    """A witness that cosigned a size beyond the log's head holds a copy the database has lost
    (ADR 0012): the outcome says so, and nothing is published over it."""
    submit(season, seal_events(season, ["PK-1"]))
    log = season.log()
    size = log.size()
    origin = season.authority.log_origin
    ahead = sign_checkpoint(
        Checkpoint(origin, size + 5, bytes(32)),
        origin,
        season.home.authority_key("log", PASS).signing,
    )
    r = httpx.post(f"{witness}/add-checkpoint", content=format_add_checkpoint(0, [], ahead))
    assert r.status_code == 200
    live = policy((WITNESS, witness))
    (outcome,) = send_to_witnesses(log, live, season.now)
    assert outcome.status == "ahead" and str(size + 5) in outcome.detail
    assert not published(log, live)


def test_answers_the_log_cannot_use_are_failures_and_store_nothing(
    season: Season, witness: str, tmp_path: Path
) -> None:
    submit(season, seal_events(season, ["PK-1"]))
    log = season.log()
    # A cosignature under a key the policy does not list for that name.
    (bad,) = send_to_witnesses(log, policy((IMPOSTOR, witness)), season.now)
    assert bad.status == "failed" and bad.detail.startswith("bad cosignature")
    assert not published(log, policy((IMPOSTOR, witness)))
    # Nothing listening.
    closed = f"http://127.0.0.1:{free_port()}"
    (down,) = send_to_witnesses(log, policy((WITNESS, closed)), season.now, timeout=2)
    assert down.status == "failed" and down.detail
    # A witness that does not follow this log: its 404 is reported.
    other_log = NoteVerifier("other.example/log", SigningKey(b"\x24" * 32).verify_key)
    with serving(settings_for(season, tmp_path / "other.json", other_log)) as stranger:
        (refused,) = send_to_witnesses(log, policy((WITNESS, stranger)), season.now)
    assert refused.status == "failed" and refused.detail.startswith("HTTP 404")
    assert not published(log, policy((WITNESS, witness)))
