"""`custody paper ...`: propose (encrypt at once), open with a quorum, print, break-glass,
activate a backup, destroy (crypto-shred), list.

Passphrases never go on the command line. A command that takes several ``--key`` files reads
the passphrase of the N-th file (counting from 1) from ``CUSTODY_PASSPHRASE_N``, else from
``CUSTODY_PASSPHRASE``, else asks on the terminal, naming the file.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer
from rich.progress import BarColumn, Progress, TextColumn, TransferSpeedColumn

from crypto.dsse import Envelope
from crypto.files import CAP_PAPER, open_user_file
from crypto.stream import DEFAULT_CHUNK
from crypto.stream import Progress as Progress_
from crypto.vocabulary import Classification
from custody.cli.common import PASSPHRASE_ENV, open_writer, parse_cli_time, passphrase, state
from custody.errors import Phrase
from custody.i18n import _
from custody.interview_paper import MAX_BYTES as INTERVIEW_MAX_BYTES
from custody.interview_paper import parse_interview_paper
from custody.papers import PaperPlan, PaperRole, sha256_hex
from keys.keyfile import KeyPair, read_keyfile, write_new_file

if TYPE_CHECKING:  # the paper service (and storage) load only in the commands that use them
    from custody import paper_service as service

KEYS_HELP = _(
    "Key file of a person taking part; repeat, one per person. The passphrase of the N-th "
    "--key comes from {env}_N, else {env}, else a prompt."
).format(env=PASSPHRASE_ENV)
OUT_HELP = _("Where the decrypted paper goes: a new file, or '-' for standard output.")

paper_app = typer.Typer(
    help=_("Encrypted question papers: propose, open with a quorum, print, replace, destroy."),
    no_args_is_help=True,
)


def _keys(files: list[Path]) -> list[KeyPair]:
    pairs = []
    for i, path in enumerate(files, start=1):
        own = f"{PASSPHRASE_ENV}_{i}"
        env = own if os.environ.get(own) else PASSPHRASE_ENV
        pairs.append(
            read_keyfile(
                path, passphrase(env=env, prompt=_("Passphrase for {key}").format(key=path))
            )
        )
    return pairs


@contextmanager
def _progress(total: int | None, what: str) -> Iterator[Progress_]:
    bar = Progress(
        TextColumn(what),
        BarColumn(),
        TransferSpeedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


def _emit(st: Any, to_stderr: bool, data: dict[str, Any], human: str) -> None:
    """Results go to stderr when the paper itself is going to stdout."""
    if not to_stderr:
        st.emit(data, human)
    elif st.json:
        sys.stderr.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        st.err.print(human)


def _act_out(path: Path | None, env: Envelope) -> None:
    if path is not None:
        write_new_file(path, env.to_bytes() + b"\n", mode=0o644)


def _deliver(opened: service.Opened, out: Path) -> int:
    size = opened.release.proposal.ciphertext_bytes
    with _progress(size, "decrypting") as advance:
        if str(out) == "-":
            return opened.write_stream(sys.stdout.buffer, advance)
        return opened.write_file(out, advance)


def _act_summary(opened: service.Opened, out: Path, written: int) -> dict[str, Any]:
    p = opened.release.proposal
    data: dict[str, Any] = {
        "paper": p.ref,
        "commitment": p.commitment,
        "act_id": opened.act_id,
        "act_sha256": sha256_hex(opened.envelope.to_bytes()),
        "signed_by": [s.keyid for s in opened.envelope.signatures],
        "out": str(out),
        "bytes": written,
        "incident": None,
    }
    if opened.incident is not None:
        data["incident"] = {"kind": opened.incident.kind, "summary": opened.incident.summary}
    return data


@paper_app.command("propose")
def propose(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help=_("The paper (any file), or '-' for stdin."))],
    exam: Annotated[str, typer.Option(help=_("Exam id, e.g. SX-2027-INT."))],
    position: Annotated[str, typer.Option(help=_("Exam position (post) id."))],
    paper_id: Annotated[str, typer.Option(help=_("Paper id."))],
    printer: Annotated[str, typer.Option(help=_("Person id of the classified printing unit."))],
    officer: Annotated[list[str], typer.Option(help=_("Opening officer person id; repeat."))],
    window_start: Annotated[str, typer.Option(help=_("Opening window start (UTC)."))],
    window_end: Annotated[str, typer.Option(help=_("Opening window end (UTC)."))],
    key: Annotated[
        Path, typer.Option(help=_("Proposer's key file ({env}).").format(env=PASSPHRASE_ENV))
    ],
    version: Annotated[int, typer.Option(help=_("Version; a new one must be higher."))] = 1,
    classification: Annotated[
        str, typer.Option(help=_("Secrecy level: secret | confidential | top-secret."))
    ] = "top-secret",
    role: Annotated[PaperRole, typer.Option(help=_("main, or backup of --backup-of."))] = (
        PaperRole.MAIN
    ),
    backup_of: Annotated[str | None, typer.Option(help=_("Main paper id this backs up."))] = None,
    threshold: Annotated[int, typer.Option(help=_("Officers needed to open (k of n)."))] = 2,
    standby: Annotated[
        str | None, typer.Option(help=_("Secrecy officer holding a standby share (break-glass)."))
    ] = None,
    structured: Annotated[
        bool, typer.Option(help=_("Check FILE as a structured interview paper first."))
    ] = False,
    title: Annotated[str, typer.Option(help=_("Public title (not secret)."))] = "",
    chunk_size: Annotated[int, typer.Option(help=_("Encryption chunk size in bytes."))] = (
        DEFAULT_CHUNK
    ),
) -> None:
    """Encrypt a paper at once and wrap its key to the printer and the opening officers."""
    from custody import paper_service as service

    st = state(ctx)
    if backup_of is not None and role is PaperRole.MAIN:
        role = PaperRole.BACKUP
    start = parse_cli_time(window_start, what="--window-start")
    end = parse_cli_time(window_end, what="--window-end")
    assert start is not None
    assert end is not None
    plan = PaperPlan(
        paper_id=paper_id,
        version=version,
        classification=Classification.from_slug(classification),
        exam=exam,
        position=position,
        role=role,
        backup_of=backup_of,
        printer=printer,
        officers=tuple(officer),
        threshold=threshold,
        window_start=start,
        window_end=end,
        standby=standby,
        title=title,
    )
    proposer = _keys([key])[0]
    source: BinaryIO
    if str(file) == "-":
        source = sys.stdin.buffer
        size = None
    else:
        source, size = open_user_file(file, what=Phrase("paper file"), limit=CAP_PAPER)
    try:
        if structured:
            # A structured paper is small: validate it in memory before encrypting it.
            data = source.read(INTERVIEW_MAX_BYTES + 1)
            parse_interview_paper(data)
            source.close()
            source = io.BytesIO(data)
        log = open_writer(st)  # the proposal goes on the custody log before it is stored
        with _progress(size, "encrypting") as advance:
            done = service.propose(
                st.home,
                source=source,
                plan=plan,
                proposer=proposer,
                now=st.now(),
                chunk_size=chunk_size,
                progress=advance,
                log=log,
            )
    finally:
        source.close()
    p = done.proposal
    st.emit(
        {
            "paper": p.ref,
            "commitment": p.commitment,
            "ciphertext_bytes": p.ciphertext_bytes,
            "classification": p.classification.slug,
            "role": p.role.value,
            "threshold": p.threshold,
            "recipients": [r.to_obj() for r in p.recipients],
            "proposal_sha256": sha256_hex(done.envelope.to_bytes()),
        },
        _("[bold green]encrypted[/] {paper} ({level}, {role})").format(
            paper=p.ref, level=p.classification.slug, role=p.role.value
        )
        + "\n"
        + st.rows(
            (_("commitment"), p.commitment),
            (
                _("key sealed"),
                _("to printer {printer}; {k}-of-{n} shares to {officers}").format(
                    printer=plan.printer,
                    k=p.threshold,
                    n=len(plan.officers),
                    officers=", ".join(plan.officers),
                )
                + (_("; standby {who}").format(who=standby) if standby else ""),
            ),
        ),
    )


@paper_app.command("open")
def open_(
    ctx: typer.Context,
    paper: Annotated[str, typer.Argument(help=_("Paper id (newest version) or ID@vN."))],
    key: Annotated[list[Path], typer.Option(help=KEYS_HELP)],
    out: Annotated[Path, typer.Option(help=OUT_HELP)],
    act_out: Annotated[Path | None, typer.Option(help=_("Also write the signed act here."))] = None,
) -> None:
    """Open a paper with a quorum of its officers, inside its window (a signed act)."""
    from custody import paper_service as service

    st = state(ctx)
    opened = service.open_paper(st.home, paper, _keys(key), st.now(), log=open_writer(st))
    _act_out(act_out, opened.envelope)
    written = _deliver(opened, out)
    _emit(
        st,
        str(out) == "-",
        _act_summary(opened, out, written),
        _("[bold green]opened[/] {paper} -> {out} ({n} bytes); signed act #{act}").format(
            paper=opened.release.proposal.ref, out=out, n=written, act=opened.act_id
        ),
    )


@paper_app.command("print-decrypt")
def print_decrypt(
    ctx: typer.Context,
    paper: Annotated[str, typer.Argument(help=_("Paper id or ID@vN."))],
    key: Annotated[
        Path, typer.Option(help=_("Printer's key file ({env}).").format(env=PASSPHRASE_ENV))
    ],
    out: Annotated[Path, typer.Option(help=OUT_HELP)],
) -> None:
    """The printing unit decrypts a paper to print it (a signed act)."""
    from custody import paper_service as service

    st = state(ctx)
    opened = service.print_decrypt(st.home, paper, _keys([key])[0], st.now(), log=open_writer(st))
    written = _deliver(opened, out)
    _emit(
        st,
        str(out) == "-",
        _act_summary(opened, out, written),
        _("[bold green]decrypted for printing[/] {paper} -> {out}").format(
            paper=opened.release.proposal.ref, out=out
        ),
    )


@paper_app.command("break-glass")
def break_glass(
    ctx: typer.Context,
    paper: Annotated[str, typer.Argument(help=_("Paper id or ID@vN."))],
    key: Annotated[list[Path], typer.Option(help=KEYS_HELP)],
    reason: Annotated[str, typer.Option(help=_("What failed and who is absent."))],
    out: Annotated[Path, typer.Option(help=OUT_HELP)],
    act_out: Annotated[Path | None, typer.Option(help=_("Also write the signed act here."))] = None,
) -> None:
    """Emergency opening: the standby secrecy officer stands in for one absent officer.

    Always recorded as an incident.
    """
    from custody import paper_service as service

    st = state(ctx)
    opened = service.break_glass(st.home, paper, _keys(key), st.now(), reason, log=open_writer(st))
    _act_out(act_out, opened.envelope)
    written = _deliver(opened, out)
    _emit(
        st,
        str(out) == "-",
        _act_summary(opened, out, written),
        _("[bold yellow]break-glass[/] {paper} -> {out}; [bold red]incident opened[/]").format(
            paper=opened.release.proposal.ref, out=out
        ),
    )


@paper_app.command("activate-backup")
def activate_backup(
    ctx: typer.Context,
    paper: Annotated[str, typer.Argument(help=_("The compromised paper."))],
    backup: Annotated[str, typer.Option(help=_("The backup paper that replaces it."))],
    key: Annotated[
        Path, typer.Option(help=_("Secrecy officer's key file ({env}).").format(env=PASSPHRASE_ENV))
    ],
    reason: Annotated[str, typer.Option(help=_("Why the paper is compromised."))],
    act_out: Annotated[Path | None, typer.Option(help=_("Also write the signed act here."))] = None,
) -> None:
    """Declare a paper compromised and replace it by its backup (a signed act)."""
    from custody import paper_service as service

    st = state(ctx)
    env = service.activate_backup(
        st.home, paper, backup, _keys([key])[0], st.now(), reason, log=open_writer(st)
    )
    _act_out(act_out, env)
    st.emit(
        {"compromised": paper, "backup": backup, "act_sha256": sha256_hex(env.to_bytes())},
        _("[bold yellow]replaced[/] {paper} by backup {backup}").format(paper=paper, backup=backup),
    )


@paper_app.command("destroy")
def destroy(
    ctx: typer.Context,
    paper: Annotated[str, typer.Argument(help=_("Paper id: every version is destroyed."))],
    key: Annotated[list[Path], typer.Option(help=KEYS_HELP)],
) -> None:
    """Crypto-shred a paper: a destruction officer and a witness sign; every sealed key goes.

    The command then checks that no copy of a destroyed key is left in the database and fails
    (exit 6, ``shred_incomplete``) naming what is left if it cannot; the destruction stays
    recorded, and running the command again once the obstacle is gone finishes the erase.
    """
    from custody import paper_service as service

    st = state(ctx)
    envs = service.destroy(st.home, paper, _keys(key), st.now(), log=open_writer(st))
    st.emit(
        {"paper": paper, "acts": [sha256_hex(e.to_bytes()) for e in envs], "erased": True},
        _(
            "[bold green]destroyed[/] {paper}: every wrapped key and share deleted ({n} "
            "version(s)) and checked gone from the database; the ciphertext is now unreadable "
            "by anyone"
        ).format(paper=paper, n=len(envs)),
    )


@paper_app.command("list")
def list_(
    ctx: typer.Context,
    exam: Annotated[str | None, typer.Option(help=_("Only this exam."))] = None,
) -> None:
    """Papers with their status and how many sealed keys the system still holds."""
    from custody import paper_service as service

    st = state(ctx)
    rows = service.list_papers(st.home, exam)
    if st.json:
        st.emit({"papers": [r.__dict__ for r in rows]})
        return
    if not rows:
        st.out.print(_("no papers"))
        return
    for r in rows:
        backup = _(" backup of {paper}").format(paper=r.backup_of) if r.backup_of else ""
        st.out.print(
            f"{r.ref:24} {r.exam}/{r.position} {r.role}{backup} {r.classification} "
            f"[bold]{r.status}[/] keys={r.keys_held} {r.commitment[:16]}"
        )


@paper_app.command("purge")
def purge(
    ctx: typer.Context,
    exam: Annotated[str | None, typer.Option(help=_("Only this exam."))] = None,
) -> None:
    """Delete the ciphertext of destroyed papers once their exam's retention period is over.

    The retention date is the exam's policy on the log (exams.json, once published with
    ``custody exam publish``): nothing is deleted while any exam concerned is still within it,
    or has no policy there. Each purge is recorded on the log before the ciphertext goes.
    """
    from custody import paper_service as service

    st = state(ctx)
    result = service.purge(st.home, now=st.now(), writer=lambda: open_writer(st), exam=exam)
    st.emit(
        {
            "purged": list(result.purged),
            "kept": list(result.kept),
            "bytes_freed": result.bytes_freed,
        },
        _(
            "[bold green]purged[/] {purged} destroyed paper(s), {bytes} bytes of ciphertext; "
            "kept {kept} not yet destroyed: {papers}"
        ).format(
            purged=len(result.purged),
            bytes=result.bytes_freed,
            kept=len(result.kept),
            papers=", ".join(result.kept) or "-",
        ),
    )
