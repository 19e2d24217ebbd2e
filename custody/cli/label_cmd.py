"""`custody package seal` and `custody label render|verify`: sealed packages and their QR labels."""

from __future__ import annotations

import hashlib
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from crypto.files import CAP_BUNDLE, CAP_PAPER, MIB, open_user_file
from custody.cli.common import open_writer, parse_cli_time, passphrase, read_input, state
from custody.errors import FormatError, NotFoundError, UsageError
from custody.package_service import (
    all_package_ids,
    label_text,
    load_labels,
    seal_event,
    seal_package,
)
from custody.packages import Classification, Manifest, RouteStep
from keys.keyfile import read_keyfile, write_new_file
from keys.trust import load_trust_bundle
from labels.payload import PREFIX, VerifiedLabel, verify_label
from labels.qr import encode_qr
from labels.render import render_png, render_svg
from labels.scan import scan_label
from labels.sheet import write_sheets

package_app = typer.Typer(help="Seal packages (signed manifests).", no_args_is_help=True)
label_app = typer.Typer(help="Render and verify package QR labels.", no_args_is_help=True)

_CLASSES = {c.slug: c for c in Classification}  # one spelling: secret, confidential, top-secret


def _route_step(text: str) -> RouteStep:
    person, sep, place = text.partition("@")
    if not sep:
        raise UsageError(f"--route {text!r}: write PERSON@PLACE, e.g. courier-sun@ROAD")
    try:
        return RouteStep(person, place)
    except FormatError as e:
        raise UsageError(f"--route {text!r}: {e.message}") from e


CAP_LABEL_IMAGE = 32 * MIB  # a photo of a label, or its text


def _hash_file(path: Path) -> bytes:
    """SHA-256 of a paper file (or stdin), read in chunks: a regular file only."""
    digest = hashlib.sha256()
    if str(path) == "-":
        source = sys.stdin.buffer
    else:
        source, _ = open_user_file(path, what="paper file", limit=CAP_PAPER)
    with source:
        total = 0
        while chunk := source.read(MIB):
            total += len(chunk)
            if total > CAP_PAPER:
                raise UsageError(f"paper file {path} is more than the {CAP_PAPER} bytes accepted")
            digest.update(chunk)
    return digest.digest()


def _commitment(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError as e:
        raise UsageError("--commitment: 64 hex digits (the paper's SHA-256 commitment)") from e
    if len(raw) != 32:
        raise UsageError("--commitment: 64 hex digits (the paper's SHA-256 commitment)")
    return raw


@package_app.command("seal")
def seal(
    ctx: typer.Context,
    key: Annotated[Path, typer.Option(help="The sealer's key file (proposer or printer).")],
    package: Annotated[str, typer.Option("--package", help="Package id.")],
    exam: Annotated[str, typer.Option(help="Exam id.")],
    session: Annotated[str, typer.Option(help="Exam session (e.g. AM).")],
    position: Annotated[str, typer.Option(help="Position (post) id.")],
    paper: Annotated[str, typer.Option(help="Paper id.")],
    copies: Annotated[int, typer.Option(help="Number of copies in the package.")],
    seal_serial: Annotated[
        list[str], typer.Option("--seal", help="Seal serial, one per inner bag; repeat.")
    ],
    site: Annotated[str, typer.Option(help="Destination exam site (Chinese allowed).")],
    room: Annotated[str, typer.Option(help="Destination room.")],
    opens: Annotated[str, typer.Option(help="Opening window start (UTC).")],
    closes: Annotated[str, typer.Option(help="Opening window end (UTC).")],
    route: Annotated[list[str], typer.Option(help="Planned step PERSON@PLACE, in order; repeat.")],
    commitment: Annotated[
        str | None, typer.Option(help="Paper commitment: 64 hex digits (SHA-256).")
    ] = None,
    paper_file: Annotated[
        Path | None, typer.Option(help="Or: the encrypted paper file, hashed with SHA-256.")
    ] = None,
    bag_size: Annotated[
        int | None, typer.Option(help="Copies per inner bag (default: all in one bag per seal).")
    ] = None,
    classification: Annotated[
        str, typer.Option(help="secret | confidential | top-secret")
    ] = "top-secret",
    valid_days: Annotated[int, typer.Option(help="Manifest lifetime after the window.")] = 30,
) -> None:
    """Sign a package's manifest with the sealer's key and store it.

    Whether its handovers need a supervising witness is the exam's policy (the home's
    exams.json, put on the log before the seal if the log does not hold it yet), not an
    option: an exam without a policy there is refused before anything is signed or stored."""
    st = state(ctx)
    policy = st.home.exam_policy(exam)
    if (commitment is None) == (paper_file is None):
        raise UsageError("give exactly one of --commitment HEX or --paper-file FILE")
    digest = (
        _commitment(commitment) if commitment is not None else _hash_file(paper_file or Path("-"))
    )
    if classification not in _CLASSES:
        raise UsageError(f"--classification: one of {', '.join(_CLASSES)}")
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
    pair = read_keyfile(key, passphrase(prompt=f"Passphrase for {key}"))
    log = open_writer(st)
    # What binds is the policy on the log: the file's, published first if the log lacks it.
    log.publish_exam_policy(policy, now=now)
    verified = seal_package(st.home, manifest, pair.signing, now=now)
    text = label_text(st.home, package)
    symbol = encode_qr(text)
    event = seal_event(
        manifest,
        text,
        verified.certificate,
        log.trust.authority.id,
        pair.signing,
        handover_witness=policy.handover_witness,
    )
    receipt = log.submit(event, now=now)
    st.emit(
        {
            **verified.report(),
            "qr": {"version": symbol.version, "modules": symbol.size},
            "handover_witness": policy.handover_witness,
            "receipt": receipt.as_dict(),
        },
        f"[bold green]sealed[/] {package} by {verified.certificate.describe()}; "
        f"QR version {symbol.designator} ({symbol.size} modules); "
        f"seal event #{receipt.index} in the log"
        + ("; handovers need a supervising witness" if policy.handover_witness else ""),
    )


@label_app.command("render")
def render(
    ctx: typer.Context,
    packages: Annotated[
        list[str] | None, typer.Argument(help="Package ids (default: every sealed package).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="png | svg | pdf")] = "pdf",
    out: Annotated[Path, typer.Option(help="PDF file, or a folder for png/svg.")] = Path("labels"),
) -> None:
    """Render labels of sealed packages (each re-verified first)."""
    st = state(ctx)
    if fmt not in ("png", "svg", "pdf"):
        raise UsageError("--format: png, svg or pdf")
    ids = packages or all_package_ids(st.home)
    if not ids:
        raise NotFoundError("no sealed packages to render")
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
        task = progress.add_task("rendering labels", total=len(ids))
        labels = load_labels(st.home, ids, now=now)
        if fmt == "pdf":
            pairs = ((v.manifest, encode_qr(text)) for text, v in labels)
            written = write_sheets(
                pairs, out, total=len(ids), advance=lambda n: progress.advance(task, n)
            )
        else:
            for text, verified in labels:
                symbol = encode_qr(text)
                m = verified.manifest
                data = render_png(m, symbol) if fmt == "png" else render_svg(m, symbol)
                path = out / f"{m.package_id}.{fmt}"
                write_new_file(path, data, mode=0o644, replace=True)
                written.append(path)
                progress.advance(task)
    st.emit(
        {"ok": True, "format": fmt, "labels": len(ids), "files": [str(p) for p in written]},
        f"[bold green]rendered[/] {len(ids)} label(s) as {fmt}: "
        + ", ".join(str(p) for p in written[:5])
        + (" ..." if len(written) > 5 else ""),
    )


def _label_source(source: str) -> str:
    """Label text from: the text itself, '-' (stdin), a text file, or an image file."""
    if source.startswith(PREFIX):
        return source
    if source != "-" and not os.path.lexists(source):
        raise NotFoundError(f"{source!r} is neither label text ({PREFIX}...) nor a file")
    data = read_input(Path(source), what="label text or image", limit=CAP_LABEL_IMAGE)
    if data.lstrip().startswith(PREFIX.encode()):
        return data.decode("ascii", "replace").strip()
    return scan_label(data)


@label_app.command("verify")
def verify(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Label text, a text file, or an image ('-').")],
    trust: Annotated[Path, typer.Option(help="Trust bundle file.")],
    pin: Annotated[str | None, typer.Option(help="Expected authority root key id.")] = None,
) -> None:
    """Verify a package label offline: exit 0 and the manifest, or the reason it is refused."""
    st = state(ctx)
    store = load_trust_bundle(
        read_input(trust, what="trust bundle", limit=CAP_BUNDLE), pinned_root_id=pin
    )
    verified: VerifiedLabel = verify_label(_label_source(source), store, now=st.now())
    m = verified.manifest
    human = [
        f"[bold green]valid[/] package {m.package_id}, sealed by {verified.certificate.describe()}"
    ]
    for key, value in m.facts().items():
        human.append(f"  {key}: {value}")
    st.emit(verified.report(), "\n".join(human))
