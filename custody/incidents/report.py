"""Incident report: what the provincial department needs (an edge: reads the log, writes files).

``build_report`` collects, for one incident: the timeline from the log (the package's events,
the statements named as evidence, the incident's own statements), the people who held the
package and when, the scope, the containment taken, and the people's acts. ``render_text``,
``report_json`` and ``render_pdf`` turn it into text, JSON and a PDF (Chinese names through
the TrueType font the caller passes, by default the WenQuanYi Micro Hei subset that ships in
``labels/fonts/``, so no system font is needed).

The text and the PDF are read by people: every heading and label in Simplified Chinese first,
English second (whatever the reader's locale: the report is a document sent on), kinds and
statuses named in both, and every time in the authority's zone with the zone's name
(``show_time``). The JSON is data: codes and UTC times, as stored.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, TableStyle
from reportlab.platypus import Table as PdfTable

from crypto.encoding import format_time, parse_time
from custody.errors import N_, NotFoundError, Phrase
from custody.events import Kind, parse_event
from custody.i18n import DEFAULT_TIME_ZONE, show_time
from custody.incidents.acts import ACT_NAMES
from custody.incidents.desk import get_incident, incident_acts
from custody.incidents.detect import KIND_NAMES
from custody.incidents.policy import SEVERITY_NAMES, STATUS_NAMES, Incident
from custody.log import CustodyLog
from custody.rules import TRANSFERS
from custody.steps import step_name
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


def _named(code: str, names: Mapping[str, str]) -> str:
    """``封条编号不符 seal_mismatch``: Chinese, then the code (the code alone if unnamed)."""
    zh = names.get(code)
    return f"{zh} {code}" if zh else code


def _summary(kind: Kind, body: dict[str, Any]) -> str:
    if kind == Kind.INCIDENT:
        return f"incident {body.get('incident')} {body.get('action')} ({body.get('severity')})"
    parts = []
    # ``reason`` in clear is the system's (a detection's code): the rules refuse a person's.
    for key in ("seals", "copies", "broken_seals", "reason", "paper", "method"):
        if key in body:
            parts.append(f"{key}: {_plain(body[key])}")
    for key in ("reason_sealed", "text_sealed"):  # a person's words: named, never copied
        sealed = body.get(key)
        if isinstance(sealed, dict):
            parts.append(f"{key[: -len('_sealed')]}: sealed {str(sealed.get('sha256'))[:16]}")
    return "; ".join(parts)


def _plain(value: object) -> str:
    """A body value as people write it: lists joined by commas, maps as ``key value``."""
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return str(value)


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
                        f"拒绝 REFUSED ({e.get('facts', {}).get('refusal', e['kind'])}): "
                        f"{e.get('detail_zh') or e['detail']}",
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


def when(text: str, zone: str) -> str:
    """A stored UTC time (RFC 3339) in the authority's zone, named."""
    return show_time(parse_time(text, what=Phrase("time")), zone)


def _listed(values: list[str]) -> str:
    return ", ".join(values) or "-"


def _lines(report: IncidentReport, zone: str) -> list[Line]:
    """(style, text) lines shared by the text and PDF renderings: Chinese first, English
    second; times in ``zone``, named."""
    i = report.incident
    c = i.containment
    s = i.scope
    out: list[Line] = [
        ("title", f"事件报告 Incident report {i.id}"),
        ("p", f"主管机构 Authority: {report.authority}"),
        ("p", f"类型 Kind: {_named(i.kind, KIND_NAMES)}"),
        (
            "p",
            f"严重程度 Severity: {_named(i.severity, SEVERITY_NAMES)}   "
            f"状态 Status: {_named(i.status, STATUS_NAMES)}   上报级别 Level: {i.level}",
        ),
        ("p", f"发现时间 Opened: {show_time(i.opened_at, zone)}"),
        ("p", f"更新时间 Updated: {show_time(i.updated_at, zone)}"),
        ("p", f"对象 Subject: {i.subject}"),
        ("p", f"详情：{i.detail_zh}"),
        ("p", f"Detail: {i.detail}"),
        ("h", "范围 Scope"),
        ("p", f"试卷袋 Packages: {_listed(s.get('packages', []))}"),
        ("p", f"试卷 Papers: {_listed(s.get('papers', []))}"),
        ("p", f"考试 Exams: {_listed(s.get('exams', []))}"),
        ("p", f"职位 Positions: {_listed(s.get('positions', []))}"),
        ("p", f"启用的备用卷 Backup paper offered: {s.get('backup_paper') or '-'}"),
        ("h", "处置 Containment"),
        ("p", f"冻结的试卷袋 Frozen packages: {_listed(c.get('frozen', []))}"),
        (
            "p",
            "认定泄密（试卷已标记） Compromised (paper flagged): "
            + _listed(c.get("compromised", [])),
        ),
        (
            "p",
            "封锁的密钥 Blocked keys: " + _listed([k[:16] for k in c.get("blocked_keys", [])]),
        ),
        ("h", "保管人 People who held the package"),
    ]
    for h in report.holders:
        until = when(h.until, zone) if h.until else "至今 now"
        out.append(("p", f"{h.name} ({h.person}): {when(h.since, zone)} → {until}"))
    if not report.holders:
        out.append(("p", "-"))
    out.append(("h", "时间线（取自保管日志） Timeline from the log"))
    for t in report.timeline:
        where = f"#{t.index}" if t.index is not None else "被拒绝 refused"
        who = ", ".join(f"{k}={v}" for k, v in sorted(t.actors.items()))
        out.append(
            (
                "p",
                f"{when(t.time, zone)} {where} {step_name(t.kind)} [{who}] {t.summary} "
                f"({t.statement_id[:12]})",
            )
        )
    out.append(("h", "确认与处理 Acts"))
    for a in report.acts:
        act = _named(str(a["act"]), ACT_NAMES)
        out.append(
            (
                "p",
                f"{when(a['time'], zone)} {act}，由 by {a['person']} ({a['statement_id'][:12]})",
            )
        )
    if not report.acts:
        out.append(("p", "尚无 none yet"))
    out.append(("h", "证据 Evidence"))
    for e in i.evidence:
        words = e.get("detail_zh") or e["detail"]
        out.append(("p", f"{when(e['at'], zone)} {_named(e['kind'], KIND_NAMES)}: {words}"))
    if not i.evidence:
        out.append(("p", "-"))
    return out


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def render_text(report: IncidentReport, zone: str = DEFAULT_TIME_ZONE) -> str:
    """The report as plain text, times in ``zone`` (the home's ``time_zone``), named."""
    return lines_text(_lines(report, zone))


# A line of a document: ``(style, text)`` with style "title", "h" or "p"; or
# ``("table", Table)``, rows the PDF sets as a grid and the text as columns.
@dataclass(frozen=True)
class Table:
    """A table of a document: a header row and rows of text, with relative column widths."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...]


Line = tuple[str, "str | Table"]


def lines_text(lines: Iterable[Line]) -> str:
    """A document's lines as plain text: titles and headings underlined (a Chinese character
    takes two columns), tables as columns separated by `` | ``."""
    text: list[str] = []
    for style, line in lines:
        if isinstance(line, Table):
            text.append(" | ".join(line.header))
            text.append("-" * _width(" | ".join(line.header)))
            text.extend(" | ".join(row) for row in line.rows)
        elif style == "h":
            text.append("")
            text.append(line)
            text.append("-" * _width(line))
        elif style == "title":
            text.append(line)
            text.append("=" * _width(line))
        else:
            text.append(line)
    return "\n".join(text) + "\n"


def _register_font(path: Path) -> str:
    name = f"{FONT}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name not in pdfmetrics.getRegisteredFontNames():
        if not path.is_file():
            raise NotFoundError(
                N_("CJK font {path} not found: reports need it to print Chinese"), path=path
            )
        pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
    return name


def render_pdf(
    report: IncidentReport,
    generated_at: datetime,
    *,
    zone: str = DEFAULT_TIME_ZONE,
    font: Path = CJK_FONT,
) -> bytes:
    """The report as a PDF, set in the TrueType ``font`` (a subset embedded), times in
    ``zone`` (the home's ``time_zone``), named."""
    generated = f"生成时间 Generated: {show_time(generated_at, zone)}"
    return lines_pdf(
        [*_lines(report, zone), ("gap", ""), ("p", generated)],
        title=f"事件报告 Incident report {report.incident.id}",
        author=report.authority,
        font=font,
    )


TABLE_CHUNK = 60  # rows per PDF table: reportlab splits short tables across pages cheaply


def lines_pdf(lines: Iterable[Line], *, title: str, author: str, font: Path = CJK_FONT) -> bytes:
    """A document's lines as an A4 PDF set in the TrueType ``font`` (a subset embedded);
    tables as grids whose header row repeats on every page; ``("gap", "")`` a blank space.
    The PDF is invariant (no creation time of its own): the same lines give the same bytes."""
    name = _register_font(font)
    styles = {
        "title": ParagraphStyle("t", fontName=name, fontSize=16, leading=20, spaceAfter=6),
        "h": ParagraphStyle("h", fontName=name, fontSize=12, leading=16, spaceBefore=8),
        "p": ParagraphStyle("p", fontName=name, fontSize=8.5, leading=11, wordWrap="CJK"),
        "cell": ParagraphStyle("c", fontName=name, fontSize=7.5, leading=9, wordWrap="CJK"),
    }
    buf = BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=title,
        author=author,
        invariant=1,
    )
    flow: list[Any] = []
    for style, line in lines:
        if isinstance(line, Table):
            flow.extend(_grids(line, styles["cell"], doc.width))
        elif style == "gap":
            flow.append(Spacer(1, 6 * mm))
        else:
            flow.append(Paragraph(escape(line), styles[style]))
    doc.build(flow)
    return buf.getvalue()


def _grids(table: Table, cell: ParagraphStyle, width: float) -> list[Any]:
    """A table as PDF grids of ``TABLE_CHUNK`` rows, each with the header row repeated."""
    total = sum(table.widths) or 1.0
    widths = [width * w / total for w in table.widths]
    style = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )
    header = [Paragraph(escape(h), cell) for h in table.header]
    grids: list[Any] = []
    rows = table.rows or (tuple("-" for _ in table.header),)
    for start in range(0, len(rows), TABLE_CHUNK):
        body = [
            [Paragraph(escape(c), cell) for c in row] for row in rows[start : start + TABLE_CHUNK]
        ]
        grids.append(PdfTable([header, *body], colWidths=widths, repeatRows=1, style=style))
    return grids


def write_reports(
    log: CustodyLog,
    incident_ids: list[str],
    folder: Path,
    *,
    zone: str = DEFAULT_TIME_ZONE,
    font: Path = CJK_FONT,
) -> list[Path]:
    """Write ID.txt, ID.json and ID.pdf for each incident (times read in ``zone``, the home's
    ``time_zone``; the JSON in UTC); returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for incident_id in incident_ids:
        report = build_report(log, incident_id)
        for suffix, data in (
            ("txt", render_text(report, zone).encode()),
            (
                "json",
                json.dumps(report_json(report), ensure_ascii=False, indent=2).encode() + b"\n",
            ),
            ("pdf", render_pdf(report, report.incident.updated_at, zone=zone, font=font)),
        ):
            path = folder / f"{incident_id}.{suffix}"
            write_new_file(path, data, mode=0o644)
            paths.append(path)
    return paths
