"""Shared fixtures: fast key derivation, a fresh authority per test, the demo season builder."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import nacl.pwhash
import pytest

from crypto.encoding import utc
from crypto.sealing import KdfParams
from custody.demo import Season, start_season
from custody.home import Home

# The CLI speaks the locale's language (Chinese when none is set). The suite's assertions on
# human output are in English, so the test process runs under an English locale; the tests of
# the Chinese catalogue set LANG themselves (tests/custody/cli/test_words.py).
os.environ["LANG"] = "C.UTF-8"
os.environ.pop("LC_ALL", None)
os.environ.pop("LC_MESSAGES", None)
os.environ.pop("CUSTODY_LANG", None)


def _find_vectors() -> Path:
    """``../shared/vectors`` beside the checkout, or CUSTODY_VECTORS, or the workplace's copy."""
    candidates = [
        os.environ.get("CUSTODY_VECTORS", ""),
        str(Path(__file__).resolve().parents[2] / "shared" / "vectors"),
        "/work/shared/vectors",
    ]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return Path(candidates[1])


VECTORS = _find_vectors()

T0 = utc(2027, 3, 1, 8, 0)
PASS = "correct horse battery staple"


def fast_kdf() -> KdfParams:
    """Argon2id at its minimum cost: the format is the same, the tests are fast."""
    return KdfParams.fresh(
        opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN, memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN
    )


@pytest.fixture
def vectors() -> Path:
    if not VECTORS.exists():
        pytest.fail(f"shared test vectors not found at {VECTORS}; set CUSTODY_VECTORS")
    return VECTORS


@pytest.fixture
def now() -> datetime:
    return T0


@pytest.fixture(scope="session")
def _season_template(tmp_path_factory: pytest.TempPathFactory) -> Season:
    """One season made by ``start_season`` per test process, closed (no connection open, the
    SQLite file checkpointed), for ``season`` to copy: each test gets its own folder and
    database, holding what a fresh season holds, without paying for 13 enrolments again."""
    made = start_season(
        tmp_path_factory.mktemp("template") / "season", now=T0, passphrase=PASS, kdf=fast_kdf()
    )
    made.log().close()
    made.home.engine.dispose()
    return made


@pytest.fixture
def season(tmp_path: Path, _season_template: Season) -> Season:
    """An authority with one person per role (and a recused courier), keys in memory: a copy
    of the process's template season in this test's own folder (``tmp_path / "season"``)."""
    made = _season_template
    assert not any(made.out.glob("home/*.db-wal")), "the template season was left open"
    out = tmp_path / "season"
    shutil.copytree(made.out, out)
    return Season(
        out=out, home=Home(out / "home"), passphrase=made.passphrase, now=made.now,
        keys=dict(made.keys), kdf=made.kdf,
    )  # fmt: skip


def revoke_now(season: Season, person: str = "courier-sun", reason: str = "key_compromise") -> None:
    """Revoke ``person``'s key from the season's clock on (the root key's act); the season's
    log judges by the new trust store. Another log object needs its own ``set_trust``."""
    from custody import identity
    from keys.model import RevocationReason

    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=season.keys[person].signing.key_id,
        reason=RevocationReason(reason),
        effective_at=season.now,
        now=season.now,
    )
    season.refresh_trust()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


PG_ENV = "CUSTODY_TEST_PG_URL"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards.

    Skips (with the reason) when CUSTODY_TEST_PG_URL is not set; fails when it is set but the
    server is unreachable and CUSTODY_REQUIRE_PG=1 (CI must run these tests, not skip them).
    """
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server to test against")
    import psycopg

    name = f"custody_t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(
            base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        )
    except psycopg.OperationalError as e:
        if os.environ.get("CUSTODY_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL at {base} is unreachable: {e}")
        pytest.skip(f"PostgreSQL at {base} is unreachable: {e}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with psycopg.connect(
            base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        ) as admin2:
            admin2.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def any_season(request: pytest.FixtureRequest, tmp_path: Path) -> Season:
    """The same season on the embedded default and on PostgreSQL (one code path)."""
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    return start_season(
        tmp_path / "season", now=T0, passphrase=PASS, kdf=fast_kdf(), database_url=url
    )
