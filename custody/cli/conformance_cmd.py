"""`custody conformance DIR`: run the conformance vectors (docs/vectors/) against a live service.

`--setup` makes the vectors' season in the home (`--home`): a rehearsal home from the published
seeds, with every certificate and revocation, and prints how to serve it. `--url URL` submits
the vectors over the HTTP API and compares each answer's status and error code with the case's
`expect` line; a service runs on one clock (`--now`), so each pass takes the statements received
at `--received` (default: the vectors' main clock; cases set up earlier need a first pass at
their earlier clock, which `--setup` lists).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from crypto.encoding import format_time
from custody.cli.common import PASSPHRASE_ENV, parse_cli_time, passphrase, state
from custody.errors import UsageError, VerificationError


def conformance(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="The vector folder (docs/vectors).")],
    url: Annotated[
        str | None, typer.Option(help="Base URL of a live service serving the season.")
    ] = None,
    received: Annotated[
        str | None,
        typer.Option(help="The service's clock for this pass (default: the vectors' main one)."),
    ] = None,
    setup: Annotated[
        bool, typer.Option("--setup", help="Make the vectors' season in --home (rehearsal).")
    ] = False,
) -> None:
    """Check a custody service against the conformance vectors, case by case."""
    # Imported here: the season's set-up needs the database, which would slow every start.
    from custody.conformance import (
        Client,
        clocks,
        create_season_home,
        load_vectors,
        offline_only,
        run_http,
    )

    st = state(ctx)
    if setup == (url is not None):
        raise UsageError("give either --setup (make the season's home) or --url (run the vectors)")
    season, files = load_vectors(directory)
    needed = clocks(files, season)
    if setup:
        secret = passphrase(env=PASSPHRASE_ENV, prompt="Passphrase for the season's keys")
        authority = create_season_home(st.home, season, passphrase=secret)
        st.emit(
            {
                "authority_id": authority.id,
                "home": str(st.home_path),
                "clocks": [format_time(t) for t in needed],
            },
            f"season made in {escape(str(st.home_path))} (authority {authority.id[:16]}, "
            "rehearsal)\nrun one pass per clock, earliest first, each against a service "
            "started at that clock:\n"
            + "\n".join(
                f"  custody --home {escape(str(st.home_path))} --now {format_time(t)} serve "
                f"--desk-every 0 --rate-per-address 100000/minute --rate-per-key 100000/minute"
                f"   then   custody conformance {escape(str(directory))} "
                f"--url URL --received {format_time(t)}"
                for t in needed
            ),
        )
        return
    assert url is not None
    clock = parse_cli_time(received, what="--received") or needed[-1]
    if clock not in needed:
        raise UsageError(
            f"--received {format_time(clock)} is not a clock of these vectors "
            f"({', '.join(format_time(t) for t in needed)})"
        )
    client = Client(url)
    results, elsewhere = run_http(client, season, files, received=clock)
    offline = offline_only(client, files)
    elsewhere -= offline
    total = Counter(r.kind for r in results)
    passed = Counter(r.kind for r in results if r.ok)
    failed = [r for r in results if not r.ok]
    if st.json:
        st.emit(
            {
                "ok": not failed,
                "received": format_time(clock),
                "per_kind": {k: {"cases": total[k], "passed": passed[k]} for k in sorted(total)},
                "judged_in_other_passes": elsewhere,
                "offline_only": offline,
                "failed": [r.as_dict() for r in failed],
            }
        )
    else:
        st.out.print(f"[bold]conformance[/] {escape(url)} at {format_time(clock)}")
        for kind in sorted(total):
            mark = "[green]ok[/]" if passed[kind] == total[kind] else "[red]FAIL[/]"
            st.out.print(f"  {kind:<22} {passed[kind]:>3}/{total[kind]:<3} {mark}")
        for r in failed:
            st.out.print(
                f"  [red]{escape(r.kind)}/{escape(r.name)}[/]: expected {escape(r.expected)}, "
                f"got {escape(r.got)}"
            )
        st.out.print(
            f"  {sum(passed.values())}/{len(results)} agree"
            + (f"; {elsewhere} case(s) are judged in another pass" if elsewhere else "")
            + (
                f"; {offline} case(s) with no service route (offline kinds, incident acts: "
                "the verifiers check them)"
                if offline
                else ""
            )
        )
    if failed:
        raise typer.Exit(VerificationError.exit_code)
