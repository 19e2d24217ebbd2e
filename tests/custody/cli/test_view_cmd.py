"""Seeing custody from the command line: package list|show|timeline and paper show."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from crypto.encoding import format_time
from custody.cli import main
from custody.demo import EXAM_ID, Season
from custody.events import Kind, parse_event
from custody.store.leaves import PARTS_DEFLATED, PARTS_RAW
from tests.conftest import PASS, T0

SAMPLES = Path(__file__).resolve().parents[3] / "custody" / "samples"
NOW = format_time(T0)


def seal_args(package: str, site: str) -> list[str]:
    return [
        "package", "seal", "--package", package, "--exam", EXAM_ID, "--session", "AM",
        "--position", "P014", "--paper", "P014-A", "--commitment", "ab" * 32,
        "--copies", "30", "--seal", "S1", "--seal", "S2", "--site", site, "--room", "第3考场",
        "--opens", "2027-03-06T08:00:00Z", "--closes", "2027-03-06T09:00:00Z",
        "--route", "print-qian@PRT-01", "--route", "courier-sun@ROAD",
        "--route", "custodian-zhou@XA-01",
    ]  # fmt: skip


READS = {("package", "list"), ("package", "show"), ("package", "timeline"), ("paper", "show")}


def key_of(season: Season, person: str) -> str:
    return str(next(season.home.people_dir().glob(f"{person}-*.key")))


def run(
    season: Season, *args: str, now: str = NOW, json_out: bool = True, reader: str = "secrecy-chen"
) -> tuple[int, Any]:
    """The command; a read (``READS``) with ``reader``'s key, its passphrase in the variable."""
    out = io.StringIO()
    flags = ["--json"] if json_out else []
    if tuple(args[:2]) in READS and "--key" not in args:
        args = (*args, "--key", key_of(season, reader))
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(out):
        env.setenv("CUSTODY_KEY_PASSPHRASE", PASS)
        code = main(["--home", str(season.home.path), *flags, "--now", now, *args])
    text = out.getvalue()
    if not json_out:
        return code, text
    return code, (json.loads(text) if text.strip() else {})


@pytest.fixture
def packages(any_season: Season, monkeypatch: pytest.MonkeyPatch) -> Season:
    """Three packages sealed through the CLI: PK-A dispatched then stored, PK-B dispatched
    (in transit), PK-C sealed; for two exam sites (on SQLite and on PostgreSQL)."""
    season = any_season
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    key = str(next(season.home.people_dir().glob("print-qian-*.key")))
    for pkg, site in (("PK-A", "西安市第一考点"), ("PK-B", "西安市第一考点"), ("PK-C", "宝鸡考点")):
        code, out = run(season, *seal_args(pkg, site), "--key", key)
        assert code == 0, out
    for pkg in ("PK-A", "PK-B"):
        code, out = run(
            season, "dispatch", pkg, "--to", "courier-sun", "--seals", "S1,S2", "--yes",
            now="2027-03-01T08:10:00Z",
        )  # fmt: skip
        assert code == 0, out
    code, out = run(
        season, "receive", "PK-A", "--to", "custodian-zhou", "--second", "custodian-wu",
        "--yes", now="2027-03-01T09:00:00Z",
    )  # fmt: skip
    assert code == 0, out
    return season


class _Db:
    """The home's database by its own driver (what an insider with the file or a psql
    session would use): ``execute`` with ``?`` parameters, ``commit``, ``close``."""

    def __init__(self, season: Season) -> None:
        self.engine = season.home.engine
        self.conn = self.engine.raw_connection()

    def execute(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        if self.engine.dialect.name == "postgresql":
            sql = sql.replace("?", "%s")
        cur = self.conn.cursor()
        cur.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _connect(season: Season) -> _Db:
    return _Db(season)


def test_list_with_filters_and_pages(packages: Season) -> None:
    code, page = run(packages, "package", "list")
    assert code == 0
    assert [p["package_id"] for p in page["items"]] == ["PK-A", "PK-B", "PK-C"]
    assert page["total"] == 3
    assert page["next_offset"] is None
    first = page["items"][0]
    assert (first["status"], first["holder"], first["site"]) == (
        "stored",
        "custodian-zhou",
        "西安市第一考点",
    )
    ids = lambda *a: [p["package_id"] for p in run(packages, "package", "list", *a)[1]["items"]]  # noqa: E731
    assert ids("--state", "in_transit") == ["PK-B"]
    assert ids("--holder", "print-qian") == ["PK-C"]
    assert ids("--site", "宝鸡考点") == ["PK-C"]
    assert ids("--exam", EXAM_ID) == ["PK-A", "PK-B", "PK-C"]
    assert ids("--exam", "OTHER") == []
    code, page = run(packages, "package", "list", "--limit", "2")
    assert ([p["package_id"] for p in page["items"]], page["next_offset"]) == (["PK-A", "PK-B"], 2)
    code, page = run(packages, "package", "list", "--limit", "2", "--offset", "2")
    assert ([p["package_id"] for p in page["items"]], page["next_offset"]) == (["PK-C"], None)
    # In transit longer than the policy's 6 hours: overdue.
    assert ids("--overdue") == []
    late = run(packages, "package", "list", "--overdue", now="2027-03-01T15:00:00Z")[1]
    assert [p["package_id"] for p in late["items"]] == ["PK-B"]
    assert "overdue" in late["items"][0]["overdue"]
    assert (
        "overdue"
        in run(packages, "package", "show", "PK-B", now="2027-03-01T15:00:00Z")[1]["overdue"]
    )
    assert (
        run(packages, "package", "show", "PK-A", now="2027-03-01T15:00:00Z")[1]["overdue"] is None
    )
    code, out = run(packages, "package", "list", "--state", "lost")
    assert (code, out["error"]) == (2, "usage")
    code, out = run(packages, "package", "list", "--limit", "0")
    assert (code, out["error"]) == (2, "usage")


def test_list_and_show_for_people(packages: Season, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: one line per row
    code, text = run(packages, "package", "list", json_out=False)
    assert code == 0
    assert "已入库 stored" in text
    assert "宝鸡考点" in text
    assert "{" not in text and "[" not in text  # a table, not Python or JSON
    code, text = run(packages, "package", "show", "PK-A", json_out=False)
    assert code == 0
    assert "custodian-zhou" in text
    assert "courier-sun → custodian-zhou" in text
    assert "S1, S2" in text
    assert "2027-03-01 17:00:00 Asia/Shanghai" in text  # received 09:00 UTC
    code, shown = run(packages, "package", "show", "PK-A")
    assert shown["destination"] == {"site": "西安市第一考点", "room": "第3考场"}
    assert (shown["events"], shown["copies"], shown["seals"]) == (3, 30, ["S1", "S2"])
    code, out = run(packages, "package", "show", "PK-Z")
    assert (code, out["error"]) == (4, "not_found")


def test_times_are_shown_in_the_zone_the_home_names(
    packages: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    config = json.loads(packages.home.config_path.read_text())
    config["time_zone"] = "Asia/Kolkata"  # UTC+05:30
    packages.home.config_path.write_text(json.dumps(config))
    code, text = run(packages, "package", "show", "PK-A", json_out=False)
    assert code == 0
    assert "2027-03-01 14:30:00 Asia/Kolkata" in text  # received 09:00 UTC
    code, text = run(packages, "package", "timeline", "PK-A", json_out=False)
    assert "(Asia/Kolkata)" in text and "2027-03-01 14:30:00" in text
    code, text = run(packages, "package", "list", json_out=False)
    assert "(Asia/Kolkata)" in text and "2027-03-01 14:30:00" in text
    assert "Asia/Shanghai" not in text
    code, out = run(packages, "package", "show", "PK-A")
    assert out["last_time"] == "2027-03-01T09:00:00Z"  # stored and given to scripts in UTC


def test_timeline_names_signers_and_marks_a_tampered_event(
    packages: Season, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, timeline = run(packages, "package", "timeline", "PK-A")
    assert code == 0
    events = timeline["events"]
    assert [e["kind"] for e in events] == ["seal", "dispatch", "receive"]
    assert all(e["verified"] for e in events)
    receive = events[2]
    assert {s["slot"]: (s["person"], s["name"], s["ok"]) for s in receive["signers"]} == {
        "releaser": ("courier-sun", "孙立 Sun Li", True),
        "receiver": ("custodian-zhou", "周静 Zhou Jing", True),
        "custodian2": ("custodian-wu", "吴刚 Wu Gang", True),
    }
    code, text = run(packages, "package", "timeline", "PK-A", json_out=False)
    assert "周静 Zhou Jing" in text
    assert "接收入库 receive into storage" in text
    assert "2027-03-01 17:00:00" in text  # 09:00 UTC in Beijing time
    assert "every signature verified" in text

    # An insider changes a signature byte in the stored envelope of the receive event (the
    # row holds the envelope in parts: two bytes of header, then 32 of key id and 64 of
    # signature per signature).
    db = _connect(packages)
    (row,) = db.execute("SELECT envelope FROM log_entry WHERE idx = ?", (events[2]["index"],))
    stored = bytearray(row[0])  # type: ignore[arg-type]
    assert stored[0] in (PARTS_RAW, PARTS_DEFLATED)
    stored[2 + 32] ^= 0x01
    db.execute(
        "UPDATE log_entry SET envelope = ? WHERE idx = ?", (bytes(stored), events[2]["index"])
    )
    db.commit()
    db.close()
    code, timeline = run(packages, "package", "timeline", "PK-A")
    marks = [(e["verified"], e["signatures_ok"], e["included"]) for e in timeline["events"]]
    assert marks == [(True, True, True), (True, True, True), (False, False, False)]
    assert timeline["events"][2]["problems"]
    code, text = run(packages, "package", "timeline", "PK-A", json_out=False)
    assert "1 event(s) did not verify" in text


def test_paper_show_lists_its_acts(
    season: Season, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    key = lambda who: str(next(season.home.people_dir().glob(f"{who}-*.key")))  # noqa: E731
    code, out = run(
        season, "paper", "propose", str(SAMPLES / "interview-main.json"), "--structured",
        "--exam", EXAM_ID, "--position", "P01", "--paper-id", "SX-INT-P01-A",
        "--printer", "print-qian", "--officer", "examiner-zheng", "--officer", "supervisor-wang",
        "--threshold", "2", "--window-start", "2027-03-03T08:00:00Z",
        "--window-end", "2027-03-03T11:00:00Z", "--key", key("prop-zhao"),
    )  # fmt: skip
    assert code == 0, out
    code, out = run(
        season, "paper", "open", "SX-INT-P01-A", "--out", str(tmp_path / "p.json"),
        "--key", key("examiner-zheng"), "--key", key("supervisor-wang"),
        now="2027-03-03T08:30:00Z",
    )  # fmt: skip
    assert code == 0, out
    code, paper = run(season, "paper", "show", "SX-INT-P01-A")
    assert code == 0
    assert paper["ref"] == "SX-INT-P01-A@v1"
    acts = [(a["kind"], a["signatures_ok"]) for a in paper["acts"]]
    assert acts == [("proposal", True), ("opening", True)]
    for act in paper["acts"]:  # each names the log entry that recorded it
        entry = parse_event(season.log().entry(act["log_index"]).payload)
        assert (entry.kind, entry.body["paper"]) == (Kind.PAPER_ACT, "SX-INT-P01-A@v1")
        assert entry.body["act_kind"] == act["kind"]
    opening = {s["person"] for s in paper["acts"][1]["signers"]}
    assert opening == {"examiner-zheng", "supervisor-wang"}
    code, text = run(season, "paper", "show", "SX-INT-P01-A@v1", json_out=False)
    assert "opening" in text and "郑华 Zheng Hua" in text
    assert f"#{paper['acts'][1]['log_index']}" in text
    code, out = run(season, "paper", "show", "NO-SUCH")
    assert (code, out["error"]) == (4, "not_found")


def test_timeline_shows_an_unreadable_row_as_such(packages: Season) -> None:
    dispatch = run(packages, "package", "timeline", "PK-A")[1]["events"][1]["index"]
    db = _connect(packages)
    db.execute("UPDATE log_entry SET envelope = ? WHERE idx = ?", (b"{not json", dispatch))
    db.commit()
    db.close()
    code, timeline = run(packages, "package", "timeline", "PK-A")
    assert code == 0
    assert [e["kind"] for e in timeline["events"]] == ["seal", "unreadable", "receive"]
    assert timeline["events"][1]["verified"] is False


def test_reads_are_judged_by_the_reader_s_key_and_recorded(
    packages: Season, capsys: pytest.CaptureFixture[str]
) -> None:
    """What names people is read as over HTTP: with the reader's own key, their roles and
    assignments decide, and every read is on the access log before anything is shown."""
    from custody.access_log import AccessLog

    season = packages
    access = AccessLog(season.home.engine, season.authority, None)
    before = access.size()
    # no key: refused, named, nothing shown, nothing recorded
    home = ["--home", str(season.home.path), "--now", NOW]
    for args in (["package", "list"], ["package", "timeline", "PK-A"], ["report", "--package",
                 "PK-A", "--format", "text"]):  # fmt: skip
        assert main([*home, *args]) == 2
        out, err = capsys.readouterr()
        assert out == "" and "--key" in err and "access log" in err
    assert access.size() == before
    # a courier on PK-A's route reads its timeline; one on no route does not; neither the list
    code, timeline = run(season, "package", "timeline", "PK-A", reader="courier-sun")
    assert code == 0 and len(timeline["events"]) == 3
    assert run(season, "package", "timeline", "PK-A", reader="courier-he")[0] == 13
    assert run(season, "package", "show", "PK-A", reader="courier-he")[0] == 13
    assert run(season, "package", "list", reader="courier-sun")[0] == 13
    assert run(season, "paper", "show", "NO-SUCH", reader="courier-sun")[0] == 13
    # a custodian of the destination site reads the package; the secrecy officer the list
    code, shown = run(season, "package", "show", "PK-A", reader="custodian-zhou")
    assert code == 0 and shown["holder"] == "custodian-zhou"
    assert run(season, "package", "list")[0] == 0
    reads = [(r.who, r.route) for r in access.who_read(obj="package:PK-A")]
    assert reads == [
        ("courier-sun", "cli package timeline"),
        ("custodian-zhou", "cli package show"),
        ("secrecy-chen", "cli package list"),
    ]
    assert [r.route for r in access.who_read(obj="person:custodian-zhou")][-1] == (
        "cli package list"  # the holder the list names
    )
    assert access.size() == before + 3  # the refused reads are not on it
