"""Custody reports: what happened to a package, an exam's packages, or every package touched in
a period, as a document the secrecy officer sends on (an edge: reads the log, writes bytes).

``build_custody_report`` collects, for one scope: the packages (state, holder, destination,
how many findings), each package's timeline with every statement verified again for this report
(``custody.views``: signatures under the certified keys, every named signer present, the leaf
included in the latest signed checkpoint), and the incidents touching the scope.
``custody_report_json``, ``render_custody_text`` and ``render_custody_pdf`` turn it into JSON,
text and a PDF (the incident report's renderer and CJK font, ``custody.incidents.report``).

Rules:
- A scope is one package, one exam, or a period [from, to) of the log's receive time
  (optionally narrowed to one exam); anything else (two scopes, a period without both ends, or
  an empty or reversed one) is a usage error naming what is wrong.
- An unknown package, or an exam with no package on the log, is not found; a period in which
  nothing happened is an empty report, not an error.
- A period's timelines show only the entries the log received inside the period, as read from
  the leaf that was verified (the database's ``received_at`` index only chooses the packages).
- Timelines are capped (``max_timelines``, by package id): a season has thousands of packages.
  The table always lists every package; the report says how many timelines it shows and how to
  get the others, never silently less.
- Chinese first, English second; times in the authority's zone, named. The JSON is data:
  codes and UTC times, as stored.
- No SQL here: storage through ``custody/views.py``, ``store/log_reads.py`` and the desk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from crypto.encoding import format_time
from custody.errors import N_, NotFoundError, UsageError
from custody.i18n import DEFAULT_TIME_ZONE, show_time
from custody.incidents.desk import list_incidents
from custody.incidents.detect import KIND_NAMES
from custody.incidents.policy import SEVERITY_NAMES, STATUS_NAMES, Incident
from custody.incidents.report import Line, Table, lines_pdf, lines_text
from custody.rules import PackageState
from custody.steps import status_name, step_name
from custody.store import log_reads
from custody.views import TimelineEntry, Views
from labels.fonts import CJK_FONT

MAX_TIMELINES = 200  # per-package timelines in one report (the table lists every package)

SLOT_NAMES = {
    "sealer": "封装人 sealer",
    "releaser": "交出人 releaser",
    "receiver": "接收人 receiver",
    "custodian2": "第二保管人 custodian2",
    "escort": "押运人 escort",
    "inspector": "检查人 inspector",
    "examiner": "主考 examiner",
    "supervisor": "监考 supervisor",
    "officer": "保密员 officer",
    "witness": "见证人 witness",
    "reporter": "报告人 reporter",
    "system": "系统 system",
}


@dataclass(frozen=True)
class Scope:
    """What a report covers: one package, one exam, or a period [start, end) of receive time
    (with an exam, only that exam's packages). Build it with ``report_scope``."""

    package: str | None = None
    exam: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    @property
    def kind(self) -> str:
        if self.package is not None:
            return "package"
        if self.start is not None:
            return "period"
        return "exam"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "package": self.package,
            "exam": self.exam,
            "from": format_time(self.start) if self.start else None,
            "to": format_time(self.end) if self.end else None,
        }


def report_scope(
    *,
    package: str | None = None,
    exam: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Scope:
    """The scope asked for, or ``UsageError`` naming what is wrong with it."""
    period = start is not None or end is not None
    if package is not None and (exam is not None or period):
        raise UsageError(
            N_("a custody report covers one package, one exam or one period: not several"),
            hint=N_("give the package alone, or an exam, or from and to (with an exam or not)"),
        )
    if package is None and exam is None and not period:
        raise UsageError(
            N_("a custody report needs a scope: a package, an exam, or a period from and to")
        )
    if period:
        if start is None or end is None:
            raise UsageError(N_("a period needs both ends: from and to (UTC times)"))
        if start >= end:
            raise UsageError(
                N_("the period is empty: from {start} is not before to {end}"),
                start=format_time(start),
                end=format_time(end),
            )
    return Scope(package, exam, start, end)


@dataclass(frozen=True)
class CustodyReport:
    authority: str
    scope: Scope
    generated_at: datetime
    checkpoint_size: int
    checkpoint_root: bytes
    packages: tuple[dict[str, Any], ...]
    timelines: tuple[tuple[str, tuple[TimelineEntry, ...]], ...]
    max_timelines: int
    incidents: tuple[Incident, ...]

    @property
    def statements(self) -> int:
        return sum(len(events) for _, events in self.timelines)

    @property
    def verified(self) -> int:
        return sum(e.verified for _, events in self.timelines for e in events)

    @property
    def people(self) -> list[str]:
        """Everyone the report names (holders and signers), for the access log."""
        named = {p["holder"] for p in self.packages if p["holder"]}
        named |= {s.person for _, events in self.timelines for e in events for s in e.signers}
        return sorted(named)


def _in_scope(
    states: Iterable[PackageState], ids: set[str] | None, exam: str | None
) -> list[PackageState]:
    return [
        s
        for s in states
        if (ids is None or s.package_id in ids) and (exam is None or s.exam == exam)
    ]


def build_custody_report(
    views: Views, scope: Scope, now: datetime, *, max_timelines: int = MAX_TIMELINES
) -> CustodyReport:
    """The report over ``scope``, every statement it lists verified again at ``now``."""
    if max_timelines < 0:
        raise UsageError(N_("max timelines: 0 or more"))
    log = views.log
    if scope.package is not None:
        states = [log.package_state(scope.package)]  # NotFoundError for an unknown package
    else:
        ids = None
        if scope.start is not None and scope.end is not None:
            ids = set(
                log_reads.packages_received_between(
                    log.engine, format_time(scope.start), format_time(scope.end)
                )
            )
        states = _in_scope(log_reads.package_states(log.engine), ids, scope.exam)
        if scope.kind == "exam" and not states:
            raise NotFoundError(N_("no package of exam {exam!r} on the log"), exam=scope.exam)
    size, root = views.signed_head()
    chosen = [s.package_id for s in states]
    findings = Counter(str(f["package_id"]) for f in log.findings())
    where = views.destinations(chosen)
    rows = tuple(
        {
            "package_id": s.package_id,
            "exam": s.exam,
            "position": s.position,
            "status": s.status.value,
            "holder": s.holder,
            "holder_name": views.name_of(s.holder),
            "destination": where.get(s.package_id),
            "frozen": s.frozen,
            "compromised": s.compromised,
            "findings": findings.get(s.package_id, 0),
        }
        for s in states
    )
    shown = views.timelines(chosen[:max_timelines])
    timelines = []
    for pid in chosen[:max_timelines]:
        events = shown.get(pid, [])
        if scope.start is not None and scope.end is not None:
            events = [e for e in events if scope.start <= e.received < scope.end]
        timelines.append((pid, tuple(events)))
    touched = set(chosen)
    incidents = tuple(i for i in list_incidents(log.engine) if _touches(i, scope, touched))
    return CustodyReport(
        authority=views.trust.authority.name,
        scope=scope,
        generated_at=now,
        checkpoint_size=size,
        checkpoint_root=root,
        packages=rows,
        timelines=tuple(timelines),
        max_timelines=max_timelines,
        incidents=incidents,
    )


def _touches(incident: Incident, scope: Scope, packages: set[str]) -> bool:
    named = set(incident.scope.get("packages", []))
    if incident.package_id:
        named.add(incident.package_id)
    if named & packages:
        return True
    if scope.kind == "exam" and scope.exam in incident.scope.get("exams", []):
        return True
    if scope.start is not None and scope.end is not None and not named:
        # An incident on no package (a key, a fork) opened in the period touches it, unless
        # the period is narrowed to an exam the incident does not name.
        in_period = scope.start <= incident.opened_at < scope.end
        return in_period and (scope.exam is None or scope.exam in incident.scope.get("exams", []))
    return False


def custody_report_json(report: CustodyReport) -> dict[str, Any]:
    """The report as data (``custody-report/v1``, docs/formats.md): codes and UTC times."""
    return {
        "type": "custody-report/v1",
        "authority": report.authority,
        "scope": report.scope.as_dict(),
        "generated_at": format_time(report.generated_at),
        "checkpoint": {"size": report.checkpoint_size, "root": report.checkpoint_root.hex()},
        "statements": report.statements,
        "verified": report.verified,
        "packages": list(report.packages),
        "timelines_shown": len(report.timelines),
        "max_timelines": report.max_timelines,
        "timelines": [
            {"package_id": pid, "events": [e.as_dict() for e in events]}
            for pid, events in report.timelines
        ],
        "incidents": [
            {
                "id": i.id,
                "kind": i.kind,
                "severity": i.severity,
                "status": i.status,
                "package": i.package_id,
                "opened_at": format_time(i.opened_at),
                "detail": i.detail,
                "detail_zh": i.detail_zh,
            }
            for i in report.incidents
        ],
    }


def _named(code: str, names: dict[str, str] | Any) -> str:
    zh = names.get(code)
    return f"{zh} {code}" if zh else code


def _scope_line(scope: Scope, zone: str) -> str:
    if scope.package is not None:
        return f"范围 Scope: 试卷袋 package {scope.package}"
    if scope.start is None:
        return f"范围 Scope: 考试 exam {scope.exam}"
    text = (
        f"范围 Scope: 日志接收时间 received by the log {show_time(scope.start, zone)} 至 to "
        f"{show_time(scope.end, zone)}（不含 excluded）"
    )
    return text + (f"，考试 exam {scope.exam}" if scope.exam else "")


def _destination(dest: dict[str, str] | None) -> str:
    if not dest:
        return "-"
    return " ".join(v for v in (dest.get("site"), dest.get("room")) if v) or "-"


def _mark(entry: TimelineEntry) -> str:
    if entry.verified:
        return "√ 已核验 verified"
    return "× 未通过 NOT verified: " + "; ".join(entry.problems)


def _event_line(entry: TimelineEntry, zone: str) -> str:
    who = "，".join(
        f"{SLOT_NAMES.get(s.slot, s.slot)} "
        + (s.name if s.slot == "system" and s.name else f"{s.name or s.person} ({s.person})")
        + ("" if s.ok else " 未签 unsigned")
        for s in entry.signers
    )
    text = (
        f"#{entry.index} {show_time(entry.time, zone)} {step_name(entry.kind)} "
        f"地点 place: {entry.place or '-'}；签署 signed by: {who or '-'}；{_mark(entry)}"
    )
    for f in entry.findings:
        text += f"；发现 finding: {f['detail_zh']} ({f['kind']})"
    return text


def _lines(report: CustodyReport, zone: str) -> list[Line]:
    r = report
    total = len(r.packages)
    out: list[Line] = [
        ("title", "保管报告 Custody report"),
        ("p", f"主管机构 Authority: {r.authority}"),
        ("p", _scope_line(r.scope, zone)),
        ("p", f"生成时间 Generated: {show_time(r.generated_at, zone)}"),
        (
            "p",
            f"依据的已签名检查点 Signed checkpoint: 大小 size {r.checkpoint_size}，"
            f"根 root {r.checkpoint_root.hex()}",
        ),
        (
            "p",
            f"本报告列出的 {r.statements} 条签名声明均已为本报告重新核验，"
            f"其中 {r.verified} 条通过。 Every one of the {r.statements} statements listed "
            f"was verified again for this report; {r.verified} passed.",
        ),
        ("h", f"试卷袋 Packages ({total})"),
        (
            "table",
            Table(
                header=(
                    "试卷袋 Package",
                    "考试 Exam",
                    "职位 Position",
                    "状态 State",
                    "保管人 Holder",
                    "目的地 Destination",
                    "发现 Findings",
                ),
                rows=tuple(
                    (
                        p["package_id"],
                        p["exam"],
                        p["position"],
                        status_name(p["status"])
                        + (" 冻结 frozen" if p["frozen"] else "")
                        + (" 泄密 compromised" if p["compromised"] else ""),
                        f"{p['holder_name']} ({p['holder']})" if p["holder"] else "-",
                        _destination(p["destination"]),
                        str(p["findings"]),
                    )
                    for p in r.packages
                ),
                widths=(2.2, 1.6, 1.3, 1.5, 2.2, 1.8, 0.8),
            ),
        ),
        ("h", "时间线 Timelines"),
    ]
    if total > len(r.timelines):
        out.append(
            (
                "p",
                f"本报告只列出前 {len(r.timelines)} 个试卷袋（共 {total} 个，按编号）的时间线；"
                f"其余请按试卷袋出具报告（custody report --package ID）。 Timelines of the first "
                f"{len(r.timelines)} of {total} packages (by id) are shown; report on a package "
                "for the others.",
            )
        )
    if r.scope.start is not None:
        out.append(
            ("p", "仅列出该时段内日志接收的事件。 Only events the log received in the period.")
        )
    for pid, events in r.timelines:
        out.append(("h", f"试卷袋 Package {pid}"))
        out.extend(("p", _event_line(e, zone)) for e in events)
        if not events:
            out.append(("p", "-"))
    out.append(("h", f"相关事件 Incidents ({len(r.incidents)})"))
    for i in r.incidents:
        out.append(
            (
                "p",
                f"{i.id} {_named(i.kind, KIND_NAMES)}；"
                f"严重程度 severity {_named(i.severity, SEVERITY_NAMES)}；"
                f"状态 status {_named(i.status, STATUS_NAMES)}；"
                f"{show_time(i.opened_at, zone)}：{i.detail_zh}",
            )
        )
    if not r.incidents:
        out.append(("p", "无 none"))
    out.extend(
        [
            ("h", "读者应核查 What a reader should check"),
            (
                "p",
                "向主管机构索取日志导出包，用 custody verify 离线核验（固定主管机构的根密钥），"
                "并确认其检查点包含上述大小与根。 Ask the authority for a log export and verify "
                "it offline with `custody verify --pin AUTHORITY`; its checkpoint must contain "
                "the size and root above.",
            ),
        ]
    )
    return out


def render_custody_text(report: CustodyReport, zone: str = DEFAULT_TIME_ZONE) -> str:
    """The report as plain text, times in ``zone`` (the home's ``time_zone``), named."""
    return lines_text(_lines(report, zone))


def render_custody_pdf(
    report: CustodyReport, *, zone: str = DEFAULT_TIME_ZONE, font: Path = CJK_FONT
) -> bytes:
    """The report as a PDF in the CJK ``font``, times in ``zone``, named."""
    return lines_pdf(
        _lines(report, zone), title="保管报告 Custody report", author=report.authority, font=font
    )
