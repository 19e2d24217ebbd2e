"""A command that fails leaves every stored byte as it was: seal, propose, enroll, rotate,
import, destroy. Each is made to fail after its first write (the database refuses a later
one), or for want of a key, and the home is compared byte for byte before and after."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from crypto.encoding import format_time
from custody.cli import main
from custody.demo import EXAM_ID, Season
from custody.package_service import all_package_ids
from tests.conftest import PASS, T0
from tests.custody.stored import changes, fail_inserts_into, stored

# The refusal the forced failure gets: a storage error, by the class the database reports
# (the SQLite trigger fails as a missing table does, the PostgreSQL one as a full disk; an
# unreachable database at init is an outage).
STORAGE_CODES = {"storage", "db_schema", "db_full", "db_unavailable"}

NOW = format_time(T0)
SAMPLES = Path(__file__).resolve().parents[2] / "custody" / "samples"
SEAL_ARGS = [
    "--exam", EXAM_ID, "--session", "AM", "--position", "P014", "--paper", "P014-A",
    "--commitment", "ab" * 32, "--copies", "30", "--seal", "S1", "--seal", "S2",
    "--site", "西安市第一考点", "--room", "第3考场",
    "--opens", "2027-03-06T08:00:00Z", "--closes", "2027-03-06T09:00:00Z",
    "--route", "print-qian@PRT-01", "--route", "courier-sun@ROAD",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    monkeypatch.setenv("CUSTODY_NEW_PASSPHRASE", PASS)


def run(season: Season, *args: str, now: str = NOW) -> tuple[int, dict]:  # type: ignore[type-arg]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--home", str(season.home.path), "--json", "--now", now, *args])
    text = out.getvalue()
    return code, (json.loads(text) if text.strip() else {})


def keyfile(season: Season, subject: str) -> str:
    (path,) = season.home.people_dir().glob(f"{subject}-*.key")
    return str(path)


def seal(season: Season, package: str = "PK-1") -> tuple[int, dict]:  # type: ignore[type-arg]
    return run(
        season, "package", "seal", "--key", keyfile(season, "print-qian"), "--package", package,
        *SEAL_ARGS,
    )  # fmt: skip


def test_seal_without_the_log_key_stores_nothing_and_a_retry_seals(
    season: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stored(season.home)
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE", "not the log's passphrase")
    code, out = seal(season)
    assert (code, out["error"]) == (11, "decryption")
    assert changes(before, stored(season.home)) == []
    monkeypatch.delenv("CUSTODY_LOG_PASSPHRASE")
    code, out = seal(season)  # not "already sealed": nothing was left behind
    assert code == 0, out
    assert season.log().package_state("PK-1").status.value == "sealed"
    assert all_package_ids(season.home) == ["PK-1"]


@pytest.mark.parametrize(
    "table",
    [
        pytest.param("package", id="package-row-after-the-seal-event"),
        pytest.param("checkpoint", id="checkpoint-after-the-package-row"),
    ],
)
def test_seal_failing_after_its_first_write_stores_nothing(any_season: Season, table: str) -> None:
    fail_inserts_into(any_season.home, table)
    before, size = stored(any_season.home), any_season.log().size()
    code, out = seal(any_season)
    assert code == 6 and out["error"] in STORAGE_CODES
    assert changes(before, stored(any_season.home)) == []
    assert any_season.log().size() == size


ENROLL = ["keys", "enroll", "--subject", "courier-ma", "--name", "马力", "--org", "机要交通"]
ENROLL += ["--role", "courier", "--valid-days", "30"]


def test_enroll_failing_at_the_certificate_leaves_no_key_file(any_season: Season) -> None:
    fail_inserts_into(any_season.home, "certificate")
    before = stored(any_season.home)
    code, out = run(any_season, *ENROLL)
    assert code == 6 and out["error"] in STORAGE_CODES
    assert changes(before, stored(any_season.home)) == []
    assert not list(any_season.home.people_dir().glob("courier-ma-*"))


@pytest.mark.parametrize(
    "table",
    [
        pytest.param("revocation", id="revocation-after-the-new-certificate"),
        pytest.param("certificate", id="at-the-new-certificate"),
    ],
)
def test_rotate_failing_after_its_first_write_stores_neither(
    any_season: Season, table: str
) -> None:
    old_file = keyfile(any_season, "courier-sun")
    old_key = any_season.keys["courier-sun"].signing.key_id
    fail_inserts_into(any_season.home, table)
    before = stored(any_season.home)
    code, out = run(any_season, "keys", "rotate", "courier-sun")
    assert code == 6 and out["error"] in STORAGE_CODES
    assert changes(before, stored(any_season.home)) == []  # no new key file, no trust version
    assert [str(p) for p in any_season.home.people_dir().glob("courier-sun-*")] == [old_file]
    # the old key still stands and a retry rotates it: nothing half-done was left behind
    _drop_refusal(any_season, table)
    code, out = run(any_season, "keys", "rotate", "courier-sun")
    assert code == 0, out
    assert out["supersedes"] == old_key
    assert len(list(any_season.home.people_dir().glob("courier-sun-*"))) == 2


def _drop_refusal(season: Season, table: str) -> None:
    """Take back ``fail_inserts_into``."""
    with season.home.engine.begin() as conn:
        conn.exec_driver_sql(
            f'DROP TRIGGER "refuse_{table}"'
            + (f' ON "{table}"' if conn.dialect.name == "postgresql" else "")
        )


def test_import_failing_after_the_certificates_stores_none(season: Season, tmp_path: Path) -> None:
    """Certificates and a revocation issued on a copy of the home, offline."""
    offline = tmp_path / "usb" / "home"
    shutil.copytree(season.home.path, offline)
    root = season.home.root_key_path
    on_usb = ["--home", str(offline), "--root-key", str(root), "--json", "--now", NOW]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*on_usb, *ENROLL]) == 0
        key_id = season.keys["courier-he"].signing.key_id
        assert main([*on_usb, "keys", "revoke", key_id, "--reason", "key_compromise"]) == 0
        bundle = tmp_path / "usb" / "bundle"
        assert main([*on_usb, "trust", "export", "--out", str(bundle)]) == 0
    fail_inserts_into(season.home, "revocation")  # stored after the new certificate
    before = stored(season.home)
    code, out2 = run(season, "keys", "import", str(bundle))
    assert code == 6 and out2["error"] in STORAGE_CODES
    assert changes(before, stored(season.home)) == []


PROPOSE = [
    "paper", "propose", str(SAMPLES / "interview-main.json"), "--structured",
    "--exam", EXAM_ID, "--position", "P01", "--paper-id", "SX-INT-P01-A",
    "--printer", "print-qian", "--officer", "examiner-zheng", "--officer", "supervisor-wang",
    "--threshold", "2", "--window-start", "2027-03-03T08:00:00Z",
    "--window-end", "2027-03-03T11:00:00Z",
]  # fmt: skip


@pytest.mark.parametrize(
    "table",
    [
        pytest.param("paper_key", id="sealed-keys-after-the-log-entry"),
        pytest.param("checkpoint", id="checkpoint-after-the-paper-rows"),
    ],
)
def test_propose_failing_after_its_first_write_stores_nothing(
    any_season: Season, table: str
) -> None:
    fail_inserts_into(any_season.home, table)
    before, size = stored(any_season.home), any_season.log().size()
    code, out = run(any_season, *PROPOSE, "--key", keyfile(any_season, "prop-zhao"))
    assert code == 6 and out["error"] in STORAGE_CODES
    assert (
        changes(before, stored(any_season.home)) == []
    )  # no ciphertext file left in papers/ either
    assert any_season.log().size() == size


@pytest.mark.parametrize(
    "table",
    [
        pytest.param("paper_act", id="act-row-after-the-keys-deleted"),
        pytest.param("checkpoint", id="checkpoint-after-everything"),
    ],
)
def test_paper_destroy_failing_after_its_first_write_stores_nothing(
    any_season: Season, table: str
) -> None:
    code, out = run(any_season, *PROPOSE, "--key", keyfile(any_season, "prop-zhao"))
    assert code == 0, out
    fail_inserts_into(any_season.home, table)
    before = stored(any_season.home)
    code, out = run(
        any_season, "paper", "destroy", "SX-INT-P01-A",
        "--key", keyfile(any_season, "destroy-feng"), "--key", keyfile(any_season, "secrecy-chen"),
    )  # fmt: skip
    assert code == 6 and out["error"] in STORAGE_CODES
    assert changes(before, stored(any_season.home)) == []
    code, listing = run(any_season, "paper", "list")
    assert listing["papers"][0]["status"] == "active"
    assert listing["papers"][0]["keys_held"] == 4


def test_paper_open_failing_at_its_act_row_records_nothing_and_opens_nothing(
    any_season: Season, tmp_path: Path
) -> None:
    code, out = run(any_season, *PROPOSE, "--key", keyfile(any_season, "prop-zhao"))
    assert code == 0, out
    fail_inserts_into(any_season.home, "paper_act")  # after the act's log entry
    before = stored(any_season.home)
    plain = tmp_path / "paper.json"
    code, out = run(
        any_season, "paper", "open", "SX-INT-P01-A", "--out", str(plain),
        "--key", keyfile(any_season, "examiner-zheng"),
        "--key", keyfile(any_season, "supervisor-wang"),
        now="2027-03-03T08:30:00Z",
    )  # fmt: skip
    assert code == 6 and out["error"] in STORAGE_CODES
    assert changes(before, stored(any_season.home)) == []
    assert not plain.exists()


def test_init_failing_at_its_database_takes_back_its_keys_and_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "authority" / "home"
    unreachable = "postgresql://postgres@127.0.0.1:1/none"  # nothing listens on port 1
    init = ["--home", str(home), "--json", "init", "--rehearsal", "--name", "陕西省人事考试中心"]
    code = main([*init, "--database-url", unreachable])
    out = json.loads(capsys.readouterr().out)
    assert code == 6 and out["error"] in STORAGE_CODES
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["authority"]  # no key, no config
    code = main(init)  # the same command again: not "already exists"
    assert code == 0, capsys.readouterr().out
