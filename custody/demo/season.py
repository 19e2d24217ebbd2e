"""The demo's season: an authority, one person per role, keys in memory, and a clock.

The season is also the project's simulator: tests build a ``Season`` and tamper with it freely.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crypto.dsse import Envelope, sign_envelope
from crypto.encoding import canonical_json, format_time
from crypto.sealing import KdfParams
from custody import identity
from custody.errors import N_, ConflictError, NotFoundError, UsageError
from custody.events import Event, Kind
from custody.exams import EXAMS_FILE, ExamPolicy
from custody.home import Home
from custody.incidents.model import WatchedLog
from custody.log import Receipt
from custody.service import ServiceSecrets, open_writer
from keys.keyfile import KeyPair, read_keyfile, write_new_file
from keys.model import Authority, Role
from keys.trust import TrustStore

AUTHORITY_NAME = "陕西省人事考试中心 (Shaanxi Personnel Examination Centre)"
EXAM_ID = "SX-2027-INT"

# (person id, name, organisation, roles, recusals)
PEOPLE: tuple[tuple[str, str, str, tuple[Role, ...], tuple[str, ...]], ...] = (
    ("prop-zhao", "赵敏 Zhao Min", "命题中心 Proposition Centre", (Role.PROPOSER,), ()),
    ("print-qian", "钱峰 Qian Feng", "保密印刷厂 Classified Printing Unit", (Role.PRINTER,), ()),
    ("courier-sun", "孙立 Sun Li", "机要交通 Confidential Courier", (Role.COURIER,), ()),
    ("courier-li", "李伟 Li Wei", "机要交通 Confidential Courier", (Role.COURIER,), ()),
    ("custodian-zhou", "周静 Zhou Jing", "西安考点 Xi'an Exam Site", (Role.CUSTODIAN,), ()),
    ("custodian-wu", "吴刚 Wu Gang", "西安考点 Xi'an Exam Site", (Role.CUSTODIAN,), ()),
    ("examiner-zheng", "郑华 Zheng Hua", "面试考官组 Interview Panel", (Role.CHIEF_EXAMINER,), ()),
    ("supervisor-wang", "王芳 Wang Fang", "纪检监察 Discipline Inspection", (Role.SUPERVISOR,), ()),
    (
        "destroy-feng",
        "冯涛 Feng Tao",
        "保密办 Secrecy Office",
        (Role.DESTRUCTION_OFFICER,),
        (),
    ),
    (
        "secrecy-chen",
        "陈洁 Chen Jie",
        "省保密局 Provincial Secrecy Bureau",
        (Role.SECRECY_OFFICER,),
        (),
    ),
    ("auditor-chu", "褚明 Chu Ming", "审计 Audit Office", (Role.AUDITOR,), ()),
    (
        "courier-he",
        "何勇 He Yong",
        "机要交通 Confidential Courier",
        (Role.COURIER,),
        (f"exam:{EXAM_ID}",),  # a relative sits this exam: withdrawn from it
    ),
)

# What each person's reads are limited to (certificate ``scopes``; custody/access.py).
SCOPES: dict[str, tuple[str, ...]] = {
    "custodian-zhou": ("site:西安考点",),
    "custodian-wu": ("site:西安考点",),
    "examiner-zheng": (f"exam:{EXAM_ID}",),
    "supervisor-wang": (f"exam:{EXAM_ID}",),
}

Step = Callable[[str], None]


@dataclass
class Season:
    """A season in progress: the authority home, people's keys in memory, and a clock."""

    out: Path
    home: Home
    passphrase: str
    now: datetime
    keys: dict[str, KeyPair] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    kdf: KdfParams | None = None

    def tick(self, minutes: int = 5) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now

    def trust(self) -> TrustStore:
        return identity.load_trust(self.home)

    @property
    def authority(self) -> Authority:
        return self.trust().authority

    def sign(self, payload_type: str, body: dict[str, Any], *people: str) -> Envelope:
        return sign_envelope(
            payload_type, canonical_json(body), [self.keys[p].signing for p in people]
        )

    def log(self) -> WatchedLog:
        """The season's log service, assembled as every other path assembles it."""
        if "log" not in self.facts:
            secrets = ServiceSecrets(log=self.passphrase, system=self.passphrase)
            self.facts["log"] = open_writer(self.home, secrets)
        log = self.facts["log"]
        assert isinstance(log, WatchedLog)
        return log

    def refresh_trust(self) -> None:
        """After enrolment or revocation: the log judges signers against the new store."""
        self.log().set_trust(self.trust())

    def prev(self, package_id: str) -> str | None:
        try:
            return self.log().package_state(package_id).last_event
        except NotFoundError:
            return None

    def event(
        self,
        kind: Kind,
        packages: list[str],
        *,
        actors: dict[str, str],
        signers: list[str],
        body: dict[str, Any] | None = None,
        place: str = "",
        at: datetime | None = None,
        prevs: dict[str, str | None] | None = None,
    ) -> Envelope:
        """Build and sign an event; each package's previous event is read from the log."""
        ev = Event(
            kind=kind,
            authority=self.authority.id,
            time=at or self.tick(),
            place=place,
            packages=prevs if prevs is not None else {p: self.prev(p) for p in packages},
            actors=actors,
            body=body or {},
        )
        return ev.sign([self.keys[p].signing for p in signers])

    def submit(self, env: Envelope) -> Receipt:
        return self.log().submit(env, now=self.now)

    def publish_exam_policy(
        self, exam: str = EXAM_ID, *, handover_witness: bool | None = None
    ) -> Receipt | None:
        """Put the exam's policy on the log: the home's ``exams.json`` entry, or the same with
        ``handover_witness`` changed (a test sealing packages that need a witness); an exam the
        file does not name gets a year's retention."""
        try:
            policy = self.home.exam_policy(exam)
        except NotFoundError:
            policy = ExamPolicy(exam, bool(handover_witness), self.now + timedelta(days=365))
        if handover_witness is not None:
            policy = replace(policy, handover_witness=handover_witness)
        return self.log().publish_exam_policy(policy, now=self.now)


def fresh_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConflictError(
            N_("{out} already exists and is not empty; the demo refuses to mix two seasons"),
            hint=N_("pass a new folder to --out"),
            out=out,
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(N_("cannot create {out}: {strerror}"), out=out, strerror=e.strerror) from e


def write_exam_policy(home: Home, now: datetime) -> None:
    """The demo exam's policy in ``exams.json``: its packages move between couriers and
    custodians without a supervising witness, and its records are kept for a year."""
    body = {
        "exams": {
            EXAM_ID: {
                "handover_witness": False,
                "retention_until": format_time(now + timedelta(days=365)),
            }
        }
    }
    write_new_file(home.path / EXAMS_FILE, json.dumps(body, indent=2).encode() + b"\n")


def start_season(
    out: Path,
    *,
    now: datetime,
    passphrase: str | None = None,
    kdf: KdfParams | None = None,
    database_url: str | None = None,
    publish_exam_policy: bool = True,
) -> Season:
    """Create the authority and enrol one person per role (plus a recused courier); the exam's
    policy goes on the log unless ``publish_exam_policy`` is false (an empty log)."""
    fresh_out_dir(out)
    home = Home(out / "home")
    pw = passphrase or secrets.token_urlsafe(18)
    identity.init_authority(
        home,
        name=AUTHORITY_NAME,
        passphrase=pw,
        now=now,
        kdf=kdf,
        database_url=database_url,
        rehearsal=True,  # the demo drives its own clock
    )
    write_exam_policy(home, now)
    season = Season(out=out, home=home, passphrase=pw, now=now, kdf=kdf)
    for subject, name, org, roles, recusals in PEOPLE:
        enrolment = identity.enroll(
            home,
            root_passphrase=pw,
            subject=subject,
            name=name,
            organisation=org,
            roles=roles,
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=200),
            recusals=recusals,
            scopes=SCOPES.get(subject, ()),
            passphrase=pw,
            now=now,
            kdf=kdf,
        )
        assert enrolment.key_file is not None  # the demo generates every key itself
        season.keys[subject] = read_keyfile(enrolment.key_file, pw)
    identity.export_trust_bundle(home, root_passphrase=pw, out=out / "trust-bundle", now=now)
    if publish_exam_policy:
        season.publish_exam_policy()
    return season


def seal_body(
    *,
    exam: str = EXAM_ID,
    position: str,
    paper: str,
    copies: int,
    seals: list[str],
    window: tuple[datetime, datetime],
    route: list[str],
    handover_witness: bool = False,
) -> dict[str, Any]:
    return {
        "exam": exam,
        "position": position,
        "paper": paper,
        "copies": copies,
        "seals": seals,
        "window": {"start": format_time(window[0]), "end": format_time(window[1])},
        "route": route,
        "handover_witness": handover_witness,
    }


def seal_events(season: Season, package_ids: list[str]) -> list[bytes]:
    """Independent one-copy ``seal`` events (no chain between them): load for races and crashes."""
    window = (season.now + timedelta(hours=5), season.now + timedelta(hours=7))
    out = []
    for n, pid in enumerate(package_ids):
        body = seal_body(
            position="P",
            paper="PA",
            copies=1,
            seals=[f"S-{n}"],
            window=window,
            route=["courier-sun"],
        )
        env = season.event(
            Kind.SEAL,
            [pid],
            actors={"sealer": "print-qian"},
            signers=["print-qian"],
            body=body,
            prevs={pid: None},
            at=season.now,  # all at one moment: they are submitted at that moment
        )
        out.append(env.to_bytes())
    return out
