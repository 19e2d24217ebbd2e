"""`custody report --package ID | --exam ID | --from T --to T`: the custody report.

The report, its content and its renderings are ``custody.custody_report``'s (the API's
``GET /v1/reports/custody`` answers the same); this command chooses the scope, the format and
the file. The database and reportlab load only when the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from custody.cli.common import ReaderKey, parse_cli_time, reader_of, state
from custody.errors import N_, UsageError
from custody.i18n import _
from keys.keyfile import write_new_file

FORMATS = ("pdf", "json", "text")


def report(
    ctx: typer.Context,
    package: Annotated[str | None, typer.Option(help=_("One package."))] = None,
    exam: Annotated[
        str | None, typer.Option(help=_("One exam (with --from/--to: only its packages)."))
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help=_("Start of a period of the log's receive time (UTC).")),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help=_("End of the period, excluded (UTC)."))
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help=_("pdf, json or text"))] = "pdf",
    out: Annotated[Path | None, typer.Option(help=_("File to write (required for pdf)."))] = None,
    max_timelines: Annotated[
        int, typer.Option(help=_("Show at most this many packages' timelines."))
    ] = 200,
    key: ReaderKey = None,
) -> None:
    """A custody report (Chinese first) for a package, an exam or a period: every statement
    listed verified again against the log's signed checkpoint. It names people: secrecy
    officers and auditors read it with their key, and the read is on the access log."""
    from custody import access as policy
    from custody.custody_report import (
        build_custody_report,
        custody_report_json,
        render_custody_pdf,
        render_custody_text,
        report_scope,
    )
    from custody.views import Views

    st = state(ctx)
    if fmt not in FORMATS:
        raise UsageError(N_("--format must be pdf, json or text, not {fmt!r}"), fmt=fmt)
    scope = report_scope(
        package=package,
        exam=exam,
        start=parse_cli_time(start, what="--from"),
        end=parse_cli_time(end, what="--to"),
    )
    if fmt == "pdf" and out is None:
        raise UsageError(N_("--format pdf writes a file: give --out FILE.pdf"))
    zone = st.time_zone
    views = Views(st.home)
    read = reader_of(st, key, views.trust, what=_("a custody report"))
    policy.require(policy.may_read_custody_reports(read.reader), read.reader, _("a custody report"))
    rep = build_custody_report(views, scope, read.at, max_timelines=max_timelines)
    objects = [f"package:{row['package_id']}" for row in rep.packages]
    objects += [f"person:{person}" for person in rep.people]
    read.record("report", objects)  # before a byte of it is shown or written
    if fmt == "pdf":
        data = render_custody_pdf(rep, zone=zone)
    elif fmt == "json":
        data = (json.dumps(custody_report_json(rep), ensure_ascii=False, indent=2) + "\n").encode()
    else:
        data = render_custody_text(rep, zone).encode()
    if out is None:
        typer.echo(data.decode(), nl=False)
        return
    write_new_file(out, data, mode=0o644)
    st.emit(
        {"file": str(out), "packages": len(rep.packages), "statements": rep.statements},
        _("[green]wrote[/] {path}").format(path=out),
    )
