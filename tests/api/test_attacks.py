"""The trust boundary's attacks replayed against the service (HTTP) and the command line:
each refused with its own error code, nothing of the attacker's stored, an incident where a
detector knows the refusal. The service's clock is the season's (the test moves it)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crypto.encoding import format_time
from custody import identity
from custody.cli import main
from custody.demo import Season
from custody.errors import FormatError
from custody.events import Kind
from custody.incidents.model import list_incidents
from custody.rules import Status
from keys.model import RevocationReason
from tests.api.helpers import client, people_entries
from tests.conftest import PASS
from tests.custody.test_log import SEALS, seal, to_storage, transfer

EXAMINERS = {"examiner": "examiner-zheng", "supervisor": "supervisor-wang"}


def _post(c: TestClient, body: bytes) -> tuple[int, str]:
    r = c.post("/v1/events", content=body, headers={"content-type": "application/json"})
    return r.status_code, r.json().get("error", "")


def _stored_with_window_in_two_days(season: Season) -> None:
    seal(season, opens_in=timedelta(days=2))
    to_storage(season)


def _open_dated_in_window(season: Season) -> bytes:
    start = season.log().package_state("PK-1").window_start
    return season.event(
        Kind.OPEN,
        ["PK-1"],
        actors=EXAMINERS,
        signers=list(EXAMINERS.values()),
        body={"seals": SEALS},
        at=start + timedelta(minutes=5),
    ).to_bytes()


def test_backdated_opening_is_refused_by_the_service_clock(season: Season) -> None:
    _stored_with_window_in_two_days(season)
    c = client(season)
    before = people_entries(season)
    assert _post(c, _open_dated_in_window(season)) == (422, "clock")
    assert people_entries(season) == before
    assert season.log().package_state("PK-1").status == Status.STORED
    assert "opening_out_of_window" in {i.kind for i in list_incidents(season.home.engine)}


def test_a_courier_cannot_block_a_package_by_dating_an_inspection_next_june(
    season: Season,
) -> None:
    seal(season, route=["courier-sun", "custodian-zhou"])
    c = client(season)
    june = season.event(
        Kind.INSPECT,
        ["PK-1"],
        actors={"inspector": "courier-li"},
        signers=["courier-li"],
        at=season.now + timedelta(days=100),
    )
    before = people_entries(season)
    assert _post(c, june.to_bytes()) == (422, "clock")
    # dated honestly, a courier with no part in the package is still refused
    now = season.event(
        Kind.INSPECT, ["PK-1"], actors={"inspector": "courier-li"}, signers=["courier-li"]
    )
    assert _post(c, now.to_bytes()) == (403, "role")
    assert people_entries(season) == before
    # the package's real life goes on: dispatched, stored, opened in its window
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    transfer(
        season, Kind.RECEIVE, "PK-1", "courier-sun", "custodian-zhou", custodian2="custodian-wu"
    )
    season.now = season.log().package_state("PK-1").window_start
    opening = season.event(
        Kind.OPEN, ["PK-1"], actors=EXAMINERS, signers=list(EXAMINERS.values()), body={}
    )
    assert _post(c, opening.to_bytes())[0] == 201
    assert season.log().package_state("PK-1").status == Status.OPENED


def test_compromised_key_is_refused_whatever_time_it_claims(season: Season) -> None:
    seal(season)
    c = client(season)
    identity.revoke(
        season.home,
        root_passphrase=PASS,
        key_id=season.keys["courier-sun"].signing.key_id,
        reason=RevocationReason.KEY_COMPROMISE,
        effective_at=season.now + timedelta(minutes=1),
        now=season.now + timedelta(minutes=1),
    )
    season.now += timedelta(minutes=2)
    backdated = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
        at=season.now - timedelta(minutes=4),  # "before the revocation", within the skew
    )
    before = people_entries(season)
    assert _post(c, backdated.to_bytes()) == (422, "revoked")
    assert people_entries(season) == before
    assert "revoked_key" in {i.kind for i in list_incidents(season.home.engine)}


@pytest.fixture
def cli(season: Season, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--now", format_time(season.now), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_backdated_opening_through_the_cli(cli, season: Season, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _stored_with_window_in_two_days(season)
    path = tmp_path / "open.dsse.json"
    path.write_bytes(_open_dated_in_window(season))
    before = people_entries(season)
    code, out, err = cli("--json", "event", "submit", str(path))
    assert code == 10
    assert json.loads(out)["refused"][0]["error"] == "clock"
    assert "Traceback" not in err
    assert people_entries(season) == before


def _three_passphrases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUSTODY_PASSPHRASE", raising=False)
    monkeypatch.setenv("CUSTODY_ROOT_PASSPHRASE", "root: offline media only")
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE", "log: the service's own")
    monkeypatch.setenv("CUSTODY_SYSTEM_PASSPHRASE", "system: the desk's own")


def test_now_is_refused_in_a_real_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _three_passphrases(monkeypatch)
    home = str(tmp_path / "real")
    assert main(["--home", home, "init", "--name", "陕西省人事考试中心"]) == 0
    capsys.readouterr()
    code = main(["--home", home, "--now", "2027-03-20T08:00:00Z", "--json", "log", "status"])
    assert code == 2
    assert json.loads(capsys.readouterr().out)["error"] == "usage"
    assert main(["--home", str(tmp_path / "x"), "--now", "2027-03-20T08:00:00Z", "init",
                 "--name", "A"]) == 2  # fmt: skip


def _signed_raw(season: Season, payload: bytes) -> bytes:
    from crypto.dsse import sign_envelope
    from custody.events import EVENT_TYPE

    return sign_envelope(EVENT_TYPE, payload, [season.keys["print-qian"].signing]).to_bytes()


NOT_CANONICAL = [
    ("whitespace", lambda p: p.replace(b'","', b'", "', 1)),
    (
        "unsorted-keys",
        lambda p: (
            b'{"type":"custody.event.v1",' + p[1:].replace(b',"type":"custody.event.v1"', b"")
        ),
    ),
    ("nan", lambda p: p.replace(b'"copies":30', b'"copies":NaN')),
    ("infinity", lambda p: p.replace(b'"copies":30', b'"copies":Infinity')),
    ("escaped-ascii", lambda p: p.replace(b'"seal"', b'"s\\u0065al"', 1)),
]


@pytest.mark.parametrize("mangle", [m for _, m in NOT_CANONICAL], ids=[n for n, _ in NOT_CANONICAL])
def test_payloads_that_are_not_canonical_are_refused(season: Season, mangle) -> None:  # type: ignore[no-untyped-def]
    from tests.api.helpers import seal_event

    payload = seal_event(season).payload
    bad = mangle(payload)
    assert bad != payload
    c = client(season)
    assert _post(c, _signed_raw(season, bad)) == (400, "format")
    assert people_entries(season) == 0


def test_a_short_passphrase_is_refused_at_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _three_passphrases(monkeypatch)
    monkeypatch.setenv("CUSTODY_ROOT_PASSPHRASE", "short pass")  # 10 characters
    home = tmp_path / "home"
    assert main(["--home", str(home), "--json", "init", "--name", "A"]) == 2
    assert json.loads(capsys.readouterr().out)["error"] == "weak_passphrase"
    assert not (home / "custody.json").exists()


def test_markup_in_user_text_is_printed_as_text(
    cli,
    season: Season,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from custody.audit import export_bundle

    # markup cannot be an id at all (the one id rule) ...
    with pytest.raises(FormatError):
        seal(season, "EVIL[/bold]")
    # ... and where people write free text (observed seal serials), it is printed as text
    seal(season)
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun", seals=["EVIL[/bold]"])
    export_bundle(season.log(), tmp_path / "export")
    code, out, err = cli("verify", str(tmp_path / "export"), "--workers", "1")
    assert code == 0, err
    assert "EVIL[/bold]" in out
