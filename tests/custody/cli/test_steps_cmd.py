"""One command per step: a package's whole life played through them, and their refusals."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crypto.dsse import parse_envelope
from crypto.encoding import format_time, utc
from custody.cli import main
from custody.demo import Season
from custody.events import EVENT_TYPE, Kind, parse_event
from custody.exams import EXAMS_FILE
from custody.steps import passphrase_variable
from tests.conftest import PASS
from tests.custody.cli.test_view_cmd import packages  # noqa: F401 (fixture)
from tests.custody.cli.test_view_cmd import run as view_run

EXAM = "SX-2027-W"  # an exam whose handovers need a supervising witness
SEALS = "S0012345,S0012346,S0012347"
SEAL_ARGS = [
    "--exam", EXAM, "--session", "AM", "--position", "P014", "--paper", "P014-A",
    "--commitment", "ab" * 32, "--copies", "30", "--bag-size", "10",
    "--seal", "S0012345", "--seal", "S0012346", "--seal", "S0012347",
    "--site", "西安市第一考点", "--room", "第3考场",
    "--opens", "2027-03-06T08:00:00Z", "--closes", "2027-03-06T09:00:00Z",
    "--route", "print-qian@PRT-01", "--route", "courier-sun@ROAD",
    "--route", "courier-li@ROAD-2", "--route", "custodian-zhou@XA-01",
]  # fmt: skip
PEOPLE = (
    "print-qian", "courier-sun", "courier-li", "custodian-zhou", "custodian-wu",
    "examiner-zheng", "supervisor-wang", "destroy-feng", "auditor-chu", "secrecy-chen",
)  # fmt: skip


def _exam_policy(season: Season) -> None:
    """The season's exams.json plus an exam whose handovers need a supervising witness."""
    path = season.home.path / EXAMS_FILE
    doc = json.loads(path.read_text())
    doc["exams"][EXAM] = {"handover_witness": True, "retention_until": "2028-03-01T00:00:00Z"}
    path.write_text(json.dumps(doc))


def _env(season: Season, lang: str) -> dict[str, str]:
    """Each key's passphrase in its own variable; no shared CUSTODY_PASSPHRASE."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(
        LANG=lang,
        LC_ALL=lang,
        CUSTODY_HOME=str(season.home.path),
        CUSTODY_LOG_PASSPHRASE=PASS,
        CUSTODY_SYSTEM_PASSPHRASE=PASS,
    )
    for person in PEOPLE:
        env[passphrase_variable(person)] = PASS
    return env


def _cli(env: dict[str, str], now: str, *args: str) -> tuple[int, str, str]:
    argv = ["--json", "--now", now, *args]
    done = subprocess.run(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["zh_CN.UTF-8", "C.UTF-8"])
def test_whole_life_through_the_step_commands(season: Season, tmp_path: Path, lang: str) -> None:
    _exam_policy(season)
    env = _env(season, lang)
    pkg = "SX27-W-0001"

    def step(now: str, *args: str) -> dict[str, object]:
        code, out, err = _cli(env, now, *args)
        assert code == 0, (args, out, err)
        assert "Traceback" not in err
        return json.loads(out)  # type: ignore[no-any-return]

    sealer = {**env, "CUSTODY_PASSPHRASE": PASS}  # `package seal` reads the shared variable
    key = next(season.home.people_dir().glob("print-qian-*.key"))
    code, out, err = _cli(
        sealer, "2027-03-01T08:00:00Z",
        "package", "seal", "--key", str(key), "--package", pkg, *SEAL_ARGS,
    )  # fmt: skip
    assert code == 0, out + err
    seal_event = season.log().package_state(pkg).last_event

    got = step(
        "2027-03-01T08:10:00Z", "dispatch", pkg, "--to", "courier-sun",
        "--witness", "supervisor-wang", "--seals", SEALS, "--yes",
    )  # fmt: skip
    assert got["state"]["status"] == "in_transit"  # type: ignore[index]
    assert got["state"]["holder"] == "courier-sun"  # type: ignore[index]
    # The statement names the seal event as the package's previous one, by its full id.
    index = got["receipt"]["index"]  # type: ignore[index]
    dispatched = parse_event(parse_envelope(season.log().entry(index).to_bytes()).payload)
    assert dispatched.packages == {pkg: seal_event}
    assert dispatched.actors == {
        "releaser": "print-qian",
        "receiver": "courier-sun",
        "witness": "supervisor-wang",
    }
    assert got["statement_id"] == dispatched.id

    got = step(
        "2027-03-01T09:00:00Z", "handover", pkg, "--from", "courier-sun", "--to", "courier-li",
        "--witness", "supervisor-wang", "--seals", "S0012345", "--seals", "S0012346,S0012347",
        "--count", "3", "--place", "高速服务区 motorway services", "--yes",
    )  # fmt: skip
    assert got["state"]["holder"] == "courier-li"  # type: ignore[index]
    assert got["receipt"]["findings"] == []  # type: ignore[index]

    # Captured offline on the road, submitted later with `event submit`.
    statement = tmp_path / f"checkin-{lang}.dsse.json"
    got = step("2027-03-01T10:00:00Z", "checkin", pkg, "--offline", str(statement), "--yes")
    assert got["submitted"] is False
    assert parse_envelope(statement.read_bytes()).payload_type == EVENT_TYPE
    code, out, err = _cli(env, "2027-03-01T10:30:00Z", "event", "submit", str(statement))
    assert code == 0, out + err
    assert json.loads(out)["accepted"][0]["statement_id"] == got["statement_id"]

    got = step(
        "2027-03-01T11:00:00Z", "receive", pkg, "--to", "custodian-zhou",
        "--second", "custodian-wu", "--seals", SEALS, "--count", "3", "--yes",
    )  # fmt: skip
    assert got["state"]["status"] == "stored"  # type: ignore[index]
    step("2027-03-01T12:00:00Z", "inspect", pkg, "--by", "custodian-wu", "--seals", SEALS, "-y")
    step("2027-03-01T12:30:00Z", "patrol", pkg, "--by", "custodian-zhou", "--yes")
    exam_day = ("--examiner", "examiner-zheng", "--supervisor", "supervisor-wang", "--yes")
    got = step("2027-03-06T08:05:00Z", "open", pkg, *exam_day, "--seals", SEALS)
    assert got["state"]["status"] == "opened"  # type: ignore[index]
    got = step("2027-03-06T08:10:00Z", "distribute", pkg, *exam_day, "--count", "30")
    assert got["state"]["distributed"] == 30  # type: ignore[index]
    got = step("2027-03-06T08:55:00Z", "recover", pkg, *exam_day, "--count", "30")
    assert got["receipt"]["findings"] == []  # type: ignore[index]
    got = step("2027-03-06T09:10:00Z", "return", pkg, "--to", "custodian-zhou", "--yes")
    assert got["state"]["status"] == "returned"  # type: ignore[index]
    got = step(
        "2027-03-06T09:30:00Z", "destroy", pkg, "--officer", "destroy-feng",
        "--witness", "auditor-chu", "--count", "30", "--yes",
    )  # fmt: skip
    assert got["state"]["status"] == "destroyed"  # type: ignore[index]

    log = season.log()
    kinds = [parse_event(log.entry(i).payload).kind for i in log.package_history(pkg)]
    assert kinds == [
        Kind.SEAL, Kind.DISPATCH, Kind.HANDOVER, Kind.CHECKIN, Kind.RECEIVE, Kind.INSPECT,
        Kind.PATROL, Kind.OPEN, Kind.DISTRIBUTE, Kind.RECOVER, Kind.RETURN, Kind.DESTROY,
    ]  # fmt: skip

    bundle = tmp_path / f"export-{lang}"
    code, out, err = _cli(env, "2027-03-06T10:00:00Z", "export", "--out", str(bundle))
    assert code == 0, out + err
    code, out, err = _cli(
        env, "2027-03-06T10:00:00Z", "verify", str(bundle), "--require-closed", "--workers", "1"
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True
    assert report["packages"] == 1
    assert report["destroyed"] == 1


# -- refusals and the question, in-process (faster) -------------------------------------------

NOW = "2027-03-01T08:00:00Z"


@pytest.fixture
def sealed(season: Season, monkeypatch: pytest.MonkeyPatch) -> Season:
    """A sealed package of the witnessed exam; passphrases by per-person variables."""
    _exam_policy(season)
    for name in list(os.environ):
        if name.startswith("CUSTODY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE", PASS)
    monkeypatch.setenv("CUSTODY_SYSTEM_PASSPHRASE", PASS)
    for person in PEOPLE:
        monkeypatch.setenv(passphrase_variable(person), PASS)
    key = next(season.home.people_dir().glob("print-qian-*.key"))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    code, out = run(season, "package", "seal", "--key", str(key), "--package", "PK-W", *SEAL_ARGS)
    assert code == 0, out
    monkeypatch.delenv("CUSTODY_PASSPHRASE")
    return season


def run(season: Season, *args: str, now: str = NOW, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), _stdin(stdin):
        code = main(["--home", str(season.home.path), "--json", "--now", now, *args])
    return code, out.getvalue()


@contextlib.contextmanager
def _stdin(text: str):  # type: ignore[no-untyped-def]
    old = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = old


DISPATCH = ("dispatch", "PK-W", "--to", "courier-sun", "--witness", "supervisor-wang")


def test_the_question_is_asked_and_no_means_nothing_is_signed(sealed: Season) -> None:
    size = sealed.log().size()
    code, _ = run(sealed, *DISPATCH, stdin="n\n")
    assert code == 130
    assert sealed.log().size() == size
    code, out = run(sealed, *DISPATCH, stdin="y\n")
    assert code == 0, out
    assert sealed.log().size() == size + 1


@pytest.mark.parametrize(
    ("args", "error", "exit_code"),
    [
        pytest.param(("--to", "courier-sun"), "usage", 2, id="witness-missing"),
        pytest.param(
            ("--to", "courier-sun", "--witness", "supervisor-wang", "--from", "courier-li"),
            "chain", 10, id="from-not-the-holder",
        ),
    ],
)  # fmt: skip
def test_refused_before_anyone_signs(
    sealed: Season, args: tuple[str, ...], error: str, exit_code: int
) -> None:
    size = sealed.log().size()
    code, out = run(sealed, "dispatch", "PK-W", *args, "--yes")
    assert json.loads(out)["error"] == error
    assert code == exit_code
    assert sealed.log().size() == size


def test_a_step_the_status_does_not_allow_is_refused(sealed: Season) -> None:
    code, out = run(
        sealed, "open", "PK-W", "--examiner", "examiner-zheng", "--supervisor",
        "supervisor-wang", "--yes",
    )  # fmt: skip
    assert json.loads(out)["error"] == "chain"
    assert code == 10
    assert "sealed" in json.loads(out)["message"]


def test_wrong_log_passphrase_stops_before_signing(
    sealed: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE", "not it")
    monkeypatch.delenv(passphrase_variable("print-qian"))  # would be asked next: never is
    size = sealed.log().size()
    code, out = run(sealed, *DISPATCH, "--yes")
    assert code == 11
    assert json.loads(out)["error"] == "decryption"
    assert sealed.log().size() == size


def test_a_signers_passphrase_from_a_file(
    sealed: Season, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "sun.pass"
    secret.write_text(PASS + "\n")
    monkeypatch.delenv(passphrase_variable("courier-sun"))
    monkeypatch.setenv(passphrase_variable("courier-sun") + "_FILE", str(secret))
    code, out = run(sealed, *DISPATCH, "--yes")
    assert code == 0, out
    monkeypatch.delenv(passphrase_variable("courier-sun") + "_FILE")
    code, out = run(
        sealed, "handover", "PK-W", "--to", "courier-li", "--witness", "supervisor-wang", "--yes",
        now="2027-03-01T08:30:00Z",
    )  # fmt: skip
    assert code == 2  # no passphrase for courier-sun, and no terminal to ask on
    assert passphrase_variable("courier-sun") in json.loads(out)["message"]


def test_off_route_receiver_is_refused_by_the_log(sealed: Season) -> None:
    code, out = run(
        sealed, "dispatch", "PK-W", "--to", "courier-li", "--witness", "supervisor-wang", "--yes"
    )
    assert json.loads(out)["error"] == "route"
    assert code == 10


def test_passphrase_variable_names() -> None:
    assert passphrase_variable("courier-sun") == "CUSTODY_PASSPHRASE_COURIER_SUN"
    assert passphrase_variable("a.b_c") == "CUSTODY_PASSPHRASE_A_B_C"
    assert passphrase_variable("考官-1") == "CUSTODY_PASSPHRASE____1"


def test_times_are_utc_stored(sealed: Season) -> None:
    code, out = run(sealed, *DISPATCH, "--yes", now="2027-03-01T08:05:00Z")
    assert code == 0, out
    code, shown = view_run(sealed, "package", "show", "PK-W", now="2027-03-01T08:05:00Z")
    assert code == 0, shown
    event = parse_event(sealed.log().entry(shown["history"][-1]).payload)
    assert format_time(event.time) == "2027-03-01T08:05:00Z"
    assert event.time == utc(2027, 3, 1, 8, 5)


def test_one_destruction_certificate_for_several_packages(packages: Season) -> None:  # noqa: F811
    destroy = ("destroy", "--officer", "destroy-feng", "--witness", "secrecy-chen", "--yes")
    # PK-C is only sealed: the whole certificate is refused before anyone signs.
    code, out = view_run(packages, *destroy, "PK-A", "PK-C", now="2027-03-01T10:00:00Z")
    assert (code, out["error"]) == (10, "chain")
    code, out = view_run(
        packages, "receive", "PK-B", "--to", "custodian-zhou", "--second", "custodian-wu",
        "--yes", now="2027-03-01T10:00:00Z",
    )  # fmt: skip
    assert code == 0, out
    code, out = view_run(packages, *destroy, "PK-A", "PK-B", now="2027-03-01T10:05:00Z")
    assert code == 0, out
    assert out["packages"] == ["PK-A", "PK-B"]
    assert {p: s["status"] for p, s in out["states"].items()} == {
        "PK-A": "destroyed",
        "PK-B": "destroyed",
    }
    event = parse_event(packages.log().entry(out["receipt"]["index"]).payload)
    assert set(event.packages) == {"PK-A", "PK-B"}
    code, out = view_run(packages, *destroy, "PK-A", "PK-A", now="2027-03-01T10:06:00Z")
    assert (code, out["error"]) == (2, "usage")
    code, out = view_run(
        packages, "inspect", "PK-B", "PK-C", "--by", "custodian-wu", "--yes",
        now="2027-03-01T10:06:00Z",
    )  # fmt: skip
    assert code == 2  # only a destruction names several packages


def test_a_key_file_kept_elsewhere_is_named_with_key(sealed: Season, tmp_path: Path) -> None:
    (held,) = sealed.home.people_dir().glob("courier-sun-*.key")
    usb = tmp_path / "usb" / "sun.key"
    usb.parent.mkdir()
    held.rename(usb)
    code, text = run(sealed, *DISPATCH, "--yes")
    out = json.loads(text)
    assert (code, out["error"]) == (4, "not_found")
    assert "--key courier-sun=FILE" in out["hint"]
    (other,) = sealed.home.people_dir().glob("courier-li-*.key")
    code, text = run(sealed, *DISPATCH, "--yes", "--key", f"courier-sun={other}")
    assert (code, json.loads(text)["error"]) == (
        2,
        "usage",
    )  # courier-li's key is not courier-sun's
    code, text = run(sealed, *DISPATCH, "--yes", "--key", "courier-sun")
    assert (code, json.loads(text)["error"]) == (2, "usage")
    code, out = run(sealed, *DISPATCH, "--yes", "--key", f"courier-sun={usb}")
    assert code == 0, out


def _home_zone(season: Season, zone: str) -> None:
    """The authority names its zone in custody.json (``custody init --time-zone``)."""
    path = season.home.config_path
    config = json.loads(path.read_text())
    config["time_zone"] = zone
    path.write_text(json.dumps(config))


def test_the_statement_shown_before_signing_is_in_the_homes_zone(
    sealed: Season, capsys: pytest.CaptureFixture[str]
) -> None:
    _home_zone(sealed, "America/Los_Angeles")
    code, _ = run(sealed, *DISPATCH, stdin="n\n", now="2027-03-01T08:10:00Z")
    assert code == 130
    shown = capsys.readouterr().err
    assert "时间 time           2027-03-01 00:10:00 America/Los_Angeles" in shown  # UTC-8
    assert "Asia/Shanghai" not in shown


def test_an_unknown_zone_in_the_home_is_a_usage_error_before_signing(
    sealed: Season, capsys: pytest.CaptureFixture[str]
) -> None:
    _home_zone(sealed, "Mars/Base")
    size = sealed.log().size()
    code, out = run(sealed, *DISPATCH, "--yes")
    assert code == 2
    assert json.loads(out)["error"] == "usage"
    assert "Mars/Base" in json.loads(out)["message"]
    assert sealed.log().size() == size
