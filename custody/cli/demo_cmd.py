"""`custody demo --out DIR`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from custody.cli.common import PASSPHRASE_ENV, state


def demo(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option(help="A new folder; everything the demo writes stays in it.")
    ],
) -> None:
    """Play a whole season end to end on the embedded default (SQLite inside --out)."""
    from custody.demo.play import STEPS, run_demo

    st = state(ctx)
    given = os.environ.get(PASSPHRASE_ENV)
    steps = iter(range(1, STEPS + 1))

    def say(text: str) -> None:  # each step on its own line as it starts: progress that stays
        st.err.print(f"[dim][{next(steps, STEPS)}/{STEPS}][/] {text}")

    summary = run_demo(out, now=st.now(), passphrase=given, say=say)
    if st.json:
        st.emit(summary)
        return
    st.out.print(f"[bold]Season of[/] {summary['authority']}")
    st.out.print(f"  authority root key {summary['authority_id']}")
    st.out.print(f"  people enrolled     {len(summary['people'])}")
    st.out.print(f"  handover statement  {summary['statements']['handover']}")
    for label, reason in summary["statements"]["refusals"].items():
        st.out.print(f"  refused ({label}): {reason}")
    papers = summary["papers"]
    st.out.print(
        f"  papers              {len(papers['proposed'])} encrypted at proposition, "
        f"{len(papers['opened_by_quorum'])} opened by quorum in window, "
        f"{len(papers['shredded'])} shredded"
    )
    st.out.print(f"  labels              {len(summary['labels'])} files under {out / 'labels'}")
    st.out.print(
        f"  custody log         {summary['events']} events, {len(summary['packages'])} packages, "
        f"{summary['destroyed']} destroyed (chains closed)"
    )
    incidents = summary["incidents"]
    st.out.print(
        f"  incidents           {incidents['raised_by_clean_season']} from the clean season; "
        f"{len(incidents['breaches'])} from the three breaches:"
    )
    for i in incidents["breaches"]:
        contained = ", ".join(k for k, v in i["containment"].items() if v) or "-"
        st.out.print(
            f"    {i['id']} {i['kind']} ({i['severity']}) package {i['package']}: {contained}"
        )
    st.out.print(
        f"  incident reports    {len(incidents['reports'])} files under {out / 'incidents'}"
    )
    clean = summary["verify_clean"]
    verdict = "[green]OK[/]" if clean["ok"] else "[red]FAILED[/]"
    st.out.print(
        f"  verify export       {verdict}: {clean['events']} events, "
        f"{clean['signatures']} signatures"
    )
    tampered = summary["verify_tampered"]
    st.out.print(f"  verify tampered     {tampered['tampering']}: caught, problems named:")
    for p in tampered["problems"]:
        where = "-" if p["index"] is None else f"#{p['index']}"
        st.out.print(f"    {where} {p['rule']}: {p['message']}")
    pending = summary["statements"]
    st.out.print(
        f"  your turn           package {pending['pending_package']} is sealed; its next "
        f"{len(pending['to_submit'])} statements are signed and wait in {out / 'statements'}:"
    )
    st.out.print(f"    {escape(pending['submit_with'])}")
    st.out.print(
        f"[bold green]done[/]: everything is under {out} "
        "(summary.json, trust-bundle, export/, verification.json)"
    )
    if not given:
        st.out.print(
            f"[dim]key files are sealed under a passphrase generated for this run; set "
            f"{PASSPHRASE_ENV} to choose it.[/]"
        )
