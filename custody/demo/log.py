"""The demo's custody season: a dozen packages along their routes, opened, recovered, destroyed;
then an export, a clean verification and a tampered copy that verification catches."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crypto.dsse import Envelope
from crypto.encoding import canonical_json, format_time
from custody.audit import (
    Report,
    export_bundle,
    load_trust_document,
    read_bundle,
    verify_bundle,
)
from custody.demo import EXAM_ID, Season
from custody.errors import N_, Said
from custody.events import Kind, leaf_bytes, parse_leaf, statement_id
from custody.package_service import label_text, load_labels, seal_event, seal_package
from custody.packages import Classification, Manifest, RouteStep
from keys.keyfile import write_new_file
from labels.qr import encode_qr
from labels.render import render_png
from labels.sheet import write_sheets

POSITIONS = ("P-01", "P-02", "P-03")
ROOMS = ("01", "02")
ROUTE_PLACES = (
    ("print-qian", "PRT-01"),
    ("courier-sun", "ROAD-1"),
    ("courier-li", "ROAD-2"),
    ("custodian-zhou", "XA-01"),
)
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
    labels: list[Path] = field(default_factory=list)


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


def manifest_for(
    p: PlannedPackage, commitment: bytes, window: tuple[datetime, datetime], now: datetime
) -> Manifest:
    return Manifest(
        package_id=p.package_id,
        exam_id=EXAM_ID,
        session="AM",
        position=p.position,
        paper_id=p.paper.split("@")[0],  # the commitment names the exact version
        paper_commitment=commitment,
        copy_count=COPIES,
        bag_size=COPIES // len(p.seals),
        seal_serials=p.seals,
        site="西安考点",
        room=f"第{p.room}考场",
        opens_at=window[0],
        closes_at=window[1],
        route=tuple(RouteStep(person, place) for person, place in ROUTE_PLACES),
        classification=Classification.TOP_SECRET,
        issued_at=now,
        expires_at=window[1] + timedelta(days=30),
    )


def seal_and_label(
    season: Season,
    play: CustodyPlay,
    commitments: dict[str, bytes],
    window: tuple[datetime, datetime],
    labels_dir: Path,
    *,
    sheet: bool = True,
) -> list[Path]:
    """Seal each package (signed QR manifest + seal event), then print its labels (PNG each,
    and an A4 sheet of them all unless ``sheet`` is false)."""
    sealer = season.keys["print-qian"].signing
    trust = season.trust()
    cert = trust.certificate(sealer.key_id)
    witness = season.home.exam_policy(EXAM_ID).handover_witness
    for p in play.packages:
        manifest = manifest_for(p, commitments[p.paper], window, season.tick(1))
        seal_package(season.home, manifest, sealer, now=season.now)
        text = label_text(season.home, p.package_id)
        event = seal_event(
            manifest, text, cert, trust.authority.id, sealer, handover_witness=witness
        )
        receipt = season.submit(event)
        if receipt.findings:  # pragma: no cover
            raise AssertionError(f"clean demo season raised findings: {receipt.findings}")
        play.events += 1
    written: list[Path] = []
    labels = list(load_labels(season.home, [p.package_id for p in play.packages], now=season.now))
    for text, verified in labels:
        path = labels_dir / f"{verified.manifest.package_id}.png"
        write_new_file(path, render_png(verified.manifest, encode_qr(text)), mode=0o644)
        written.append(path)
    if sheet:
        pairs = ((v.manifest, encode_qr(text)) for text, v in labels)
        written += write_sheets(pairs, labels_dir / "labels.pdf", total=len(labels))
    return written


def play_custody(
    season: Season,
    papers: dict[tuple[str, bool], str],
    commitments: dict[str, bytes],
    labels_dir: Path,
    window: tuple[datetime, datetime],
    open_paper: Callable[[str], str] = lambda _paper: "",
) -> CustodyPlay:
    """Every package along its route; main papers opened in their window; all destroyed.

    ``open_paper(paper)`` performs the quorum decryption and returns the statement id of its
    signed act, which the package's ``open`` event records.
    """
    play = CustodyPlay(plan_packages(papers))
    window_start = window[0]
    play.labels = seal_and_label(season, play, commitments, window, labels_dir)
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
            {"seals": list(p.seals)},  # no words in clear on the log (custody.sealed_text)
            "西安考点保密室",
        )
    season.now = window_start + timedelta(minutes=10)
    for p in play.packages:
        if p.backup:
            continue
        signers = list(EXAMINERS.values())
        opened = {"seals": list(p.seals), "paper_act": open_paper(p.paper)}
        _submit(season, play, Kind.OPEN, p, EXAMINERS, signers, opened, f"考场 room {p.room}")
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


def verify_export(folder: Path, pinned_root_id: str | None = None) -> Report:
    """Verify an export the demo wrote (its own trust.json, pinned when the id is given)."""
    trust_doc, _ = read_bundle(folder)
    trust = load_trust_document(trust_doc, pinned_root_id=pinned_root_id)
    return verify_bundle(folder, trust)


def tamper_copy(export: Path, target: Path, index: int) -> Said:
    """Copy the export and, in the copy, change the seal serials an event records."""
    shutil.copytree(export, target)
    path = target / "events.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    entry = parse_leaf(lines[index].rstrip(b"\n"))
    payload = json.loads(entry.envelope.payload)
    payload["body"]["seals"] = ["SN9999", *payload["body"].get("seals", [])[1:]]
    env = Envelope(entry.envelope.payload_type, canonical_json(payload), entry.envelope.signatures)
    lines[index] = leaf_bytes(env, entry.received) + b"\n"
    path.write_bytes(b"".join(lines))
    return Said(
        N_("event #{index}: seal serials rewritten in {file}"), {"index": index, "file": path.name}
    )


def audit_season(season: Season, out: Path) -> dict[str, Any]:
    export = out / "export"
    manifest = export_bundle(season.log(), export)
    clean = verify_export(export, season.authority.id)
    tampered_dir = out / "export-tampered"
    what = tamper_copy(export, tampered_dir, index=30)
    tampered = verify_export(tampered_dir, season.authority.id)
    tampered_dict = {"tampering": what.english, **tampered.as_dict()}
    results = {"clean": clean.as_dict(), "tampered": tampered_dict}
    write_new_file(
        out / "verification.json",
        json.dumps(results, ensure_ascii=False, indent=2).encode() + b"\n",
        mode=0o644,
    )
    return {"export": manifest, "clean": clean, "tampered": tampered, "tampering": what}


PENDING_PACKAGE = "SX27-P-01-M-03"


def pending_package(
    season: Season,
    commitments: dict[str, bytes],
    labels_dir: Path,
    statements_dir: Path,
    *,
    now: datetime,
) -> dict[str, Any]:
    """One more package, sealed on the log at the season's end, whose first two transfers are
    signed by their people but left for the user to submit: ``statements_dir`` holds them,
    numbered in chain order, each dated ``now`` (the demo's end) and naming the one before it.
    ``custody event submit`` accepts them on the demo's log as they are (within the log's
    clock skew of ``now``; later, in this rehearsal home, with ``--now`` set to ``now``)."""
    ref = sorted(commitments)[0]
    p = PlannedPackage(PENDING_PACKAGE, "P-01", ref, False, "03", ("SN2001", "SN2002"))
    window = (now + timedelta(days=1), now + timedelta(days=1, hours=3))
    play = CustodyPlay([p])
    play.labels = seal_and_label(season, play, commitments, window, labels_dir, sheet=False)
    prev = season.prev(p.package_id)
    files: list[str] = []
    legs = (
        (Kind.DISPATCH, "print-qian", "courier-sun", "保密印刷厂 printing unit"),
        (Kind.HANDOVER, "courier-sun", "courier-li", "高速服务区 motorway services"),
    )
    for n, (kind, frm, to, place) in enumerate(legs, start=1):
        env = season.event(
            kind,
            [p.package_id],
            actors={"releaser": frm, "receiver": to},
            signers=[frm, to],
            body={"seals": list(p.seals)},
            place=place,
            at=now,
            prevs={p.package_id: prev},
        )
        path = statements_dir / f"{n:02d}-{kind}.dsse.json"
        write_new_file(path, env.to_bytes() + b"\n", mode=0o644)
        files.append(str(path))
        prev = statement_id(env.payload)
    home = season.home.path
    return {
        "pending_package": p.package_id,
        "to_submit": files,
        "submit_with": (
            f"custody --home {home} --now {format_time(now)} event submit " + " ".join(files)
        ),
        "labels_pending": [str(x) for x in play.labels],
    }
