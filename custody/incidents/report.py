"""Incident report: what the provincial department needs (an edge: reads the log, writes files).

``build_report`` collects, for one incident: the timeline from the log (the package's events,
the statements named as evidence, the incident's own statements), the people who held the
package and when, the scope, the containment taken, and the people's acts. ``render_text``,
``report_json`` and ``render_pdf`` turn it into text, JSON and a PDF (Chinese names through
the TrueType font the caller passes, by default the WenQuanYi Micro Hei subset that ships in
``labels/fonts/``, so no system font is needed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

from crypto.encoding import format_time
from custody.errors import NotFoundError
from custody.events import Kind, parse_event
from custody.incidents.desk import get_incident, incident_acts
from custody.incidents.policy import Incident
from custody.log import CustodyLog
from custody.rules import TRANSFERS
from keys.keyfile import write_new_file
from labels.fonts import CJK_FONT

FONT = "CustodyReportCJK"


@dataclass(frozen=True)
class TimelineEntry:
    index: int | None  # None: a refused statement (never in the log)
    time: str
    kind: str
    actors: dict[str, str]
    summary: str
    statement_id: str


@dataclass(frozen=True)
class HolderSpan:
    person: str
    name: str
    since: str
    until: str | None


@dataclass(frozen=True)
class IncidentReport:
    authority: str
    incident: Incident
    timeline: tuple[TimelineEntry, ...]
    holders: tuple[HolderSpan, ...]
    acts: tuple[dict[str, Any], ...]


def _summary(kind: Kind, body: dict[str, Any]) -> str:
    if kind == Kind.INCIDENT:
        return f"incident {body.get('incident')} {body.get('action')} ({body.get('severity')})"
    parts = []
    for key in ("seals", "copies", "broken_seals", "reason", "paper", "method", "text"):
        if key in body:
            parts.append(f"{key}={body[key]}")
    return ", ".join(parts)


def build_report(log: CustodyLog, incident_id: str) -> IncidentReport:
    incident = get_incident(log.engine, incident_id)
    trust = log.trust
    indices: set[int] = set()
    if incident.package_id:
        indices.update(log.package_history(incident.package_id))
    named = {s for e in incident.evidence for s in e.get("statements", [])} | set(
        incident.statements
    )
    for statement_id, idx in log.statement_indices(named).items():
        indices.add(idx)
        named.discard(statement_id)
    timeline: list[TimelineEntry] = []
    holders: list[HolderSpan] = []

    def name_of(person: str) -> str:
        certs = trust.certificates_of(person)
        return certs[-1].name if certs else person

    for idx in sorted(indices):
        event = parse_event(log.entry(idx).payload)
        timeline.append(
            TimelineEntry(
                idx,
                format_time(event.time),
                event.kind.value,
                dict(event.actors),
                _summary(event.kind, dict(event.body)),
                event.id,
            )
        )
        if incident.package_id not in event.packages:
            continue
        new_holder = None
        if event.kind == Kind.SEAL:
            new_holder = event.actors.get("sealer")
        elif event.kind in TRANSFERS:
            new_holder = event.actors.get("receiver")
        elif event.kind == Kind.OPEN:
            new_holder = event.actors.get("examiner")
        elif event.kind == Kind.DESTROY:
            new_holder = ""
        if new_holder is not None:
            when = format_time(event.time)
            if holders and holders[-1].until is None:
                holders[-1] = HolderSpan(
                    holders[-1].person, holders[-1].name, holders[-1].since, when
                )
            if new_holder:
                holders.append(HolderSpan(new_holder, name_of(new_holder), when, None))
    for e in incident.evidence:
        for sid in e.get("statements", []):
            if sid in named:  # refused: the statement is evidence but was never appended
                timeline.append(
                    TimelineEntry(
                        None,
                        e["at"],
                        e.get("facts", {}).get("event_kind", "refused"),
                        {},
                        f"REFUSED ({e.get('facts', {}).get('refusal', e['kind'])}): {e['detail']}",
                        sid,
                    )
                )
                named.discard(sid)
    timeline.sort(key=lambda t: (t.time, t.index if t.index is not None else -1))
    return IncidentReport(
        trust.authority.name,
        incident,
        tuple(timeline),
        tuple(holders),
        tuple(incident_acts(log.engine, incident_id)),
    )


def report_json(report: IncidentReport) -> dict[str, Any]:
    return {
        "authority": report.authority,
        "incident": report.incident.as_dict(),
        "timeline": [t.__dict__ for t in report.timeline],
        "holders": [h.__dict__ for h in report.holders],
        "acts": list(report.acts),
    }


def _lines(report: IncidentReport) -> list[tuple[str, str]]:
    """(style, text) lines shared by the text and PDF renderings."""
    i = report.incident
    c = i.containment
    s = i.scope
    out = [
        ("title", f"Incident report {i.id} / 事件报告"),
        ("p", f"Authority: {report.authority}"),
        ("p", f"Kind: {i.kind}   Severity: {i.severity}   Status: {i.status}   Level: {i.level}"),
        ("p", f"Opened: {format_time(i.opened_at)}   Updated: {format_time(i.updated_at)}"),
        ("p", f"Subject: {i.subject}"),
        ("p", f"Detail: {i.detail}"),
        ("h", "Scope / 范围"),
        ("p", f"Packages: {', '.join(s.get('packages', [])) or '-'}"),
        ("p", f"Papers: {', '.join(s.get('papers', [])) or '-'}"),
        ("p", f"Exams: {', '.join(s.get('exams', [])) or '-'}"),
        ("p", f"Positions: {', '.join(s.get('positions', [])) or '-'}"),
        ("p", f"Backup paper offered: {s.get('backup_paper') or '-'}"),
        ("h", "Containment / 处置"),
        ("p", f"Frozen packages: {', '.join(c.get('frozen', [])) or '-'}"),
        ("p", f"Compromised (paper flagged): {', '.join(c.get('compromised', [])) or '-'}"),
        ("p", f"Blocked keys: {', '.join(k[:16] for k in c.get('blocked_keys', [])) or '-'}"),
        ("h", "People who held the package / 保管人"),
    ]
    for h in report.holders:
        out.append(("p", f"{h.name} ({h.person}): {h.since} -> {h.until or 'now'}"))
    if not report.holders:
        out.append(("p", "-"))
    out.append(("h", "Timeline from the log / 时间线"))
    for t in report.timeline:
        where = f"#{t.index}" if t.index is not None else "refused"
        who = ", ".join(f"{k}={v}" for k, v in sorted(t.actors.items()))
        out.append(("p", f"{t.time} {where} {t.kind} [{who}] {t.summary} ({t.statement_id[:12]})"))
    out.append(("h", "Acts / 确认与处理"))
    for a in report.acts:
        out.append(("p", f"{a['time']} {a['act']} by {a['person']} ({a['statement_id'][:12]})"))
    if not report.acts:
        out.append(("p", "none yet"))
    out.append(("h", "Evidence / 证据"))
    for e in i.evidence:
        out.append(("p", f"{e['at']} {e['kind']}: {e['detail']}"))
    return out


def render_text(report: IncidentReport) -> str:
    text = []
    for style, line in _lines(report):
        if style == "h":
            text.append("")
            text.append(line)
            text.append("-" * len(line))
        elif style == "title":
            text.append(line)
            text.append("=" * len(line))
        else:
            text.append(line)
    return "\n".join(text) + "\n"


def _register_font(path: Path) -> str:
    name = f"{FONT}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name not in pdfmetrics.getRegisteredFontNames():
        if not path.is_file():
            raise NotFoundError(f"CJK font {path} not found: reports need it to print Chinese")
        pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
    return name


def render_pdf(
    report: IncidentReport, generated_at: datetime, *, font: Path = CJK_FONT
) -> bytes:
    """The report as a PDF, set in the TrueType ``font`` (a subset embedded)."""
    name = _register_font(font)
    styles = {
        "title": ParagraphStyle("t", fontName=name, fontSize=16, leading=20, spaceAfter=6),
        "h": ParagraphStyle("h", fontName=name, fontSize=12, leading=16, spaceBefore=8),
        "p": ParagraphStyle("p", fontName=name, fontSize=8.5, leading=11, wordWrap="CJK"),
    }
    buf = BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"Incident {report.incident.id}",
        author=report.authority,
        invariant=1,
    )
    flow: list[Any] = []
    for style, line in _lines(report):
        flow.append(Paragraph(escape(line), styles[style]))
    flow.append(Spacer(1, 6 * mm))
    flow.append(Paragraph(escape(f"Generated {format_time(generated_at)}"), styles["p"]))
    doc.build(flow)
    return buf.getvalue()


def write_reports(
    log: CustodyLog, incident_ids: list[str], folder: Path, *, font: Path = CJK_FONT
) -> list[Path]:
    """Write ID.txt, ID.json and ID.pdf for each incident; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for incident_id in incident_ids:
        report = build_report(log, incident_id)
        for suffix, data in (
            ("txt", render_text(report).encode()),
            (
                "json",
                json.dumps(report_json(report), ensure_ascii=False, indent=2).encode() + b"\n",
            ),
            ("pdf", render_pdf(report, report.incident.updated_at, font=font)),
        ):
            path = folder / f"{incident_id}.{suffix}"
            write_new_file(path, data, mode=0o644)
            paths.append(path)
    return paths
