"""`custody login`: prove your enrolled key to a custody service and keep the session token.

The key file's passphrase comes from CUSTODY_PASSPHRASE (or its _FILE) or a prompt, never an
argument. The token is written to a new file readable by you only (or printed with --json);
send it as ``Authorization: Bearer <token>``. It lives 15 minutes and ends at once if your key
is revoked (docs/formats.md "Login statement and session token").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crypto.encoding import parse_time
from custody.cli.common import passphrase, state
from custody.errors import N_, CustodyError, LoginError, UsageError
from custody.i18n import _, language
from keys.keyfile import read_keyfile, write_new_file


def login(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help=_("The service, e.g. https://custody.example:8080."))],
    key: Annotated[Path, typer.Option(help=_("Your key file."))],
    out: Annotated[
        Path | None, typer.Option(help=_("A new file for the token (mode 0600)."))
    ] = None,
) -> None:
    """Log in to a custody service with your enrolled key (no password): sign its challenge,
    get a short-lived session token."""
    import httpx

    from custody.sessions import Challenge, sign_login

    st = state(ctx)
    pair = read_keyfile(key, passphrase(prompt=_("Passphrase for {key}").format(key=key)))
    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=30) as client:
            r = client.post(f"{base}/v1/login/challenge")
            _raise_for(r)
            got = r.json()
            challenge = Challenge(
                str(got["challenge"]), str(got["origin"]), parse_time(got["expires_at"])
            )
            statement = sign_login(challenge, pair.signing)
            r = client.post(
                f"{base}/v1/login",
                content=statement.to_bytes(),
                headers={"content-type": "application/json"},
            )
            _raise_for(r)
            session = r.json()
    except httpx.HTTPError as e:
        raise UsageError(N_("cannot reach {url}: {error}"), url=base, error=type(e).__name__) from e
    token = str(session["token"])
    if out is not None:
        write_new_file(out, token.encode() + b"\n", mode=0o600)
    shown = dict(session) if out is None else {k: v for k, v in session.items() if k != "token"}
    st.emit(
        {**shown, "token_file": str(out) if out else None},
        _("[bold green]logged in[/] as {who} ({roles}) until {until}").format(
            who=session["subject"],
            roles=", ".join(session["roles"]),
            until=st.show_time(parse_time(session["expires_at"])),
        )
        + (_("; token in {path}").format(path=out) if out else ""),
    )
    if out is None and not st.json:
        typer.echo(token)


def _raise_for(r: object) -> None:
    import httpx

    assert isinstance(r, httpx.Response)
    if r.status_code < 400:
        return
    try:
        body = r.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        # The service's own words: its Chinese (message_zh) under a Chinese locale.
        text = body.get("message_zh") if language() == "zh" else None
        error: CustodyError = LoginError(
            N_("{code}: {text}"),
            code=body.get("error", r.status_code),
            text=text or body.get("message", ""),
        )
    else:
        error = LoginError(N_("HTTP {status}"), status=r.status_code)
    error.http_status = r.status_code
    raise error
