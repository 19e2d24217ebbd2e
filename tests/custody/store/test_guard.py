"""The corruption table: the log checks its stored state before it signs.

Each row damages the database of a log that signed checkpoints (a zeroed node, a flipped event
byte, a deleted row, a lost write-ahead log, a head row ahead or behind, a garbage state row),
either while the writer is stopped (found at start) or while it runs (found before the next
signing). Each must be refused with ``LogStateError`` (a storage error, exit 6 / HTTP 503)
and nothing may be signed over it: the checkpoint table and the signed-head file beside the
log key stay as they were.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, func, select, text

from crypto import merkle
from crypto.dsse import parse_envelope
from crypto.encoding import format_time
from crypto.note import Checkpoint, sign_checkpoint
from crypto.signing import SigningKey
from custody.demo import Season, seal_events
from custody.errors import LogStateError, StorageError
from custody.service import ServiceSecrets, open_writer, signed_head_file
from custody.store.db import make_engine
from custody.store.guard import SignedHead
from tests.conftest import PASS

SIZE = 6  # events appended before the damage; frontier of 6 = nodes (2, 0) and (1, 2)
SECRETS = ServiceSecrets(log=PASS, system=PASS)


def _envelopes(season: Season, first: int, count: int) -> list[bytes]:
    return seal_events(season, [f"PK-{n}" for n in range(first, first + count)])


def _fill(season: Season) -> list[str]:
    """Append events one by one until the log holds SIZE (a season may start with entries of
    its own, such as its exam policy); the checkpoints their receipts carry."""
    log = season.log()
    return [
        log.submit(parse_envelope(line), now=season.now).checkpoint
        for line in _envelopes(season, 0, SIZE - log.size())
    ]


def _last_package(season: Season) -> str:
    """The package of the last event ``_fill`` appended."""
    return f"PK-{SIZE - 1 - _first(season)}"


def _first(season: Season) -> int:
    """Entries the season held before ``_fill`` (its own, such as an exam policy)."""
    engine = _engine(season)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT min(idx) FROM package_event")).scalar_one())
    finally:
        engine.dispose()


def _engine(season: Season) -> Engine:
    return make_engine(season.home.database_url)


def _run(season: Season, sql: str, **params: object) -> None:
    engine = _engine(season)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def _signed_sizes(season: Season) -> list[int]:
    engine = _engine(season)
    try:
        with engine.connect() as conn:
            return [
                int(r[0]) for r in conn.execute(text("SELECT size FROM checkpoint ORDER BY size"))
            ]
    finally:
        engine.dispose()


def zero_frontier_node(season: Season) -> None:
    _run(season, "UPDATE tree_node SET hash = :h WHERE level = 1 AND idx = 2", h=bytes(32))


def zero_left_subtree(season: Season) -> None:
    _run(season, "UPDATE tree_node SET hash = :h WHERE level = 2 AND idx = 0", h=bytes(32))


def zero_last_leaf(season: Season) -> None:
    _run(
        season,
        "UPDATE tree_node SET hash = :h WHERE level = 0 AND idx = :i",
        h=bytes(32),
        i=SIZE - 1,
    )


def flip_event_byte(season: Season) -> None:
    engine = _engine(season)
    try:
        with engine.begin() as conn:
            blob = bytearray(
                conn.execute(text("SELECT envelope FROM log_entry WHERE idx = 2")).scalar_one()
            )
            blob[len(blob) // 2] ^= 0x01
            conn.execute(
                text("UPDATE log_entry SET envelope = :e WHERE idx = 2"), {"e": bytes(blob)}
            )
    finally:
        engine.dispose()


def delete_entry_row(season: Season) -> None:
    _run(season, "DELETE FROM package_event WHERE idx = 3")
    _run(season, "DELETE FROM log_entry WHERE idx = 3")


def delete_checkpoint_row(season: Season) -> None:
    _run(season, "DELETE FROM checkpoint WHERE size = :s", s=SIZE)


def head_ahead(season: Season) -> None:
    _run(season, "UPDATE log_head SET size = size + 1")


def head_behind(season: Season) -> None:
    _run(season, "UPDATE log_head SET size = size - 1")


def garbage_state_row(season: Season) -> None:
    _run(
        season,
        "UPDATE package_state SET state = :s WHERE package_id = :p",
        s="{garbage",
        p=_last_package(season),
    )


def roll_back_to_three(season: Season) -> None:
    """The database restored from an older copy (three entries) while the file says six."""
    for sql in (
        "DELETE FROM package_event WHERE idx >= 3",
        "DELETE FROM package_state WHERE last_idx >= 3",
        "DELETE FROM finding WHERE idx >= 3",
        "DELETE FROM log_entry WHERE idx >= 3",
        "DELETE FROM checkpoint WHERE size > 3",
        "UPDATE log_head SET size = 3",
    ):
        _run(season, sql)
    # The nodes completed after entry 2: everything not needed by a tree of three leaves.
    keep = {(0, 0), (0, 1), (0, 2), (1, 0)}
    engine = _engine(season)
    try:
        with engine.begin() as conn:
            for level, idx in conn.execute(text("SELECT level, idx FROM tree_node")).all():
                if (level, idx) not in keep:
                    conn.execute(
                        text("DELETE FROM tree_node WHERE level = :l AND idx = :i"),
                        {"l": level, "i": idx},
                    )
    finally:
        engine.dispose()


def garbage_signed_head_file(season: Season) -> None:
    season.home.signed_head_path.write_text("not a checkpoint\n")


Damage = Callable[[Season], None]

# name -> (damage, found when the writer starts, found before the next signing while it runs)
TABLE: dict[str, Damage] = {
    "zeroed-frontier-node": zero_frontier_node,
    "zeroed-left-subtree": zero_left_subtree,
    "zeroed-last-leaf": zero_last_leaf,
    "flipped-event-byte": flip_event_byte,
    "deleted-entry-row": delete_entry_row,
    "deleted-checkpoint-row": delete_checkpoint_row,
    "head-size-ahead": head_ahead,
    "head-size-behind": head_behind,
    "garbage-state-row": garbage_state_row,
    "database-rolled-back": roll_back_to_three,
    "garbage-signed-head-file": garbage_signed_head_file,
}

# While the writer runs, these are in the way of the next signing (the rows it reads or
# writes); a flipped old event byte, a zeroed leaf behind the frontier, a deleted middle row
# and a garbage state row are not: the start check (and `custody log check`) finds those.
AT_SIGNING = [
    "zeroed-frontier-node",
    "zeroed-left-subtree",
    "deleted-checkpoint-row",
    "head-size-ahead",
    "head-size-behind",
    "database-rolled-back",
]
# A garbage state row under a running writer is not read: the writer judges by the states it
# committed itself (custody/log.py's cache, valid while no other writer appended), which are the
# right ones, and its next event on that package rewrites the row; the start check finds it.


def _next_submission(season: Season, name: str) -> bytes:
    """The next event; for the garbage state row, one that reads that package's state."""
    if name == "garbage-state-row":
        return seal_events(season, [_last_package(season)])[0]
    return _envelopes(season, 100, 1)[0]


@pytest.mark.parametrize("name", list(TABLE), ids=list(TABLE))
def test_damage_is_found_at_start_and_nothing_is_signed(any_season: Season, name: str) -> None:
    season = any_season
    _fill(season)
    season.log().close()
    season.home.engine.dispose()
    signed_before = _signed_sizes(season)
    file_before = season.home.signed_head_path.read_bytes()
    TABLE[name](season)
    with pytest.raises(LogStateError) as caught:
        open_writer(season.home, SECRETS)
    assert caught.value.hint and "restore" in caught.value.hint + caught.value.message
    after = _signed_sizes(season)
    assert after == [s for s in signed_before if s in after]  # nothing new signed
    assert max(after, default=0) <= SIZE
    if name != "garbage-signed-head-file":
        assert season.home.signed_head_path.read_bytes() == file_before


@pytest.mark.parametrize("name", AT_SIGNING, ids=AT_SIGNING)
def test_damage_while_running_is_found_before_the_next_signing(
    any_season: Season, name: str
) -> None:
    season = any_season
    _fill(season)
    log = season.log()  # running, checked at its start
    signed_before = _signed_sizes(season)
    file_before = season.home.signed_head_path.read_bytes()
    TABLE[name](season)
    with pytest.raises(LogStateError):
        log.submit(parse_envelope(_next_submission(season, name)), now=season.now)
    assert max(_signed_sizes(season), default=0) <= SIZE
    assert set(_signed_sizes(season)) <= set(signed_before)
    assert season.home.signed_head_path.read_bytes() == file_before


def test_the_file_follows_every_signing_and_never_goes_back(season: Season) -> None:
    receipts = _fill(season)
    authority = season.authority
    head = signed_head_file(season.home, authority).read()
    assert head is not None and head.size == SIZE and head.note == receipts[-1]
    # An older checkpoint (another process that signed earlier and records late) is ignored.
    signed_head_file(season.home, authority).record(receipts[2])
    again = signed_head_file(season.home, authority).read()
    assert again is not None and again.size == SIZE


def test_two_checkpoints_of_one_size_are_refused_by_the_file(season: Season) -> None:
    """The file holds the checkpoint of size 6; a different note of size 6, even one the log
    key signed (a log restarted on another copy of the database), is refused, and a note the
    key did not sign is refused too."""
    _fill(season)
    authority = season.authority
    key = season.home.authority_key("log", PASS).signing
    head = signed_head_file(season.home, authority)
    other_history = sign_checkpoint(
        Checkpoint(authority.log_origin, SIZE, bytes(32)), authority.log_origin, key
    )
    with pytest.raises(LogStateError):
        head.record(other_history)
    stranger_note = sign_checkpoint(
        Checkpoint(authority.log_origin, SIZE + 1, bytes(32)),
        authority.log_origin,
        SigningKey.generate(),
    )
    with pytest.raises(LogStateError):
        head.record(stranger_note)
    # A head said to be "just made" is taken only with the very note it was made into: a
    # stranger's note beside it is verified, and refused.
    with pytest.raises(LogStateError):
        head.record(stranger_note, made=SignedHead(SIZE + 1, bytes(32), "another note"))
    held = head.read()
    assert held is not None and held.size == SIZE and held.root != bytes(32)


def test_a_missing_file_with_a_signed_log_is_refused(season: Season) -> None:
    _fill(season)
    season.log().close()
    season.home.signed_head_path.unlink()
    with pytest.raises(LogStateError):
        open_writer(season.home, SECRETS)


def test_the_start_check_counts_what_it_checked(season: Season) -> None:
    _fill(season)
    report = season.log().check_state(signed_head_file(season.home, season.authority))
    assert report.size == SIZE
    assert report.leaves_checked == SIZE
    assert report.states_checked == SIZE - _first(season)
    assert report.file is not None and report.file.size == SIZE


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from crypto.dsse import parse_envelope
    from crypto.encoding import parse_time
    from custody.home import Home
    from custody.service import ServiceSecrets, open_writer

    home = Home(Path(sys.argv[1]))
    log = open_writer(home, ServiceSecrets(log=sys.argv[2], system=sys.argv[2]))
    now = parse_time(sys.argv[4], what="now")
    for line in open(sys.argv[3], "rb"):
        print(log.submit(parse_envelope(line), now=now).index, flush=True)
    print("done", flush=True)
    time.sleep(600)
    """
)


def test_truncated_wal_after_sigkill_is_refused(season: Season, tmp_path: Path) -> None:
    """SQLite: a writer acknowledges 20 events (still in the WAL), is SIGKILLed, and the WAL is
    lost. The database is behind what the log signed: the next writer refuses to start."""
    _fill(season)
    season.log().close()
    season.home.engine.dispose()
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(_envelopes(season, 200, 20)) + b"\n")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    season.home.engine.dispose()  # this process holds no connection while the WAL is lost
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(season.home.path),
            PASS,
            str(feed),
            format_time(season.now),
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    acknowledged = []
    for raw in proc.stdout:
        if raw.strip() == b"done":
            break
        acknowledged.append(int(raw))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert acknowledged == list(range(SIZE, SIZE + 20))
    db = season.home.path / "custody.db"
    wal = db.with_name("custody.db-wal")
    assert wal.stat().st_size > 0  # the acknowledged events are there, not yet checkpointed
    os.truncate(wal, 0)
    db.with_name("custody.db-shm").unlink(missing_ok=True)
    with pytest.raises(LogStateError) as caught:
        open_writer(season.home, SECRETS)
    assert f"size {SIZE + 20}" in caught.value.message
    assert isinstance(caught.value, StorageError)
    engine = _engine(season)
    try:
        with engine.connect() as conn:
            assert _max_size(conn) == SIZE  # nothing signed over the loss
    finally:
        engine.dispose()


def _max_size(conn: Connection) -> int:
    return int(
        conn.execute(select(func.max(text("size"))).select_from(text("checkpoint"))).scalar_one()
    )


def test_frontier_helper_matches_the_table() -> None:
    assert merkle.frontier_nodes(SIZE) == [(1, 2), (2, 0)]


def test_writers_starting_while_another_appends_see_no_false_damage(
    any_season: Season, tmp_path: Path
) -> None:
    """The start check reads one snapshot, and the file before it: a writer starting in the
    middle of another's appends (the file moving on meanwhile) finds nothing wrong."""
    season = any_season
    _fill(season)
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(_envelopes(season, 300, 60)) + b"\n")
    season.log().close()
    season.home.engine.dispose()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(season.home.path),
            PASS,
            str(feed),
            format_time(season.now),
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    starts = 0
    try:
        for raw in proc.stdout:
            if raw.strip() == b"done":
                break
            log = open_writer(season.home, SECRETS)  # checked at start, every time
            log.close()
            starts += 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert starts == 60


def test_a_writer_starting_between_the_first_commit_and_its_record_is_not_refused(
    tmp_path: Path,
) -> None:
    """A new log: its first writer leaves an empty signed-checkpoint file before it signs, so a
    writer starting after that first commit, before the file holds it, finds a file that lags
    (allowed), not a home without one (refused)."""
    from custody import identity
    from custody.home import Home
    from tests.conftest import T0, fast_kdf

    home = Home(tmp_path / "home")
    identity.init_authority(home, name="A", passphrase=PASS, now=T0, kdf=fast_kdf(), rehearsal=True)
    first = open_writer(home, SECRETS)
    assert first.size() == 0
    assert home.signed_head_path.read_bytes() == b""  # made at its start, before any signing
    first.close()
    # The window: the database holds a signed entry the file does not yet.
    log_key = home.authority_key("log", PASS).signing
    authority = identity.load_trust(home).authority
    leaf = b"entry"
    note = sign_checkpoint(
        Checkpoint(authority.log_origin, 1, merkle.leaf_hash(leaf)), authority.log_origin, log_key
    )
    with home.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO log_entry (idx, statement_id, kind, received_at, envelope)"
                " VALUES (0, :s, 'seal', 't', :e)"
            ),
            {"s": bytes(32), "e": leaf},
        )
        conn.execute(
            text("INSERT INTO tree_node (level, idx, hash) VALUES (0, 0, :h)"),
            {"h": merkle.leaf_hash(leaf)},
        )
        conn.execute(
            text("INSERT INTO checkpoint (size, root, note, signed_at) VALUES (1, :r, :n, 't')"),
            {"r": merkle.leaf_hash(leaf), "n": note},
        )
        conn.execute(text("UPDATE log_head SET size = 1 WHERE id = 1"))
    second = open_writer(home, SECRETS)  # the empty file lags: allowed
    assert second.size() == 1
    second.close()
    home.signed_head_path.unlink()  # no file at all, with a signed log: refused
    with pytest.raises(LogStateError):
        open_writer(home, SECRETS)


def zero_node_behind_the_frontier(season: Season) -> None:
    """Node (1, 0), under the frontier's (2, 0): neither the start check nor the check before
    signing reads it (new roots do not need it); proofs of entries 2 and 3 do."""
    _run(season, "UPDATE tree_node SET hash = :h WHERE level = 1 AND idx = 0", h=bytes(32))


def test_a_proof_through_a_damaged_node_is_refused_not_handed_out(any_season: Season) -> None:
    """Every proof is checked against the roots the log signed before it leaves: one built
    through an altered node is the log's state (exit 6, HTTP 503), never a proof that clients
    refuse without knowing why; proofs that do not pass through it are served."""
    season = any_season
    _fill(season)
    log = season.log()
    assert len(log.inclusion_proof(2, SIZE)) == 3  # (0, 3), (1, 0), (1, 2)
    zero_node_behind_the_frontier(season)
    fresh = open_writer(season.home, SECRETS)  # the start check does not see it
    for running in (log, fresh):
        with pytest.raises(LogStateError) as caught:
            running.inclusion_proof(2, SIZE)
        assert "entry 2 in the tree of size 6" in caught.value.message
        assert caught.value.hint is not None and "restore" in caught.value.hint
        with pytest.raises(LogStateError):
            running.consistency_proof(3, SIZE)
        assert len(running.inclusion_proof(4, SIZE)) == 2  # (0, 5) and (2, 0): intact
    fresh.close()


def test_the_command_line_refuses_the_damaged_proof_with_the_storage_exit(season: Season) -> None:
    from tests.custody.cli.subprocess_cli import run_custody

    _fill(season)
    season.log().close()
    season.home.engine.dispose()
    zero_node_behind_the_frontier(season)
    home = str(season.home.path)
    ok = run_custody("--home", home, "--json", "log", "proof", "4")
    assert ok.returncode == 0, ok.stderr
    bad = run_custody("--home", home, "--json", "log", "proof", "2")
    assert bad.returncode == 6, (bad.stdout, bad.stderr)
    assert "log_state" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_service_answers_the_damaged_proof_503_log_state(season: Season) -> None:
    from tests.api.helpers import as_person, client

    _fill(season)
    c = client(season)
    who = as_person(c, season, "courier-li")
    assert c.get("/v1/proofs/inclusion?index=2&size=6", headers=who).status_code == 200
    zero_node_behind_the_frontier(season)
    fresh = client(season)  # a service started on the damaged database
    for running in (c, fresh):
        who = as_person(running, season, "courier-li")
        bad = running.get("/v1/proofs/inclusion?index=2&size=6", headers=who)
        assert bad.status_code == 503, bad.text
        assert bad.json()["error"] == "log_state"
        assert "Retry-After" in bad.headers
        bad = running.get("/v1/proofs/consistency?old=3&new=6", headers=who)
        assert (bad.status_code, bad.json()["error"]) == (503, "log_state")
        ok = running.get("/v1/proofs/inclusion?index=4&size=6", headers=who)
        assert ok.status_code == 200 and len(ok.json()["proof"]) == 2
