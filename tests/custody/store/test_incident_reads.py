"""The incident desk's reads on every append (blocked keys, package watches) as the driver's own
SQL: the same answers on SQLite and PostgreSQL, for one id, many, none, and ids not there."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from crypto.encoding import utc
from custody.demo import start_season
from custody.store import incidents as store
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
