"""Checked shredding on both engines: a destroy that a concurrent reader keeps from erasing
fails loudly (and stays recorded); running it again once the reader is gone finishes the erase
and no copy of a destroyed key is left in any database file (SQLite) or row (PostgreSQL)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from custody import paper_service as ps
from custody.demo import Season
from custody.errors import ClosedError, ShredIncompleteError, StorageError
from custody.store.paper_tables import PaperActRow, PaperEraseRow, PaperKeyRow
from custody.store.shred import SCAN_CHUNK, Destroyed, files_holding
from tests.custody.snapshot_reader import leftovers, snapshot_reader
from tests.custody.test_papers import END, IN_WINDOW, QUORUM, World, plan, propose

PAPER = "SX-INT-P01-A"
DESTROYERS = ("destroy-feng", "secrecy-chen")


@pytest.fixture
def world(any_season: Season) -> World:
    return World(any_season, propose(any_season, plan()))


def sealed_blobs(world: World) -> list[bytes]:
    with Session(world.season.home.engine) as s:
        return [r.sealed for r in s.exec(select(PaperKeyRow))]


def left(world: World, blobs: list[bytes]) -> list[str]:
    home = world.season.home
    return leftovers(home.engine, home.path, blobs)


def destruction_acts(world: World) -> int:
    with Session(world.season.home.engine) as s:
        rows = s.exec(select(PaperActRow).where(col(PaperActRow.kind) == "destruction"))
        return len(list(rows))


def pending_erase(world: World) -> int:
    with Session(world.season.home.engine) as s:
        return len(list(s.exec(select(PaperEraseRow))))


def test_a_reader_holding_a_snapshot_makes_destroy_fail_then_a_rerun_erases(
    world: World,
) -> None:
    home = world.season.home
    blobs = sealed_blobs(world)
    assert len(blobs) == 5  # printer, two officers, standby, the log service
    with snapshot_reader(home.engine) as release:
        with pytest.raises(ShredIncompleteError) as caught:
            ps.destroy(
                home, PAPER, world.k(*DESTROYERS), END, erase_wait=0.5, log=world.season.log()
            )
        assert isinstance(caught.value, StorageError)
        # the failure is true: a copy is still there (a file; a row version on PostgreSQL)
        assert left(world, blobs) in (["custody.db-wal"], ["5 old row versions"])
        # the destruction itself is recorded: no key row, nothing opens the paper
        assert [(p.status, p.keys_held) for p in ps.list_papers(home)] == [("destroyed", 0)]
        assert destruction_acts(world) == 1
        assert pending_erase(world) == 5
        with pytest.raises(ClosedError):
            ps.open_paper(home, PAPER, world.k(*QUORUM), IN_WINDOW, log=world.season.log())
        with pytest.raises(ShredIncompleteError):  # a rerun too, while the reader stays
            ps.destroy(
                home, PAPER, world.k(*DESTROYERS), END, erase_wait=0.2, log=world.season.log()
            )
        assert destruction_acts(world) == 1
        release()
    acts = ps.destroy(
        home, PAPER, world.k(*DESTROYERS), END, log=world.season.log()
    )  # the rerun finishes the erase
    assert [a.payload_type for a in acts] == ["application/vnd.custody.paper-destruction.v1+json"]
    assert left(world, blobs) == []
    assert destruction_acts(world) == 1  # the rerun recorded nothing new
    assert pending_erase(world) == 0
    with pytest.raises(ClosedError):  # erased and proven: nothing left to do
        ps.destroy(home, PAPER, world.k(*DESTROYERS), END, log=world.season.log())


def test_destroy_waits_for_a_reader_that_lets_go_within_the_wait(world: World) -> None:
    home = world.season.home
    blobs = sealed_blobs(world)
    with snapshot_reader(home.engine) as release:
        timer = threading.Timer(0.5, release)
        timer.start()
        try:
            acts = ps.destroy(
                home, PAPER, world.k(*DESTROYERS), END, erase_wait=10, log=world.season.log()
            )
        finally:
            timer.join()
    assert len(acts) == 1
    assert left(world, blobs) == []
    assert pending_erase(world) == 0


def test_destroy_without_readers_leaves_no_copy(world: World) -> None:
    blobs = sealed_blobs(world)
    ps.destroy(world.season.home, PAPER, world.k(*DESTROYERS), END, log=world.season.log())
    assert left(world, blobs) == []
    assert pending_erase(world) == 0


@pytest.mark.parametrize("offset", [0, 1, SCAN_CHUNK - 40, SCAN_CHUNK - 1, SCAN_CHUNK + 3])
def test_a_file_scan_finds_a_copy_across_chunk_boundaries(tmp_path: Path, offset: int) -> None:
    blob = bytes(range(1, 81))
    other = Destroyed("other", "0" * 64, (b"\xff" * 80,))
    path = tmp_path / "f"
    path.write_bytes(b"\0" * offset + blob + b"\0" * SCAN_CHUNK)
    target = Destroyed("target", "0" * 64, (blob,))
    assert files_holding(path, [other, target]) == [target]
    assert files_holding(tmp_path / "missing", [target]) == []
