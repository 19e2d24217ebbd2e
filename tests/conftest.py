"""Shared fixtures: fast key derivation, a fresh authority per test, the demo season builder."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import nacl.pwhash
import pytest

from crypto.encoding import utc
from crypto.sealing import KdfParams
from custody.demo import Season, start_season
from custody.home import Home


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


@pytest.fixture
def season(tmp_path: Path) -> Season:
    """An authority with one person per role (and a recused courier), keys in memory."""
    return start_season(tmp_path / "season", now=T0, passphrase=PASS, kdf=fast_kdf())


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")
