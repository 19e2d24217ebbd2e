"""`custody incident outbox list|requeue`: the notifications waiting, sent or given up on.

A row goes dead after about a day of failed attempts (a receiver down, a relay refusing); once
the receiver is back, `requeue` puts dead rows back, due at once, with their attempts reset.
The service (or `custody incident deliver`) sends them on its next round.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from custody.cli.common import state
from custody.errors import N_, UsageError

outbox_app = typer.Typer(
    help="The incident outbox: list notifications, requeue dead ones.", no_args_is_help=True
)
STATUSES = ("pending", "sent", "dead")


@outbox_app.command("list")
def list_rows(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only rows in this status: pending, sent or dead.")
    ] = None,
    incident: Annotated[str | None, typer.Option(help="Only this incident's rows.")] = None,
) -> None:
    """Every notification in the outbox, with its status, attempts and last error."""
    from custody.incidents.outbox import outbox_rows

    st = state(ctx)
    if status is not None and status not in STATUSES:
        raise UsageError(
            N_("--status: one of {statuses}, not {status!r}"),
            statuses=", ".join(STATUSES),
            status=status,
        )
    rows = outbox_rows(st.home.engine, incident, status)
    lines = [
        f"{r['id']:>5} {r['status']:<8} {r['channel']:<8} {escape(str(r['target']))} "
        f"incident {r['incident_id']} attempts {r['attempts']} next {r['next_attempt_at']}"
        + (f"\n      last error: {escape(str(r['last_error']))}" if r["last_error"] else "")
        for r in rows
    ]
    st.emit({"notifications": rows}, "\n".join(lines) or "the outbox is empty")


@outbox_app.command("requeue")
def requeue(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(help="Dead rows to requeue.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Requeue every dead row.")] = False,
) -> None:
    """Put dead notifications back: pending, due now, attempts reset."""
    from custody.incidents.outbox import requeue_dead

    st = state(ctx)
    if bool(ids) == all_dead:
        raise UsageError(N_("name the dead rows to requeue, or pass --all-dead (not both)"))
    done = requeue_dead(st.home.engine, st.now(), None if all_dead else ids)
    st.emit(
        {"requeued": done},
        f"requeued {len(done)} notification(s): {', '.join(map(str, done)) or '-'}",
    )
