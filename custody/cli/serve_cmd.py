"""`custody serve`: the HTTP API (uvicorn) over the home."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from custody.cli.common import LOG_PASSPHRASE_ENV, PASSPHRASE_ENV, state


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8700,
    read_only: Annotated[
        bool, typer.Option(help="Serve proofs and checks only; refuse submissions.")
    ] = False,
) -> None:
    """Serve the log, proofs and label checks over HTTP (submissions need the log key)."""
    import uvicorn  # noqa: PLC0415 (only this command needs the server)

    from api.app import Settings, create_app  # noqa: PLC0415

    st = state(ctx)
    secret = None
    if not read_only:
        secret = os.environ.get(LOG_PASSPHRASE_ENV) or os.environ.get(PASSPHRASE_ENV)
    app = create_app(Settings(home=st.home_path, log_passphrase=secret))
    mode = "read-write" if secret else "read-only"
    st.err.print(f"serving {st.home_path} on http://{host}:{port} ({mode})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
