"""`GET /latest` of a live witness (docs/adr/0012): the latest checkpoint it cosigned for a log,
as the log signed it, with a cosignature of the witness that verifies; 404 for a log it does not
follow or has cosigned nothing of; 503 for a state it cannot read."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.witness import WitnessSettings, create_witness_app, save_witness_state
from crypto.note import NoteVerifier, open_checkpoint, parse_checkpoint, parse_note
from custody.demo import Season
from custody.witness import WitnessState, format_add_checkpoint
from custody.witnesses import WitnessPolicy, count_cosignatures
from tests.custody.witness_helpers import WITNESSES


def test_latest_serves_what_the_witness_cosigned(season: Season, tmp_path: Path) -> None:
    authority = season.authority
    log_verifier = NoteVerifier(authority.log_origin, authority.log_key)
    state = tmp_path / "w.json"
    save_witness_state(state, WitnessState())
    witness = WITNESSES[0]
    app = create_witness_app(
        WitnessSettings(state, witness, [log_verifier], clock=lambda: season.now)
    )
    client = TestClient(app)
    origin = {"origin": authority.log_origin}
    assert client.get("/latest", params=origin).status_code == 404  # nothing cosigned yet
    assert client.get("/latest", params={"origin": "another/log"}).status_code == 404

    note = season.log().latest_checkpoint()
    r = client.post("/add-checkpoint", content=format_add_checkpoint(0, [], note))
    assert r.status_code == 200
    r = client.get("/latest", params=origin)
    assert r.status_code == 200
    checkpoint, _ = open_checkpoint(r.text, [log_verifier], origin=authority.log_origin)
    assert checkpoint == parse_checkpoint(parse_note(note).text)
    policy = WitnessPolicy((witness.verifier(),), 1)
    count = count_cosignatures(policy, checkpoint, parse_note(r.text).signatures)
    assert count.valid == (witness.name,)

    state.write_text("{")  # a state it cannot read is an error, never "nothing cosigned"
    assert client.get("/latest", params=origin).status_code == 503
