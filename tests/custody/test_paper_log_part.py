"""No decryption without a log entry first: a paper's key is the people's part XOR the log's
part; the log service releases its part only for a signed act it has just put on the log,
inside the window by its own clock. People's keys alone, or the server alone, open nothing;
destroying the log's part makes the paper unreadable even where officers' shares survive."""

from __future__ import annotations

import io

import pytest
from sqlmodel import Session, select

from crypto import shamir
from crypto.errors import ClosedError, DecryptionError, WindowError
from custody import paper_service as ps
from custody.demo import Season
from custody.events import Kind, parse_event
from custody.papers import LOG_SUBJECT, Release, Slot, open_log_part, open_share
from custody.store.paper_tables import PaperKeyRow
from tests.custody.test_papers import END, IN_WINDOW, PLAIN, QUORUM, T0, World, plan, propose

REF = "SX-INT-P01-A"


@pytest.fixture(name="world")
def world_fixture(season: Season) -> World:
    return World(season, propose(season, plan()))


def _decrypts(world: World, key: bytes) -> bool:
    release = Release(world.main.proposal, world.main.envelope, key)
    try:
        ps.Opened(release, world.main.blob, 0).write_stream(io.BytesIO())
    except DecryptionError:
        return False
    return True


def _people_part(world: World) -> bytes:
    """What officers holding the database rows and their own keys can compute, offline."""
    state = ps.load_state(world.season.home, REF)
    shares = []
    for who in QUORUM:
        recipient, blob = state.check_sealed(Slot.OFFICER, who)
        shares.append(open_share(world.season.keys[who], state.proposal, recipient, blob))
    return shamir.combine(shares)


def _paper_acts(world: World) -> list[str]:
    log = world.season.log()
    events = [parse_event(log.entry(i).payload) for i in range(log.size())]
    return [str(e.body["act_kind"]) for e in events if e.kind == Kind.PAPER_ACT]


def test_the_quorum_opens_only_through_the_log(world: World) -> None:
    sink = io.BytesIO()
    ps.open_paper(
        world.season.home, REF, world.k(*QUORUM), IN_WINDOW, log=world.season.log()
    ).write_stream(sink)
    assert sink.getvalue() == PLAIN
    assert _paper_acts(world) == ["proposal", "opening"]


def test_peoples_keys_alone_open_nothing(world: World) -> None:
    assert not _decrypts(world, _people_part(world))


def test_the_server_alone_opens_nothing(world: World) -> None:
    log = world.season.log()
    state = ps.load_state(world.season.home, REF)
    recipient, blob = state.check_sealed(Slot.LOG, LOG_SUBJECT)
    log_part = open_log_part(log.escrow, state.proposal, recipient, blob)
    assert not _decrypts(world, log_part)
    # and only the two parts together are the key (the test's own check of the split)
    assert _decrypts(
        world, bytes(a ^ b for a, b in zip(_people_part(world), log_part, strict=True))
    )


def test_before_the_window_nothing_is_released_and_nothing_logged(world: World) -> None:
    with pytest.raises(WindowError):
        ps.open_paper(world.season.home, REF, world.k(*QUORUM), T0, log=world.season.log())
    assert _paper_acts(world) == ["proposal"]


def test_destroying_the_log_part_leaves_surviving_shares_useless(world: World) -> None:
    home = world.season.home
    with Session(home.engine) as s:
        kept = {(r.slot, r.subject): r.sealed for r in s.exec(select(PaperKeyRow))}
    people_part = _people_part(world)  # an officer kept their share somewhere
    ps.destroy(home, REF, world.k("destroy-feng", "secrecy-chen"), END, log=world.season.log())
    assert ("log", LOG_SUBJECT) in kept
    with pytest.raises(ClosedError):
        ps.open_paper(home, REF, world.k(*QUORUM), IN_WINDOW, log=world.season.log())
    assert not _decrypts(world, people_part)
    assert _paper_acts(world) == ["proposal", "destruction"]
