"""Typer's own words in the user's language: its help panels, its help option, its usage errors.

Typer (with the copy of Click it bundles) prints a few words of its own: the panel titles of
``--help`` ("Options", "Commands", "Arguments"), the help option's line, the ``[default: ...]``
marks, and the usage errors ("Missing argument 'PACKAGE'", "No such option: --bogus"). Its
bundled Click has no message catalogue, so custody gives these words itself, from its own
catalogue, in the language the locale chooses:

- the panel titles and marks are module constants of ``typer.rich_utils``: set when Typer
  imports that module (only to print help or an error), by an import hook;
- the usage line's "Usage:" is the bundled Click's ``HelpFormatter.write_usage`` default;
- the help option's line is set on the option each command makes (``get_help_option``);
- usage errors are not printed by Typer: ``custody.cli`` catches them and prints
  :func:`usage_message`, built from the error's fields (which parameter, which option), not from
  its English text.

Only Typer's documented behaviour is relied on; a Typer release that renames what is patched here
fails ``tests/custody/cli/test_words.py`` instead of speaking English silently.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import re
import sys
from types import ModuleType
from typing import Any

from typer._click import core as click_core
from typer._click import exceptions as click_exceptions
from typer._click import formatting as click_formatting

from custody.errors import N_, UsageError
from custody.i18n import _

_HELP_LINE = "Show this message and exit."


def install() -> None:
    """Typer's words in the user's language from now on: the help option's line and the usage
    line of every command at once; the help panels' words when Typer loads ``rich_utils`` (it
    is heavy, and loaded only to print help or an error: a run that prints neither never
    imports it)."""
    command = click_core.Command
    if getattr(command.get_help_option, "custody_words", False):
        return
    get_help_option_of = command.get_help_option

    def get_help_option(self: Any, ctx: Any) -> Any:
        option = get_help_option_of(self, ctx)
        if option is not None and option.help == _HELP_LINE:
            option.help = _("Show this message and exit.")
        return option

    get_help_option.custody_words = True  # type: ignore[attr-defined]
    command.get_help_option = get_help_option  # type: ignore[method-assign]

    write_usage_of = click_formatting.HelpFormatter.write_usage

    def write_usage(self: Any, prog: str, args: str = "", prefix: str | None = None) -> None:
        write_usage_of(self, prog, args, _("Usage: ") if prefix is None else prefix)

    click_formatting.HelpFormatter.write_usage = write_usage  # type: ignore[method-assign]

    if "typer.rich_utils" in sys.modules:
        _help_words(sys.modules["typer.rich_utils"])
    else:
        sys.meta_path.insert(0, _WhenRichUtilsLoads())


class _WhenRichUtilsLoads(importlib.abc.MetaPathFinder):
    """Sets the help panels' words as soon as Typer imports ``typer.rich_utils``."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "typer.rich_utils":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module_of = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            exec_module_of(module)
            _help_words(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _help_words(rich_utils: ModuleType) -> None:
    words = {
        "DEPRECATED_STRING": _("(deprecated) "),
        "DEFAULT_STRING": _("[default: {}]"),
        "ENVVAR_STRING": _("[env var: {}]"),
        "REQUIRED_LONG_STRING": _("[required]"),
        "ARGUMENTS_PANEL_TITLE": _("Arguments"),
        "OPTIONS_PANEL_TITLE": _("Options"),
        "COMMANDS_PANEL_TITLE": _("Commands"),
        "ERRORS_PANEL_TITLE": _("Error"),
        "ABORTED_TEXT": _("Aborted."),
    }
    for name, text in words.items():
        if hasattr(rich_utils, name):
            setattr(rich_utils, name, text)


def _name(error: click_exceptions.BadParameter) -> str:
    if error.param_hint is not None:
        hint = error.param_hint
        return " / ".join(hint) if not isinstance(hint, str) else hint
    if error.param is not None:
        return str(error.param.get_error_hint(error.ctx))  # type: ignore[arg-type]
    return ""


_NO_COMMAND = re.compile(r"^No such command '(?P<name>.*)'\.$")
_EXTRA = re.compile(r"^Got unexpected extra argument(?:s|\(s\))? \((?P<args>.*)\)$")


def usage_error(error: click_exceptions.UsageError) -> UsageError:
    """The refusal custody reports for a command line Typer could not parse: a message template
    and its parameters (English in logs and ``--json``'s ``message``, the locale's language where
    a person reads it), built from the error's fields, and where to read more."""
    command = help_command(error)
    hint = None if command is None else N_("run {command} for help")

    def refuse(template: str, **params: object) -> UsageError:
        return UsageError(template, hint=hint, command=command, **params)

    if isinstance(error, click_exceptions.MissingParameter):
        name = _name(error)
        kind = error.param_type or (error.param.param_type_name if error.param else "")
        if kind == "option":
            return refuse(N_("missing option {name}"), name=name)
        if kind == "argument":
            return refuse(N_("missing argument {name}"), name=name)
        return refuse(N_("missing parameter {name}"), name=name)
    if isinstance(error, click_exceptions.BadParameter):
        return refuse(
            N_("invalid value for {name}: {reason}"),
            name=_name(error),
            reason=error.message,
        )
    if isinstance(error, click_exceptions.NoSuchOption):
        if error.possibilities:
            return refuse(
                N_("no such option: {name} (did you mean: {names}?)"),
                name=error.option_name,
                names=", ".join(sorted(error.possibilities)),
            )
        return refuse(N_("no such option: {name}"), name=error.option_name)
    if isinstance(error, click_exceptions.BadOptionUsage):
        return refuse(
            N_("option {name} is not used right: {reason}"),
            name=error.option_name,
            reason=error.message,
        )
    if m := _NO_COMMAND.match(error.message):
        return refuse(N_("no such command: {name}"), name=m["name"])
    if error.message == "Missing command.":
        return refuse(N_("a command is missing"))
    if m := _EXTRA.match(error.message):
        return refuse(N_("unexpected extra arguments: {args}"), args=m["args"])
    return refuse(N_("the command line is not understood: {reason}"), reason=error.message)


def usage_line(error: click_exceptions.UsageError) -> str | None:
    """The command's usage line ("custody package show [OPTIONS] PACKAGE"), in the user's
    language, or None when the error names no command."""
    if error.ctx is None:
        return None
    return error.ctx.get_usage()


def help_command(error: click_exceptions.UsageError) -> str | None:
    """The command that shows the help of the command in error ("custody package show --help")."""
    if error.ctx is None or error.ctx.command.get_help_option(error.ctx) is None:
        return None
    return f"{error.ctx.command_path} {error.ctx.help_option_names[0]}"
