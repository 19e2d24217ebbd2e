"""`custody serve`: the HTTP API and the courier's scanning page, on uvicorn.

The log key's and the system key's passphrases come from CUSTODY_LOG_PASSPHRASE and
CUSTODY_SYSTEM_PASSPHRASE (or CUSTODY_PASSPHRASE) or prompts, as for `custody event submit`;
`--read-only` serves reads only and never asks for them. While it serves, the incident desk's
clock work (sweep, escalation, outbox delivery) runs every `--desk-every` seconds.

`--workers N` runs N server processes on one port (uvicorn's workers): each opens the home and
unseals the keys itself (the passphrases reach them in their environment, never on a command
line), and only the one holding the home's desk lock (``desk.lock``) runs the desk's clock
work, so no sweep or e-mail is done twice. Single submissions go to this process, which stays
the one log writer (``api.writer_link``): every worker's submissions join one group commit.
Other writes append from the worker through the same database lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from crypto.encoding import format_time, parse_time
from crypto.note import NoteVerifier, parse_vkey
from custody.cli.common import (
    SMTP_HELP,
    SMTP_PLAIN_HELP,
    SMTPS_HELP,
    State,
    make_mailer,
    passphrase,
    service_secrets,
    state,
)
from custody.errors import N_, ConflictError, UsageError
from custody.i18n import _
from custody.witness import Cosigner, WitnessState
from keys.keyfile import read_keyfile

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("custody.api")
WORKER_SPEC = "CUSTODY_SERVE_WORKER"  # what each worker process builds its app from (JSON)
DESK_LOCK = "desk.lock"
_desk_lock: IO[str] | None = None  # held for the life of the worker that runs the desk


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help=_("Address to listen on."))] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help=_("TCP port."))] = 8080,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help=_("No log key: reads only, POST /v1/events is 503.")),
    ] = False,
    desk_every: Annotated[
        float,
        typer.Option(
            min=0,
            help=_("Seconds between rounds of the incident desk's sweep and delivery (0: off)."),
        ),
    ] = 60.0,
    witness_every: Annotated[
        float,
        typer.Option(
            min=0,
            help=_(
                "Seconds between rounds of sending the latest checkpoint to the live witnesses "
                "(0: off)."
            ),
        ),
    ] = 2.0,
    smtp: Annotated[str | None, typer.Option(help=SMTP_HELP)] = None,
    sender: Annotated[str, typer.Option(help=_("From address of e-mail."))] = "custody@localhost",
    smtps: Annotated[bool, typer.Option("--smtps", help=SMTPS_HELP)] = False,
    smtp_plain_loopback: Annotated[
        bool, typer.Option("--smtp-plain-loopback", help=SMTP_PLAIN_HELP)
    ] = False,
    public_origin: Annotated[
        str | None,
        typer.Option(help=_("The origin logins are bound to, e.g. https://custody.example.")),
    ] = None,
    body_timeout: Annotated[
        float, typer.Option(min=0.1, help=_("Seconds for a whole request body to arrive."))
    ] = 30.0,
    rate_per_address: Annotated[
        str, typer.Option(help=_("Requests per client address, e.g. 600/minute."))
    ] = "600/minute",
    rate_per_key: Annotated[
        str, typer.Option(help=_("Logins, logged-in reads and submissions per key."))
    ] = "300/minute",
    access_flush: Annotated[
        str,
        typer.Option(
            help=_(
                "Access records: 'full' (each waits for the disk), 'lazy' (durable against a "
                "crash of the service, flushed with the next full commit) or 'queued' (written "
                "within 50 ms of the answer; a crash loses the reads still queued)."
            )
        ),
    ] = "full",
    max_connections: Annotated[
        int, typer.Option(min=1, help=_("Open connections at most; beyond them answers 503."))
    ] = 256,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help=_(
                "Server processes sharing the port; this process stays the one writer of "
                "their single submissions."
            ),
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API (/v1/...) and the scanning page (/scan) for this home."""
    # Imported here: fastapi and uvicorn would slow every other command's start.
    import uvicorn

    from api.app import Settings, create_app

    st = state(ctx)
    # Checked before any passphrase is asked: a relay refused here stops the start.
    mailer = make_mailer(smtp, sender, implicit_tls=smtps, plain_loopback=smtp_plain_loopback)
    secrets = None if read_only else service_secrets(shared_fallback=False)
    mode = _("read-only") if read_only else _("accepting events")
    if workers > 1:
        st.now()  # --now outside a rehearsal home is refused here, before any worker starts
        spec = {
            "home": str(st.home_path),
            "now": format_time(st.now_override) if st.now_override else None,
            "desk_every": desk_every,
            "witness_every": witness_every,
            "smtp": [smtp, sender, smtps, smtp_plain_loopback],
            "read_only": read_only,
            "public_origin": public_origin,
            "body_timeout": body_timeout,
            "rate_per_address": _rate(rate_per_address, "--rate-per-address"),
            "rate_per_key": _rate(rate_per_key, "--rate-per-key"),
            "access_flush": access_flush,
        }
        os.environ[WORKER_SPEC] = json.dumps(spec)
        if secrets is not None:  # the workers unseal the keys themselves
            os.environ["CUSTODY_LOG_PASSPHRASE"] = secrets.log
            os.environ["CUSTODY_SYSTEM_PASSPHRASE"] = secrets.system
        # Keys and home checked before any worker starts; with the log key, this process
        # stays the one writer of the workers' single submissions (api.writer_link).
        backend = _build(desk=False).state.backend
        writer = None
        if backend.writable:
            from api.writer_link import LogWriterServer

            writer = LogWriterServer(backend)
            os.environ[WORKER_SPEC] = json.dumps({**spec, "writer": str(writer.path)})
        st.err.print(
            _(
                "serving {home} on http://{host}:{port}/ ({mode}, {workers} workers); "
                "scan page at /scan"
            ).format(home=st.home_path, host=host, port=port, mode=mode, workers=workers)
        )
        try:
            uvicorn.run(
                "custody.cli.serve_cmd:worker_app",
                factory=True,
                workers=workers,
                host=host,
                port=port,
                log_level="info",
                access_log=False,
                timeout_keep_alive=5,
                limit_concurrency=max_connections,
            )
        finally:
            if writer is not None:
                writer.close()
            backend.close()
        return
    settings = Settings(
        home=st.home_path,
        log_passphrase=secrets.log if secrets else None,
        system_passphrase=secrets.system if secrets else None,
        clock=st.now,
        desk_every=desk_every,
        witness_every=witness_every,
        mailer=mailer,
        public_origin=public_origin,
        body_timeout=body_timeout,
        rate_per_address=_rate(rate_per_address, "--rate-per-address"),
        rate_per_key=_rate(rate_per_key, "--rate-per-key"),
        access_flush=access_flush,
    )
    app = create_app(settings)
    st.err.print(
        _("serving {home} on http://{host}:{port}/ ({mode}); scan page at /scan").format(
            home=st.home_path, host=host, port=port, mode=mode
        )
    )
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
        raise UsageError(
            N_("{option}: {text!r} is not a rate such as 600/minute"), option=option, text=text
        ) from e
    return text


def worker_app() -> FastAPI:
    """The app of one worker process of ``serve --workers N`` (uvicorn's factory)."""
    _stop_with_parent()
    return _build(desk=True)


PARENT_POLL = 0.5  # seconds between a worker's looks at whether its serving process is there
STOP_GRACE = 10.0  # seconds a worker's graceful stop may take before it exits anyway


def _stop_with_parent() -> None:
    """Stop this worker when the process that started it is gone (killed, crashed): that
    process is the one log writer, and uvicorn does not tell its workers when it dies. An
    orphaned worker would answer every submission 503 and keep the port, so that the service
    could not be started again until someone found and killed it."""
    import signal
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        said = _("the serving process {pid} is gone: this worker stops").format(pid=parent)
        log.warning("%s", said)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful stop: requests under way end
        time.sleep(STOP_GRACE)
        os._exit(1)

    threading.Thread(target=watch, name="custody-parent-watch", daemon=True).start()


def _build(*, desk: bool) -> FastAPI:
    from api.app import Settings, create_app

    spec: dict[str, Any] = json.loads(os.environ[WORKER_SPEC])
    now = parse_time(spec["now"], what="--now") if spec["now"] else None
    st = State(home_path=Path(spec["home"]), now_override=now)
    smtp, sender, smtps, plain = spec["smtp"]
    mailer = make_mailer(smtp, sender, implicit_tls=smtps, plain_loopback=plain)
    writable = not spec["read_only"]
    runs_desk = desk and writable and _take_desk(st.home_path)
    desk_every = float(spec["desk_every"]) if runs_desk else 0.0
    settings = Settings(
        home=st.home_path,
        log_passphrase=os.environ.get("CUSTODY_LOG_PASSPHRASE") if writable else None,
        system_passphrase=os.environ.get("CUSTODY_SYSTEM_PASSPHRASE") if writable else None,
        clock=st.now,
        desk_every=desk_every,
        witness_every=float(spec["witness_every"]) if runs_desk else 0.0,
        mailer=mailer,
        public_origin=spec["public_origin"],
        body_timeout=float(spec["body_timeout"]),
        rate_per_address=spec["rate_per_address"],
        rate_per_key=spec["rate_per_key"],
        access_flush=spec["access_flush"],
        shared_rates=True,  # the workers count each client against the same numbers
        writer_socket=Path(spec["writer"]) if spec.get("writer") else None,
    )
    return create_app(settings)


def _take_desk(home: Path) -> bool:
    """Whether this worker runs the desk: the first to lock the home's desk lock keeps it."""
    global _desk_lock  # noqa: PLW0603 - one lock per process, held until it exits
    if _desk_lock is not None:
        return True
    fh = (home / DESK_LOCK).open("a", encoding="utf-8")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return False
    _desk_lock = fh
    return True


def witness_serve(
    ctx: typer.Context,
    log_vkey: Annotated[
        list[str], typer.Option(help=_("A followed log's verifier key (signed-note); repeat."))
    ],
    state_file: Annotated[Path, typer.Option("--state", help=_("This witness's state file."))],
    key: Annotated[Path, typer.Option(help=_("The witness's key file (CUSTODY_PASSPHRASE)."))],
    name: Annotated[str, typer.Option(help=_("The witness's key name."))],
    init: Annotated[
        bool,
        typer.Option("--init", help=_("A new witness: start its state file (none may exist).")),
    ] = False,
    host: Annotated[str, typer.Option(help=_("Address to listen on."))] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help=_("TCP port."))] = 8090,
) -> None:
    """Run a witness over HTTP (c2sp.org/tlog-witness): POST /add-checkpoint."""
    import uvicorn

    from api.witness import (
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
            raise UsageError(N_("--log-vkey must be an Ed25519 signed-note key (type 0x01)"))
        logs.append(verifier)
    if init:
        if os.path.lexists(state_file):
            raise ConflictError(
                N_("{state_file} exists: --init starts a new witness only where there is no state"),
                hint=N_("drop --init to continue this witness from its state"),
                state_file=state_file,
            )
    else:
        load_witness_state(state_file)  # missing or unreadable: refused before listening
    pair = read_keyfile(key, passphrase(prompt=_("Passphrase for {key}").format(key=key)))
    if init:  # only once the key opened: a refused start leaves no state behind
        save_witness_state(state_file, WitnessState())
    settings = WitnessSettings(
        state=state_file, cosigner=Cosigner(name, pair.signing), logs=logs, clock=st.now
    )
    st.err.print(
        _("witness {name} on {url} ({n} logs followed)").format(
            name=name, url=f"http://{host}:{port}/add-checkpoint", n=len(logs)
        )
    )
    uvicorn.run(create_witness_app(settings), host=host, port=port, log_level="warning")
