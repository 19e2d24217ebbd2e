"""`custody init`, `custody keys ...` and `custody trust ...`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from crypto.encoding import Fields, b64encode, parse_json_object
from crypto.files import CAP_BUNDLE, CAP_SMALL_JSON
from custody.cli.common import (
    LOG_PASSPHRASE_ENV,
    NEW_PASSPHRASE_ENV,
    PASSPHRASE_ENV,
    ROOT_PASSPHRASE_ENV,
    SYSTEM_PASSPHRASE_ENV,
    ReaderKey,
    fmt_time,
    named,
    parse_cli_time,
    passphrase,
    read_input,
    reader_of,
    root_passphrase,
    state,
)
from custody.errors import N_, Phrase, UsageError
from custody.i18n import DEFAULT_TIME_ZONE, _, show_time
from keys.keyfile import KeyPair, seal_keypair, write_new_file
from keys.model import RevocationReason, Role
from keys.trust import load_trust_bundle

PUBLIC_KEYS_FORMAT = "custody-public-keys/v1"
keys_app = typer.Typer(help=_("Enrol people, rotate and revoke their keys."), no_args_is_help=True)
trust_app = typer.Typer(help=_("Trust bundles for offline devices."), no_args_is_help=True)


def init(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help=_("The exam authority's name."))],
    database_url: Annotated[
        str | None, typer.Option(help=_("Database URL (default: SQLite inside the home)."))
    ] = None,
    rehearsal: Annotated[
        bool,
        typer.Option(
            "--rehearsal",
            help=_(
                "A rehearsal home: --now may set its clock (training, tests); never for a "
                "real season."
            ),
        ),
    ] = False,
    time_zone: Annotated[
        str,
        typer.Option(help=_("The authority's time zone (IANA name): people read times in it.")),
    ] = DEFAULT_TIME_ZONE,
) -> None:
    """Create an exam authority: root, log and system keys, sealed under a passphrase."""
    from custody import identity

    st = state(ctx)
    if st.now_override is not None and not rehearsal:
        raise UsageError(N_("--now is for rehearsal homes only: add --rehearsal, or drop --now"))
    try:
        show_time(st.now(), time_zone)  # an unknown zone is refused before anything is made
    except ValueError as e:
        raise UsageError(
            N_("--time-zone: {zone!r} is not a time zone (e.g. Asia/Shanghai)"), zone=time_zone
        ) from e
    root_pw = passphrase(
        env=ROOT_PASSPHRASE_ENV,
        fallback=PASSPHRASE_ENV,
        prompt=_("Passphrase for the root key"),
        confirm=True,
    )
    log_pw = passphrase(
        env=LOG_PASSPHRASE_ENV,
        fallback=PASSPHRASE_ENV,
        prompt=_("Passphrase for the log key"),
        confirm=True,
    )
    system_pw = passphrase(
        env=SYSTEM_PASSPHRASE_ENV,
        fallback=PASSPHRASE_ENV,
        prompt=_("Passphrase for the system key"),
        confirm=True,
    )
    authority = identity.init_authority(
        st.home,
        name=name,
        passphrase=root_pw,
        log_passphrase=log_pw,
        system_passphrase=system_pw,
        now=st.now(),
        database_url=database_url,
        rehearsal=rehearsal,
        time_zone=None if time_zone == DEFAULT_TIME_ZONE else time_zone,
    )
    st.emit(
        {
            "authority": authority.name,
            "authority_id": authority.id,
            "log_key_id": authority.log_key.key_id,
            "system_key_id": authority.system_key.key_id,
            "home": str(st.home_path),
            "root_key": str(st.home.root_key_path),
        },
        _("[bold green]created[/] authority {name}").format(name=authority.name)
        + "\n"
        + st.rows(
            (_("root key id"), authority.id),
            (_("log key id"), authority.log_key.key_id),
            (_("system key id"), authority.system_key.key_id),
            (_("home"), str(st.home_path)),
            (_("time zone"), time_zone),
            (
                _("root key"),
                _("{path} (outside the home: move it to offline media)").format(
                    path=st.home.root_key_path
                ),
            ),
        ),
    )


@keys_app.command("enroll")
def enroll(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option(help=_("Stable person id, e.g. courier-li."))],
    name: Annotated[str, typer.Option(help=_("Full name as on the ID card."))],
    org: Annotated[str, typer.Option(help=_("Organisation (unit) of the person."))],
    role: Annotated[list[Role], typer.Option(help=_("A role; repeat for several."))],
    valid_from: Annotated[str | None, typer.Option(help=_("UTC start (default now)."))] = None,
    valid_until: Annotated[str | None, typer.Option(help=_("UTC end."))] = None,
    valid_days: Annotated[int, typer.Option(help=_("Validity in days if no --valid-until."))] = 180,
    recuse: Annotated[
        list[str] | None, typer.Option(help=_("Withdrawn from scope, e.g. exam:GK2027; repeat."))
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help=_("Assigned to a scope that limits reads, e.g. site:NAME, exam:ID; repeat.")
        ),
    ] = None,
    key_out: Annotated[Path | None, typer.Option(help=_("Where to write the key file."))] = None,
    public_keys: Annotated[
        Path | None,
        typer.Option(
            help=_("Certify keys made on the person's device (from `custody keys keygen`).")
        ),
    ] = None,
) -> None:
    """Enrol a person: new keys sealed under their passphrase (or public keys made on their
    own device), certified by the authority."""
    from custody import identity

    st = state(ctx)
    now = st.now()
    start = parse_cli_time(valid_from, what="--valid-from") or now
    end = parse_cli_time(valid_until, what="--valid-until") or start + timedelta(days=valid_days)
    if end <= start:
        raise UsageError(N_("--valid-until must be later than --valid-from"))
    root_pw = root_passphrase()
    device_keys = _read_public_keys(public_keys) if public_keys is not None else None
    new_pw = (
        ""
        if device_keys is not None
        else passphrase(
            env=NEW_PASSPHRASE_ENV,
            prompt=_("New passphrase for {who}").format(who=subject),
            confirm=True,
        )
    )
    result = identity.enroll(
        st.home,
        root_passphrase=root_pw,
        subject=subject,
        name=name,
        organisation=org,
        roles=role,
        not_before=start,
        not_after=end,
        recusals=recuse or (),
        scopes=scope or (),
        passphrase=new_pw,
        now=now,
        key_out=key_out,
        public_keys=device_keys,
    )
    cert = result.certificate
    where = (
        _("key file {path} (sealed under the holder's passphrase)").format(path=result.key_file)
        if result.key_file
        else _("private keys stay on the holder's device")
    )
    st.emit(
        {
            "subject": cert.subject,
            "key_id": cert.key_id,
            "encryption_key_id": cert.encryption_key_id,
            "roles": sorted(cert.roles),
            "not_before": fmt_time(cert.not_before),
            "not_after": fmt_time(cert.not_after),
            "recusals": sorted(cert.recusals),
            "scopes": sorted(cert.scopes),
            "key_file": str(result.key_file) if result.key_file else None,
        },
        _("[bold green]enrolled[/] {who}").format(who=cert.describe())
        + "\n"
        + st.rows(
            (_("valid from"), st.show_time(cert.not_before)),
            (_("valid until"), st.show_time(cert.not_after)),
            (_("key"), where),
        ),
    )


def _read_public_keys(path: Path) -> tuple[bytes, bytes]:
    f = Fields(
        parse_json_object(
            read_input(path, what=Phrase("public keys"), limit=CAP_SMALL_JSON), what=str(path)
        ),
        what=str(path),
    )
    f.expect("format", PUBLIC_KEYS_FORMAT)
    return f.blob("ed25519"), f.blob("x25519")


@keys_app.command("keygen")
def keygen(
    ctx: typer.Context,
    label: Annotated[str, typer.Option(help=_("Who the keys are for (person id)."))],
    out: Annotated[Path, typer.Option(help=_("The key file to write (sealed)."))],
    public_out: Annotated[Path, typer.Option(help=_("Public keys to hand to the authority."))],
) -> None:
    """On a person's own device: make keys, seal them, write the public half for enrolment."""
    st = state(ctx)
    pw = passphrase(
        env=NEW_PASSPHRASE_ENV,
        prompt=_("New passphrase for {who}").format(who=label),
        confirm=True,
    )
    pair = KeyPair.generate(label)
    assert pair.encryption is not None
    write_new_file(out, seal_keypair(pair, pw))
    public = {
        "format": PUBLIC_KEYS_FORMAT,
        "label": label,
        "ed25519": b64encode(pair.signing.verify_key.raw),
        "x25519": b64encode(pair.encryption.public_raw),
    }
    write_new_file(public_out, json.dumps(public, indent=2).encode() + b"\n", mode=0o644)
    st.emit(
        {"key_file": str(out), "public_keys": str(public_out), "key_id": pair.signing.key_id},
        _(
            "[bold green]keys made[/] for {who}: key id {key}; give {public} to the authority, "
            "keep {private}"
        ).format(who=label, key=pair.signing.key_id[:16], public=public_out, private=out),
    )


@keys_app.command("rotate")
def rotate(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help=_("The person whose key is replaced."))],
    key_out: Annotated[
        Path | None, typer.Option(help=_("Where to write the new key file."))
    ] = None,
) -> None:
    """Issue a new key for a person; the old one is superseded from now on."""
    from custody import identity

    st = state(ctx)
    root_pw = root_passphrase()
    new_pw = passphrase(
        env=NEW_PASSPHRASE_ENV,
        prompt=_("New passphrase for {who}").format(who=subject),
        confirm=True,
    )
    result = identity.rotate(
        st.home,
        root_passphrase=root_pw,
        subject=subject,
        passphrase=new_pw,
        now=st.now(),
        key_out=key_out,
    )
    cert = result.certificate
    st.emit(
        {"subject": subject, "key_id": cert.key_id, "supersedes": cert.supersedes},
        _("[bold green]rotated[/] {who}: new key {new} supersedes {old}").format(
            who=subject, new=cert.key_id[:16], old=(cert.supersedes or "")[:16]
        ),
    )


@keys_app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help=_("Key id (or a unique prefix of 8+ characters)."))],
    reason: Annotated[RevocationReason, typer.Option(help=_("Why the key is revoked."))],
    effective: Annotated[
        str | None,
        typer.Option(help=_("UTC time from which signatures are refused (default now).")),
    ] = None,
) -> None:
    """Revoke a key from a moment on: signatures dated at or after it are refused.

    A revocation takes no free text: it is handed to every device in the trust bundle and
    the directory, so why a key was revoked (a lost phone, a person's absence) is written as
    a sealed note on an incident act instead (docs/formats.md, "What is in clear")."""
    from custody import identity

    st = state(ctx)
    identity.check_key_prefix(key_id)  # before the root passphrase is asked for
    now = st.now()
    effective_at = parse_cli_time(effective, what="--effective") or now
    rev = identity.revoke(
        st.home,
        root_passphrase=root_passphrase(),
        key_id=key_id,
        reason=reason,
        effective_at=effective_at,
        now=now,
    )
    st.emit(
        {
            "key_id": rev.key_id,
            "reason": rev.reason.value,
            "effective_at": fmt_time(rev.effective_at),
        },
        _("[bold yellow]revoked[/] key {key} ({reason}), effective {at}").format(
            key=rev.key_id[:16], reason=rev.reason.value, at=st.show_time(rev.effective_at)
        ),
    )


@keys_app.command("list")
def list_keys(ctx: typer.Context, key: ReaderKey = None) -> None:
    """List every certified key with its standing now: as every device's directory shows
    people (name, roles, key, validity), or, with a secrecy officer's or an auditor's own
    --key, their whole certificates (organisation, recusals), the read recorded."""
    from custody import access as policy
    from custody import identity

    st = state(ctx)
    trust = identity.load_trust(st.home)
    full = False
    if key is not None:  # the whole certificates: judged and recorded as GET /v1/trust-bundle
        read = reader_of(st, key, trust, what=_("the full certificate list"))
        policy.require(
            policy.may_read_people(read.reader), read.reader, _("the full certificate list")
        )
        read.record("keys list", ["people:all"])
        full = True
    now = st.now()
    rows: list[dict[str, Any]] = []
    human: list[tuple[Any, str]] = []
    for cert in sorted(trust.certificates.values(), key=lambda c: (c.subject, c.issued_at)):
        rev = trust.revocations.get(cert.key_id)
        # JSON keeps the stable English words; the table shows them in the user's language.
        if rev is not None and rev.effective_at <= now:
            status = f"revoked ({rev.reason.value})"
            shown = _("revoked ({reason})").format(reason=rev.reason.value)
        elif now > cert.not_after:
            status, shown = "expired", _("expired")
        elif now < cert.not_before:
            status, shown = "not yet valid", _("not yet valid")
        else:
            status, shown = "valid", _("valid")
        human.append((cert, shown))
        row: dict[str, Any] = {
            "subject": cert.subject,
            "name": cert.name,
            "roles": sorted(cert.roles),
            "key_id": cert.key_id,
            "not_after": fmt_time(cert.not_after),
            "status": status,
        }
        if full:
            row["organisation"] = cert.organisation
            row["recusals"] = sorted(cert.recusals)
        rows.append(row)
    if st.json:
        view = "certificates" if full else "directory"
        st.emit({"authority_id": trust.authority.id, "view": view, "keys": rows})
        return
    columns = [_("person"), _("name"), _("roles"), _("key id"), st.in_zone(_("valid until"))]
    if full:
        columns += [_("organisation"), _("recusals")]
    table = Table(*columns, _("status"))
    for cert, shown in human:
        cells = [
            cert.subject,
            cert.name,
            ", ".join(named(role) for role in sorted(cert.roles)),
            cert.key_id[:16],
            st.table_time(cert.not_after),
        ]
        if full:
            cells += [cert.organisation, ", ".join(sorted(cert.recusals)) or "-"]
        table.add_row(*cells, shown)
    st.out.print(table)
    if not full:
        st.out.print(
            _(
                "Organisations and recusals are shown to a secrecy officer or an auditor "
                "with their own key (--key); the read is recorded."
            )
        )


@keys_app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help=_("Certificates and revocations issued offline (trust.json form).")),
    ],
) -> None:
    """Take in certificates and revocations the root key signed offline: each is checked against
    this home's authority, and all are stored or none. The serving home needs no root key."""
    from custody import identity

    st = state(ctx)
    done = identity.import_signed(
        st.home, read_input(file, what=Phrase("import file"), limit=CAP_BUNDLE)
    )
    st.emit(
        {
            "certificates": list(done.certificates),
            "revocations": list(done.revocations),
            "already_held": done.already,
        },
        _(
            "[bold green]imported[/] {certificates} certificate(s) and {revocations} "
            "revocation(s); {already} already held"
        ).format(
            certificates=len(done.certificates),
            revocations=len(done.revocations),
            already=done.already,
        ),
    )


@trust_app.command("export")
def trust_export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help=_("Trust bundle file to write."))],
) -> None:
    """Write the signed trust bundle an offline device carries."""
    from custody import identity

    st = state(ctx)
    path = identity.export_trust_bundle(
        st.home, root_passphrase=root_passphrase(), out=out, now=st.now()
    )
    trust = load_trust_bundle(read_input(path, what=Phrase("trust bundle"), limit=CAP_BUNDLE))
    st.emit(
        {
            "bundle": str(path),
            "authority_id": trust.authority.id,
            "certificates": len(trust.certificates),
        },
        _(
            "[bold green]wrote[/] {path}: {certificates} certificates, {revocations} "
            "revocations, root key {root}"
        ).format(
            path=path,
            certificates=len(trust.certificates),
            revocations=len(trust.revocations),
            root=trust.authority.id[:16],
        ),
    )


@trust_app.command("show")
def trust_show(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help=_("Trust bundle file."))],
    pin: Annotated[str | None, typer.Option(help=_("Expected authority root key id."))] = None,
) -> None:
    """Verify a trust bundle offline and summarise it."""
    st = state(ctx)
    trust = load_trust_bundle(
        read_input(bundle, what=Phrase("trust bundle"), limit=CAP_BUNDLE), pinned_root_id=pin
    )
    st.emit(
        {
            "authority": trust.authority.name,
            "authority_id": trust.authority.id,
            "certificates": len(trust.certificates),
            "revocations": len(trust.revocations),
        },
        _(
            "[bold green]valid[/] trust bundle of {name} (root {root}): {certificates} "
            "certificates, {revocations} revocations"
        ).format(
            name=trust.authority.name,
            root=trust.authority.id[:16],
            certificates=len(trust.certificates),
            revocations=len(trust.revocations),
        ),
    )
