"""`check_witness_copies` (docs/adr/0012) without a network: the database's own cosignatures
beyond its head, and copies ahead of, inconsistent with, or agreeing with the database."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from crypto.note import Checkpoint, NoteVerifier, parse_checkpoint, parse_note, sign_checkpoint
from custody.demo import Season
from custody.errors import LogStateError
from custody.service import signed_head_file
from custody.store.guard import open_signed
from custody.store.log_reads import COSIGNATURE
from custody.witness_client import WitnessCopy, check_witness_copies
from tests.conftest import PASS
from tests.custody.witness_helpers import WITNESSES, cosign_latest, write_policy


def _copy(season: Season, size: int, root: bytes) -> WitnessCopy:
    authority = season.authority
    key = season.home.authority_key("log", PASS).signing
    note = sign_checkpoint(Checkpoint(authority.log_origin, size, root), authority.log_origin, key)
    verifier = NoteVerifier(authority.log_origin, authority.log_key)
    head = open_signed(note, verifier, authority.log_origin, what="copy")
    return WitnessCopy("witness.example/w1", head, "test")


def test_copies_and_stored_cosignatures_against_the_database(season: Season) -> None:
    log = season.log()
    latest = parse_checkpoint(parse_note(log.latest_checkpoint()).text)
    check_witness_copies(log, [_copy(season, latest.size, latest.root)])  # agrees: no error
    check_witness_copies(log, [WitnessCopy("w", None, "not reached", reached=False)])

    with pytest.raises(LogStateError, match="does not extend"):
        check_witness_copies(log, [_copy(season, latest.size, b"\x07" * 32)])

    head_file = signed_head_file(season.home, season.authority)
    with pytest.raises(LogStateError, match="holds only"):
        check_witness_copies(log, [_copy(season, latest.size + 3, b"\x07" * 32)], head_file)
    held = head_file.read()
    assert held is not None and held.size == latest.size + 3  # kept: every writer refuses now


def test_a_stored_cosignature_beyond_the_head_is_refused(season: Season) -> None:
    policy_path = write_policy(season.home.path, 1)
    assert policy_path.exists()
    log = season.log()
    policy = season.home.require_witness_policy()
    log.add_cosignatures(cosign_latest(season, WITNESSES[0]), policy, now=season.now)
    check_witness_copies(log, [])
    with log.engine.begin() as conn:
        conn.execute(update(COSIGNATURE).values(size=log.size() + 5))
    with pytest.raises(LogStateError, match="lost acknowledged entries"):
        check_witness_copies(log, [])
