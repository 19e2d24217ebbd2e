"""`custody package seal` and `custody label render|verify`: sealed packages and their QR labels."""

from __future__ import annotations

import hashlib
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from crypto.files import CAP_BUNDLE, CAP_PAPER, MIB, open_user_file
from custody.cli.common import open_writer, parse_cli_time, passphrase, read_input, state
from custody.errors import N_, FormatError, NotFoundError, Phrase, UsageError
from custody.i18n import _
from custody.packages import Classification, Manifest, RouteStep
from keys.keyfile import read_keyfile, write_new_file
from keys.trust import load_trust_bundle
from labels.payload import PREFIX, VerifiedLabel, verify_label

package_app = typer.Typer(help=_("Seal packages (signed manifests)."), no_args_is_help=True)
label_app = typer.Typer(help=_("Render and verify package QR labels."), no_args_is_help=True)

_CLASSES = {c.slug: c for c in Classification}  # one spelling: secret, confidential, top-secret


def _route_step(text: str) -> RouteStep:
    person, sep, place = text.partition("@")
    if not sep:
        raise UsageError(
            N_("--route {text!r}: write PERSON@PLACE, e.g. courier-sun@ROAD"), text=text
        )
    try:
        return RouteStep(person, place)
    except FormatError as e:
        raise UsageError(N_("--route {text!r}: {reason}"), text=text, reason=e) from e


CAP_LABEL_IMAGE = 32 * MIB  # a photo of a label, or its text


def _hash_file(path: Path) -> bytes:
    """SHA-256 of a paper file (or stdin), read in chunks: a regular file only."""
    digest = hashlib.sha256()
    if str(path) == "-":
        source = sys.stdin.buffer
    else:
        source, _ = open_user_file(path, what=Phrase("paper file"), limit=CAP_PAPER)
    with source:
        total = 0
        while chunk := source.read(MIB):
            total += len(chunk)
            if total > CAP_PAPER:
                raise UsageError(
                    N_("paper file {path} is more than the {cap_paper} bytes accepted"),
                    path=path,
                    cap_paper=CAP_PAPER,
                )
            digest.update(chunk)
    return digest.digest()


def _commitment(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError as e:
        raise UsageError(N_("--commitment: 64 hex digits (the paper's SHA-256 commitment)")) from e
    if len(raw) != 32:
        raise UsageError(N_("--commitment: 64 hex digits (the paper's SHA-256 commitment)"))
    return raw


@package_app.command("seal")
def seal(
    ctx: typer.Context,
    key: Annotated[Path, typer.Option(help=_("The sealer's key file (proposer or printer)."))],
    package: Annotated[str, typer.Option("--package", help=_("Package id."))],
    exam: Annotated[str, typer.Option(help=_("Exam id."))],
    session: Annotated[str, typer.Option(help=_("Exam session (e.g. AM)."))],
    position: Annotated[str, typer.Option(help=_("Position (post) id."))],
    paper: Annotated[str, typer.Option(help=_("Paper id."))],
    copies: Annotated[int, typer.Option(help=_("Number of copies in the package."))],
    seal_serial: Annotated[
        list[str], typer.Option("--seal", help=_("Seal serial, one per inner bag; repeat."))
    ],
    site: Annotated[str, typer.Option(help=_("Destination exam site (Chinese allowed)."))],
    room: Annotated[str, typer.Option(help=_("Destination room."))],
    opens: Annotated[str, typer.Option(help=_("Opening window start (UTC)."))],
    closes: Annotated[str, typer.Option(help=_("Opening window end (UTC)."))],
    route: Annotated[
        list[str], typer.Option(help=_("Planned step PERSON@PLACE, in order; repeat."))
    ],
    commitment: Annotated[
        str | None, typer.Option(help=_("Paper commitment: 64 hex digits (SHA-256)."))
    ] = None,
    paper_file: Annotated[
        Path | None, typer.Option(help=_("Or: the encrypted paper file, hashed with SHA-256."))
    ] = None,
    bag_size: Annotated[
        int | None, typer.Option(help=_("Copies per inner bag (default: all in one bag per seal)."))
    ] = None,
    classification: Annotated[
        str, typer.Option(help=_("secret | confidential | top-secret"))
    ] = "top-secret",
    valid_days: Annotated[int, typer.Option(help=_("Manifest lifetime after the window."))] = 30,
) -> None:
    """Sign a package's manifest with the sealer's key and store it.

    Whether its handovers need a supervising witness is the exam's policy (the home's
    exams.json, put on the log before the seal if the log does not hold it yet), not an
    option: an exam without a policy there is refused before anything is signed or stored."""
    from custody.package_service import (
        package_row_writer,
        refuse_sealed,
        seal_event,
        sign_label,
    )
    from labels.qr import encode_qr

    st = state(ctx)
    policy = st.home.exam_policy(exam)
    refuse_sealed(st.home, package)
    if (commitment is None) == (paper_file is None):
        raise UsageError(N_("give exactly one of --commitment HEX or --paper-file FILE"))
    digest = (
        _commitment(commitment) if commitment is not None else _hash_file(paper_file or Path("-"))
    )
    if classification not in _CLASSES:
        raise UsageError(N_("--classification: one of {levels}"), levels=", ".join(_CLASSES))
    opens_at = parse_cli_time(opens, what="--opens")
    closes_at = parse_cli_time(closes, what="--closes")
    assert opens_at is not None
    assert closes_at is not None
    now = st.now()
    serials = tuple(seal_serial)
    size = bag_size if bag_size is not None else -(-copies // max(1, len(serials)))
    manifest = Manifest(
        package_id=package,
        exam_id=exam,
        session=session,
        position=position,
        paper_id=paper,
        paper_commitment=digest,
        copy_count=copies,
        bag_size=size,
        seal_serials=serials,
        site=site,
        room=room,
        opens_at=opens_at,
        closes_at=closes_at,
        route=tuple(_route_step(r) for r in route),
        classification=_CLASSES[classification],
        issued_at=now,
        expires_at=max(closes_at, now) + timedelta(days=valid_days),
    )
    pair = read_keyfile(key, passphrase(prompt=_("Passphrase for {key}").format(key=key)))
    # Every key unsealed and every check made before anything is stored; then the exam's
    # policy (the file's, if the log lacks it: what binds is the policy on the log), the
    # package and its seal event are stored in one transaction, or none of them is.
    log = open_writer(st)
    text, verified = sign_label(st.home, manifest, pair.signing, now=now)
    symbol = encode_qr(text)
    event = seal_event(
        manifest,
        text,
        verified.certificate,
        log.trust.authority.id,
        pair.signing,
        handover_witness=policy.handover_witness,
    )
    publish = log.exam_policy_statement(policy, now=now)
    result = log.submit_many(
        [*([publish] if publish is not None else []), event],
        now=now,
        alongside=package_row_writer(manifest, text, verified),
    )
    if result.rejected:
        raise result.rejected[0].error
    receipt = result.receipts[-1]
    st.emit(
        {
            **verified.report(),
            "qr": {"version": symbol.version, "modules": symbol.size},
            "handover_witness": policy.handover_witness,
            "receipt": receipt.as_dict(),
        },
        _(
            "[bold green]sealed[/] {package} by {who}; QR version {version} ({modules} "
            "modules); seal event #{index} in the log"
        ).format(
            package=package,
            who=verified.certificate.describe(),
            version=symbol.designator,
            modules=symbol.size,
            index=receipt.index,
        )
        + (_("; handovers need a supervising witness") if policy.handover_witness else ""),
    )


@label_app.command("render")
def render(
    ctx: typer.Context,
    packages: Annotated[
        list[str] | None, typer.Argument(help=_("Package ids (default: every sealed package)."))
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help=_("png | svg | pdf"))] = "pdf",
    out: Annotated[Path, typer.Option(help=_("PDF file, or a folder for png/svg."))] = Path(
        "labels"
    ),
    font: Annotated[
        Path | None,
        typer.Option(help=_("A TrueType CJK font (default: the one that ships with custody).")),
    ] = None,
) -> None:
    """Render labels of sealed packages (each re-verified first)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from custody.package_service import all_package_ids, load_labels
    from labels.fonts import CJK_FONT
    from labels.qr import encode_qr
    from labels.render import render_png, render_svg
    from labels.sheet import write_sheets

    st = state(ctx)
    if fmt not in ("png", "svg", "pdf"):
        raise UsageError(N_("--format: png, svg or pdf"))
    ids = packages or all_package_ids(st.home)
    if not ids:
        raise NotFoundError(N_("no sealed packages to render"))
    now = st.now()
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=st.err,
        disable=st.json or len(ids) < 20,
    )
    written: list[Path] = []
    with progress:
        task = progress.add_task(_("rendering labels"), total=len(ids))
        labels = load_labels(st.home, ids, now=now)
        if fmt == "pdf":
            pairs = ((v.manifest, encode_qr(text)) for text, v in labels)
            written = write_sheets(
                pairs,
                out,
                total=len(ids),
                advance=lambda n: progress.advance(task, n),
                font=font or CJK_FONT,
            )
        else:
            for text, verified in labels:
                symbol = encode_qr(text)
                m = verified.manifest
                data = (
                    render_png(m, symbol, font=font or CJK_FONT)
                    if fmt == "png"
                    else render_svg(m, symbol)
                )
                path = out / f"{m.package_id}.{fmt}"
                write_new_file(path, data, mode=0o644, replace=True)
                written.append(path)
                progress.advance(task)
    st.emit(
        {"ok": True, "format": fmt, "labels": len(ids), "files": [str(p) for p in written]},
        _("[bold green]rendered[/] {n} label(s) as {format}: ").format(n=len(ids), format=fmt)
        + ", ".join(str(p) for p in written[:5])
        + (" ..." if len(written) > 5 else ""),
    )


def _label_source(source: str) -> str:
    """Label text from: the text itself, '-' (stdin), a text file, or an image file."""
    if source.startswith(PREFIX):
        return source
    if source != "-" and not os.path.lexists(source):
        raise NotFoundError(
            N_("{source!r} is neither label text ({prefix}...) nor a file"),
            source=source,
            prefix=PREFIX,
        )
    data = read_input(Path(source), what=Phrase("label text or image"), limit=CAP_LABEL_IMAGE)
    if data.lstrip().startswith(PREFIX.encode()):
        return data.decode("ascii", "replace").strip()
    from labels.scan import scan_label

    return scan_label(data)


@label_app.command("verify")
def verify(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help=_("Label text, a text file, or an image ('-')."))],
    trust: Annotated[Path, typer.Option(help=_("Trust bundle file."))],
    pin: Annotated[str | None, typer.Option(help=_("Expected authority root key id."))] = None,
) -> None:
    """Verify a package label offline: exit 0 and the manifest, or the reason it is refused."""
    st = state(ctx)
    store = load_trust_bundle(
        read_input(trust, what=Phrase("trust bundle"), limit=CAP_BUNDLE), pinned_root_id=pin
    )
    verified: VerifiedLabel = verify_label(_label_source(source), store, now=st.now())
    m = verified.manifest
    title = _("[bold green]valid[/] package {package}, sealed by {who}").format(
        package=m.package_id, who=verified.certificate.describe()
    )
    route = " → ".join(f"{step.person}@{step.place}" for step in m.route)
    facts = st.rows(
        (_("exam"), f"{m.exam_id} · {m.session} · {m.position}"),
        (_("paper"), m.paper_id),
        (_("paper commitment"), m.paper_commitment.hex()),
        (_("copies"), _("{copies} in bags of {size}").format(copies=m.copy_count, size=m.bag_size)),
        (_("seals"), ", ".join(m.seal_serials)),
        (_("destination"), f"{m.site} {m.room}"),
        (_("window opens"), st.show_time(m.opens_at)),
        (_("window closes"), st.show_time(m.closes_at)),
        (_("route"), route),
        (_("classification"), m.classification.slug),
        (_("issued"), st.show_time(m.issued_at)),
        (_("expires"), st.show_time(m.expires_at)),
    )
    st.emit(verified.report(), f"{title}\n{facts}")
