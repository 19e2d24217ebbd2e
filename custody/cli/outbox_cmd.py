"""`custody incident outbox list|requeue`: the notifications waiting, sent or given up on.

A row goes dead after about a day of failed attempts (a receiver down, a relay refusing); once
the receiver is back, `requeue` puts dead rows back, due at once, with their attempts reset.
The service (or `custody incident deliver`) sends them on its next round. The list names the
people and addresses notified: it takes the reader's own key (``--key``), judged as a reader of
incidents (secrecy officers and auditors), and the read is on the access log.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from crypto.encoding import parse_time
from custody.cli.common import ReaderKey, reader_of, state
from custody.errors import N_, Phrase, UsageError
from custody.i18n import _

outbox_app = typer.Typer(
    help=_("The incident outbox: list notifications, requeue dead ones."), no_args_is_help=True
)
STATUSES = ("pending", "sent", "dead")


@outbox_app.command("list")
def list_rows(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help=_("Only rows in this status: pending, sent or dead."))
    ] = None,
    incident: Annotated[str | None, typer.Option(help=_("Only this incident's rows."))] = None,
    key: ReaderKey = None,
) -> None:
    """Every notification in the outbox, with its status, attempts and last error."""
    from custody import access as policy
    from custody.incidents.outbox import outbox_rows
    from custody.service import open_reader

    st = state(ctx)
    if status is not None and status not in STATUSES:
        raise UsageError(
            N_("--status: one of {statuses}, not {status!r}"),
            statuses=", ".join(STATUSES),
            status=status,
        )
    what = _("the incident outbox")
    read = reader_of(st, key, open_reader(st.home).trust, what=what)
    policy.require(policy.may_read_incidents(read.reader), read.reader, what)
    rows = outbox_rows(st.home.engine, incident, status)
    read.record(
        "incident outbox list", list(dict.fromkeys(f"incident:{r['incident_id']}" for r in rows))
    )
    if st.json or not rows:
        st.emit({"notifications": rows}, _("the outbox is empty"))
        return
    table = Table(
        _("row"),
        _("status"),
        _("channel"),
        _("to"),
        _("incident"),
        _("attempts"),
        st.in_zone(_("next attempt")),
        _("last error"),
    )
    for r in rows:
        due = r["next_attempt_at"]
        table.add_row(
            str(r["id"]),
            str(r["status"]),
            str(r["channel"]),
            escape(str(r["target"])),
            str(r["incident_id"]),
            str(r["attempts"]),
            st.table_time(parse_time(due, what=Phrase("next attempt"))) if due else "-",
            escape(str(r["last_error"] or "-")),
        )
    st.out.print(table)


@outbox_app.command("requeue")
def requeue(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(help=_("Dead rows to requeue."))] = None,
    all_dead: Annotated[
        bool, typer.Option("--all-dead", help=_("Requeue every dead row."))
    ] = False,
) -> None:
    """Put dead notifications back: pending, due now, attempts reset."""
    from custody.incidents.outbox import requeue_dead

    st = state(ctx)
    if bool(ids) == all_dead:
        raise UsageError(N_("name the dead rows to requeue, or pass --all-dead (not both)"))
    done = requeue_dead(st.home.engine, st.now(), None if all_dead else ids)
    st.emit(
        {"requeued": done},
        _("requeued {n} notification(s): {ids}").format(
            n=len(done), ids=", ".join(map(str, done)) or "-"
        ),
    )
