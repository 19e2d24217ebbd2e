"""`custody exam publish|list`: the authority's per-exam policy, from the home's draft
(``exams.json``) onto the log, where it binds seals and retention."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from custody.cli.common import State, open_writer, state
from custody.cli.log_cmd import open_log
from custody.errors import NotFoundError
from custody.exams import ExamPolicy, exam_policy_body
from custody.i18n import _

exam_app = typer.Typer(
    help=_("Exam policies: handover witness and retention, published on the log."),
    no_args_is_help=True,
)


def _describe(st: State, policy: ExamPolicy) -> str:
    witness = (
        _("a supervising witness at every handover")
        if policy.handover_witness
        else _("no supervising witness at handovers")
    )
    return _("{exam}: {witness}; records kept until {until}").format(
        exam=escape(policy.exam_id), witness=witness, until=st.show_time(policy.retention_until)
    )


@exam_app.command("publish")
def publish(
    ctx: typer.Context,
    exams: Annotated[
        list[str] | None,
        typer.Argument(help=_("Exam ids (default: every exam in the home's exams.json).")),
    ] = None,
) -> None:
    """Put exam policies from the home's exams.json on the log (a system statement each);
    an exam whose policy on the log is already the file's is left as it is."""
    st = state(ctx)
    policies = st.home.exam_policies()
    names = exams or sorted(policies.exams)
    chosen = [policies.of(name) for name in names]  # every name checked before anything
    log = open_writer(st)
    now = st.now()
    results = []
    for policy in chosen:
        receipt = log.publish_exam_policy(policy, now=now)
        results.append((policy, receipt))
    st.emit(
        {
            "exams": [
                {
                    **exam_policy_body(p),
                    "published": r is not None,
                    "index": r.index if r is not None else None,
                }
                for p, r in results
            ]
        },
        "\n".join(
            (
                _("[bold green]published[/] #{index} ").format(index=r.index)
                if r is not None
                else _("unchanged ")
            )
            + _describe(st, p)
            for p, r in results
        )
        or _("no exam in exams.json"),
    )


@exam_app.command("list")
def list_policies(ctx: typer.Context) -> None:
    """Each exam's policy in force on the log, and where the home's exams.json differs."""
    st = state(ctx)
    on_log = open_log(st, writable=False).exam_policies()
    try:
        drafts = dict(st.home.exam_policies().exams)
    except NotFoundError:
        drafts = {}
    rows = []
    for name in sorted(set(on_log) | set(drafts)):
        logged, draft = on_log.get(name), drafts.get(name)
        status = (  # JSON keeps these words; the human line says them in the user's language
            "not published"
            if logged is None
            else "not in exams.json"
            if draft is None
            else "published"
            if draft == logged
            else "exams.json differs: publish it"
        )
        rows.append((name, logged, status))
    shown = {
        "not published": _("not published"),
        "not in exams.json": _("not in exams.json"),
        "published": _("published"),
        "exams.json differs: publish it": _("exams.json differs: publish it"),
    }
    st.emit(
        {
            "exams": [
                {
                    "exam": name,
                    "on_log": exam_policy_body(p) if p is not None else None,
                    "status": status,
                }
                for name, p, status in rows
            ]
        },
        "\n".join(
            (_describe(st, p) if p is not None else escape(name)) + f" ({shown[status]})"
            for name, p, status in rows
        )
        or _("no exam policy on the log or in exams.json"),
    )
