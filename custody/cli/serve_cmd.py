"""`custody serve`: the HTTP API and the courier's scanning page, on uvicorn.

The log key's and the system key's passphrases come from CUSTODY_LOG_PASSPHRASE and
CUSTODY_SYSTEM_PASSPHRASE (or CUSTODY_PASSPHRASE) or prompts, as for `custody event submit`;
`--read-only` serves reads only and never asks for them. While it serves, the incident desk's
clock work (sweep, escalation, outbox delivery) runs every `--desk-every` seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from crypto.note import NoteVerifier, parse_vkey
from custody.cli.common import (
    SMTP_HELP,
    SMTP_PLAIN_HELP,
    SMTPS_HELP,
    make_mailer,
    passphrase,
    service_secrets,
    state,
)
from custody.errors import ConflictError, UsageError
from custody.witness import Cosigner, WitnessState
from keys.keyfile import read_keyfile


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8080,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="No log key: reads only, POST /v1/events is 503.")
    ] = False,
    desk_every: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds between rounds of the incident desk's sweep and delivery (0: off)."
        ),
    ] = 60.0,
    smtp: Annotated[str | None, typer.Option(help=SMTP_HELP)] = None,
    sender: Annotated[str, typer.Option(help="From address of e-mail.")] = "custody@localhost",
    smtps: Annotated[bool, typer.Option("--smtps", help=SMTPS_HELP)] = False,
    smtp_plain_loopback: Annotated[
        bool, typer.Option("--smtp-plain-loopback", help=SMTP_PLAIN_HELP)
    ] = False,
) -> None:
    """Serve the HTTP API (/v1/...) and the scanning page (/scan) for this home."""
    # Imported here: fastapi and uvicorn would slow every other command's start.
    import uvicorn  # noqa: PLC0415

    from api.app import Settings, create_app  # noqa: PLC0415

    st = state(ctx)
    # Checked before any passphrase is asked: a relay refused here stops the start.
    mailer = make_mailer(smtp, sender, implicit_tls=smtps, plain_loopback=smtp_plain_loopback)
    secrets = None if read_only else service_secrets(shared_fallback=False)
    settings = Settings(
        home=st.home_path,
        log_passphrase=secrets.log if secrets else None,
        system_passphrase=secrets.system if secrets else None,
        clock=st.now,
        desk_every=desk_every,
        mailer=mailer,
    )
    app = create_app(settings)
    mode = "read-only" if read_only else "accepting events"
    st.err.print(f"serving {st.home_path} on http://{host}:{port}/ ({mode}); scan page at /scan")
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


def witness_serve(
    ctx: typer.Context,
    log_vkey: Annotated[
        list[str], typer.Option(help="A followed log's verifier key (signed-note); repeat.")
    ],
    state_file: Annotated[Path, typer.Option("--state", help="This witness's state file.")],
    key: Annotated[Path, typer.Option(help="The witness's key file (CUSTODY_PASSPHRASE).")],
    name: Annotated[str, typer.Option(help="The witness's key name.")],
    init: Annotated[
        bool, typer.Option("--init", help="A new witness: start its state file (none may exist).")
    ] = False,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8090,
) -> None:
    """Run a witness over HTTP (c2sp.org/tlog-witness): POST /add-checkpoint."""
    import uvicorn  # noqa: PLC0415

    from api.witness import (  # noqa: PLC0415
        WitnessSettings,
        create_witness_app,
        load_witness_state,
        save_witness_state,
    )

    st = state(ctx)
    logs = []
    for text in log_vkey:
        verifier = parse_vkey(text)
        if not isinstance(verifier, NoteVerifier):
            raise UsageError("--log-vkey must be an Ed25519 signed-note key (type 0x01)")
        logs.append(verifier)
    if init:
        if os.path.lexists(state_file):
            raise ConflictError(
                f"{state_file} exists: --init starts a new witness only where there is no state",
                hint="drop --init to continue this witness from its state",
            )
        save_witness_state(state_file, WitnessState())
    else:
        load_witness_state(state_file)  # missing or unreadable: refused before listening
    pair = read_keyfile(key, passphrase(prompt=f"Passphrase for {key}"))
    settings = WitnessSettings(
        state=state_file, cosigner=Cosigner(name, pair.signing), logs=logs, clock=st.now
    )
    st.err.print(f"witness {name} on http://{host}:{port}/add-checkpoint ({len(logs)} log(s))")
    uvicorn.run(create_witness_app(settings), host=host, port=port, log_level="warning")
