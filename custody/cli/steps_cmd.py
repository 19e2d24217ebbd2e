"""`custody dispatch|handover|receive|inspect|patrol|checkin|open|distribute|recover|return|
destroy`: one command per step of a package's life, built, signed and submitted in one go; so
are a secrecy officer's `custody freeze` and `custody release` and a person's `custody
leak-report`.

Each command reads the package's latest state from the log, drafts the statement
(``custody.steps``: previous event, releaser, payload type filled in), shows what is about to
be signed in Chinese and English and asks to confirm (``--yes`` skips the question), asks each
signer's passphrase in turn, signs, and submits. With ``--offline FILE`` it writes the signed
statement to FILE for ``custody event submit`` later, and needs no log key.

Where things come from:
- A person's key file: the one ``custody keys enroll`` wrote for their current certificate
  (``HOME/people/<person>-<key id, 8 hex>.key``), or ``--key PERSON=FILE``.
- A person's passphrase: ``CUSTODY_PASSPHRASE_<PERSON>`` (``courier-sun`` ->
  ``CUSTODY_PASSPHRASE_COURIER_SUN``), or the file its ``..._FILE`` variable names, or the
  shared ``CUSTODY_PASSPHRASE`` (rehearsals), else a hidden prompt on the terminal.
- The log key's passphrase (only when submitting): asked first, so a wrong one stops the step
  before anyone signs.
- A person's words (a freeze's or release's ``--reason``, a leak report's ``--text``) are
  sealed to the secrecy officers in good standing now (``custody.sealed_text``): the statement
  carries the boxes and a salted SHA-256, never the words. No officer standing: refused before
  anyone signs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from custody.cli.common import PASSPHRASE_ENV, State, finding_text, passphrase, state
from custody.errors import N_, NotFoundError, UsageError
from custody.events import Kind
from custody.i18n import _

if TYPE_CHECKING:
    from custody.log import CustodyLog
    from custody.steps import Draft
    from keys.keyfile import KeyPair
    from keys.model import Certificate

Package = Annotated[str, typer.Argument(help=_("The package id (as on its label)."))]
Seals = Annotated[
    list[str] | None,
    typer.Option(
        "--seals", help=_("Seal serials seen on the package: S1,S2 or repeat the option.")
    ),
]
Place = Annotated[
    str | None,
    typer.Option(help=_("Where the step happens (default: where it was last recorded).")),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help=_("Sign without asking to confirm."))]
Offline = Annotated[
    Path | None,
    typer.Option(
        help=_(
            "Write the signed statement to this file (for `custody event submit` later) "
            "instead of submitting it; needs no log key."
        )
    ),
]
Keys = Annotated[
    list[str] | None,
    typer.Option("--key", help=_("A signer's key file elsewhere: PERSON=FILE; repeat.")),
]
Count = Annotated[int | None, typer.Option(help=_("Copies (or bags) counted at this step."))]


def _key_files(values: list[str] | None) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for text in values or ():
        person, sep, file = text.partition("=")
        if not sep or not person or not file:
            raise UsageError(N_("--key {text!r}: write PERSON=FILE"), text=text)
        out[person] = Path(file)
    return out


def _key_file(st: State, cert: Certificate, given: dict[str, Path]) -> Path:
    if cert.subject in given:
        return given[cert.subject]
    path = st.home.people_dir() / f"{cert.subject}-{cert.key_id[:8]}.key"
    if not path.exists():
        raise NotFoundError(
            N_("no key file for {person} at {path}"),
            hint=N_("name it with --key {person}=FILE"),
            person=cert.subject,
            path=path,
        )
    return path


def _unseal(st: State, cert: Certificate, given: dict[str, Path]) -> KeyPair:
    from custody.steps import passphrase_variable
    from keys.keyfile import read_keyfile

    path = _key_file(st, cert, given)
    secret = passphrase(
        env=passphrase_variable(cert.subject),
        fallback=PASSPHRASE_ENV,
        prompt=_("Passphrase of {person} ({name})").format(person=cert.subject, name=cert.name),
    )
    pair = read_keyfile(path, secret)
    if pair.signing.key_id != cert.key_id:
        raise UsageError(
            N_("{path} holds key {held}, not {person}'s current key {current}"),
            path=path,
            held=pair.signing.key_id[:16],
            person=cert.subject,
            current=cert.key_id[:16],
        )
    return pair


_BODY_LABELS = {
    "seals": "封条 seals",
    "count": "清点 count",
    "copies": "份数 copies",
    "method": "方式 method",
    "packages": "涉及试卷袋 packages",
    "paper": "试卷 paper",
    "reason_sealed": "理由 reason",
    "text_sealed": "举报内容 text",
}


def _plain(value: object) -> str:
    """A body value as people write it: lists joined by commas, maps as ``key: value``; a
    sealed text as whom it is sealed to (the words are not shown again, nor the boxes)."""
    if isinstance(value, dict) and "sealed" in value and "sha256" in value:
        to = ", ".join(str(b.get("to")) for b in value["sealed"] if isinstance(b, dict))
        return f"已密封 sealed to {to}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def _summary(st: State, draft: Draft, certs: dict[str, Certificate], *, offline: bool) -> list[str]:
    from custody.steps import step_name

    ev = draft.event
    lines = [f"[bold]{escape(step_name(ev.kind))}[/]"]
    for package, previous in ev.packages.items():
        lines.append(f"  试卷袋 package        {escape(package)}")
        lines.append(f"  上一事件 previous   {previous}")
    lines += [
        f"  时间 time           {st.show_time(ev.time)}",
        f"  地点 place          {escape(ev.place) or '-'}",
    ]
    for s in draft.signers:
        cert = certs[s.person]
        lines.append(f"  签名 signer {s.slot:<11} {escape(s.person)} ({escape(cert.name)})")
    for key, value in sorted(ev.body.items()):
        label = _BODY_LABELS.get(key, key)
        lines.append(f"  {label:<19} {escape(_plain(value))}")
    lines.append(
        "  → 写入文件，稍后提交 written to a file, to submit later"
        if offline
        else "  → 签名后立即提交到保管日志 signed and submitted to the custody log"
    )
    return lines


def _take_step(
    ctx: typer.Context,
    kind: Kind,
    package: str | list[str],
    *,
    people: dict[str, str | None],
    seals: list[str] | None = None,
    count: int | None = None,
    method: str | None = None,
    reason: str | None = None,
    place: str | None = None,
    yes: bool = False,
    offline: Path | None = None,
    keys: list[str] | None = None,
) -> None:
    from custody import steps
    from custody.sealed_text import seal_text

    def draft(log: CustodyLog, now: datetime) -> Draft:
        # A reason is a person's words: sealed to the secrecy officers standing now, never
        # written on the log in clear (no officer standing: refused before anyone signs).
        sealed = None if reason is None else seal_text(reason, log.trust, now, field="reason")
        return steps.draft_step(
            kind,
            [log.package_state(p) for p in names],
            authority=log.trust.authority.id,
            at=now,
            people=people,
            place=place,
            seals=steps.split_serials(seals or []),
            count=count,
            method=method,
            reason_sealed=None if sealed is None else sealed.as_json(),
        )

    names = [package] if isinstance(package, str) else list(package)
    _sign_and_submit(ctx, kind, names, draft, yes=yes, offline=offline, keys=keys)


def _sign_and_submit(
    ctx: typer.Context,
    kind: Kind,
    names: list[str],
    make_draft: Callable[[CustodyLog, datetime], Draft],
    *,
    yes: bool,
    offline: Path | None,
    keys: list[str] | None,
) -> None:
    from custody import steps
    from custody.cli.common import open_writer
    from custody.rules import DEFAULT_CLOCK
    from custody.service import open_reader
    from custody.store.states import state_as_dict
    from keys.keyfile import write_new_file

    st = state(ctx)
    given = _key_files(keys)
    if offline is not None and offline.exists():
        raise UsageError(N_("{path} already exists; name a new file"), path=offline)
    now = st.now()
    # The log key first: a wrong passphrase stops the step before anyone signs.
    log: CustodyLog = open_reader(st.home) if offline is not None else open_writer(st)
    draft = make_draft(log, now)
    certs = {p: log.trust.current_certificate(p, now) for p in draft.people}
    for line in _summary(st, draft, certs, offline=offline is not None):
        st.err.print(line)
    if not yes:
        typer.confirm(_("Sign this statement?"), abort=True, err=True)
    pairs = [_unseal(st, certs[p], given) for p in draft.people]
    envelope = draft.event.sign([p.signing for p in pairs])
    statement_id = steps_statement_id(draft)
    if offline is not None:
        write_new_file(offline, envelope.to_bytes() + b"\n", mode=0o644)
        if kind not in DEFAULT_CLOCK.offline_kinds:  # judged on the log's receive time
            st.err.print(
                _(
                    "[yellow]note[/]: a {step} is made online: the log accepts it only within "
                    "{minutes} minutes of its time, so submit it at once"
                ).format(step=kind.value, minutes=int(DEFAULT_CLOCK.skew.total_seconds() // 60))
            )
        st.emit(
            {"kind": kind.value, "package": names[0] if names else None, "packages": names,
             "statement_id": statement_id, "file": str(offline), "submitted": False},
            _("[bold green]signed[/] {step} of {package}: statement {sid}\n"
              "  written to {file}; submit it with `custody event submit {file}`").format(
                step=steps.step_name(kind), package=escape(", ".join(names)), sid=statement_id,
                file=escape(str(offline)),
            ),
        )  # fmt: skip
        return
    receipt = log.submit(envelope, now=now)
    after = {p: log.package_state(p) for p in names} if draft.event.packages else {}
    data: dict[str, Any] = {
        "kind": kind.value,
        "package": names[0] if names else None,
        "packages": names,
        "statement_id": receipt.statement_id,
        "submitted": True,
        "receipt": receipt.as_dict(),
        "state": state_as_dict(after[names[0]]) if after else None,
        "states": {p: state_as_dict(a) for p, a in after.items()},
    }
    human = [
        _("[bold green]recorded[/] {step} of {package} as log entry #{index}").format(
            step=steps.step_name(kind), package=escape(", ".join(names)), index=receipt.index
        ),
        _("  statement {sid}").format(sid=receipt.statement_id),
    ]
    for p, a in after.items():
        human.append(
            _("  {package} now {status}, held by {holder}").format(
                package=escape(p),
                status=steps.status_name(a.status.value),
                holder=escape(a.holder or "-"),
            )
        )
    for f in receipt.findings:
        human.append(
            _("  [yellow]finding[/] {kind}: {detail}").format(
                kind=f.kind, detail=escape(finding_text(f))
            )
        )
    st.emit(data, "\n".join(human))


def steps_statement_id(draft: Draft) -> str:
    from custody.events import statement_id

    return statement_id(draft.event.payload())


# -- the commands, one per step ---------------------------------------------------------------

From = Annotated[
    str | None, typer.Option("--from", help=_("Who releases it (default: its current holder)."))
]
To = Annotated[str, typer.Option("--to", help=_("Who receives it."))]
Witness = Annotated[
    str | None,
    typer.Option(help=_("The supervising witness (when the package's exam asks for one).")),
]


def dispatch(
    ctx: typer.Context, package: Package, to: To, from_: From = None, witness: Witness = None,
    seals: Seals = None, count: Count = None, place: Place = None, yes: Yes = False,
    offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Send a sealed package on its way: the printer releases it to the first courier."""
    _take_step(
        ctx, Kind.DISPATCH, package, people={"from": from_, "to": to, "witness": witness},
        seals=seals, count=count, place=place, yes=yes, offline=offline, keys=key,
    )  # fmt: skip


def handover(
    ctx: typer.Context, package: Package, to: To, from_: From = None, witness: Witness = None,
    seals: Seals = None, count: Count = None, place: Place = None, yes: Yes = False,
    offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Hand a package to the next person on its route; both sign (and the witness, if asked)."""
    _take_step(
        ctx, Kind.HANDOVER, package, people={"from": from_, "to": to, "witness": witness},
        seals=seals, count=count, place=place, yes=yes, offline=offline, keys=key,
    )  # fmt: skip


def receive(
    ctx: typer.Context, package: Package, to: To,
    second: Annotated[str, typer.Option(help=_("The second custodian (two persons at a time)."))],
    from_: From = None, seals: Seals = None, count: Count = None, place: Place = None,
    yes: Yes = False, offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Receive a package into storage: the holder releases it, two custodians receive it."""
    _take_step(
        ctx, Kind.RECEIVE, package, people={"from": from_, "to": to, "second": second},
        seals=seals, count=count, place=place, yes=yes, offline=offline, keys=key,
    )  # fmt: skip


By = Annotated[str, typer.Option("--by", help=_("Who inspects."))]


def inspect(
    ctx: typer.Context, package: Package, by: By, seals: Seals = None, count: Count = None,
    place: Place = None, yes: Yes = False, offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Inspect a package's seals (custodian, secrecy officer, supervisor, or its courier)."""
    _take_step(
        ctx, Kind.INSPECT, package, people={"by": by}, seals=seals, count=count, place=place,
        yes=yes, offline=offline, keys=key,
    )  # fmt: skip


def patrol(
    ctx: typer.Context, package: Package, by: By, seals: Seals = None, place: Place = None,
    yes: Yes = False, offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Record a patrol of the room holding a stored package."""
    _take_step(
        ctx, Kind.PATROL, package, people={"by": by}, seals=seals, place=place, yes=yes,
        offline=offline, keys=key,
    )  # fmt: skip


def checkin(
    ctx: typer.Context, package: Package,
    by: Annotated[str | None, typer.Option("--by", help=_("The escort (default: the holder)."))]
    = None,
    seals: Seals = None, place: Place = None, yes: Yes = False, offline: Offline = None,
    key: Keys = None,
) -> None:  # fmt: skip
    """The escort's "all well" on the road."""
    _take_step(
        ctx, Kind.CHECKIN, package, people={"by": by}, seals=seals, place=place, yes=yes,
        offline=offline, keys=key,
    )  # fmt: skip


Examiner = Annotated[str, typer.Option(help=_("The chief examiner."))]
Supervisor = Annotated[str, typer.Option(help=_("The supervisor (no supervisor, no opening)."))]


def open_(
    ctx: typer.Context, package: Package, examiner: Examiner, supervisor: Supervisor,
    seals: Seals = None, place: Place = None, yes: Yes = False, offline: Offline = None,
    key: Keys = None,
) -> None:  # fmt: skip
    """Open a stored package inside its window: the chief examiner and the supervisor together."""
    _take_step(
        ctx, Kind.OPEN, package, people={"examiner": examiner, "supervisor": supervisor},
        seals=seals, place=place, yes=yes, offline=offline, keys=key,
    )  # fmt: skip


def distribute(
    ctx: typer.Context, package: Package, examiner: Examiner, supervisor: Supervisor,
    count: Annotated[int, typer.Option(help=_("Copies handed out."))],
    place: Place = None, yes: Yes = False, offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Hand out an opened package's copies, counted."""
    _take_step(
        ctx, Kind.DISTRIBUTE, package, people={"examiner": examiner, "supervisor": supervisor},
        count=count, place=place, yes=yes, offline=offline, keys=key,
    )  # fmt: skip


def recover(
    ctx: typer.Context, package: Package, examiner: Examiner, supervisor: Supervisor,
    count: Annotated[int, typer.Option(help=_("Copies recovered."))],
    place: Place = None, yes: Yes = False, offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Recover the copies after use, counted (a count unlike the distributed one is a finding)."""
    _take_step(
        ctx, Kind.RECOVER, package, people={"examiner": examiner, "supervisor": supervisor},
        count=count, place=place, yes=yes, offline=offline, keys=key,
    )  # fmt: skip


def return_(
    ctx: typer.Context, package: Package,
    to: Annotated[str, typer.Option("--to", help=_("The custodian who takes it back."))],
    from_: From = None, seals: Seals = None, count: Count = None, place: Place = None,
    yes: Yes = False, offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Return an opened (or recovered) package to a custodian."""
    _take_step(
        ctx, Kind.RETURN, package, people={"from": from_, "to": to}, seals=seals, count=count,
        place=place, yes=yes, offline=offline, keys=key,
    )  # fmt: skip


def destroy(
    ctx: typer.Context,
    package: Annotated[
        list[str], typer.Argument(help=_("The package ids (one certificate may name several)."))
    ],
    officer: Annotated[str, typer.Option(help=_("The destruction officer."))],
    witness: Annotated[
        str, typer.Option(help=_("The witness (supervisor, secrecy officer or auditor)."))
    ],
    method: Annotated[str, typer.Option(help=_("How it was destroyed."))] = "shredding",
    count: Annotated[int | None, typer.Option(help=_("Copies destroyed."))] = None,
    place: Place = None, yes: Yes = False, offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Destroy packages (their chains are closed): the officer and a witness sign one
    destruction certificate naming them all."""
    _take_step(
        ctx, Kind.DESTROY, package, people={"officer": officer, "witness": witness},
        count=count, method=method, place=place, yes=yes, offline=offline, keys=key,
    )  # fmt: skip


Reason = Annotated[
    str,
    typer.Option(
        help=_("Why (sealed to the secrecy officers in good standing, never on the log in clear).")
    ),
]
Officer = Annotated[str, typer.Option("--by", help=_("The secrecy officer who decides."))]


def freeze(
    ctx: typer.Context, package: Package, by: Officer, reason: Reason, place: Place = None,
    yes: Yes = False, offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Freeze a package (a secrecy officer): only custody moves to a safe place follow."""
    _take_step(
        ctx, Kind.FREEZE, package, people={"by": by}, reason=reason, place=place, yes=yes,
        offline=offline, keys=key,
    )  # fmt: skip


def release(
    ctx: typer.Context, package: Package, by: Officer, reason: Reason, place: Place = None,
    yes: Yes = False, offline: Offline = None, key: Keys = None,
) -> None:  # fmt: skip
    """Release a frozen package (a secrecy officer)."""
    _take_step(
        ctx, Kind.RELEASE, package, people={"by": by}, reason=reason, place=place, yes=yes,
        offline=offline, keys=key,
    )  # fmt: skip


def leak_report(
    ctx: typer.Context,
    by: Annotated[str, typer.Option("--by", help=_("Who reports (any enrolled person)."))],
    text: Annotated[
        str,
        typer.Option(
            help=_(
                "What you saw (sealed to the secrecy officers in good standing, never on the "
                "log in clear)."
            )
        ),
    ],
    package: Annotated[
        list[str] | None,
        typer.Option("--package", help=_("A package the leak is about; repeat.")),
    ] = None,
    paper: Annotated[str | None, typer.Option(help=_("The paper the leak is about."))] = None,
    place: Annotated[str, typer.Option(help=_("Where you are (may be empty)."))] = "",
    yes: Yes = False,
    offline: Offline = None,
    key: Keys = None,
) -> None:
    """Report a leak you saw (any enrolled person): a critical incident opens at once."""
    from custody import steps
    from custody.sealed_text import seal_text

    names = list(package or [])
    if not text.strip():
        raise UsageError(N_("--text: say what you saw"))

    def draft(log: CustodyLog, now: datetime) -> Draft:
        sealed = seal_text(text, log.trust, now, field="text")
        assert sealed is not None  # not empty: checked above
        return steps.draft_leak_report(
            authority=log.trust.authority.id,
            at=now,
            reporter=by,
            packages=names,
            paper=paper,
            text_sealed=sealed.as_json(),
            place=place,
        )

    _sign_and_submit(ctx, Kind.LEAK_REPORT, names, draft, yes=yes, offline=offline, keys=key)


STEP_COMMANDS = (
    ("dispatch", dispatch),
    ("handover", handover),
    ("receive", receive),
    ("inspect", inspect),
    ("patrol", patrol),
    ("checkin", checkin),
    ("open", open_),
    ("distribute", distribute),
    ("recover", recover),
    ("return", return_),
    ("destroy", destroy),
    ("freeze", freeze),
    ("release", release),
    ("leak-report", leak_report),
)
