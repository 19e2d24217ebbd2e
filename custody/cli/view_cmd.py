"""`custody package list|show|timeline` and `custody paper show`: seeing custody.

Human output is tables and sentences with times in the authority's zone; ``--json`` gives the
same data as the API's read routes (``custody.views``), times in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from custody.cli.common import ReaderKey, RecordedRead, State, named, reader_of, state
from custody.errors import Phrase
from custody.i18n import _, language

if TYPE_CHECKING:
    from pathlib import Path

    from custody.access import PackageFacts
    from custody.views import Views


def _views(st: State) -> Views:
    from custody.views import Views

    return Views(st.home)


def _when(st: State, text: str | None) -> str:
    """A UTC time from the views, in the authority's zone with its name."""
    from crypto.encoding import parse_time

    if not text:
        return "-"
    return st.show_time(parse_time(text, what=Phrase("time")))


def _short_when(st: State, moment: datetime) -> str:
    """For a column whose header names the zone: the local time to the second, no name."""
    return st.show_time(moment).rsplit(" ", 1)[0]


Offset = Annotated[int, typer.Option(help=_("Skip this many (for the next page)."))]
Limit = Annotated[int, typer.Option(help=_("At most this many (1-500)."))]


def package_list(
    ctx: typer.Context,
    exam: Annotated[str | None, typer.Option(help=_("Only this exam."))] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--state",
            help=_(
                "Only packages in this state: sealed, in_transit, stored, opened, "
                "distributed, recovered, returned, destroyed."
            ),
        ),
    ] = None,
    holder: Annotated[str | None, typer.Option(help=_("Only packages this person holds."))] = None,
    site: Annotated[
        str | None, typer.Option(help=_("Only packages bound for this exam site."))
    ] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help=_("Only packages overdue by the incident policy."))
    ] = False,
    offset: Offset = 0,
    limit: Limit = 50,
    key: ReaderKey = None,
) -> None:
    """Packages with their state, holder and destination (secrecy officers and auditors,
    as over HTTP; the read is on the access log)."""
    from rich.table import Table

    from crypto.encoding import parse_time
    from custody import access as policy
    from custody.steps import status_name
    from custody.views import PackageFilter

    st = state(ctx)
    views = _views(st)
    read = reader_of(st, key, views.trust, what=_("the list of packages"))
    policy.require(read.reader.sees_all, read.reader, _("the list of packages"))
    page = views.packages(
        PackageFilter(exam=exam, status=status, holder=holder, site=site, overdue=overdue),
        now=read.at,
        offset=offset,
        limit=limit,
    )
    objects = [f"package:{i['package_id']}" for i in page.items]
    objects += sorted({f"person:{i['holder']}" for i in page.items if i["holder"]})
    read.record("package list", objects)
    if st.json:
        st.emit(page.as_dict())
        return
    if not page.items:
        st.out.print(_("no packages match"))
        return
    table = Table(
        _("package"), _("exam"), _("state"), _("holder"), _("exam site"),
        _("last recorded ({zone})").format(zone=st.time_zone), _("overdue"),
    )  # fmt: skip
    for p in page.items:
        table.add_row(
            escape(p["package_id"]),
            escape(p["exam"]),
            status_name(p["status"]) + (" ❄" if p["frozen"] else ""),
            escape(p["holder"] or "-"),
            escape(f"{p['site'] or '-'} {p['room'] or ''}".strip()),
            _short_when(st, parse_time(p["last_time"], what=Phrase("time"))),
            "⚠" if p["overdue"] else "",
        )
    st.out.print(table)
    shown = f"{page.offset + 1}-{page.offset + len(page.items)}"
    more = (
        _("; next page: --offset {n}").format(n=page.next_offset)
        if page.next_offset is not None
        else ""
    )
    st.out.print(_("{shown} of {total} package(s)").format(shown=shown, total=page.total) + more)


def package_show(
    ctx: typer.Context,
    package: Annotated[str, typer.Argument(help=_("The package id."))],
    key: ReaderKey = None,
) -> None:
    """One package: state, holder, route, seals, counts, destination and findings (for
    whoever its route, site or exam makes a reader, as over HTTP; recorded)."""
    from custody import access as policy
    from custody.steps import status_name

    st = state(ctx)
    views = _views(st)
    read, facts = _package_reader(st, views, key, package)
    p = views.package(package, now=read.at)
    read.record("package show", policy.package_objects(facts))
    if st.json:
        st.emit(p)
        return
    marked = [
        f"[bold]{escape(person)}[/]" if person == p["holder"] else escape(person)
        for person in p["route"]
    ]
    dest = p["destination"] or {}
    lines = [
        _("[bold]package {id}[/]").format(id=escape(package)),
        _("  state        {state}").format(state=status_name(p["status"]))
        + (_(" (frozen)") if p["frozen"] else "")
        + (_(" (compromised)") if p["compromised"] else ""),
        _("  holder       {holder}").format(holder=escape(p["holder"] or "-")),
        _("  next         {next}").format(next=escape(p["next_holder"] or "-")),
        _("  route        {route}").format(route=" → ".join(marked) or "-"),
        _("  exam         {exam} / {position}, paper {paper}").format(
            exam=escape(p["exam"]), position=escape(p["position"]), paper=escape(p["paper"])
        ),
        _("  destination  {site} {room}").format(
            site=escape(dest.get("site", "-")), room=escape(dest.get("room", ""))
        ),
        _("  window       {start} .. {end}").format(
            start=_when(st, p["window"]["start"]), end=_when(st, p["window"]["end"])
        ),
        _("  seals        {seals}").format(seals=escape(", ".join(p["seals"]))),
        _("  copies       {copies}, distributed {distributed}, recovered {recovered}").format(
            copies=p["copies"], distributed=p["distributed"], recovered=p["recovered"]
        ),
        _("  last         {when} at {place}").format(
            when=_when(st, p["last_time"]), place=escape(p["last_place"] or "-")
        ),
        _("  events       {n} (see `custody package timeline {id}`)").format(
            n=p["events"], id=escape(package)
        ),
    ]
    if p["overdue"]:
        lines.append(_("  [yellow]overdue[/]      {why}").format(why=escape(p["overdue"])))
    for f in p["findings"]:
        lines.append(
            _("  [yellow]finding[/] #{index} {kind}: {detail}").format(
                index=f["index"], kind=f["kind"], detail=escape(_detail(f))
            )
        )
    st.out.print("\n".join(lines))


def package_timeline(
    ctx: typer.Context,
    package: Annotated[str, typer.Argument(help=_("The package id."))],
    key: ReaderKey = None,
) -> None:
    """Every event of a package with its signers' names, times and verification marks
    (signatures, slots and inclusion in the signed checkpoint are checked again now; for
    whoever its route, site or exam makes a reader, as over HTTP; recorded)."""
    from rich.table import Table

    from custody import access as policy
    from custody.steps import step_name

    st = state(ctx)
    views = _views(st)
    read, facts = _package_reader(st, views, key, package)
    entries = views.timeline(package)
    objects = policy.package_objects(facts)
    people = sorted({f"person:{s.person}" for e in entries for s in e.signers})
    read.record("package timeline", [*objects, *(n for n in people if n not in objects)])
    if st.json:
        st.emit({"package_id": package, "events": [e.as_dict() for e in entries]})
        return
    table = Table(
        "#",
        _("verified"),
        _("time ({zone})").format(zone=st.time_zone),
        _("event"),
        _("place"),
        _("signed by"),
        title=_("package {id}: {n} event(s)").format(id=escape(package), n=len(entries)),
    )
    for e in entries:
        signers = "\n".join(
            f"{'✓' if s.ok else '✗'} {escape(named(s.slot))}: "
            + escape(s.name or s.person)
            + (f" ({escape(s.person)})" if s.name else "")
            for s in e.signers
        )
        notes = [*(f"⚠ {escape(f['kind'])}: {escape(_detail(f))}" for f in e.findings)]
        notes += [f"✗ {escape(p)}" for p in e.problems]
        table.add_row(
            str(e.index),
            "[green]✓[/]" if e.verified else "[red]✗[/]",
            _short_when(st, e.time),
            step_name(e.kind) + ("\n" + "\n".join(notes) if notes else ""),
            escape(e.place or "-"),
            signers,
        )
    st.out.print(table)
    bad = [e.index for e in entries if not e.verified]
    if bad:
        st.out.print(
            _("[bold red]{n} event(s) did not verify[/]: #{which}").format(
                n=len(bad), which=", #".join(str(i) for i in bad)
            )
        )
    else:
        st.out.print(
            _(
                "[green]every signature verified, every signer slot filled, every event in the "
                "signed checkpoint[/]"
            )
        )


def paper_show(
    ctx: typer.Context,
    paper: Annotated[str, typer.Argument(help=_("Paper id (newest version) or ID@vN."))],
    key: ReaderKey = None,
) -> None:
    """One paper with every act on it (who signed, when, which log entry recorded it);
    secrecy officers and auditors, as over HTTP; recorded."""
    from rich.table import Table

    from custody import access as policy

    st = state(ctx)
    views = _views(st)
    read = reader_of(st, key, views.trust, what=_("a paper and its acts"))
    policy.require(read.reader.sees_all, read.reader, _("a paper and its acts"))
    p = views.paper(paper)
    people = sorted({f"person:{s['person']}" for a in p["acts"] for s in a["signers"]})
    read.record("paper show", [f"paper:{p['ref']}", *people])
    if st.json:
        st.emit(p)
        return
    backup = _(", backup of {ref}").format(ref=p["backup_of"]) if p["backup_of"] else ""
    st.out.print(
        _("[bold]paper {ref}[/] ({exam}/{position}, {role}{backup}, {classification})").format(
            ref=escape(p["ref"]), exam=escape(p["exam"]), position=escape(p["position"]),
            role=p["role"], backup=escape(backup), classification=p["classification"],
        )
    )  # fmt: skip
    st.out.print(
        _("  status {status}; {keys} sealed key(s) held; commitment {commitment}").format(
            status=p["status"], keys=p["keys_held"], commitment=p["commitment"]
        )
    )
    table = Table(_("act"), _("time"), _("signed by"), _("verified"), _("log entry"))
    for a in p["acts"]:
        table.add_row(
            escape(a["kind"]),
            _when(st, a["at"]),
            "\n".join(f"{escape(s['name'])} ({escape(s['person'])})" for s in a["signers"]),
            "[green]✓[/]" if a["signatures_ok"] else "[red]✗[/]",
            "-" if a["log_index"] is None else f"#{a['log_index']}",
        )
    st.out.print(table)


def _package_reader(
    st: State, views: Views, key: Path | None, package: str
) -> tuple[RecordedRead, PackageFacts]:
    """The reader of one package, judged by the policy on the package's facts (returned:
    the record names them)."""
    from custody import access as policy

    read = reader_of(st, key, views.trust, what=_("a package"))
    facts = views.package_facts(package)
    policy.require(
        policy.may_read_package(read.reader, facts),
        read.reader,
        _("package {package}").format(package=package),
    )
    return read, facts


def register_package_views(package_app: typer.Typer) -> None:
    """Add the read commands to `custody package`."""
    package_app.command("list")(package_list)
    package_app.command("show")(package_show)
    package_app.command("timeline")(package_timeline)


def register_paper_views(paper_app: typer.Typer) -> None:
    """Add the read commands to `custody paper`."""
    paper_app.command("show")(paper_show)


def _detail(finding: dict[str, Any]) -> str:
    """A finding's sentence in the reader's language."""
    return (
        str(finding.get("detail_zh") or finding["detail"])
        if language() == "zh"
        else str(finding["detail"])
    )
