"""`custody demo --out DIR`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from custody.cli.common import PASSPHRASE_ENV, named, state
from custody.errors import Said
from custody.i18n import _, said_in


def _words(value: object) -> str:
    """A sentence of the demo's summary in the reader's language (``Said``), or as it is."""
    return said_in(value) if isinstance(value, Said) else str(value)


def demo(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option(help=_("A new folder; everything the demo writes stays in it."))
    ],
) -> None:
    """Play a whole season end to end on the embedded default (SQLite inside --out)."""
    from custody.demo.play import STEPS, run_demo
    from custody.incidents.detect import KIND_NAMES
    from custody.incidents.policy import CONTAINMENT_NAMES, SEVERITY_NAMES

    st = state(ctx)
    given = os.environ.get(PASSPHRASE_ENV)
    steps = iter(range(1, STEPS + 1))

    def say(text: str) -> None:  # each step on its own line as it starts: progress that stays
        st.err.print(f"[dim][{next(steps, STEPS)}/{STEPS}][/] {escape(_(text))}")

    summary = run_demo(out, now=st.now(), passphrase=given, say=say)
    if st.json:
        st.emit(summary)
        return
    papers = summary["papers"]
    incidents = summary["incidents"]
    clean = summary["verify_clean"]
    tampered = summary["verify_tampered"]
    pending = summary["statements"]
    st.out.print(_("[bold]Season of[/] {name}").format(name=escape(summary["authority"])))
    rows = [
        (_("authority root key"), summary["authority_id"]),
        (_("people enrolled"), str(len(summary["people"]))),
        (_("handover statement"), said_in(summary["statements"]["handover"])),
        *(
            (_("refused ({case})").format(case=_(label)), said_in(reason))
            for label, reason in summary["statements"]["refusals"].items()
        ),
        (
            _("papers"),
            _(
                "{proposed} encrypted at proposition, {opened} opened by quorum in window, "
                "{shredded} shredded"
            ).format(
                proposed=len(papers["proposed"]),
                opened=len(papers["opened_by_quorum"]),
                shredded=len(papers["shredded"]),
            ),
        ),
        (
            _("labels"),
            _("{n} files under {folder}").format(n=len(summary["labels"]), folder=out / "labels"),
        ),
        (
            _("custody log"),
            _("{events} events, {packages} packages, {destroyed} destroyed (chains closed)").format(
                events=summary["events"],
                packages=len(summary["packages"]),
                destroyed=summary["destroyed"],
            ),
        ),
        (
            _("incidents"),
            _("{clean} from the clean season; {breaches} from the three breaches").format(
                clean=incidents["raised_by_clean_season"], breaches=len(incidents["breaches"])
            ),
        ),
        *(
            (
                f"  {i['id']}",
                _("{kind} ({severity}) package {package}: {contained}").format(
                    kind=named(i["kind"], KIND_NAMES),
                    severity=named(i["severity"], SEVERITY_NAMES),
                    package=i["package"],
                    contained=", ".join(
                        named(k, CONTAINMENT_NAMES) for k, v in i["containment"].items() if v
                    )
                    or "-",
                ),
            )
            for i in incidents["breaches"]
        ),
        (
            _("incident reports"),
            _("{n} files under {folder}").format(
                n=len(incidents["reports"]), folder=out / "incidents"
            ),
        ),
        (
            _("verify export"),
            _("{verdict}: {events} events, {signatures} signatures").format(
                verdict=_("OK") if clean["ok"] else _("FAILED"),
                events=clean["events"],
                signatures=clean["signatures"],
            ),
        ),
        (
            _("verify tampered"),
            _("{what}: caught, problems named").format(what=said_in(tampered["tampering"])),
        ),
        *(
            (
                "  " + ("-" if p["index"] is None else f"#{p['index']}"),
                f"{p['rule']}: {_words(p['message'])}",
            )
            for p in tampered["problems"]
        ),
        (
            _("your turn"),
            _(
                "package {package} is sealed; its next {n} statements are signed and wait in "
                "{folder}"
            ).format(
                package=pending["pending_package"],
                n=len(pending["to_submit"]),
                folder=out / "statements",
            ),
        ),
    ]
    st.out.print(st.rows(*rows))
    st.out.print(f"    {escape(pending['submit_with'])}")
    st.out.print(
        _(
            "[bold green]done[/]: everything is under {out} "
            "(summary.json, trust-bundle, export/, verification.json)"
        ).format(out=out)
    )
    if not given:
        st.out.print(
            "[dim]"
            + _(
                "key files are sealed under a passphrase generated for this run; set {env} to "
                "choose it (and to submit the statements above)."
            ).format(env=PASSPHRASE_ENV)
            + "[/]"
        )
