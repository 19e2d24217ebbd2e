"""`custody serve`: the HTTP API and the courier's scanning page, on uvicorn.

The log key's passphrase comes from CUSTODY_LOG_PASSPHRASE (or CUSTODY_PASSPHRASE) or a prompt,
as for `custody event submit`; `--read-only` serves reads only and never asks for it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli.common import LOG_PASSPHRASE_ENV, PASSPHRASE_ENV, passphrase, state


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8080,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="No log key: reads only, POST /v1/events is 503.")
    ] = False,
) -> None:
    """Serve the HTTP API (/v1/...) and the scanning page (/scan) for this home."""
    # Imported here: fastapi and uvicorn would slow every other command's start.
    import uvicorn  # noqa: PLC0415

    from api.app import Settings, create_app  # noqa: PLC0415

    st = state(ctx)
    secret = None
    if not read_only:
        secret = passphrase(
            env=LOG_PASSPHRASE_ENV, fallback=PASSPHRASE_ENV, prompt="Passphrase for the log key"
        )
    app = create_app(Settings(home=st.home_path, log_passphrase=secret, clock=st.now))
    mode = "read-only" if read_only else "accepting events"
    st.err.print(f"serving {st.home_path} on http://{host}:{port}/ ({mode}); scan page at /scan")
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
