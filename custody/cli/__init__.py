"""The `custody` command line. Every failure is reported the same way: a clear message on
stderr (or a JSON error object with --json) and an exit code by error class; never a traceback.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer._click import core as click_core
from typer._click import exceptions as click_exceptions
from typer.core import TyperCommand, TyperGroup

from custody.cli import library_words
from custody.cli.common import State, parse_cli_time
from custody.errors import N_, CustodyError
from custody.i18n import _, error_body, error_text, language


@dataclass(frozen=True)
class Entry:
    """A command or group of `custody`, loaded only when it runs or prints its own help.

    ``help`` is the English message id (a group's ``help=``, a command's docstring), so the
    root's ``--help`` lists every command in the user's language without importing the module
    that defines it; tests/custody/cli/test_start.py checks each entry against its module."""

    name: str
    module: str
    attribute: str
    help: str
    group: bool = False
    panel: str | None = None


STEPS = N_("Steps of a package")
ENTRIES: tuple[Entry, ...] = (
    Entry(
        "init",
        "custody.cli.keys_cmd",
        "init",
        "Create an exam authority: root, log and system keys, sealed under a passphrase.",
    ),
    Entry(
        "demo",
        "custody.cli.demo_cmd",
        "demo",
        "Play a whole season end to end on the embedded default (SQLite inside --out).",
    ),
    Entry(
        "keys",
        "custody.cli.keys_cmd",
        "keys_app",
        "Enrol people, rotate and revoke their keys.",
        group=True,
    ),
    Entry(
        "trust",
        "custody.cli.keys_cmd",
        "trust_app",
        "Trust bundles for offline devices.",
        group=True,
    ),
    Entry(
        "statement",
        "custody.cli.statement_cmd",
        "statement_app",
        "Sign and verify DSSE statements.",
        group=True,
    ),
    Entry(
        "event",
        "custody.cli.log_cmd",
        "event_app",
        "Submit signed custody events to the log.",
        group=True,
    ),
    Entry(
        "log",
        "custody.cli.witness_cmd",
        "log_app",
        "The custody log: status, proofs, checkpoints.",
        group=True,
    ),
    Entry(
        "witness",
        "custody.cli.witness_cmd",
        "witness_app",
        "Witness another log: cosign its checkpoints.",
        group=True,
    ),
    Entry(
        "export",
        "custody.cli.log_cmd",
        "export",
        "Write a self-contained bundle an auditor verifies offline with `custody verify`.",
    ),
    Entry(
        "verify",
        "custody.cli.log_cmd",
        "verify",
        "Re-check a bundle offline against a pinned authority: signatures, roles, chains, "
        "rules,\ncounts, closure, the root, and every file the manifest lists.",
    ),
    Entry(
        "serve",
        "custody.cli.serve_cmd",
        "serve",
        "Serve the HTTP API (/v1/...) and the scanning page (/scan) for this home.",
    ),
    Entry(
        "package",
        "custody.cli.label_cmd",
        "package_app",
        "Seal packages (signed manifests).",
        group=True,
    ),
    Entry(
        "exam",
        "custody.cli.exam_cmd",
        "exam_app",
        "Exam policies: handover witness and retention, published on the log.",
        group=True,
    ),
    Entry(
        "label",
        "custody.cli.label_cmd",
        "label_app",
        "Render and verify package QR labels.",
        group=True,
    ),
    Entry(
        "paper",
        "custody.cli.paper_cmd",
        "paper_app",
        "Encrypted question papers: propose, open with a quorum, print, replace, destroy.",
        group=True,
    ),
    Entry(
        "incident",
        "custody.cli.incident_cmd",
        "incident_app",
        "Incidents: list, acknowledge, contain, resolve, report; sweep and deliver.",
        group=True,
    ),
    Entry(
        "report",
        "custody.cli.report_cmd",
        "report",
        "A custody report (Chinese first) for a package, an exam or a period: every statement\n"
        "listed verified again against the log's signed checkpoint. It names people: secrecy\n"
        "officers and auditors read it with their key, and the read is on the access log.",
    ),
    Entry(
        "login",
        "custody.cli.login_cmd",
        "login",
        "Log in to a custody service with your enrolled key (no password): sign its "
        "challenge,\nget a short-lived session token.",
    ),
    Entry(
        "conformance",
        "custody.cli.conformance_cmd",
        "conformance",
        "Check a custody service against the conformance vectors, case by case.",
    ),
    Entry(
        "dispatch",
        "custody.cli.steps_cmd",
        "dispatch",
        "Send a sealed package on its way: the printer releases it to the first courier.",
        panel=STEPS,
    ),
    Entry(
        "handover",
        "custody.cli.steps_cmd",
        "handover",
        "Hand a package to the next person on its route; both sign (and the witness, if asked).",
        panel=STEPS,
    ),
    Entry(
        "receive",
        "custody.cli.steps_cmd",
        "receive",
        "Receive a package into storage: the holder releases it, two custodians receive it.",
        panel=STEPS,
    ),
    Entry(
        "inspect",
        "custody.cli.steps_cmd",
        "inspect",
        "Inspect a package's seals (custodian, secrecy officer, supervisor, or its courier).",
        panel=STEPS,
    ),
    Entry(
        "patrol",
        "custody.cli.steps_cmd",
        "patrol",
        "Record a patrol of the room holding a stored package.",
        panel=STEPS,
    ),
    Entry(
        "checkin",
        "custody.cli.steps_cmd",
        "checkin",
        'The escort\'s "all well" on the road.',
        panel=STEPS,
    ),
    Entry(
        "open",
        "custody.cli.steps_cmd",
        "open_",
        "Open a stored package inside its window: the chief examiner and the supervisor together.",
        panel=STEPS,
    ),
    Entry(
        "distribute",
        "custody.cli.steps_cmd",
        "distribute",
        "Hand out an opened package's copies, counted.",
        panel=STEPS,
    ),
    Entry(
        "recover",
        "custody.cli.steps_cmd",
        "recover",
        "Recover the copies after use, counted (a count unlike the distributed one is a finding).",
        panel=STEPS,
    ),
    Entry(
        "return",
        "custody.cli.steps_cmd",
        "return_",
        "Return an opened (or recovered) package to a custodian.",
        panel=STEPS,
    ),
    Entry(
        "destroy",
        "custody.cli.steps_cmd",
        "destroy",
        "Destroy packages (their chains are closed): the officer and a witness sign one\n"
        "destruction certificate naming them all.",
        panel=STEPS,
    ),
    Entry(
        "freeze",
        "custody.cli.steps_cmd",
        "freeze",
        "Freeze a package (a secrecy officer): only custody moves to a safe place follow.",
        panel=STEPS,
    ),
    Entry(
        "release",
        "custody.cli.steps_cmd",
        "release",
        "Release a frozen package (a secrecy officer).",
        panel=STEPS,
    ),
    Entry(
        "leak-report",
        "custody.cli.steps_cmd",
        "leak_report",
        "Report a leak you saw (any enrolled person): a critical incident opens at once.",
        panel=STEPS,
    ),
)


def _wire_log(log_app: typer.Typer) -> None:
    from custody.cli.storage_cmd import check, failover

    log_app.command("check")(check)
    log_app.command("failover")(failover)


def _wire_witness(witness_app: typer.Typer) -> None:
    from custody.cli.serve_cmd import witness_serve

    witness_app.command("serve")(witness_serve)


def _wire_incident(incident_app: typer.Typer) -> None:
    from custody.cli.outbox_cmd import outbox_app

    incident_app.add_typer(outbox_app, name="outbox")


def _wire_package(package_app: typer.Typer) -> None:
    from custody.cli.view_cmd import register_package_views

    register_package_views(package_app)


def _wire_paper(paper_app: typer.Typer) -> None:
    from custody.cli.view_cmd import register_paper_views

    register_paper_views(paper_app)


# Commands one module adds to a group another module defines, added when the group loads.
WIRING: dict[str, Callable[[typer.Typer], None]] = {
    "log": _wire_log,
    "witness": _wire_witness,
    "incident": _wire_incident,
    "package": _wire_package,
    "paper": _wire_paper,
}


_WIRED: set[str] = set()


class LazyRoot(TyperGroup):
    """The root group: every entry is a light stand-in (its name, help and panel) until it is
    resolved to run or to print its own help; only then is its module imported and Typer's
    command built. A run pays for one command, not for all seventy."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for entry in ENTRIES:
            self.commands[entry.name] = _stand_in(entry)

    def resolve_command(
        self, ctx: click_core.Context, args: list[str]
    ) -> tuple[str | None, click_core.Command | None, list[str]]:
        if args and args[0] in _BY_NAME and getattr(self.commands.get(args[0]), "stand_in", False):
            self.commands[args[0]] = load(_BY_NAME[args[0]])
        return super().resolve_command(ctx, args)

    def load_all(self) -> None:
        """Every entry built for real (for tools that walk the whole tree, such as tests)."""
        for entry in ENTRIES:
            self.commands[entry.name] = load(entry)


_BY_NAME = {entry.name: entry for entry in ENTRIES}


def _stand_in(entry: Entry) -> click_core.Command:
    panel = None if entry.panel is None else _(entry.panel)
    command: click_core.Command = (
        TyperGroup(name=entry.name, help=_(entry.help), rich_help_panel=panel)
        if entry.group
        else TyperCommand(name=entry.name, help=_(entry.help), rich_help_panel=panel)
    )
    command.stand_in = True  # type: ignore[attr-defined]
    return command


def load(entry: Entry) -> click_core.Command:
    """The real command (or group) of an entry, built by Typer as ``add_typer`` or
    ``command`` on the root would build it, with its help in the user's language."""
    import importlib

    import typer.main

    target = getattr(importlib.import_module(entry.module), entry.attribute)
    holder = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    if entry.group:
        if entry.name in WIRING and entry.name not in _WIRED:
            WIRING[entry.name](target)
            _WIRED.add(entry.name)  # once per process: main() may run many times
        holder.add_typer(target, name=entry.name)
    else:
        panel = None if entry.panel is None else _(entry.panel)
        holder.command(entry.name, rich_help_panel=panel)(target)
    _translate_help(holder)
    return typer.main.get_group(holder).commands[entry.name]


app = typer.Typer(
    name="custody",
    help=_("Provable custody of exam question papers, from proposition to destruction."),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyRoot,
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


library_words.install()


def entry() -> None:
    sys.exit(main())
