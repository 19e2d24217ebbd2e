"""The demo's custody season: a dozen packages along their routes, opened, recovered, destroyed;
then an export, a clean verification and a tampered copy that verification catches."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from crypto.dsse import parse_envelope
from crypto.encoding import b64encode, canonical_json
from custody.audit import (
    Report,
    export_bundle,
    load_trust_document,
    read_bundle,
    stream_lines,
    verify_log,
)
from custody.demo import EXAM_ID, Season, seal_body
from custody.events import Kind
from keys.keyfile import write_new_file

POSITIONS = ("P-01", "P-02", "P-03")
ROOMS = ("A", "B")
ROUTE = ["courier-sun", "courier-li", "custodian-zhou"]
COPIES = 30
EXAMINERS = {"examiner": "examiner-zheng", "supervisor": "supervisor-wang"}


@dataclass(frozen=True)
class PlannedPackage:
    package_id: str
    position: str
    paper: str
    backup: bool
    room: str
    seals: tuple[str, ...]


@dataclass
class CustodyPlay:
    packages: list[PlannedPackage] = field(default_factory=list)
    events: int = 0
    destroyed: int = 0


def plan_packages(papers: dict[tuple[str, bool], str]) -> list[PlannedPackage]:
    """Two rooms per position, a main-paper and a backup-paper package for each room."""
    out = []
    serial = 1000
    for position in POSITIONS:
        for backup in (False, True):
            for room in ROOMS:
                kind = "B" if backup else "M"
                pid = f"SX27-{position}-{kind}-{room}"
                seals = (f"SN{serial}", f"SN{serial + 1}")
                serial += 2
                out.append(
                    PlannedPackage(pid, position, papers[(position, backup)], backup, room, seals)
                )
    return out


def play_custody(season: Season, papers: dict[tuple[str, bool], str]) -> CustodyPlay:
    """Every package along its route; main papers opened in their window; all destroyed."""
    play = CustodyPlay(plan_packages(papers))
    window_start = season.now + timedelta(hours=6)
    window = (window_start, window_start + timedelta(hours=3))
    for p in play.packages:
        body = seal_body(
            position=p.position,
            paper=p.paper,
            copies=COPIES,
            seals=list(p.seals),
            window=window,
            route=ROUTE,
            handover_witness=False,
        )
        body["destination"] = {"site": "西安考点 Xi'an Exam Site", "room": p.room}
        _submit(
            season, play, Kind.SEAL, p, {"sealer": "print-qian"}, ["print-qian"], body, "保密印刷厂"
        )
    legs = [
        (Kind.DISPATCH, "print-qian", "courier-sun", "保密印刷厂 printing unit"),
        (Kind.HANDOVER, "courier-sun", "courier-li", "高速服务区 motorway services"),
    ]
    for kind, frm, to, place in legs:
        for p in play.packages:
            _transfer(season, play, kind, p, frm, to, place)
    for p in play.packages:
        actors = {
            "releaser": "courier-li",
            "receiver": "custodian-zhou",
            "custodian2": "custodian-wu",
        }
        signers = ["courier-li", "custodian-zhou", "custodian-wu"]
        _submit(
            season,
            play,
            Kind.RECEIVE,
            p,
            actors,
            signers,
            {"seals": list(p.seals)},
            "西安考点保密室",
        )
    for p in play.packages:
        inspector = {"inspector": "custodian-wu"}
        _submit(
            season,
            play,
            Kind.PATROL,
            p,
            inspector,
            ["custodian-wu"],
            {"seals": list(p.seals), "note": "all well"},
            "西安考点保密室",
        )
    season.now = window_start + timedelta(minutes=10)
    for p in play.packages:
        if p.backup:
            continue
        signers = list(EXAMINERS.values())
        _submit(
            season,
            play,
            Kind.OPEN,
            p,
            EXAMINERS,
            signers,
            {"seals": list(p.seals)},
            f"考场 room {p.room}",
        )
        _submit(
            season,
            play,
            Kind.DISTRIBUTE,
            p,
            EXAMINERS,
            signers,
            {"copies": COPIES, "rooms": [p.room]},
            f"考场 room {p.room}",
        )
    season.tick(90)
    for p in play.packages:
        if p.backup:
            continue
        signers = list(EXAMINERS.values())
        _submit(
            season,
            play,
            Kind.RECOVER,
            p,
            EXAMINERS,
            signers,
            {"copies": COPIES},
            f"考场 room {p.room}",
        )
        actors = {"releaser": "examiner-zheng", "receiver": "custodian-zhou"}
        _submit(
            season,
            play,
            Kind.RETURN,
            p,
            actors,
            ["examiner-zheng", "custodian-zhou"],
            {"seals": []},
            "西安考点保密室",
        )
    season.tick(120)
    # One destruction certificate closes every chain at once.
    copies = {p.package_id: COPIES for p in play.packages}
    env = season.event(
        Kind.DESTROY,
        [p.package_id for p in play.packages],
        actors={"officer": "destroy-feng", "witness": "supervisor-wang"},
        signers=["destroy-feng", "supervisor-wang"],
        body={
            "method": "pulping under supervision",
            "copies": copies,
            "certificate": f"DC-{EXAM_ID}-001",
        },
        place="省保密销毁中心 Provincial destruction centre",
    )
    season.submit(env)
    play.events += 1
    play.destroyed = len(play.packages)
    return play


def _submit(
    season: Season,
    play: CustodyPlay,
    kind: Kind,
    p: PlannedPackage,
    actors: dict[str, str],
    signers: list[str],
    body: dict[str, Any],
    place: str,
) -> None:
    receipt = season.submit(
        season.event(kind, [p.package_id], actors=actors, signers=signers, body=body, place=place)
    )
    if receipt.findings:  # pragma: no cover - the clean season must raise nothing
        raise AssertionError(f"clean demo season raised findings: {receipt.findings}")
    play.events += 1


def _transfer(
    season: Season, play: CustodyPlay, kind: Kind, p: PlannedPackage, frm: str, to: str, place: str
) -> None:
    actors = {"releaser": frm, "receiver": to}
    _submit(season, play, kind, p, actors, [frm, to], {"seals": list(p.seals)}, place)


def verify_export(folder: Path) -> Report:
    trust_doc, checkpoint = read_bundle(folder)
    trust = load_trust_document(trust_doc, pinned_root_id=None)
    return verify_log(trust, checkpoint, stream_lines(folder / "events.jsonl"), require_closed=True)


def tamper_copy(export: Path, target: Path, index: int) -> str:
    """Copy the export and, in the copy, change the seal serials an event records."""
    shutil.copytree(export, target)
    path = target / "events.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    env = parse_envelope(lines[index])
    payload = json.loads(env.payload)
    payload["body"]["seals"] = ["SN9999", *payload["body"].get("seals", [])[1:]]
    obj = env.to_json_obj()
    obj["payload"] = b64encode(canonical_json(payload))
    lines[index] = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    return f"event #{index}: seal serials rewritten in {path.name}"


def audit_season(season: Season, out: Path) -> dict[str, Any]:
    export = out / "export"
    manifest = export_bundle(season.log(), export)
    clean = verify_export(export)
    tampered_dir = out / "export-tampered"
    what = tamper_copy(export, tampered_dir, index=30)
    tampered = verify_export(tampered_dir)
    results = {"clean": clean.as_dict(), "tampered": {"tampering": what, **tampered.as_dict()}}
    write_new_file(
        out / "verification.json",
        json.dumps(results, ensure_ascii=False, indent=2).encode() + b"\n",
        mode=0o644,
    )
    return {"export": manifest, "clean": clean, "tampered": tampered, "tampering": what}
