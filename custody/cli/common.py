"""What every command shares: the home, the clock, passphrases, and output (text or --json)."""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from crypto.encoding import format_time, parse_time
from crypto.files import CAP_ENVELOPE, CAP_PASSPHRASE, read_user_file
from custody.errors import N_, FormatError, UsageError, Words
from custody.i18n import _, gettext_for, language, said_in, show_time, time_zone


def named(code: str, names: Mapping[str, str] | None = None) -> str:
    """A code as a Chinese reader reads it (``封条编号不符 seal_mismatch``: the name, then the
    code that JSON and the logs keep); the code alone in English or when it has no name.
    ``names`` maps codes to names; without it, the catalogue's (roles and signer slots are
    message ids: ``keys.model.ROLE_WORDS``, ``keys.statements.SLOT_WORDS``)."""
    if language() != "zh":
        return code
    name = names.get(code) if names is not None else gettext_for("zh")(code)
    return f"{name} {code}" if name and name != code else code


if TYPE_CHECKING:  # the CLI imports storage and the services only in the commands that use them
    from custody.access import Principal
    from custody.home import Home
    from custody.incidents.model import WatchedLog
    from custody.incidents.outbox import Mailer
    from custody.rules import Finding
    from custody.service import ServiceSecrets
    from keys.keyfile import KeyPair
    from keys.model import Certificate
    from keys.trust import TrustStore

# Names of environment variables, not secrets.
PASSPHRASE_ENV = "CUSTODY_PASSPHRASE"  # noqa: S105
NEW_PASSPHRASE_ENV = "CUSTODY_NEW_PASSPHRASE"  # noqa: S105


@dataclass
class State:
    home_path: Path = Path("custody-home")
    json: bool = False
    now_override: datetime | None = None
    root_key: Path | None = None
    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    err: Console = field(
        default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True)
    )

    @property
    def home(self) -> Home:
        from custody.home import Home

        return Home(self.home_path, self.root_key)

    def now(self) -> datetime:
        """The service's clock. ``--now`` sets it only in a rehearsal home: in a real home the
        real clock decides when a statement is late, early or revoked."""
        if self.now_override is None:
            return datetime.now(UTC).replace(microsecond=0)
        home = self.home
        if home.exists() and not home.rehearsal:
            raise UsageError(
                N_(
                    "--now works only in a rehearsal home (made with `custody init "
                    "--rehearsal`); {home} runs on the real clock"
                ),
                home=self.home_path,
            )
        return self.now_override

    @cached_property
    def time_zone(self) -> str:
        """The authority's time zone (``time_zone`` in the home's custody.json, else
        Asia/Shanghai): people read times in it; everything stored stays UTC. A zone the
        zone database does not know is a usage error, before anything is shown or written."""
        zone = self.home.time_zone
        try:
            time_zone(zone)
        except ValueError as e:
            raise UsageError(N_("custody.json names an unknown time zone: {error}"), error=e) from e
        return zone

    def show_time(self, moment: datetime | None) -> str:
        """``moment`` in the authority's zone, named: ``2027-03-01 16:00:00 Asia/Shanghai``."""
        try:
            return show_time(moment, self.time_zone)
        except ValueError as e:
            raise UsageError(N_("custody.json names an unknown time zone: {error}"), error=e) from e

    def table_time(self, moment: datetime | None) -> str:
        """``moment`` in the authority's zone to the minute, for a table column whose header
        names the zone (``in_zone``)."""
        return self.show_time(moment).rsplit(" ", 1)[0][:16] if moment is not None else "-"

    def in_zone(self, header: str) -> str:
        """A table header for times: ``opened (Asia/Shanghai)``."""
        return f"{header} ({self.time_zone})"

    @staticmethod
    def rows(*pairs: tuple[str, str]) -> str:
        """Label-value lines, the labels aligned (how human output shows one record); a value
        that is ``Words`` is shown in the reader's language."""
        width = max((_width(label) for label, _value in pairs), default=0)
        return "\n".join(
            f"  {label}{' ' * (width - _width(label))}  "
            + escape(said_in(value.said) if isinstance(value, Words) else value)
            for label, value in pairs
        )

    def emit(self, data: dict[str, Any], human: str | None = None) -> None:
        """Print a command's result: JSON for scripts, or the human rendering."""
        if self.json:
            sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
        elif human is not None:
            self.out.print(human)


def _width(text: str) -> int:
    """Columns a terminal gives ``text`` (a Chinese character takes two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def parse_cli_time(value: str | None, *, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value, what=what)
    except FormatError as e:
        raise UsageError(
            N_("{what}: write a UTC time like 2027-03-01T08:00:00Z, not {value!r}"),
            what=what,
            value=value,
        ) from e


LOG_PASSPHRASE_ENV = "CUSTODY_LOG_PASSPHRASE"  # noqa: S105 (a variable name)
SYSTEM_PASSPHRASE_ENV = "CUSTODY_SYSTEM_PASSPHRASE"  # noqa: S105 (a variable name)
ROOT_PASSPHRASE_ENV = "CUSTODY_ROOT_PASSPHRASE"  # noqa: S105 (a variable name)


def passphrase(
    *, env: str = PASSPHRASE_ENV, prompt: str, confirm: bool = False, fallback: str | None = None
) -> str:
    """From the environment variable, or the file its ``NAME_FILE`` variable names (a secret
    mounted for a service), or the fallback variable, else a hidden prompt on a terminal;
    never a command-line argument (it would sit in the shell history and the process list)."""
    for name in (env, fallback):
        if not name:
            continue
        value = os.environ.get(name)
        if value:
            return value
        file = os.environ.get(f"{name}_FILE")
        if file:
            raw = read_user_file(file, what=f"{name}_FILE", limit=CAP_PASSPHRASE, stdin=False)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UsageError(
                    N_("{name}_FILE: the passphrase file {file} is not UTF-8"), name=name, file=file
                ) from e
            return text.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError(N_("no passphrase: set {env} or run on a terminal to be asked"), env=env)
    answer: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return answer


def service_secrets(*, shared_fallback: bool = True) -> ServiceSecrets:
    """The log key's and the system key's passphrases, each from its own variable or file
    (or, for one-off commands, the shared CUSTODY_PASSPHRASE), else asked on the terminal.
    ``custody serve`` takes no shared fallback: it never runs on one shared secret."""
    from custody.service import ServiceSecrets

    fallback = PASSPHRASE_ENV if shared_fallback else None
    return ServiceSecrets(
        log=passphrase(
            env=LOG_PASSPHRASE_ENV, fallback=fallback, prompt=_("Passphrase for the log key")
        ),
        system=passphrase(
            env=SYSTEM_PASSPHRASE_ENV,
            fallback=fallback,
            prompt=_("Passphrase for the system key"),
        ),
    )


def root_passphrase() -> str:
    """The offline root key's passphrase (CUSTODY_ROOT_PASSPHRASE, or CUSTODY_PASSPHRASE)."""
    return passphrase(
        env=ROOT_PASSPHRASE_ENV, fallback=PASSPHRASE_ENV, prompt=_("Passphrase for the root key")
    )


def open_writer(st: State) -> WatchedLog:
    """The home's log service for appending (rules, gate and incident desk attached)."""
    from custody import service

    return service.open_writer(st.home, service_secrets())


SMTP_HELP = _("SMTP relay host:port for e-mail (STARTTLS, certificate checked).")
SMTPS_HELP = _("Implicit TLS (SMTPS, usually port 465) instead of STARTTLS.")
SMTP_PLAIN_HELP = _(
    "Tests and rehearsals only: a loopback relay (127.0.0.1, ::1, localhost) that offers no "
    "STARTTLS gets e-mail in clear; refused for any other host."
)


def make_mailer(
    smtp: str | None, sender: str, *, implicit_tls: bool = False, plain_loopback: bool = False
) -> Mailer | None:
    """The relay named by ``--smtp host:port`` (``[::1]:port`` for IPv6), or None."""
    if smtp is None:
        if implicit_tls or plain_loopback:
            raise UsageError(N_("--smtps and --smtp-plain-loopback need --smtp host:port"))
        return None
    from custody.incidents.outbox import Mailer

    host, _sep, port = smtp.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit():
        raise UsageError(N_("--smtp: write host:port, not {smtp!r}"), smtp=smtp)
    return Mailer(
        host, int(port), sender, implicit_tls=implicit_tls, allow_plain_loopback=plain_loopback
    )


def fmt_time(moment: datetime | None) -> str:
    return format_time(moment) if moment is not None else "-"


def read_input(path: Path, *, what: str = "file", limit: int = CAP_ENVELOPE) -> bytes:
    """Read a file the user named, or '-' for stdin: regular files only, capped by kind,
    anything else refused by name (``crypto.files``)."""
    return read_user_file(path, what=what, limit=limit)


def finding_text(finding: Finding) -> str:
    """A finding's sentence in the reader's language (made again from its evidence)."""
    from custody.rules import finding_said

    return said_in(finding_said(finding.kind, finding.evidence, finding.detail))


KEY_PASSPHRASE_ENV = "CUSTODY_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret

# The option of every command that reads what names people (reports, timelines, lists): the
# reader's own key, so that the access policy judges them and the read is recorded.
ReaderKey = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help=_(
            "Your own key file: what this shows names people, so your roles decide whether "
            "you may read it and the read is recorded on the access log (its passphrase from "
            "CUSTODY_KEY_PASSPHRASE or a prompt)."
        ),
    ),
]


@dataclass(frozen=True)
class RecordedRead:
    """Who reads, judged by the access policy as a login is over HTTP (``custody.access``):
    ``record`` puts the read on the access log before anything is shown."""

    st: State
    reader: Principal
    trust: TrustStore
    at: datetime

    def record(self, command: str, objects: list[str]) -> None:
        from custody.access_log import AccessLog

        AccessLog(self.st.home.engine, self.trust.authority, None).record(
            self.reader, f"cli {command}", objects, self.at
        )


def enrolled_key(key: Path, trust: TrustStore) -> tuple[KeyPair, Certificate]:
    """A person's key file, unsealed with CUSTODY_KEY_PASSPHRASE (else CUSTODY_PASSPHRASE)
    or a prompt, and the
    certificate of this authority that binds it."""
    from custody.errors import NotFoundError
    from keys.keyfile import read_keyfile

    pw = passphrase(
        env=KEY_PASSPHRASE_ENV,
        fallback=PASSPHRASE_ENV,
        prompt=_("Passphrase for {key}").format(key=key),
    )
    pair = read_keyfile(key, pw)
    cert = trust.certificates.get(pair.signing.key_id)
    if cert is None:
        raise NotFoundError(N_("{key} holds a key no certificate of this authority binds"), key=key)
    return pair, cert


def in_standing(st: State, cert: Certificate, trust: TrustStore) -> RecordedRead:
    """The reader ``cert`` names, if their key is in standing at the service's clock (a
    revoked or expired key reads nothing)."""
    from custody.access import Principal

    now = st.now()
    trust.standing_at(cert.key_id, now)
    return RecordedRead(st, Principal.of(cert), trust, now)


def reader_of(st: State, key: Path | None, trust: TrustStore, *, what: str) -> RecordedRead:
    """The person reading with ``key``: enrolled in this authority, in standing now; ``what``
    names what they read, for the refusal without a key. The caller asks the policy, then
    records, then shows."""
    if key is None:
        raise UsageError(
            N_("{what} names people: give your own key file (--key), so that the read is "
               "judged by your roles and recorded on the access log"),
            what=what,
        )  # fmt: skip
    _pair, cert = enrolled_key(key, trust)
    return in_standing(st, cert, trust)
