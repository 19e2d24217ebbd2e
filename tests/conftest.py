"""Shared fixtures: fast key derivation, a fresh authority per test, the demo season builder."""

from __future__ import annotations

import json
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


def _closed(made: Season) -> Season:
    """``made`` with no connection left open (the SQLite file checkpointed, a PostgreSQL
    database free to be a template)."""
    made.log().close()
    made.home.engine.dispose()
    made.facts.clear()
    return made


def _copy_season(made: Season, out: Path, database_url: str | None = None) -> Season:
    """A copy of the closed season ``made`` at ``out``: its folder, and its database (the
    SQLite file inside, or ``database_url``, a copy of its PostgreSQL database)."""
    assert not any(made.out.glob("home/*.db-wal")), "the template season was left open"
    shutil.copytree(made.out, out)
    if database_url is not None:
        config = out / "home" / "custody.json"
        body = json.loads(config.read_text())
        body["database_url"] = database_url
        config.write_text(json.dumps(body, indent=2) + "\n")
    return Season(
        out=out, home=Home(out / "home"), passphrase=made.passphrase, now=made.now,
        keys=dict(made.keys), kdf=made.kdf,
    )  # fmt: skip


@pytest.fixture(scope="session")
def _season_template(tmp_path_factory: pytest.TempPathFactory) -> Season:
    """One season made by ``start_season`` per test process, closed, for ``season`` to copy:
    each test gets its own folder and database, holding what a fresh season holds, without
    paying for 13 enrolments again."""
    out = tmp_path_factory.mktemp("template") / "season"
    return _closed(start_season(out, now=T0, passphrase=PASS, kdf=fast_kdf()))


@pytest.fixture
def season(tmp_path: Path, _season_template: Season) -> Season:
    """An authority with one person per role (and a recused courier), keys in memory: a copy
    of the process's template season in this test's own folder (``tmp_path / "season"``)."""
    return _copy_season(_season_template, tmp_path / "season")


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


def _pg_base() -> str:
    """The server named by CUSTODY_TEST_PG_URL, reachable; else the test skips with the
    reason (fails when CUSTODY_REQUIRE_PG=1: CI must run these tests, not skip them)."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server to test against")
    import psycopg

    try:
        psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://")).close()
    except psycopg.OperationalError as e:
        if os.environ.get("CUSTODY_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL at {base} is unreachable: {e}")
        pytest.skip(f"PostgreSQL at {base} is unreachable: {e}")
    return base


def _pg_admin(base: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(
        base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as admin:
        admin.execute(statement)  # type: ignore[arg-type]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards.

    Skips (with the reason) when CUSTODY_TEST_PG_URL is not set; fails when it is set but the
    server is unreachable and CUSTODY_REQUIRE_PG=1 (CI must run these tests, not skip them).
    """
    base = _pg_base()
    name = f"custody_t_{uuid.uuid4().hex[:12]}"
    _pg_admin(base, f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_season_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Season]:
    """The template season on a PostgreSQL database of its own (per test process), closed, so
    that each test's database is made from it with ``CREATE DATABASE ... TEMPLATE``."""
    base = _pg_base()
    name = f"custody_tpl_{uuid.uuid4().hex[:12]}"
    _pg_admin(base, f'CREATE DATABASE "{name}"')
    out = tmp_path_factory.mktemp("pg-template") / "season"
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield _closed(start_season(out, now=T0, passphrase=PASS, kdf=fast_kdf(), database_url=url))
    finally:
        _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def any_season(request: pytest.FixtureRequest, tmp_path: Path) -> Season:
    """The same season on the embedded default and on PostgreSQL (one code path): copies of
    the process's template seasons."""
    if request.param == "sqlite":
        made: Season = request.getfixturevalue("_season_template")
        return _copy_season(made, tmp_path / "season")
    url = request.getfixturevalue("pg_url")
    template: Season = request.getfixturevalue("_pg_season_template")
    name = url.rsplit("/", 1)[1]
    base = _pg_base()
    _pg_admin(base, f'DROP DATABASE "{name}"')
    _pg_admin(
        base, f'CREATE DATABASE "{name}" TEMPLATE "{template.home.database_url.rsplit("/", 1)[1]}"'
    )
    return _copy_season(template, tmp_path / "season", database_url=url)
