"""Papers end to end on a season: propose, open with a quorum, every refusal, shredding."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from crypto.dsse import parse_envelope
from crypto.signing import SigningKey
from crypto.vocabulary import Classification
from custody import identity
from custody import paper_service as ps
from custody.demo import EXAM_ID, Season
from custody.errors import (
    ChainError,
    ClosedError,
    ConflictError,
    CustodyError,
    DecryptionError,
    DuplicateSignatureError,
    FormatError,
    FrozenError,
    NotFoundError,
    RecusedError,
    RoleError,
    SignatureError,
    ThresholdError,
    UsageError,
    WindowError,
)
from custody.incidents.desk import sealed_texts
from custody.incidents.model import list_incidents
from custody.interview_paper import parse_interview_paper
from custody.papers import (
    OPENING_ROLES,
    PaperPlan,
    PaperRole,
    PaperStatus,
)
from custody.store.paper_tables import PaperIncidentRow, PaperKeyRow, PaperRow
from keys.keyfile import KeyPair
from keys.model import RevocationReason, Role
from keys.statements import require, verify_statement
from tests.conftest import PASS, T0, fast_kdf

MARKER = "绝密-MARKER-7f3a9c".encode()
PLAIN = b"%PDF-1.7 question paper " + MARKER + bytes(range(256)) * 20
START = T0 + timedelta(days=2)
END = START + timedelta(hours=3)
IN_WINDOW = START + timedelta(minutes=10)
CHUNK = 1024


def plan(**changes: object) -> PaperPlan:
    base = PaperPlan(
        paper_id="SX-INT-P01-A",
        version=1,
        classification=Classification.TOP_SECRET,
        exam=EXAM_ID,
        position="P01",
        role=PaperRole.MAIN,
        backup_of=None,
        printer="print-qian",
        officers=("examiner-zheng", "supervisor-wang"),
        threshold=2,
        window_start=START,
        window_end=END,
        standby="secrecy-chen",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def propose(season: Season, p: PaperPlan, plain: bytes = PLAIN) -> ps.Proposed:
    return ps.propose(
        season.home,
        source=io.BytesIO(plain),
        plan=p,
        proposer=season.keys["prop-zhao"],
        now=T0,
        chunk_size=CHUNK,
        log=season.log(),
    )


@dataclass
class World:
    season: Season
    main: ps.Proposed

    def k(self, *people: str) -> list[KeyPair]:
        return [self.season.keys[p] for p in people]


@pytest.fixture
def world(season: Season) -> World:
    return World(season, propose(season, plan()))


QUORUM = ("examiner-zheng", "supervisor-wang")


def home_bytes(season: Season) -> bytes:
    return b"".join(p.read_bytes() for p in season.out.rglob("*") if p.is_file())


# --- the good path ------------------------------------------------------------------------------


def test_quorum_opens_inside_window_as_a_signed_act(world: World, tmp_path: Path) -> None:
    opened = ps.open_paper(
        world.season.home, "SX-INT-P01-A", world.k(*QUORUM), IN_WINDOW, log=world.season.log()
    )
    out = tmp_path / "paper.pdf"
    assert opened.write_file(out) == len(PLAIN)
    assert out.read_bytes() == PLAIN
    sink = io.BytesIO()
    opened.write_stream(sink)
    assert sink.getvalue() == PLAIN
    # the act verifies for an auditor: both officers, their roles, at the act's time
    trust = world.season.trust()
    reqs = [require(f"o{i}", *OPENING_ROLES, person=p) for i, p in enumerate(QUORUM)]
    check = verify_statement(opened.envelope, trust, reqs, at=IN_WINDOW, scope=[f"exam:{EXAM_ID}"])
    assert b'"break_glass":false' in check.payload
    assert world.main.proposal.commitment.encode() in check.payload
    assert opened.incident is None


def test_plaintext_and_key_never_rest_in_the_home(world: World, tmp_path: Path) -> None:
    release = ps.print_decrypt(
        world.season.home, "SX-INT-P01-A", world.k("print-qian")[0], T0, log=world.season.log()
    )
    sink = io.BytesIO()
    release.write_stream(sink)
    assert sink.getvalue() == PLAIN
    ps.open_paper(
        world.season.home, "SX-INT-P01-A", world.k(*QUORUM), IN_WINDOW, log=world.season.log()
    ).write_stream(io.BytesIO())
    stored = home_bytes(world.season)
    assert MARKER not in stored
    assert release.release.data_key not in stored
    assert world.main.blob.read_bytes().startswith(b"custody-paper/v1\n")


def _break_glass(world: World) -> ps.Opened:
    """The examiner and the secrecy officer open the main paper without the supervisor."""
    return ps.break_glass(
        world.season.home,
        "SX-INT-P01-A",
        world.k("examiner-zheng", "secrecy-chen"),
        IN_WINDOW,
        "supervisor's token failed to unlock",
        log=world.season.log(),
    )


def test_break_glass_opens_and_records_an_incident(world: World) -> None:
    opened = _break_glass(world)
    sink = io.BytesIO()
    opened.write_stream(sink)
    assert sink.getvalue() == PLAIN
    assert opened.incident is not None
    assert opened.incident.incident
    assert opened.incident.kind == "break_glass_opening"
    assert b'"absent":["supervisor-wang"]' in opened.envelope.payload
    # the act is on the custody log, and the desk opened the incident in that transaction
    (incident,) = list_incidents(world.season.home.engine)
    assert (incident.kind, incident.paper) == ("break_glass", "SX-INT-P01-A")
    # The reason is the people's words: sealed to the secrecy officers in the act, never in
    # clear on the log nor copied into the incident; a secrecy officer opens it.
    reason = "supervisor's token failed to unlock"
    assert b'"reason_sealed"' in opened.envelope.payload
    assert b"token failed" not in opened.envelope.payload
    assert "token failed" not in incident.detail and "token failed" not in opened.incident.summary
    log = world.season.log()
    assert not any(b"token failed" in log.entry(i).payload for i in range(log.size()))
    officer = world.season.keys["secrecy-chen"].encryption
    assert officer is not None
    texts = sealed_texts(world.season.home.engine, incident, officer.key_id, officer)
    assert [(t["kind"], t["field"], t["note"]) for t in texts] == [
        ("break_glass", "reason", reason)
    ]


def test_deleting_the_paper_rows_after_break_glass_leaves_the_log_entry_and_the_incident(
    world: World,
) -> None:
    """The attack of the trust-boundary issue: after a break-glass opening, delete the paper
    tables' rows of the act and of its incident. The act is a statement on the custody log
    (hashed into the tree, in every checkpoint after it) and the incident is the desk's, opened
    in the same transaction: neither goes with those rows, and the log still verifies."""
    from sqlalchemy import text

    from custody.audit import verify_log
    from custody.events import Kind, parse_event
    from custody.incidents.model import list_incidents as incidents_now

    _break_glass(world)
    with world.season.home.engine.begin() as conn:
        gone = conn.execute(text("DELETE FROM paper_act")).rowcount
        gone += conn.execute(text("DELETE FROM paper_incident")).rowcount
    log = world.season.log()
    events = [parse_event(log.entry(i).payload) for i in range(log.size())]
    acts = [parse_envelope(e.body["act"]) for e in events if e.kind == Kind.PAPER_ACT]
    opened = [a for a in acts if b'"break_glass":true' in a.payload]
    assert len(opened) == 1  # the opening, still on the log
    assert b"SX-INT-P01-A" in opened[0].payload
    assert [(i.kind, i.paper) for i in incidents_now(world.season.home.engine)] == [
        ("break_glass", "SX-INT-P01-A")
    ]
    lines = [log.leaf(i) for i in range(log.size())]
    report = verify_log(world.season.trust(), log.latest_checkpoint(), lines)
    assert report.ok, report.problems
    assert report.checked == log.size()
    assert gone >= 1  # the rows were there, and are gone


def test_backup_activation_replaces_the_main_paper(world: World) -> None:
    backup = propose(
        world.season,
        plan(paper_id="SX-INT-P01-B", role=PaperRole.BACKUP, backup_of="SX-INT-P01-A"),
        b"backup paper",
    )
    env = ps.activate_backup(
        world.season.home,
        "SX-INT-P01-A",
        "SX-INT-P01-B",
        world.k("secrecy-chen")[0],
        T0 + timedelta(hours=1),
        "photo of question 2 seen online",
        log=world.season.log(),
    )
    assert backup.proposal.commitment.encode() in env.payload
    assert b'"reason_sealed"' in env.payload and b"question 2" not in env.payload
    statuses = {s.paper_id: s.status for s in ps.list_papers(world.season.home)}
    assert statuses == {"SX-INT-P01-A": "compromised", "SX-INT-P01-B": "active"}
    with pytest.raises(FrozenError):
        ps.open_paper(
            world.season.home, "SX-INT-P01-A", world.k(*QUORUM), IN_WINDOW, log=world.season.log()
        )
    sink = io.BytesIO()
    ps.open_paper(
        world.season.home, "SX-INT-P01-B", world.k(*QUORUM), IN_WINDOW, log=world.season.log()
    ).write_stream(sink)
    assert sink.getvalue() == b"backup paper"


def test_crypto_shredding_leaves_nothing_that_opens(world: World, tmp_path: Path) -> None:
    home = world.season.home
    with Session(home.engine) as s:
        sealed = [r.sealed for r in s.exec(select(PaperKeyRow))]
    assert len(sealed) == 5  # printer, two officers, standby, the log service
    ps.destroy(
        home, "SX-INT-P01-A", world.k("destroy-feng", "secrecy-chen"), END, log=world.season.log()
    )
    with Session(home.engine) as s:
        assert list(s.exec(select(PaperKeyRow))) == []
    stored = home_bytes(world.season)
    for blob in sealed:  # not even in free pages or the WAL
        assert blob not in stored
    assert world.main.blob.exists()  # the ciphertext stays, useless
    out = tmp_path / "x"
    for attempt in (
        lambda: ps.open_paper(
            home, "SX-INT-P01-A", world.k(*QUORUM), IN_WINDOW, log=world.season.log()
        ),
        lambda: ps.print_decrypt(
            home, "SX-INT-P01-A", world.k("print-qian")[0], T0, log=world.season.log()
        ),
        lambda: ps.break_glass(
            home,
            "SX-INT-P01-A",
            world.k("examiner-zheng", "secrecy-chen"),
            IN_WINDOW,
            "x",
            log=world.season.log(),
        ),
    ):
        with pytest.raises(ClosedError):
            attempt()
    assert not out.exists()
    with pytest.raises(ClosedError):
        ps.destroy(
            home,
            "SX-INT-P01-A",
            world.k("destroy-feng", "secrecy-chen"),
            END,
            log=world.season.log(),
        )


# --- every refusal of opening -------------------------------------------------------------------


def _wrong_encryption_key(w: World) -> list[KeyPair]:
    real = w.season.keys["examiner-zheng"]
    impostor = KeyPair.generate("examiner-zheng")
    return [
        KeyPair(real.label, real.signing, impostor.encryption),
        w.season.keys["supervisor-wang"],
    ]


def _other_paper_share(w: World) -> None:
    """Move the supervisor's share of another paper onto this one."""
    propose(w.season, plan(paper_id="SX-INT-P02-A", position="P02"))
    with Session(w.season.home.engine) as s:
        rows = list(s.exec(select(PaperKeyRow).where(PaperKeyRow.subject == "supervisor-wang")))
        by_ref = {r.paper_ref: r for r in rows}
        by_ref["SX-INT-P01-A@v1"].sealed = by_ref["SX-INT-P02-A@v1"].sealed
        s.add(by_ref["SX-INT-P01-A@v1"])
        s.commit()


def _edit_proposal_in_db(w: World) -> None:
    with Session(w.season.home.engine) as s:
        row = s.get(PaperRow, "SX-INT-P01-A@v1")
        assert row is not None
        row.proposal = row.proposal.replace(b"eyJiYWNr", b"eyJiYWNl")  # one payload byte
        s.add(row)
        s.commit()


def _newer_version(w: World) -> None:
    propose(w.season, plan(version=2), b"v2")


def _destroyed(w: World) -> None:
    ps.destroy(
        w.season.home, "SX-INT-P01-A", w.k("destroy-feng", "secrecy-chen"), T0, log=w.season.log()
    )


A = "SX-INT-P01-A"
W = IN_WINDOW
Setup = Callable[[World], None] | None
Keys = Callable[[World], list[KeyPair]]


def _k(*people: str) -> Keys:
    return lambda w: w.k(*people)


Q = _k(*QUORUM)
SUP = "supervisor-wang"
REFUSALS: list[tuple[str, Setup, Keys, str, object, type[CustodyError]]] = [
    ("wrong-key", None, _wrong_encryption_key, A, W, DecryptionError),
    ("too-few-shares", None, _k(SUP), A, W, ThresholdError),
    ("same-officer-twice", None, _k(SUP, SUP), A, W, DuplicateSignatureError),
    ("no-opening-role", None, _k("courier-sun", SUP), A, W, RoleError),
    ("not-a-named-officer", None, _k("print-qian", SUP), A, W, RoleError),
    ("standby-in-normal-opening", None, _k("secrecy-chen", SUP), A, W, RoleError),
    ("before-window", None, Q, A, START - timedelta(seconds=1), WindowError),
    ("after-window", None, Q, A, END + timedelta(seconds=1), WindowError),
    ("replayed-older-version", _newer_version, Q, f"{A}@v1", W, ChainError),
    ("destroyed-paper", _destroyed, Q, A, W, ClosedError),
    ("share-replayed-from-other-paper", _other_paper_share, Q, A, W, SignatureError),
    ("proposal-edited-in-db", _edit_proposal_in_db, Q, A, W, SignatureError),
    ("unknown-paper", None, Q, "NOPE", W, NotFoundError),
]  # fmt: skip


@pytest.mark.parametrize(
    ("setup", "keys", "paper", "at", "expected"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_opening_refusals(
    world: World,
    tmp_path: Path,
    setup: Callable[[World], None] | None,
    keys: Callable[[World], list[KeyPair]],
    paper: str,
    at: object,
    expected: type[CustodyError],
) -> None:
    if setup is not None:
        setup(world)
    before = len(list(ps.incidents(world.season.home)))
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def attempt() -> None:
        opened = ps.open_paper(world.season.home, paper, keys(world), at, log=world.season.log())  # type: ignore[arg-type]
        opened.write_file(out_dir / "paper.pdf")

    with pytest.raises(expected):
        attempt()
    assert list(out_dir.iterdir()) == []  # nothing reached any output
    assert len(ps.incidents(world.season.home)) == before


@pytest.fixture
def three(season: Season) -> tuple[Season, KeyPair]:
    """A 2-of-3 paper: examiner-ma, supervisor-wang, examiner-zheng."""
    ma = KeyPair.generate("examiner-ma")
    identity.enroll(
        season.home, root_passphrase=PASS, subject="examiner-ma", name="马 Ma",
        organisation="panel", roles=[Role.CHIEF_EXAMINER], not_before=T0 - timedelta(days=1),
        not_after=T0 + timedelta(days=100), passphrase=PASS, now=T0, kdf=fast_kdf(), pair=ma,
        key_out=season.out / "ma.key",
    )  # fmt: skip
    propose(season, plan(officers=("examiner-ma", "supervisor-wang", "examiner-zheng")))
    return season, ma


def test_two_of_three_opens_with_any_two_including_a_supervisor(
    three: tuple[Season, KeyPair],
) -> None:
    season, ma = three
    opened = ps.open_paper(
        season.home,
        "SX-INT-P01-A",
        [ma, season.keys["supervisor-wang"]],
        IN_WINDOW,
        log=season.log(),
    )
    sink = io.BytesIO()
    opened.write_stream(sink)
    assert sink.getvalue() == PLAIN


def test_two_examiners_without_supervisor_refused(three: tuple[Season, KeyPair]) -> None:
    season, ma = three
    with pytest.raises(ThresholdError):
        ps.open_paper(
            season.home,
            "SX-INT-P01-A",
            [ma, season.keys["examiner-zheng"]],
            IN_WINDOW,
            log=season.log(),
        )


def test_recused_officer_refused(three: tuple[Season, KeyPair]) -> None:
    """An officer found to have a conflict after proposition cannot open."""
    season, ma = three
    later = T0 + timedelta(days=1)
    recused = KeyPair("examiner-ma", SigningKey.generate(), ma.encryption)
    identity.enroll(
        season.home, root_passphrase=PASS, subject="examiner-ma", name="马 Ma",
        organisation="panel", roles=[Role.CHIEF_EXAMINER], not_before=later,
        not_after=T0 + timedelta(days=100), recusals=["position:P01"], passphrase=PASS,
        now=later, kdf=fast_kdf(), pair=recused, supersedes=ma.signing.key_id,
        key_out=season.out / "ma2.key",
    )  # fmt: skip
    identity.revoke(
        season.home, root_passphrase=PASS, key_id=ma.signing.key_id,
        reason=RevocationReason.CONFLICT_OF_INTEREST, effective_at=later, now=later,
    )  # fmt: skip
    with pytest.raises(RecusedError):
        ps.open_paper(
            season.home,
            "SX-INT-P01-A",
            [recused, season.keys["supervisor-wang"]],
            IN_WINDOW,
            log=season.log(),
        )


def test_stored_ciphertext_tampering_refused_without_output(world: World, tmp_path: Path) -> None:
    blob = world.main.blob
    original = blob.read_bytes()
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    for bad in (original[:-1] + bytes([original[-1] ^ 1]), original[:-200], original + b"\0"):
        blob.write_bytes(bad)
        opened = ps.open_paper(
            world.season.home, "SX-INT-P01-A", world.k(*QUORUM), IN_WINDOW, log=world.season.log()
        )
        out = tmp_path / "paper.pdf"
        with pytest.raises(DecryptionError):
            opened.write_file(out)
        sink = io.BytesIO()
        with pytest.raises(DecryptionError):
            opened.write_stream(sink)
        assert sink.getvalue() == b""
        assert list(tmp_path.iterdir()) == []


def test_replayed_older_ciphertext_refused(world: World, tmp_path: Path) -> None:
    """The stored v2 file swapped for v1's ciphertext: header and commitment both bind v2."""
    v1 = world.main.blob.read_bytes()
    v2 = propose(world.season, plan(version=2), b"second version")
    v2.blob.write_bytes(v1)
    opened = ps.open_paper(
        world.season.home, "SX-INT-P01-A", world.k(*QUORUM), IN_WINDOW, log=world.season.log()
    )
    sink = io.BytesIO()
    with pytest.raises(DecryptionError):
        opened.write_stream(sink)
    assert sink.getvalue() == b""


# --- break-glass, printing and proposition refusals ---------------------------------------------

BREAK_GLASS = [
    ("without-standby", ("examiner-zheng", "supervisor-wang"), "fault", RoleError),
    ("standby-alone", ("secrecy-chen",), "fault", ThresholdError),
    ("no-reason", ("examiner-zheng", "secrecy-chen"), " ", UsageError),
    ("outsider-with-standby", ("courier-sun", "secrecy-chen"), "fault", RoleError),
]


@pytest.mark.parametrize(
    ("people", "reason", "expected"), [b[1:] for b in BREAK_GLASS], ids=[b[0] for b in BREAK_GLASS]
)
def test_break_glass_refusals(
    world: World, people: tuple[str, ...], reason: str, expected: type[CustodyError]
) -> None:
    with pytest.raises(expected):
        ps.break_glass(
            world.season.home,
            "SX-INT-P01-A",
            world.k(*people),
            IN_WINDOW,
            reason,
            log=world.season.log(),
        )
    with Session(world.season.home.engine) as s:
        assert list(s.exec(select(PaperIncidentRow))) == []


def test_break_glass_outside_window_refused(world: World) -> None:
    with pytest.raises(WindowError):
        ps.break_glass(
            world.season.home,
            "SX-INT-P01-A",
            world.k("examiner-zheng", "secrecy-chen"),
            T0,
            "x",
            log=world.season.log(),
        )


@pytest.mark.parametrize(
    ("who", "at", "expected"),
    [
        ("supervisor-wang", T0, RoleError),
        ("print-qian", END + timedelta(seconds=1), WindowError),
    ],
    ids=["not-the-printer", "after-window"],
)
def test_print_refusals(world: World, who: str, at: object, expected: type[CustodyError]) -> None:
    with pytest.raises(expected):
        ps.print_decrypt(
            world.season.home, "SX-INT-P01-A", world.k(who)[0], at, log=world.season.log()
        )  # type: ignore[arg-type]


BACKUP = PaperRole.BACKUP
PROPOSE_REFUSALS: list[tuple[str, dict[str, object], type[CustodyError]]] = [
    ("printer-without-role", {"printer": "courier-sun"}, RoleError),
    ("officer-without-role", {"officers": ("examiner-zheng", "courier-li")}, RoleError),
    ("no-supervisor", {"officers": ("examiner-zheng",), "threshold": 1}, ThresholdError),
    ("threshold-above-officers", {"threshold": 3}, ThresholdError),
    ("officer-twice", {"officers": (SUP, SUP)}, DuplicateSignatureError),
    ("standby-without-role", {"standby": "auditor-chu"}, RoleError),
    ("courier-as-standby", {"standby": "courier-he"}, RoleError),
    ("window-reversed", {"window_end": START - timedelta(hours=1)}, WindowError),
    ("backup-of-missing", {"role": BACKUP, "backup_of": "NO", "paper_id": "B"}, NotFoundError),
    ("second-main", {"paper_id": "OTHER-MAIN"}, ConflictError),
    ("replayed-version", {"version": 1}, ConflictError),
    ("unknown-person", {"printer": "nobody"}, CustodyError),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "expected"), [r[1:] for r in PROPOSE_REFUSALS], ids=[r[0] for r in PROPOSE_REFUSALS]
)
def test_proposition_refusals(
    world: World, changes: dict[str, object], expected: type[CustodyError]
) -> None:
    before = sorted(ps.papers_dir(world.season.home).iterdir())
    with pytest.raises(expected):
        propose(world.season, plan(**changes))
    assert sorted(ps.papers_dir(world.season.home).iterdir()) == before  # no stray ciphertext


def test_proposer_must_hold_the_role(season: Season) -> None:
    with pytest.raises(RoleError):
        ps.propose(
            season.home,
            source=io.BytesIO(PLAIN),
            plan=plan(),
            proposer=season.keys["courier-sun"],
            now=T0,
            log=season.log(),
        )


def test_samples_are_valid_interview_papers() -> None:
    root = Path(__file__).resolve().parents[2] / "custody" / "samples"
    main = parse_interview_paper((root / "interview-main.json").read_bytes())
    backup = parse_interview_paper((root / "interview-backup.json").read_bytes())
    assert main.total_points == backup.total_points
    assert "面试" in main.title
    assert main.questions != backup.questions


def test_status_reflects_supersession(world: World) -> None:
    propose(world.season, plan(version=2), b"v2")
    status = {s.ref: s.status for s in ps.list_papers(world.season.home)}
    assert status == {
        "SX-INT-P01-A@v1": PaperStatus.SUPERSEDED.value,
        "SX-INT-P01-A@v2": PaperStatus.ACTIVE.value,
    }
    envs = [parse_envelope(r) for r in [world.main.envelope.to_bytes()]]
    assert envs[0].payload_type.endswith("paper-proposal.v1+json")


def test_break_glass_becomes_an_incident_once(world: World) -> None:
    from custody.events import Kind, parse_event

    _break_glass(world)
    log = world.season.log()
    assert log.ingest_paper_incidents(IN_WINDOW) == []  # nothing left to take in: it is done
    (incident,) = list_incidents(world.season.home.engine)
    assert incident.kind == "break_glass"
    assert incident.paper == "SX-INT-P01-A"
    kinds = [parse_event(log.entry(i).payload) for i in range(log.size())]
    acts = [e.body["act_kind"] for e in kinds if e.kind == Kind.PAPER_ACT]
    assert acts == ["proposal", "break_glass"]


def test_a_stored_status_this_version_does_not_know_is_a_format_error(world: World) -> None:
    """A damaged row is refused by name (FormatError), not a crash; listing still shows it."""
    with Session(world.season.home.engine) as s:
        row = s.get(PaperRow, "SX-INT-P01-A@v1")
        assert row is not None
        row.status = "misplaced"
        s.add(row)
        s.commit()
    with pytest.raises(FormatError, match="misplaced"):
        ps.load_state(world.season.home, "SX-INT-P01-A")
    assert [p.status for p in ps.list_papers(world.season.home)] == ["misplaced"]
