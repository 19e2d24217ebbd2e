"""`custody exam publish|list`: the authority's per-exam policy, from the home's draft
(``exams.json``) onto the log, where it binds seals and retention."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from crypto.encoding import format_time
from custody.cli.common import open_writer, state
from custody.cli.log_cmd import open_log
from custody.errors import NotFoundError
from custody.exams import ExamPolicy, exam_policy_body

exam_app = typer.Typer(
    help="Exam policies: handover witness and retention, published on the log.",
    no_args_is_help=True,
)


def _describe(policy: ExamPolicy) -> str:
    witness = "a supervising witness at every handover" if policy.handover_witness else (
        "no supervising witness at handovers"
    )
    return f"{escape(policy.exam_id)}: {witness}; records kept until " + format_time(
        policy.retention_until
    )


@exam_app.command("publish")
def publish(
    ctx: typer.Context,
    exams: Annotated[
        list[str] | None,
        typer.Argument(help="Exam ids (default: every exam in the home's exams.json)."),
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
            (f"[bold green]published[/] #{r.index} " if r is not None else "unchanged ")
            + _describe(p)
            for p, r in results
        )
        or "no exam in exams.json",
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
        status = (
            "not published" if logged is None
            else "not in exams.json" if draft is None
            else "published" if draft == logged
            else "exams.json differs: publish it"
        )
        rows.append((name, logged, status))
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
            (_describe(p) if p is not None else escape(name)) + f" ({status})"
            for name, p, status in rows
        )
        or "no exam policy on the log or in exams.json",
    )
