"""`custody event submit`, `custody log ...`, `custody export`, `custody verify`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from crypto.dsse import parse_envelope
from crypto.encoding import b64encode
from crypto.files import CAP_BUNDLE, CAP_NOTE, CAP_SMALL_JSON, read_optional_file
from crypto.note import NoteVerifier, parse_checkpoint, parse_note
from custody.cli.common import (
    State,
    finding_text,
    open_writer,
    read_input,
    state,
)
from custody.errors import N_, Phrase, UsageError, VerificationError
from custody.i18n import _, gettext_for, language, ngettext
from custody.receipts import parse_receipt, verify_receipt
from custody.witnesses import WitnessPolicy, witness_policy_from_json
from keys.keyfile import write_new_file
from keys.trust import load_trust_bundle

if TYPE_CHECKING:  # storage and the services are imported only by the commands that use them
    from custody.audit import Report
    from custody.log import CustodyLog, Receipt

event_app = typer.Typer(help=_("Submit signed custody events to the log."), no_args_is_help=True)
log_app = typer.Typer(help=_("The custody log: status, proofs, checkpoints."), no_args_is_help=True)


def open_log(st: State, *, writable: bool) -> CustodyLog:
    from custody.service import open_reader

    return open_writer(st) if writable else open_reader(st.home)


def _progress(st: State) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=st.err,
        transient=True,
        disable=st.json,
    )


@event_app.command("submit")
def submit(
    ctx: typer.Context,
    envelopes: Annotated[list[Path], typer.Argument(help=_("Signed event envelope files."))],
    receipts: Annotated[
        Path | None,
        typer.Option(help=_("Write a receipt per accepted event here (for both parties).")),
    ] = None,
) -> None:
    """Append events; each gets a receipt (index, checkpoint) or a refusal with its reason."""
    st = state(ctx)
    log = open_log(st, writable=True)
    envs = [parse_envelope(read_input(p, what=Phrase("envelope")), what=str(p)) for p in envelopes]
    result = log.submit_many(envs, now=st.now())
    if receipts is not None:
        for r in result.receipts:
            write_new_file(
                receipts / f"{r.statement_id[:16]}.receipt.json",
                json.dumps(receipt_document(log, r), indent=2).encode() + b"\n",
                mode=0o644,
                replace=True,
            )
    rows = [{"file": str(envelopes[i]), **r.as_dict()} for i, r in enumerate(result.receipts)]
    refused = [
        {
            "file": str(envelopes[r.envelope_index]),
            "error": r.error.code,
            "message": r.error.message,
        }
        for r in result.rejected
    ]
    if st.json:
        st.emit({"accepted": rows, "refused": refused})
    else:
        for r in result.receipts:
            line = (
                _("[green]accepted[/] #{index} {statement} (already in the log)")
                if r.duplicate
                else _("[green]accepted[/] #{index} {statement}")
            )
            st.out.print(line.format(index=r.index, statement=r.statement_id[:16]))
            for f in r.findings:
                st.out.print(
                    _("  [yellow]finding[/] {kind}: {detail}").format(
                        kind=f.kind, detail=escape(finding_text(f))
                    )
                )
        for item in refused:
            st.out.print(
                _("[red]refused[/] {file}: ({code}) {message}").format(
                    file=escape(item["file"]), code=item["error"], message=escape(item["message"])
                )
            )
    if result.rejected:
        raise typer.Exit(result.rejected[0].error.exit_code)


def receipt_document(log: CustodyLog, receipt: Receipt) -> dict[str, object]:
    """A receipt both parties keep: the signed checkpoint and the event's inclusion proof."""
    size = parse_checkpoint(parse_note(receipt.checkpoint).text).size
    return {
        "format": "custody-receipt/v1",
        "index": receipt.index,
        "statement_id": receipt.statement_id,
        "received": receipt.received,
        "tree_size": size,
        "checkpoint": receipt.checkpoint,
        "inclusion_proof": [b64encode(h) for h in log.inclusion_proof(receipt.index, size)],
    }


@log_app.command("check-receipt")
def check_receipt(
    ctx: typer.Context,
    receipt: Annotated[Path, typer.Argument(help=_("A receipt file."))],
    envelope: Annotated[Path, typer.Argument(help=_("The event envelope it is for."))],
    trust: Annotated[Path, typer.Option(help=_("Trust bundle (carries the log key)."))],
    pin: Annotated[str | None, typer.Option(help=_("Expected authority root key id."))] = None,
) -> None:
    """Offline: the checkpoint is signed by the log key and the event is included in it."""
    st = state(ctx)
    store = load_trust_bundle(
        read_input(trust, what=Phrase("trust bundle"), limit=CAP_BUNDLE), pinned_root_id=pin
    )
    unverified = parse_receipt(read_input(receipt, what=Phrase("receipt"), limit=CAP_SMALL_JSON))
    authority = store.authority
    verifier = NoteVerifier(authority.log_origin, authority.log_key)
    env = parse_envelope(read_input(envelope, what=Phrase("envelope")), what=str(envelope))
    checkpoint = verify_receipt(unverified, env, verifier)
    index = unverified.index
    st.emit(
        {"ok": True, "index": index, "tree_size": checkpoint.size},
        _(
            "[bold green]included[/]: event #{index} is in the log of {name} at size {size} "
            "(checkpoint signed by the log key)"
        ).format(index=index, name=authority.name, size=checkpoint.size),
    )


@log_app.command("status")
def status(ctx: typer.Context) -> None:
    """Size, latest checkpoint and findings of the log."""
    st = state(ctx)
    log = open_log(st, writable=False)
    size = log.size()
    checkpoint = log.latest_checkpoint() if size else ""
    findings = log.findings()
    st.emit(
        {"size": size, "checkpoint": checkpoint, "findings": len(findings)},
        _("log of {name}: {size} events, {findings} findings").format(
            name=log.trust.authority.name, size=size, findings=len(findings)
        )
        + f"\n{checkpoint}",
    )


@log_app.command("proof")
def proof(
    ctx: typer.Context,
    index: Annotated[int, typer.Argument(help=_("Log index of the event."))],
    size: Annotated[int | None, typer.Option(help=_("Tree size (default: the latest)."))] = None,
) -> None:
    """Inclusion proof of one event (RFC 9162), for a receipt or an auditor."""
    st = state(ctx)
    log = open_log(st, writable=False)
    tree_size = size or log.size()
    hashes = [b64encode(h) for h in log.inclusion_proof(index, tree_size)]
    st.emit(
        {"index": index, "tree_size": tree_size, "proof": hashes},
        _("inclusion proof of #{index} in a tree of {size}:").format(index=index, size=tree_size)
        + "\n"
        + "\n".join(hashes),
    )


@log_app.command("consistency")
def consistency(
    ctx: typer.Context,
    old_size: Annotated[int, typer.Argument(help=_("Earlier tree size."))],
    new_size: Annotated[
        int | None, typer.Option(help=_("Later tree size (default latest)."))
    ] = None,
) -> None:
    """Consistency proof between two tree sizes (RFC 9162)."""
    st = state(ctx)
    log = open_log(st, writable=False)
    size = new_size or log.size()
    hashes = [b64encode(h) for h in log.consistency_proof(old_size, size)]
    st.emit(
        {"old_size": old_size, "new_size": size, "proof": hashes},
        _("consistency proof {old} -> {new}:").format(old=old_size, new=size)
        + "\n"
        + "\n".join(hashes),
    )


def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help=_("A new folder for the bundle."))],
) -> None:
    """Write a self-contained bundle an auditor verifies offline with `custody verify`."""
    from custody.access_log import AccessLog
    from custody.audit import export_bundle

    st = state(ctx)
    log = open_log(st, writable=False)
    with _progress(st) as bar:
        task = bar.add_task(_("exporting"), total=None)
        policy = st.home.witnesses_path
        manifest = export_bundle(
            log,
            out,
            witnesses=read_optional_file(
                policy, what=Phrase("witness policy"), limit=CAP_SMALL_JSON
            ),
            progress=lambda n, total: bar.update(task, completed=n, total=total),
            access=AccessLog(log.engine, log.trust.authority, None),
            now=st.now(),
        )
    st.emit(
        {"bundle": str(out), **manifest},
        _("[bold green]exported[/] {size} events to {out}").format(size=manifest["size"], out=out),
    )


def verify(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help=_("Export bundle folder."))],
    since: Annotated[
        Path | None, typer.Option(help=_("An earlier signed checkpoint to check consistency with."))
    ] = None,
    pin: Annotated[str | None, typer.Option(help=_("Expected authority root key id."))] = None,
    trust: Annotated[
        Path | None,
        typer.Option(help=_("Use this trust bundle instead of the bundle's trust.json.")),
    ] = None,
    require_closed: Annotated[
        bool, typer.Option(help=_("Every package's chain must be closed by destruction."))
    ] = False,
    workers: Annotated[
        int, typer.Option(help=_("Processes for signature checks (0 = all cores)."))
    ] = 0,
    witness_policy: Annotated[
        Path | None,
        typer.Option(
            help=_(
                "A witnesses.json: at least k of its n witnesses must have cosigned the "
                "checkpoint (default: the home's, when run inside one)."
            )
        ),
    ] = None,
) -> None:
    """Re-check a bundle offline against a pinned authority: signatures, roles, chains, rules,
    counts, closure, the root, and every file the manifest lists."""
    from custody.audit import load_trust_document, read_bundle, verify_bundle

    st = state(ctx)
    trust_doc, _files = read_bundle(bundle)
    if pin is None and trust is None and st.home.exists():
        pin = st.home.config.text("authority_id")  # inside a home: its own authority
    if trust is not None:
        store = load_trust_bundle(
            read_input(trust, what=Phrase("trust bundle"), limit=CAP_BUNDLE), pinned_root_id=pin
        )
    elif pin is not None:
        store = load_trust_document(trust_doc, pinned_root_id=pin)
    else:
        raise UsageError(
            N_(
                "verify needs the authority to check against: --pin ROOT_KEY_ID or --trust "
                "BUNDLE (a bundle's own trust.json vouches only for itself)"
            )
        )
    since_note = (
        read_input(since, what=Phrase("checkpoint"), limit=CAP_NOTE).decode("utf-8", "replace")
        if since is not None
        else None
    )
    policy: WitnessPolicy | None = None
    source = ""
    if witness_policy is not None:
        source = str(witness_policy)
        policy = witness_policy_from_json(
            read_input(witness_policy, what=Phrase("witness policy"), limit=CAP_SMALL_JSON),
            source=source,
        )
    elif st.home.exists():
        policy = st.home.witness_policy()  # inside a home: its own witnesses
        source = str(st.home.witnesses_path) if policy is not None else ""
    n_workers = workers or (os.cpu_count() or 1)
    with _progress(st) as bar:
        task = bar.add_task(_("verifying"), total=None)
        report = verify_bundle(
            bundle,
            store,
            since_note=since_note,
            require_closed=require_closed,
            witness_policy=policy,
            workers=n_workers,
            progress=lambda n, size: bar.update(task, completed=n, total=size),
        )
    report.witness_policy_source = source
    if st.json:
        st.emit(report.as_dict())
    else:
        _print_report(st, report, bundle)
    if not report.ok:
        raise typer.Exit(VerificationError.exit_code)


def _print_report(st: State, report: Report, bundle: Path) -> None:
    def verdict(ok: bool, good: str, bad: str) -> str:
        return f"[green]{good}[/]" if ok else f"[red]{bad}[/]"

    st.out.print(_("[bold]verify[/] {bundle}").format(bundle=escape(str(bundle))))
    lines: list[tuple[str, str]] = [
        (_("authority"), report.authority_name),
        (_("authority id"), report.authority_id),
        (
            _("checkpoint"),
            _("size {size}, root {root}").format(size=report.size, root=report.checkpoint_root)
            if report.checkpoint_root
            else _("refused (see the problems below): no event was checked against it"),
        ),
        (_("events checked"), str(report.checked)),
        (_("signatures checked"), str(report.signatures)),
        (_("labels checked"), _("{n} (each against its seal event)").format(n=report.labels)),
        (
            _("packages"),
            _("{packages} ({destroyed} destroyed)").format(
                packages=report.packages, destroyed=report.destroyed
            ),
        ),
    ]
    if report.access_records is not None:
        broken = any(p.rule == "access" for p in report.problems)
        said = (
            _("{n} reads, NOT chained to its checkpoint (see the problems below)")
            if broken
            else _("{n} reads, chained to its checkpoint")
        )
        lines.append((_("access log"), said.format(n=report.access_records)))
    st.out.print(st.rows(*lines))
    st.out.print(
        "  " + _("root vs checkpoint") + "  " + verdict(report.root_ok, _("matches"), _("DIFFERS"))
    )
    if report.since_ok is not None:
        st.out.print(
            "  "
            + _("earlier checkpoint")
            + "  "
            + verdict(report.since_ok, _("consistent"), _("INCONSISTENT"))
        )
    if report.witnesses is None:
        st.out.print("  " + _("witnesses: none checked (no witness policy: --witness-policy FILE)"))
    else:
        count = report.witnesses
        st.out.print(
            "  "
            + _("witnesses: {verdict}, policy {policy}, cosigned by {valid}").format(
                verdict=verdict(count.ok, _("met"), _("NOT MET")),
                policy=escape(count.policy.describe()),
                valid=escape(", ".join(count.valid) or _("none")),
            )
            + (
                _("; invalid: {names}").format(names=escape(", ".join(count.invalid)))
                if count.invalid
                else ""
            )
        )
    if report.open_chains:
        st.out.print(
            "  " + _("open chains: {ids}").format(ids=escape(", ".join(report.open_chains[:10])))
        )
    if report.findings:
        table = Table(_("index"), _("finding"), _("package"), title=_("findings"))
        table.add_column(_("detail"), overflow="fold")
        for index, f in report.findings[:20]:
            table.add_row(f"#{index}", f.kind, escape(f.package_id), escape(finding_text(f)))
        st.out.print(table)
    if report.problems:
        table = Table(_("index"), _("rule"), title="[red]" + _("problems") + "[/]")
        table.add_column(_("problem"), overflow="fold")  # Chinese has no spaces to wrap at
        translate = gettext_for(language())
        for p in report.problems[:200]:
            table.add_row(
                "-" if p.index is None else str(p.index), p.rule, escape(p.text(translate))
            )
        st.out.print(table)
        st.out.print(
            ngettext(
                "[bold red]FAILED[/]: {n} problem",
                "[bold red]FAILED[/]: {n} problems",
                len(report.problems),
            ).format(n=len(report.problems))
        )
    else:
        st.out.print(_("[bold green]OK[/]: every signature, chain link, rule and the root verify"))
