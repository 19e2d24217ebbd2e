"""`custody serve`: the HTTP API and the courier's scanning page, on uvicorn.

The log key's and the system key's passphrases come from CUSTODY_LOG_PASSPHRASE and
CUSTODY_SYSTEM_PASSPHRASE (or CUSTODY_PASSPHRASE) or prompts, as for `custody event submit`;
`--read-only` serves reads only and never asks for them. While it serves, the incident desk's
clock work (sweep, escalation, outbox delivery) runs every `--desk-every` seconds.
"""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli.common import (
    SMTP_HELP,
    SMTP_PLAIN_HELP,
    SMTPS_HELP,
    make_mailer,
    service_secrets,
    state,
)
from custody.errors import UsageError


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
    public_origin: Annotated[
        str | None,
        typer.Option(help="The origin logins are bound to, e.g. https://custody.example."),
    ] = None,
    body_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds for a whole request body to arrive.")
    ] = 30.0,
    rate_per_address: Annotated[
        str, typer.Option(help="Requests per client address, e.g. 600/minute.")
    ] = "600/minute",
    rate_per_key: Annotated[
        str, typer.Option(help="Logins, logged-in reads and submissions per key.")
    ] = "300/minute",
    access_flush: Annotated[
        str,
        typer.Option(
            help="Access records: 'full' (each waits for the disk) or 'lazy' (durable against a "
            "crash of the service, flushed with the next full commit)."
        ),
    ] = "full",
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections at most; beyond them answers 503.")
    ] = 256,
) -> None:
    """Serve the HTTP API (/v1/...) and the scanning page (/scan) for this home."""
    # Imported here: fastapi and uvicorn would slow every other command's start.
    import uvicorn

    from api.app import Settings, create_app

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
        public_origin=public_origin,
        body_timeout=body_timeout,
        rate_per_address=_rate(rate_per_address, "--rate-per-address"),
        rate_per_key=_rate(rate_per_key, "--rate-per-key"),
        access_flush=access_flush,
    )
    app = create_app(settings)
    mode = "read-only" if read_only else "accepting events"
    st.err.print(f"serving {st.home_path} on http://{host}:{port}/ ({mode}); scan page at /scan")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_keep_alive=5,  # an idle connection is closed after 5 s
        limit_concurrency=max_connections,
    )


def _rate(text: str, option: str) -> str:
    from limits import parse

    try:
        parse(text)
    except ValueError as e:
        raise UsageError(f"{option}: {text!r} is not a rate such as 600/minute") from e
    return text
