"""`custody statement sign|verify`: sign any payload as a DSSE envelope, verify with roles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from crypto.dsse import parse_envelope, sign_envelope
from crypto.encoding import parse_json
from crypto.files import CAP_BUNDLE
from custody.cli.common import fmt_time, parse_cli_time, passphrase, read_input, state
from custody.errors import N_, Phrase, UsageError
from custody.i18n import _, said_in
from keys.keyfile import read_keyfile, write_new_file
from keys.model import Role
from keys.statements import SignerRequirement, check_statement, most_specific
from keys.trust import load_trust_bundle

statement_app = typer.Typer(help=_("Sign and verify DSSE statements."), no_args_is_help=True)


@statement_app.command("sign")
def sign(
    ctx: typer.Context,
    key: Annotated[Path, typer.Option(help=_("Your key file."))],
    out: Annotated[Path, typer.Option(help=_("Envelope file to write."))],
    payload: Annotated[
        Path | None, typer.Option(help=_("Payload file for a new envelope."))
    ] = None,
    payload_type: Annotated[str, typer.Option(help=_("DSSE payload type."))] = "application/json",
    countersign: Annotated[
        Path | None, typer.Option(help=_("Add your signature to this existing envelope."))
    ] = None,
) -> None:
    """Sign a payload, or countersign an envelope someone else signed."""
    st = state(ctx)
    if (payload is None) == (countersign is None):
        raise UsageError(
            N_("give exactly one of --payload (new envelope) or --countersign ENVELOPE")
        )
    pair = read_keyfile(key, passphrase(prompt=_("Passphrase for {key}").format(key=key)))
    if countersign is not None:
        env = parse_envelope(read_input(countersign, what=Phrase("envelope"))).with_signature(
            pair.signing
        )
    else:
        assert payload is not None
        data = read_input(payload, what=Phrase("payload"))
        if payload_type == "application/json" or payload_type.endswith("+json"):
            parse_json(data, what=f"payload {payload}")  # a JSON type signs JSON only
        env = sign_envelope(payload_type, data, [pair.signing])
    write_new_file(out, env.to_bytes() + b"\n", mode=0o644, replace=countersign == out)
    st.emit(
        {"envelope": str(out), "signatures": len(env.signatures), "key_id": pair.signing.key_id},
        _("[bold green]signed[/] {out} with key {key} ({n} signature(s) now)").format(
            out=out, key=pair.signing.key_id[:16], n=len(env.signatures)
        ),
    )


def _parse_requirement(text: str) -> SignerRequirement:
    """``slot=role[|role][@person]``, e.g. ``releaser=courier@courier-li``."""
    if "=" not in text:
        raise UsageError(N_("--require {text!r}: write slot=role[|role][@person]"), text=text)
    slot, rest = text.split("=", 1)
    person = None
    if "@" in rest:
        rest, person = rest.split("@", 1)
    try:
        roles = frozenset(Role(r) for r in rest.split("|") if r)
    except ValueError as e:
        raise UsageError(N_("--require {text!r}: {reason}"), text=text, reason=e) from e
    if not slot or not roles:
        raise UsageError(
            N_("--require {text!r}: a slot name and at least one role are needed"), text=text
        )
    return SignerRequirement(slot, roles, person)


@statement_app.command("verify")
def verify(
    ctx: typer.Context,
    envelope: Annotated[Path, typer.Argument(help=_("Envelope file ('-' for stdin)."))],
    trust: Annotated[Path, typer.Option(help=_("Trust bundle file."))],
    require: Annotated[
        list[str], typer.Option(help=_("Required signer slot=role[|role][@person]; repeat."))
    ],
    at: Annotated[str | None, typer.Option(help=_("Statement time (UTC; default now)."))] = None,
    scope: Annotated[
        list[str] | None, typer.Option(help=_("Scope tag of the statement (exam:ID...); repeat."))
    ] = None,
    pin: Annotated[str | None, typer.Option(help=_("Expected authority root key id."))] = None,
) -> None:
    """Verify an envelope offline: who signed, which required signer is missing."""
    st = state(ctx)
    store = load_trust_bundle(
        read_input(trust, what=Phrase("trust bundle"), limit=CAP_BUNDLE), pinned_root_id=pin
    )
    env = parse_envelope(read_input(envelope, what=Phrase("envelope")))
    when = parse_cli_time(at, what="--at") or st.now()
    reqs = [_parse_requirement(r) for r in require]
    check = check_statement(env, store, reqs, at=when, scope=scope or ())
    problem = most_specific(check.problems)
    report = {
        "ok": check.ok,
        "payload_type": check.payload_type,
        "at": fmt_time(when),
        "signed_by": {slot: c.subject for slot, c in check.filled.items()},
        "missing": [r.slot for r in check.missing],
        "problems": [{"error": p.code, "message": p.message} for p in check.problems],
    }
    if st.json:
        if problem is not None:
            report["error"] = problem.code
        st.emit(report)
        if problem is not None:
            raise typer.Exit(problem.exit_code)
        return
    for slot, cert in check.filled.items():
        st.out.print(f"  [green]✓[/] {slot}: {cert.describe()}")
    for req in check.missing:
        st.out.print(f"  [red]✗[/] {req.describe()}: " + _("not signed"))
    if problem is not None:
        raise problem
    st.out.print(_("[bold green]valid[/]: {summary}").format(summary=said_in(check.said())))
    try:
        st.out.print(json.dumps(json.loads(check.payload), ensure_ascii=False, indent=2))
    except ValueError:
        st.out.print(_("payload: {n} bytes").format(n=len(check.payload)))
