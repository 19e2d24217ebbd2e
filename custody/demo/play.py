"""`custody demo`: a season played end to end on the embedded default, inside one folder."""

from __future__ import annotations

import json
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
    start_season,
)
from custody.errors import CustodyError
from custody.incidents.model import list_incidents
from keys.keyfile import write_new_file
from keys.model import Role
from keys.statements import require, verify_statement
from keys.trust import load_trust_bundle

INCIDENT_SUMMARY = (
    *("id", "kind", "severity", "status", "package", "level_name", "scope", "containment"),
)
HANDOVER_TYPE = "application/vnd.custody.demo-handover.v1+json"


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
    statements_dir = season.out / "statements"
    write_new_file(statements_dir / "handover.dsse.json", both.to_bytes() + b"\n", mode=0o644)
    refusals: dict[str, str] = {}
    one = season.sign(HANDOVER_TYPE, body, "courier-sun")
    recused_body = {**body, "from": "courier-he"}
    recused = season.sign(HANDOVER_TYPE, recused_body, "courier-he", "custodian-zhou")
    recused_reqs = [require("releaser", Role.COURIER), reqs[1]]
    for label, env, rq in (
        ("receiver missing", one, reqs),
        ("recused courier", recused, recused_reqs),
    ):
        try:
            verify_statement(env, trust, rq, at=at, scope=scope)
        except CustodyError as e:
            refusals[label] = f"{e.code}: {e.message}"
        else:  # pragma: no cover - a demo that accepts these would be a defect
            raise AssertionError(f"demo: {label} was accepted")
    return {"handover": check.summary(), "refusals": refusals}


def run_demo(
    out: Path,
    *,
    now: datetime,
    passphrase: str | None = None,
    say: Step = lambda _text: None,
    kdf: KdfParams | None = None,
) -> dict[str, Any]:
    say("creating the authority and enrolling people in every role")
    season = start_season(out, now=now, passphrase=passphrase, kdf=kdf)
    trust = season.trust()
    say(f"signing and verifying statements ({len(trust.certificates)} people enrolled)")
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
    say("exporting the log and verifying it offline (and a tampered copy)")
    audit = demo_log.audit_season(season, out)
    clean, tampered = audit["clean"], audit["tampered"]
    summary = {
        "authority": trust.authority.name,
        "authority_id": trust.authority.id,
        "people": {c.subject: sorted(c.roles) for c in trust.certificates.values()},
        "trust_bundle": str(out / "trust-bundle"),
        "statements": statements,
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
            "problems": [p.as_dict() for p in tampered.problems],
        },
    }
    write_new_file(
        out / "summary.json",
        json.dumps(summary, ensure_ascii=False, indent=2).encode() + b"\n",
        mode=0o644,
    )
    return summary
