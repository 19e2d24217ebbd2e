"""`custody incident list|show|ack|contain|resolve|unblock|report|public-report|sweep|deliver`.

Writing commands open the log with the authority's log and system keys (passphrase from
CUSTODY_PASSPHRASE); a person's act is signed with their key file (passphrase from
CUSTODY_KEY_PASSPHRASE, else CUSTODY_PASSPHRASE).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from custody.cli.common import (
    PASSPHRASE_ENV,
    SMTP_HELP,
    SMTP_PLAIN_HELP,
    SMTPS_HELP,
    State,
    make_mailer,
    open_writer,
    passphrase,
    state,
)
from custody.errors import NotFoundError, UsageError
from custody.incidents.model import (
    Act,
    WatchedLog,
    get_incident,
    incident_acts,
    list_incidents,
)
from custody.incidents.outbox import deliver_outbox, outbox_rows
from custody.incidents.report import build_report, render_pdf, render_text, report_json
from custody.log import CustodyLog
from custody.service import open_reader
from keys.keyfile import read_keyfile, write_new_file

incident_app = typer.Typer(
    help="Incidents: list, acknowledge, contain, resolve, report; sweep and deliver.",
    no_args_is_help=True,
)
KEY_PASSPHRASE_ENV = "CUSTODY_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
POLICY_FILE = "incidents.json"


def open_desk(st: State) -> WatchedLog:
    return open_writer(st)


def read_log(st: State) -> CustodyLog:
    return open_reader(st.home)


@incident_app.command("list")
def list_cmd(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="open, acknowledged, contained, resolved")
    ] = None,
) -> None:
    """Every incident, newest last."""
    st = state(ctx)
    incidents = list_incidents(st.home.engine, status=status)
    if st.json:
        st.emit({"incidents": [i.as_dict() for i in incidents]})
        return
    table = Table("id", "kind", "severity", "status", "level", "subject", "opened")
    for i in incidents:
        table.add_row(i.id, i.kind, i.severity, i.status, str(i.level), i.subject, str(i.opened_at))
    st.out.print(table if incidents else "no incidents")


@incident_app.command("show")
def show(ctx: typer.Context, incident_id: Annotated[str, typer.Argument()]) -> None:
    """One incident with its scope, containment, evidence, acts and notifications."""
    st = state(ctx)
    incident = get_incident(st.home.engine, incident_id)
    data = {
        **incident.as_dict(),
        "acts": incident_acts(st.home.engine, incident_id),
        "notifications": outbox_rows(st.home.engine, incident_id),
    }
    st.emit(data, json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _act(
    ctx: typer.Context, incident_id: str, what: str, key: Path, note: str, key_id: str | None
) -> None:
    st = state(ctx)
    pw = os.environ.get(KEY_PASSPHRASE_ENV) or passphrase(prompt=f"Passphrase for {key}")
    pair = read_keyfile(key, pw)
    log = open_desk(st)
    cert = log.trust.certificates.get(pair.signing.key_id)
    if cert is None:
        raise NotFoundError(f"{key} holds a key no certificate of this authority binds")
    now = st.now()
    env = Act(log.trust.authority.id, incident_id, what, cert.subject, now, note, key_id).sign(
        pair.signing
    )
    incident = log.act(env, now)
    st.emit(
        incident.as_dict(),
        f"[green]{what}[/] {incident_id} by {cert.subject}: now {incident.status}",
    )


KeyOpt = Annotated[Path, typer.Option(help="Your key file (you sign the act).")]
NoteOpt = Annotated[str, typer.Option(help="What you did or decided.")]


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
    key_id: Annotated[str, typer.Option(help="The blocked key to lift.")],
    note: NoteOpt = "",
) -> None:
    """Lift a blocked key (secrecy officer's decision)."""
    _act(ctx, incident_id, "unblock", key, note, key_id)


@incident_app.command("report")
def report(
    ctx: typer.Context,
    incident_id: str,
    fmt: Annotated[str, typer.Option("--format", help="text, json or pdf")] = "text",
    out: Annotated[Path | None, typer.Option(help="File to write (required for pdf).")] = None,
) -> None:
    """The report for the provincial department: timeline, holders, scope, containment."""
    st = state(ctx)
    if fmt not in {"text", "json", "pdf"}:
        raise UsageError(f"--format must be text, json or pdf, not {fmt!r}")
    rep = build_report(read_log(st), incident_id)
    if fmt == "pdf":
        if out is None:
            raise UsageError("--format pdf writes a file: give --out FILE.pdf")
        write_new_file(out, render_pdf(rep, st.now()), mode=0o644)
        st.emit({"pdf": str(out)}, f"[green]wrote[/] {out}")
        return
    data = (
        json.dumps(report_json(rep), ensure_ascii=False, indent=2) + "\n"
        if fmt == "json" or st.json
        else render_text(rep)
    )
    if out is not None:
        write_new_file(out, data.encode(), mode=0o644)
        st.emit({"file": str(out)}, f"[green]wrote[/] {out}")
    else:
        typer.echo(data, nl=False)


@incident_app.command("public-report")
def public_report(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="What the candidate or citizen reports.")],
    package: Annotated[str | None, typer.Option(help="A package the report names.")] = None,
    contact: Annotated[str, typer.Option(help="How to reach the reporter.")] = "",
) -> None:
    """Record a leak reported by a candidate or the public (unsigned text)."""
    st = state(ctx)
    incident = open_desk(st).report_public(text, st.now(), package_id=package, contact=contact)
    st.emit(incident.as_dict(), f"[yellow]incident[/] {incident.id} opened ({incident.kind})")


@incident_app.command("sweep")
def sweep_cmd(ctx: typer.Context) -> None:
    """Take in break-glass openings, run the time-based detectors and the escalation ladder."""
    st = state(ctx)
    desk = open_desk(st)
    touched = desk.ingest_paper_incidents(st.now()) + desk.sweep(st.now())
    st.emit(
        {"incidents": touched}, f"sweep: {len(touched)} incident(s) opened, joined or escalated"
    )


@incident_app.command("deliver")
def deliver(
    ctx: typer.Context,
    smtp: Annotated[str | None, typer.Option(help=SMTP_HELP)] = None,
    sender: Annotated[str, typer.Option(help="From address.")] = "custody@localhost",
    smtps: Annotated[bool, typer.Option("--smtps", help=SMTPS_HELP)] = False,
    smtp_plain_loopback: Annotated[
        bool, typer.Option("--smtp-plain-loopback", help=SMTP_PLAIN_HELP)
    ] = False,
) -> None:
    """Deliver due notifications from the outbox (webhooks and e-mail)."""
    st = state(ctx)
    mailer = make_mailer(smtp, sender, implicit_tls=smtps, plain_loopback=smtp_plain_loopback)
    rep = deliver_outbox(st.home.engine, st.now(), mailer=mailer)
    st.emit(
        rep.as_dict(),
        f"sent {len(rep.sent)}, failed {len(rep.failed)} (retried later), dead {len(rep.dead)}"
        + (f", {rep.waiting} e-mail waiting for --smtp" if rep.waiting else ""),
    )


__all__ = ["PASSPHRASE_ENV", "incident_app"]
