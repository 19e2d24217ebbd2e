"""The `custody` command line. Every failure is reported the same way: a clear message on
stderr (or a JSON error object with --json) and an exit code by error class; never a traceback.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer._click import exceptions as click_exceptions

from custody.cli import library_words
from custody.cli.common import State, parse_cli_time
from custody.cli.conformance_cmd import conformance
from custody.cli.demo_cmd import demo
from custody.cli.exam_cmd import exam_app
from custody.cli.incident_cmd import incident_app
from custody.cli.keys_cmd import init, keys_app, trust_app
from custody.cli.label_cmd import label_app, package_app
from custody.cli.log_cmd import event_app, export, log_app, verify
from custody.cli.login_cmd import login
from custody.cli.outbox_cmd import outbox_app
from custody.cli.paper_cmd import paper_app
from custody.cli.serve_cmd import serve, witness_serve
from custody.cli.statement_cmd import statement_app
from custody.cli.steps_cmd import register_steps
from custody.cli.storage_cmd import check as log_check
from custody.cli.storage_cmd import failover as log_failover
from custody.cli.view_cmd import register_views
from custody.cli.witness_cmd import witness_app
from custody.errors import CustodyError
from custody.i18n import _, error_body, error_text, language

app = typer.Typer(
    name="custody",
    help=_("Provable custody of exam question papers, from proposition to destruction."),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path,
        typer.Option(envvar="CUSTODY_HOME", help=_("The authority's home folder.")),
    ] = Path("custody-home"),
    json_output: Annotated[
        bool, typer.Option("--json", help=_("Machine-readable output (JSON)."))
    ] = False,
    now: Annotated[
        str | None,
        typer.Option(help=_("Act as if the UTC time were this (rehearsal homes only).")),
    ] = None,
    root_key: Annotated[
        Path | None,
        typer.Option(
            envvar="CUSTODY_ROOT_KEY",
            help=_("The offline root key file (default: HOME.root.key beside the home)."),
        ),
    ] = None,
) -> None:
    ctx.obj = State(
        home_path=home,
        json=json_output,
        now_override=parse_cli_time(now, what="--now"),
        root_key=root_key,
    )
    if now is not None:
        ctx.obj.now()  # refused at once in a home that runs on the real clock


app.command("init")(init)
app.command("demo")(demo)
app.add_typer(keys_app, name="keys")
app.add_typer(trust_app, name="trust")
app.add_typer(statement_app, name="statement")
app.add_typer(event_app, name="event")
app.add_typer(log_app, name="log")
app.add_typer(witness_app, name="witness")
app.command("export")(export)
app.command("verify")(verify)
app.command("serve")(serve)
app.add_typer(package_app, name="package")
app.add_typer(exam_app, name="exam")
app.add_typer(label_app, name="label")
app.add_typer(paper_app, name="paper")
app.add_typer(incident_app, name="incident")
app.command("login")(login)
app.command("conformance")(conformance)
register_steps(app)
register_views(package_app, paper_app)
log_app.command("check")(log_check)
log_app.command("failover")(log_failover)
incident_app.add_typer(outbox_app, name="outbox")
witness_app.command("serve")(witness_serve)


PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (the console script exits with it).

    Every file and folder a command creates (the home, its database and WAL files, sealed
    keys) is private to the user running it: umask 077 while the command runs, whatever the
    shell's umask (files meant to be handed on, such as labels and reports, set their mode
    themselves). The caller's umask is restored afterwards (tests run many commands in one
    process)."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        return _run(sys.argv[1:] if argv is None else argv)
    finally:
        os.umask(previous)


def _run(args: list[str]) -> int:
    want_json = "--json" in args
    try:
        result = app(args=args, prog_name="custody", standalone_mode=False)
    except CustodyError as e:
        _report(e, want_json)
        return e.exit_code
    except typer.Abort:
        Console(stderr=True).print("[red]" + _("aborted") + "[/]")
        return 130
    except click_exceptions.NoArgsIsHelpError as e:
        e.show()  # the help itself (already printed by Typer's rich help), in the user's language
        return e.exit_code
    except click_exceptions.UsageError as e:
        if not want_json and (line := library_words.usage_line(e)):
            Console(stderr=True, highlight=False, soft_wrap=True).print(escape(line))
        _report(library_words.usage_error(e), want_json)
        return e.exit_code
    except click_exceptions.ClickException as e:
        e.show()
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:
        if os.environ.get("CUSTODY_DEBUG"):
            raise
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        console.print(
            _(
                "[bold red]internal error[/] ({name}): this is a defect in custody, not "
                "something you did; nothing was acknowledged that is not stored."
            ).format(name=type(e).__name__)
        )
        console.print(
            "[dim]"
            + _("hint:")
            + "[/] "
            + _("run again with CUSTODY_DEBUG=1 to see where, and report it")
        )
        return 70
    return result if isinstance(result, int) else 0


def _report(error: CustodyError, want_json: bool) -> None:
    if want_json:
        # JSON is for programs: the code decides; the message is the English text (as in logs)
        # plus, under a Chinese locale, ``message_zh`` (and ``hint_zh``) for a person to read.
        body = {"ok": False, **error_body(error, language())}
        sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
        return
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    title = error_title(error.code)
    message, hint = error_text(error)
    console.print(
        "[bold red]" + _("error") + f"[/] [dim]({error.code})[/] {escape(title)}: {escape(message)}"
    )
    if hint:
        console.print("[dim]" + _("hint:") + f"[/] {escape(hint)}")


def error_title(code: str) -> str:
    """What an error code means, in the user's language (the code itself if it is new)."""
    titles = {
        "custody_error": _("custody refused this"),
        "usage": _("the command is not right"),
        "weak_passphrase": _("the passphrase is too weak"),
        "format": _("malformed input"),
        "not_found": _("not found"),
        "conflict": _("conflicts with what is stored"),
        "storage": _("the database or a file system refused"),
        "shred_incomplete": _("shredding did not finish"),
        "verification": _("verification failed"),
        "signature": _("a signature does not verify"),
        "weak_key": _("a weak key"),
        "unknown_signer": _("signed by a key the authority did not certify"),
        "issuer": _("not issued by the pinned authority"),
        "duplicate_signature": _("the same key signed twice"),
        "threshold": _("a required signer is missing"),
        "mixed_packages": _("packages of different exams in one statement"),
        "role": _("the signer lacks the role"),
        "recused": _("the signer is recused"),
        "revoked": _("the key is revoked"),
        "expired": _("expired"),
        "not_yet_valid": _("not yet valid"),
        "chain": _("the chain of events is broken"),
        "route": _("not on the planned route"),
        "clock": _("the time is refused by the log's clock"),
        "window": _("outside the opening window"),
        "seal_mismatch": _("seal serials differ from the manifest"),
        "count_mismatch": _("the count differs"),
        "frozen": _("the package is frozen by an incident"),
        "closed": _("the package's chain is closed"),
        "log_consistency": _("the log is not consistent"),
        "decryption": _("cannot decrypt"),
        "blocked_key": _("the key is blocked by an incident"),
    }
    return titles.get(code, code)


def _translate_help(group: typer.Typer) -> None:
    """Commands take their help from their docstrings; give it in the user's language."""
    for command in group.registered_commands:
        if command.help is None and command.callback is not None:
            doc = inspect.getdoc(command.callback)
            if doc:
                command.help = _(doc)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _translate_help(sub.typer_instance)


_translate_help(app)
library_words.install()


def entry() -> None:
    sys.exit(main())
