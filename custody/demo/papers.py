"""The demo's papers: main and backup papers per position, encrypted at proposition, opened
by the chief examiner and the supervisor inside the window, shredded after destruction.

No plaintext is written anywhere: openings stream into a hash, which is compared with the
sample's own hash to show the right paper came out.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import BinaryIO

from crypto.vocabulary import Classification
from custody import paper_service
from custody.demo import EXAM_ID, Season
from custody.papers import PaperPlan, PaperRole

OFFICERS = ("examiner-zheng", "supervisor-wang")


class _HashSink(io.RawIOBase):
    """A write-only stream that keeps only a SHA-256 of what passes through it."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.digest.update(data)
        self.size += len(data)
        return len(data)


@dataclass
class DemoPapers:
    refs: dict[tuple[str, bool], str] = field(default_factory=dict)
    commitments: dict[str, bytes] = field(default_factory=dict)
    plaintext_sha256: dict[str, str] = field(default_factory=dict)
    openings: dict[str, str] = field(default_factory=dict)
    shredded: list[str] = field(default_factory=list)


def _sample(position: str, backup: bool) -> bytes:
    name = "interview-backup.json" if backup else "interview-main.json"
    doc = json.loads(resources.files("custody.samples").joinpath(name).read_text("utf-8"))
    if isinstance(doc, dict):
        doc["position"] = position
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")


def propose_papers(
    season: Season, positions: tuple[str, ...], window: tuple[datetime, datetime]
) -> DemoPapers:
    papers = DemoPapers()
    proposer = season.keys["prop-zhao"]
    for position in positions:
        for backup in (False, True):
            paper_id = f"{EXAM_ID}-{position}-{'B' if backup else 'M'}"
            plain = _sample(position, backup)
            plan = PaperPlan(
                paper_id=paper_id,
                version=1,
                classification=Classification.TOP_SECRET,
                exam=EXAM_ID,
                position=position,
                role=PaperRole.BACKUP if backup else PaperRole.MAIN,
                backup_of=f"{EXAM_ID}-{position}-M" if backup else None,
                printer="print-qian",
                officers=OFFICERS,
                threshold=2,
                window_start=window[0],
                window_end=window[1],
                standby="secrecy-chen",
                title=f"结构化面试题本 {position} {'备用卷 backup' if backup else '正式卷 main'}",
            )
            source: BinaryIO = io.BytesIO(plain)
            proposed = paper_service.propose(
                season.home,
                source=source,
                plan=plan,
                proposer=proposer,
                now=season.tick(1),
                log=season.log(),
            )
            ref = proposed.proposal.ref
            papers.refs[(position, backup)] = ref
            papers.commitments[ref] = bytes.fromhex(proposed.proposal.commitment)
            papers.plaintext_sha256[ref] = hashlib.sha256(plain).hexdigest()
    return papers


def open_paper(season: Season, papers: DemoPapers, ref: str) -> str:
    """Quorum opening into a hash; returns the signed act's statement id for the log."""
    pairs = [season.keys[p] for p in OFFICERS]
    opened = paper_service.open_paper(season.home, ref, pairs, season.now, log=season.log())
    sink = _HashSink()
    opened.write_stream(sink)  # type: ignore[arg-type]
    if sink.digest.hexdigest() != papers.plaintext_sha256[ref]:  # pragma: no cover
        raise AssertionError(f"opening {ref} gave other bytes than were proposed")
    act = hashlib.sha256(opened.envelope.payload).hexdigest()
    papers.openings[ref] = act
    return act


def shred_papers(season: Season, papers: DemoPapers) -> None:
    pairs = [season.keys["destroy-feng"], season.keys["supervisor-wang"]]
    done: set[str] = set()
    for ref in papers.refs.values():
        paper_id = ref.split("@")[0]
        if paper_id in done:
            continue
        paper_service.destroy(season.home, paper_id, pairs, season.now, log=season.log())
        done.add(paper_id)
        papers.shredded.append(paper_id)
