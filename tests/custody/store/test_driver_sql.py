"""What every append does through the driver's own SQL (the incident desk's reads of blocked keys
and package watches; the log's rows by COPY on PostgreSQL): the same answers and the same
refusals on SQLite and PostgreSQL; on PostgreSQL an append's package states are rewritten in
one statement."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from crypto.encoding import utc
from custody.demo import start_season
from custody.errors import LogStateError
from custody.rules import PackageState, Status
from custody.store import incidents as store
from custody.store import log_store
from tests.conftest import PASS, fast_kdf

T0 = utc(2027, 3, 1, 8)


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_blocks_and_watches_read_back_what_was_written(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = None if engine_name == "sqlite" else request.getfixturevalue("pg_url")
    s = start_season(tmp_path / "s", now=T0, passphrase=PASS, kdf=fast_kdf(), database_url=url)
    engine = s.home.engine
    watches = [
        store.Watch(f"PK-{n:04d}", "PA", "sealed", T0 + timedelta(minutes=n)) for n in range(700)
    ]  # more than one IN list (store.CHUNK)
    watches[3] = store.Watch(
        "PK-0003", "PA", "in_transit", T0, "site-1", T0 + timedelta(hours=1), "ab" * 32
    )
    with engine.begin() as conn:
        assert store.block_key(conn, "k1" * 32, subject="courier-li", incident_id="I-1", at=T0)
        assert store.block_key(conn, "k2" * 32, subject="courier-sun", incident_id="I-2", at=T0)
        assert store.unblock_key(conn, "k2" * 32, at=T0, by="secrecy-chen")
        store.insert_watches(conn, watches)
    with engine.begin() as conn:
        assert store.blocks(conn, ["k1" * 32, "k2" * 32, "k3" * 32]) == [("k1" * 32, "I-1")]
        assert store.blocks(conn, []) == []
        assert store.blocks(conn, ["k3" * 32]) == []
        wanted = [w.package_id for w in watches] + ["PK-none"]
        read = store.watches(conn, wanted)
    assert read == {w.package_id: w for w in watches}
    assert read["PK-0003"].last_seen == ("site-1", T0 + timedelta(hours=1), "ab" * 32)


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_an_entry_row_written_twice_is_the_log_s_state_error_on_both_engines(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL takes an append's rows by COPY, SQLite by INSERT: a row that collides (a head
    row behind its entries) is refused alike, as the log's state, and nothing is written."""
    url = None if engine_name == "sqlite" else request.getfixturevalue("pg_url")
    s = start_season(tmp_path / "s", now=T0, passphrase=PASS, kdf=fast_kdf(), database_url=url)
    log = s.log()
    size = log.size()
    assert size > 0  # the demo season's set-up statements
    row = log_store.entry_row(0, "00" * 32, "seal", "2027-03-01T08:00:00Z", b"x")
    fresh = log_store.entry_row(size, "11" * 32, "seal", "2027-03-01T08:00:00Z", b"y")
    with pytest.raises(LogStateError):
        log_store.appending(
            s.home.engine,
            lambda db: db.add_entries(log_store.NewEntries([fresh, row], [], [], [])),
        )
    with log_store.reading(s.home.engine) as db:
        assert db.entries_of(["11" * 32]) == []  # the fresh row went with the refused one


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_package_states_saved_in_one_statement_read_back(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL rewrites an append's package states in one UPDATE over three arrays, SQLite
    one row at a time: new rows and changed rows read back the same on both."""
    url = None if engine_name == "sqlite" else request.getfixturevalue("pg_url")
    s = start_season(tmp_path / "s", now=T0, passphrase=PASS, kdf=fast_kdf(), database_url=url)

    def state(n: int, holder: str) -> PackageState:
        return PackageState(
            f"PK-{n}", "E", "P-01", "PA", 30, ("S1",), T0, T0 + timedelta(days=1),
            ("print-qian", "courier-li"), False, Status.SEALED, holder, 0, f"{n:064x}",
            T0, "site-1",
        )  # fmt: skip

    first = {f"PK-{n}": state(n, "print-qian") for n in range(5)}
    log_store.appending(s.home.engine, lambda db: db.save_states(first, 7, set()))
    moved = {f"PK-{n}": replace(state(n, "courier-li"), route_pos=1) for n in (1, 3)}
    moved["PK-9"] = state(9, "print-qian")  # a new one beside them
    log_store.appending(s.home.engine, lambda db: db.save_states(moved, 8, {"PK-1", "PK-3"}))
    with log_store.reading(s.home.engine) as db:
        read = db.states([*first, "PK-9", "PK-none"])
    assert read == {**first, **moved}
