"""`custody log vkey|witness-request|add-cosignature|checkpoint` (the log's side) and `custody
witness cosign` (a witness, typically another authority, cosigning after checking consistency;
c2sp.org/tlog-witness)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from crypto.encoding import Fields, parse_json_object
from crypto.files import CAP_NOTE, CAP_SMALL_JSON, read_user_file
from crypto.note import NoteVerifier, parse_checkpoint, parse_note, parse_vkey
from custody.cli.common import passphrase, read_input, state
from custody.cli.log_cmd import log_app, open_log
from custody.errors import N_, ConflictError, FormatError, NotFoundError, Phrase, UsageError
from custody.i18n import _
from custody.witness import (
    Cosigner,
    WitnessRecord,
    WitnessState,
    format_add_checkpoint,
    witness_add_checkpoint,
)
from keys.keyfile import read_keyfile, write_new_file

witness_app = typer.Typer(
    help=_("Witness another log: cosign its checkpoints."), no_args_is_help=True
)


@log_app.command("vkey")
def vkey(ctx: typer.Context) -> None:
    """The log's verifier key (signed-note format), for witnesses and auditors to configure."""
    st = state(ctx)
    authority = open_log(st, writable=False).trust.authority
    key = NoteVerifier(authority.log_origin, authority.log_key).vkey()
    st.emit({"origin": authority.log_origin, "vkey": key}, key)


@log_app.command("witness-request")
def witness_request(
    ctx: typer.Context,
    old_size: Annotated[
        int, typer.Option(help=_("The size the witness last cosigned (0 at first)."))
    ],
    out: Annotated[
        Path | None, typer.Option(help=_("Write the request here (default stdout)."))
    ] = None,
) -> None:
    """An add-checkpoint request: the latest checkpoint with a consistency proof from OLD_SIZE."""
    st = state(ctx)
    log = open_log(st, writable=False)
    note = log.latest_checkpoint()
    size = parse_checkpoint(parse_note(note).text).size
    proof = log.consistency_proof(old_size, size) if 0 < old_size < size else []
    body = format_add_checkpoint(old_size, proof, note)
    if out is None:
        st.out.file.write(body.decode())
        return
    write_new_file(out, body, mode=0o644, replace=True)
    st.emit(
        {"request": str(out), "old_size": old_size, "size": size},
        _("wrote {path} ({old} -> {new})").format(path=out, old=old_size, new=size),
    )


@log_app.command("add-cosignature")
def add_cosignature(
    ctx: typer.Context,
    cosigned: Annotated[
        Path,
        typer.Argument(
            help=_("The cosigned checkpoint note, or the witness's lines ('-' = stdin).")
        ),
    ],
    size: Annotated[
        int | None,
        typer.Option(help=_("For lines alone: the checkpoint size they cosign (default latest).")),
    ] = None,
) -> None:
    """Store a witness's cosignature, verified under its key in the home's witnesses.json."""
    st = state(ctx)
    policy = st.home.require_witness_policy()
    log = open_log(st, writable=False)
    try:
        text = read_input(cosigned, what=Phrase("cosigned checkpoint"), limit=CAP_NOTE).decode(
            "utf-8"
        )
    except UnicodeDecodeError as e:
        raise FormatError(N_("{path} is not UTF-8"), path=cosigned) from e
    added = log.add_cosignatures(text, policy, now=st.now(), size=size)
    st.emit(
        {"cosignatures": [a.as_dict() for a in added]},
        "\n".join(
            (
                _("already held: cosignature by {witness} on the checkpoint of size {size}")
                if a.duplicate
                else _("stored: cosignature by {witness} on the checkpoint of size {size}")
            ).format(witness=escape(a.witness), size=a.size)
            for a in added
        ),
    )


@log_app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    size: Annotated[int | None, typer.Option(help=_("Tree size (default: the latest)."))] = None,
) -> None:
    """A signed checkpoint with every witness cosignature the log holds for it."""
    st = state(ctx)
    note = open_log(st, writable=False).cosigned_checkpoint(size)
    if st.json:
        st.emit({"checkpoint": note})
    else:
        st.out.file.write(note)


def _load_state(path: Path, *, init: bool) -> WitnessState:
    """The witness's state: what it cosigned last, per log (its rollback protection).

    Missing or unreadable is an error, never a fresh start, unless ``init`` says this is a new
    witness (and then nothing may be there, not even a dangling symlink)."""
    if init:
        if os.path.lexists(path):
            raise ConflictError(
                N_("{path} exists: --init starts a new witness only where there is no state"),
                hint=N_("drop --init to continue this witness from its state"),
                path=path,
            )
        return WitnessState()
    try:
        data = read_user_file(path, what=Phrase("witness state"), limit=CAP_SMALL_JSON, stdin=False)
    except NotFoundError as e:
        raise NotFoundError(
            N_("{error}: a witness without its state would cosign as if new"),
            hint=N_("restore the state file, or pass --init to start a new witness"),
            error=e,
        ) from e
    f = Fields(parse_json_object(data, what=str(path)), what=str(path))
    notes = f.obj.get("cosigned")
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise FormatError(
            N_("{path} is not a witness state file (cosigned: a list of notes)"), path=path
        )
    records = [WitnessRecord(parse_checkpoint(parse_note(n).text), n) for n in notes]
    return WitnessState(tuple(records))


@witness_app.command("cosign")
def cosign(
    ctx: typer.Context,
    request: Annotated[
        Path, typer.Argument(help=_("An add-checkpoint request file ('-' = stdin)."))
    ],
    log_vkey: Annotated[str, typer.Option(help=_("The witnessed log's verifier key."))],
    state_file: Annotated[Path, typer.Option("--state", help=_("This witness's state file."))],
    key: Annotated[Path, typer.Option(help=_("The witness's key file."))],
    name: Annotated[str, typer.Option(help=_("The witness's key name."))],
    init: Annotated[
        bool,
        typer.Option("--init", help=_("A new witness: start its state file (none may exist).")),
    ] = False,
) -> None:
    """Check the request against what this witness last cosigned, then cosign it."""
    st = state(ctx)
    verifier = parse_vkey(log_vkey)
    if not isinstance(verifier, NoteVerifier):
        raise UsageError(N_("--log-vkey must be an Ed25519 signed-note key (type 0x01)"))
    current = _load_state(state_file, init=init)
    pair = read_keyfile(key, passphrase(prompt=_("Passphrase for {key}").format(key=key)))
    new_state, line = witness_add_checkpoint(
        current,
        verifier,
        read_input(request, what=Phrase("witness request"), limit=CAP_NOTE),
        Cosigner(name, pair.signing),
        st.now(),
    )
    body = {"cosigned": [r.note for r in new_state.records]}
    write_new_file(
        state_file, json.dumps(body, indent=2).encode() + b"\n", mode=0o600, replace=True
    )
    record = new_state.latest(verifier.name)
    size = record.checkpoint.size if record else None
    st.emit({"origin": verifier.name, "size": size, "cosignature": line}, line.rstrip("\n"))
