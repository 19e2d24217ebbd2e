"""`custody incident list|show|ack|contain|resolve|unblock|report|public-report|sweep|deliver`.

Writing commands open the log with the authority's log and system keys (passphrase from
CUSTODY_PASSPHRASE); a person's act is signed with their key file (passphrase from
CUSTODY_KEY_PASSPHRASE, else CUSTODY_PASSPHRASE). Reading incidents (`list`, `show`, `report`)
takes the reader's own key (``--key``): the access policy judges them as over HTTP
(``may_read_incidents``: secrecy officers and auditors) and the read is on the access log
before anything is shown; what people wrote into an incident opens only with ``show --sealed``
and a secrecy officer's key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crypto.encoding import parse_time
from custody.cli.common import (
    PASSPHRASE_ENV,
    SMTP_HELP,
    SMTP_PLAIN_HELP,
    SMTPS_HELP,
    ReaderKey,
    RecordedRead,
    State,
    enrolled_key,
    in_standing,
    make_mailer,
    named,
    open_writer,
    reader_of,
    state,
)
from custody.errors import N_, NotFoundError, Phrase, UsageError
from custody.i18n import _, language
from keys.keyfile import write_new_file

if TYPE_CHECKING:  # storage, the desk and the reports load only in the commands that use them
    from custody.incidents.model import WatchedLog
    from custody.incidents.policy import Incident
    from custody.log import CustodyLog

incident_app = typer.Typer(
    help=_("Incidents: list, acknowledge, contain, resolve, report; sweep and deliver."),
    no_args_is_help=True,
)

POLICY_FILE = "incidents.json"


def open_desk(st: State) -> WatchedLog:
    return open_writer(st)


def read_log(st: State) -> CustodyLog:
    from custody.service import open_reader

    return open_reader(st.home)


def _incident_reader(
    st: State, key: Path | None, *, what: str, log: CustodyLog | None = None
) -> RecordedRead:
    """The person reading incidents with ``key``, allowed by the access policy (secrecy
    officers and auditors, as ``GET /v1/incidents``), judged by the trust of ``log`` (the
    home's, opened here when not given); the caller records, then shows."""
    from custody import access as policy

    read = reader_of(st, key, (log or read_log(st)).trust, what=what)
    policy.require(policy.may_read_incidents(read.reader), read.reader, what)
    return read


@incident_app.command("list")
def list_cmd(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help=_("open, acknowledged, contained, resolved"))
    ] = None,
    key: ReaderKey = None,
) -> None:
    """Every incident, newest last."""
    from custody.incidents.detect import KIND_NAMES
    from custody.incidents.model import list_incidents
    from custody.incidents.policy import SEVERITY_NAMES, STATUS_NAMES

    st = state(ctx)
    read = _incident_reader(st, key, what=_("the incident list"))
    incidents = list_incidents(st.home.engine, status=status)
    read.record("incident list", [f"incident:{i.id}" for i in incidents])
    if st.json:
        st.emit({"incidents": [i.as_dict() for i in incidents]})
        return
    table = Table(
        _("id"),
        _("kind"),
        _("severity"),
        _("status"),
        _("level"),
        _("subject"),
        st.in_zone(_("opened")),
    )
    for i in incidents:
        table.add_row(
            i.id,
            named(i.kind, KIND_NAMES),
            named(i.severity, SEVERITY_NAMES),
            named(i.status, STATUS_NAMES),
            str(i.level),
            i.subject,
            st.table_time(i.opened_at),
        )
    st.out.print(table if incidents else _("no incidents"))


@incident_app.command("show")
def show(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument()],
    key: ReaderKey = None,
    sealed: Annotated[
        bool,
        typer.Option(
            "--sealed",
            help=_(
                "Secrecy officers only: also open what people wrote into the incident "
                "(notes, a public report's text and contact, a leak report's text, the "
                "reasons of freezes, releases and paper acts) with the encryption key of "
                "--key; the opening is recorded on the access log."
            ),
        ),
    ] = False,
) -> None:
    """One incident with its scope, containment, evidence, acts and notifications."""
    from custody import access as policy
    from custody.incidents.desk import sealed_texts
    from custody.incidents.model import get_incident, incident_acts
    from custody.incidents.outbox import outbox_rows

    st = state(ctx)
    what = _("an incident")
    trust = read_log(st).trust
    if key is None:
        reader_of(st, key, trust, what=what)  # the refusal that names --key
        return
    pair, cert = enrolled_key(key, trust)
    read = in_standing(st, cert, trust)
    policy.require(policy.may_read_incidents(read.reader), read.reader, what)
    if sealed:
        policy.require(
            policy.may_open_sealed(read.reader), read.reader, _("the sealed text of an incident")
        )
        if pair.encryption is None:
            raise NotFoundError(
                N_("{key} holds no encryption key: nothing sealed can be opened with it"), key=key
            )
    incident = get_incident(st.home.engine, incident_id)
    acts = incident_acts(st.home.engine, incident_id)
    people = sorted({f"person:{a['person']}" for a in acts if a.get("person")})
    # on the access log before a byte is shown or a box opened (a read that cannot be
    # recorded is not made)
    read.record("incident show --sealed" if sealed else "incident show", [
        f"incident:{incident.id}", *people
    ])  # fmt: skip
    data: dict[str, Any] = {
        **incident.as_dict(),
        "acts": acts,
        "notifications": outbox_rows(st.home.engine, incident_id),
    }
    if sealed and pair.encryption is not None:
        data["sealed_texts"] = sealed_texts(
            st.home.engine, incident, pair.encryption.key_id, pair.encryption
        )
    if st.json:
        st.emit(data)
        return
    _print_incident(st, incident, data)


# The keys of an incident's scope and evidence as a Chinese reader reads them (the JSON keeps
# the keys; an English reader sees them as they are).
FIELD_NAMES = {
    "packages": "试卷袋",
    "papers": "试卷",
    "exams": "考试",
    "positions": "职位",
    "backup_packages": "备用试卷袋",
    "backup_paper": "备用卷",
    "at": "时间",
    "detail": "经过",
    "detail_zh": "经过",
    "facts": "事实",
    "message": "拒绝理由",
    "kind": "类型",
    "key": "密钥",
    "statements": "声明",
    "suspect_keys": "可疑密钥",
    "checkpoints": "检查点",
    "refusal": "拒绝类别",
    "event_kind": "事件类型",
    "planned": "计划中的下一持有人",
    "receiver": "接收人",
}
# A sentence the service wrote twice: the reader's language only.
_TWINS = {"zh": {"detail", "message"}, "en": {"detail_zh"}}


def _plain(value: object, skip: frozenset[str] = frozenset()) -> str:
    """A value of an incident's record as a person reads it (no Python or JSON syntax; keys
    named in the reader's language, a sentence written in both shown in theirs: ``skip``, the
    other language's keys, holds inside a record that has both)."""
    if isinstance(value, dict):
        lang = language()
        if "detail_zh" in value:
            skip = frozenset(_TWINS[lang])
        return (
            "; ".join(
                f"{FIELD_NAMES.get(k, k) if lang == 'zh' else k}: {_plain(v, skip)}"
                for k, v in value.items()
                if k not in skip
            )
            or "-"
        )
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v, skip) for v in value) or "-"
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return str(value)


def _print_incident(st: State, incident: Incident, data: dict[str, Any]) -> None:
    """One incident as a readable page: its facts, containment, evidence, acts, notices."""
    from custody.incidents.detect import KIND_NAMES
    from custody.incidents.policy import (
        CONTAINMENT_NAMES,
        SEVERITY_NAMES,
        STATUS_NAMES,
    )

    st.out.print(
        _("[bold]incident {id}[/]: {kind} ({severity}), {status}").format(
            id=incident.id,
            kind=named(incident.kind, KIND_NAMES),
            severity=named(incident.severity, SEVERITY_NAMES),
            status=named(incident.status, STATUS_NAMES),
        )
    )
    st.out.print(
        st.rows(
            (_("subject"), incident.subject),
            (_("package"), incident.package_id or "-"),
            (_("paper"), incident.paper or "-"),
            (_("opened"), st.show_time(incident.opened_at)),
            (_("updated"), st.show_time(incident.updated_at)),
            (
                _("escalation level"),
                f"{data['level']} ({named(data['level_name'])})",
            ),
            (_("acknowledge by"), st.show_time(incident.ack_deadline)),
            (_("what happened"), incident.detail_zh if language() == "zh" else incident.detail),
            (_("scope"), _plain(data["scope"])),
            (_("statements"), _plain([s[:16] for s in data["statements"]])),
        )
    )
    taken = [named(k, CONTAINMENT_NAMES) for k, v in data["containment"].items() if v]
    st.out.print("  " + _("containment: {taken}").format(taken=escape(", ".join(taken) or "-")))
    if data["evidence"]:
        table = Table(_("evidence"), _("detail"), title=_("evidence"))
        for n, item in enumerate(data["evidence"], start=1):
            table.add_row(str(n), escape(_plain(item)))
        st.out.print(table)
    acts = data["acts"]
    if acts:
        table = Table(_("act"), _("person"), st.in_zone(_("time")), _("statement"), title=_("acts"))
        for act in acts:
            when = act.get("time")
            table.add_row(
                escape(str(act.get("act") or "-")),
                escape(str(act.get("person") or "-")),
                st.table_time(parse_time(when, what=Phrase("act time"))) if when else "-",
                str(act.get("statement_id") or "-")[:16],
            )
        st.out.print(table)
    else:
        st.out.print("  " + _("acts: none yet"))
    if "sealed_texts" in data:
        _print_sealed(st, data["sealed_texts"])
    notices = data["notifications"]
    if notices:
        table = Table(_("notification"), _("detail"), title=_("notifications"))
        for row in notices:
            record = row if isinstance(row, dict) else {"notification": row}
            table.add_row(
                escape(str(record.get("channel") or record.get("kind") or "-")),
                escape(_plain(record)),
            )
        st.out.print(table)
    else:
        st.out.print("  " + _("notifications: none"))


def _print_sealed(st: State, texts: list[dict[str, Any]]) -> None:
    if not texts:
        st.out.print("  " + _("written by people: nothing"))
        return
    table = Table(_("source"), _("person"), _("text"), title=_("written by people (opened)"))
    for item in texts:
        if item["source"] == "public_report":
            source, person = _("public report"), item.get("contact") or "-"
            text = item.get("text", "")
        elif item["source"] == "act":
            source, person = str(item["act"]), str(item["person"])
            text = item.get("note", "")
        else:  # a person's statement, or a paper act: its sealed text or reason
            source = f"{item['kind']} ({item['field']}, {str(item['statement_id'])[:16]})"
            person, text = str(item["person"]), item.get("note", "")
        if not item["opened"]:
            text = _("(not sealed to your key)")
        table.add_row(escape(source), escape(person), escape(str(text)))
    st.out.print(table)


def _act(
    ctx: typer.Context, incident_id: str, what: str, key: Path, note: str, key_id: str | None
) -> None:
    from custody.incidents.acts import Act, seal_note
    from custody.incidents.policy import note_recipients

    st = state(ctx)
    log = open_desk(st)
    pair, cert = enrolled_key(key, log.trust)
    now = st.now()
    sealed = seal_note(note, note_recipients(log.trust, now))  # never on the log in clear
    env = Act(log.trust.authority.id, incident_id, what, cert.subject, now, sealed, key_id).sign(
        pair.signing
    )
    incident = log.act(env, now)
    st.emit(
        incident.as_dict(),
        _("[green]{act}[/] {incident} by {who}: now {status}").format(
            act=what, incident=incident_id, who=cert.subject, status=incident.status
        ),
    )


KeyOpt = Annotated[Path, typer.Option(help=_("Your key file (you sign the act)."))]
NoteOpt = Annotated[
    str,
    typer.Option(
        help=_(
            "What you did or decided (sealed to the secrecy officers, never on the log in clear)."
        )
    ),
]


@incident_app.command("ack")
def ack(ctx: typer.Context, incident_id: str, key: KeyOpt, note: NoteOpt = "") -> None:
    """Acknowledge: you have taken charge; the ladder stops climbing."""
    _act(ctx, incident_id, "acknowledge", key, note, None)


@incident_app.command("contain")
def contain(ctx: typer.Context, incident_id: str, key: KeyOpt, note: NoteOpt = "") -> None:
    """Record that the incident is contained (secrecy officer)."""
    _act(ctx, incident_id, "contain", key, note, None)


@incident_app.command("resolve")
def resolve(ctx: typer.Context, incident_id: str, key: KeyOpt, note: NoteOpt = "") -> None:
    """Close the incident (secrecy officer)."""
    _act(ctx, incident_id, "resolve", key, note, None)


@incident_app.command("unblock")
def unblock(
    ctx: typer.Context,
    incident_id: str,
    key: KeyOpt,
    key_id: Annotated[str, typer.Option(help=_("The blocked key to lift."))],
    note: NoteOpt = "",
) -> None:
    """Lift a blocked key (secrecy officer's decision)."""
    _act(ctx, incident_id, "unblock", key, note, key_id)


@incident_app.command("report")
def report(
    ctx: typer.Context,
    incident_id: str,
    fmt: Annotated[str, typer.Option("--format", help=_("text, json or pdf"))] = "text",
    out: Annotated[Path | None, typer.Option(help=_("File to write (required for pdf)."))] = None,
    key: ReaderKey = None,
) -> None:
    """The report for the provincial department: timeline, holders, scope, containment."""
    from custody.incidents.report import build_report, render_pdf, render_text, report_json

    st = state(ctx)
    if fmt not in {"text", "json", "pdf"}:
        raise UsageError(N_("--format must be text, json or pdf, not {fmt!r}"), fmt=fmt)
    if fmt == "pdf" and out is None:
        raise UsageError(N_("--format pdf writes a file: give --out FILE.pdf"))
    log = read_log(st)
    read = _incident_reader(st, key, what=_("an incident report"), log=log)
    rep = build_report(log, incident_id)
    named = dict.fromkeys(
        [f"person:{h.person}" for h in rep.holders]
        + [f"person:{a['person']}" for a in rep.acts if a.get("person")]
    )
    read.record("incident report", [f"incident:{rep.incident.id}", *named])  # before it is shown
    if fmt == "pdf" and out is not None:
        write_new_file(out, render_pdf(rep, st.now(), zone=st.time_zone), mode=0o644)
        st.emit({"pdf": str(out)}, _("[green]wrote[/] {path}").format(path=out))
        return
    data = (
        json.dumps(report_json(rep), ensure_ascii=False, indent=2) + "\n"
        if fmt == "json" or st.json
        else render_text(rep, st.time_zone)
    )
    if out is not None:
        write_new_file(out, data.encode(), mode=0o644)
        st.emit({"file": str(out)}, _("[green]wrote[/] {path}").format(path=out))
    else:
        typer.echo(data, nl=False)


@incident_app.command("public-report")
def public_report(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help=_("What the candidate or citizen reports."))],
    package: Annotated[str | None, typer.Option(help=_("A package the report names."))] = None,
    contact: Annotated[str, typer.Option(help=_("How to reach the reporter."))] = "",
) -> None:
    """Record a leak reported by a candidate or the public (unsigned text)."""
    st = state(ctx)
    incident = open_desk(st).report_public(text, st.now(), package_id=package, contact=contact)
    st.emit(
        incident.as_dict(),
        _("[yellow]incident[/] {id} opened ({kind})").format(id=incident.id, kind=incident.kind),
    )


@incident_app.command("sweep")
def sweep_cmd(ctx: typer.Context) -> None:
    """Take in break-glass openings, run the time-based detectors and the escalation ladder."""
    st = state(ctx)
    desk = open_desk(st)
    touched = desk.ingest_paper_incidents(st.now()) + desk.sweep(st.now())
    st.emit(
        {"incidents": touched},
        _("sweep: {n} incident(s) opened, joined or escalated").format(n=len(touched)),
    )


@incident_app.command("deliver")
def deliver(
    ctx: typer.Context,
    smtp: Annotated[str | None, typer.Option(help=SMTP_HELP)] = None,
    sender: Annotated[str, typer.Option(help=_("From address."))] = "custody@localhost",
    smtps: Annotated[bool, typer.Option("--smtps", help=SMTPS_HELP)] = False,
    smtp_plain_loopback: Annotated[
        bool, typer.Option("--smtp-plain-loopback", help=SMTP_PLAIN_HELP)
    ] = False,
) -> None:
    """Deliver due notifications from the outbox (webhooks and e-mail)."""
    from custody.incidents.outbox import deliver_outbox

    st = state(ctx)
    mailer = make_mailer(smtp, sender, implicit_tls=smtps, plain_loopback=smtp_plain_loopback)
    rep = deliver_outbox(st.home.engine, st.now(), mailer=mailer, zone=st.time_zone)
    st.emit(
        rep.as_dict(),
        _("sent {sent}, failed {failed} (retried later), dead {dead}").format(
            sent=len(rep.sent), failed=len(rep.failed), dead=len(rep.dead)
        )
        + (
            _(", {waiting} e-mail waiting for --smtp").format(waiting=rep.waiting)
            if rep.waiting
            else ""
        ),
    )


__all__ = ["PASSPHRASE_ENV", "incident_app"]
