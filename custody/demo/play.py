"""`custody demo`: a season played end to end on the embedded default, inside one folder."""

from __future__ import annotations

import contextlib
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crypto.encoding import format_time
from crypto.sealing import KdfParams
from custody.demo import breaches
from custody.demo import log as demo_log
from custody.demo import papers as demo_papers
from custody.demo.season import (
    EXAM_ID,
    Season,
    Step,
    fresh_out_dir,
    start_season,
)
from custody.errors import N_, CustodyError, Said
from custody.incidents.model import list_incidents
from keys.keyfile import write_new_file
from keys.model import Role
from keys.statements import require, verify_statement
from keys.trust import load_trust_bundle

INCIDENT_SUMMARY = (
    *("id", "kind", "severity", "status", "package", "level_name", "scope", "containment"),
)
HANDOVER_TYPE = "application/vnd.custody.demo-handover.v1+json"


def _english(value: object) -> str:
    """How summary.json writes a sentence for people (``Said``): its English."""
    if isinstance(value, Said):
        return value.english
    raise TypeError(f"{type(value).__name__} is not JSON")


def statements_step(season: Season) -> dict[str, Any]:
    """Sign a countersigned handover and check it offline, then show two refusals."""
    trust = load_trust_bundle((season.out / "trust-bundle").read_bytes())
    at = season.tick()
    body = {
        "kind": "handover",
        "exam": EXAM_ID,
        "from": "courier-sun",
        "to": "custodian-zhou",
        "time": format_time(at),
    }
    reqs = [
        require("releaser", Role.COURIER, person="courier-sun"),
        require("receiver", Role.CUSTODIAN, person="custodian-zhou"),
    ]
    scope = [f"exam:{EXAM_ID}"]
    both = season.sign(HANDOVER_TYPE, body, "courier-sun", "custodian-zhou")
    check = verify_statement(both, trust, reqs, at=at, scope=scope)
    refusals: dict[str, Said] = {}
    one = season.sign(HANDOVER_TYPE, body, "courier-sun")
    recused_body = {**body, "from": "courier-he"}
    recused = season.sign(HANDOVER_TYPE, recused_body, "courier-he", "custodian-zhou")
    recused_reqs = [require("releaser", Role.COURIER), reqs[1]]
    for label, env, rq in (
        (N_("receiver missing"), one, reqs),
        (N_("recused courier"), recused, recused_reqs),
    ):
        try:
            verify_statement(env, trust, rq, at=at, scope=scope)
        except CustodyError as e:
            refusals[label] = Said("{code}: {error}", {"code": e.code, "error": e})
        else:  # pragma: no cover - a demo that accepts these would be a defect
            raise AssertionError(f"demo: {label} was accepted")
    return {"handover": check.said(), "refusals": refusals}


STEPS = 9  # how many steps run_demo announces through ``say`` (for a progress count)
SEASON_LEAD = timedelta(days=2)  # the season is played this long before the demo's end


def season_start(end: datetime) -> datetime:
    """When the season's clock starts so that it has run its course by ``end``: a whole hour
    ``SEASON_LEAD`` before. Everything the demo writes is then dated in the past, and its
    labels, certificates and export verify at once on the real clock."""
    return (end - SEASON_LEAD).replace(minute=0, second=0, microsecond=0)


def run_demo(
    out: Path,
    *,
    now: datetime,
    passphrase: str | None = None,
    say: Step = lambda _text: None,
    kdf: KdfParams | None = None,
) -> dict[str, Any]:
    """Play a season into ``out`` (a new or empty folder) and return its summary.

    ``now`` is the moment the demo ends by (the real clock, or ``--now`` in a rehearsal): the
    season's own clock starts ``SEASON_LEAD`` earlier and is driven by the demo, and the
    statements left for the user to submit (``statements/``) are dated ``now``. A demo that
    fails removes everything it wrote, so the same command can simply be run again."""
    fresh_out_dir(out)  # refuses a used folder before anything is written or removed
    try:
        return _play(out, now=now, passphrase=passphrase, say=say, kdf=kdf)
    except BaseException:
        _remove_contents(out)
        raise


def _remove_contents(out: Path) -> None:
    """Remove what a failed demo wrote under ``out`` (a folder that was new or empty), and the
    folder itself when it is left empty."""
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        out.rmdir()


def _play(
    out: Path,
    *,
    now: datetime,
    passphrase: str | None,
    say: Step,
    kdf: KdfParams | None,
) -> dict[str, Any]:
    say("creating the authority and enrolling people in every role")
    season = start_season(out, now=season_start(now), passphrase=passphrase, kdf=kdf)
    trust = season.trust()
    say("signing and verifying statements, and refusing two bad ones")
    statements = statements_step(season)

    say("attaching the incident desk: every statement is watched from here on")
    breaches.attach(season)

    window = (season.now + timedelta(hours=6), season.now + timedelta(hours=9))
    say("proposing papers: encrypted at once, keys sealed to the printer and the officers")
    papers = demo_papers.propose_papers(season, demo_log.POSITIONS, window)
    say("sealing a dozen packages, printing their labels, handing them along their routes")
    play = demo_log.play_custody(
        season,
        papers.refs,
        papers.commitments,
        out / "labels",
        window,
        open_paper=lambda ref: demo_papers.open_paper(season, papers, ref),
    )
    say("shredding the papers' keys after destruction")
    demo_papers.shred_papers(season, papers)
    clean_incidents = list_incidents(season.home.engine)
    say("playing three breaches on packages of their own: incidents, containment, reports")
    reports = breaches.play_breaches(season, out)
    incidents = list_incidents(season.home.engine)
    say("sealing one more package and signing its first handovers for you to submit")
    pending = demo_log.pending_package(
        season, papers.commitments, out / "labels", out / "statements", now=now
    )
    say("exporting the log and verifying it offline (and a tampered copy)")
    audit = demo_log.audit_season(season, out)
    if season.now > now:  # pragma: no cover - a defect: the season must end in the past
        raise AssertionError(f"demo season ran past its end: {season.now} > {now}")
    clean, tampered = audit["clean"], audit["tampered"]
    summary = {
        "authority": trust.authority.name,
        "authority_id": trust.authority.id,
        "people": {c.subject: sorted(c.roles) for c in trust.certificates.values()},
        "trust_bundle": str(out / "trust-bundle"),
        "statements": {**statements, **pending},
        "packages": [p.package_id for p in play.packages],
        "labels": [str(p) for p in play.labels],
        "papers": {
            "proposed": sorted(papers.commitments),
            "opened_by_quorum": sorted(papers.openings),
            "shredded": papers.shredded,
        },
        "events": season.log().size(),
        "destroyed": play.destroyed,
        "incidents": {
            "raised_by_clean_season": len(clean_incidents),
            "breaches": [
                {k: v for k, v in i.as_dict().items() if k in INCIDENT_SUMMARY} for i in incidents
            ],
            "reports": [str(p) for p in reports],
        },
        "export": str(out / "export"),
        "verify_clean": {"ok": clean.ok, "events": clean.checked, "signatures": clean.signatures},
        "verify_tampered": {
            "ok": tampered.ok,
            "tampering": audit["tampering"],
            # each message also as a sentence (``Said``): summary.json keeps the English
            "problems": [
                {**p.as_dict(), "message": p.said or p.message} for p in tampered.problems
            ],
        },
    }
    write_new_file(
        out / "summary.json",
        json.dumps(summary, ensure_ascii=False, indent=2, default=_english).encode() + b"\n",
        mode=0o644,
    )
    return summary
