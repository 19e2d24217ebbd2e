"""`custody log check`: the log's stored state against itself and its last signed checkpoint.

The same check every writer runs at start (``custody.store.guard``), on demand, with no
passphrase (it needs only the log's public key); ``--full`` re-hashes every entry and every
stored tree node instead of the newest ones. ``--adopt`` is the one way to start keeping the
signed-checkpoint file for a database that has none (a home made before the file existed):
only after a full audit passes, and never over an existing file. With live witnesses in
``witnesses.json``, each is asked for the latest checkpoint of this log it cosigned: a database
behind or inconsistent with one is refused, with or without the file (docs/adr/0012).
"""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli.common import state
from custody.errors import N_, ConflictError, LogStateError
from custody.i18n import _


def check(
    ctx: typer.Context,
    full: Annotated[
        bool, typer.Option("--full", help=_("Re-hash every entry and every stored tree node."))
    ] = False,
    adopt: Annotated[
        bool,
        typer.Option(
            "--adopt",
            help=_(
                "The home has no signed-checkpoint file: audit in full, then keep the "
                "database's last checkpoint in it."
            ),
        ),
    ] = False,
) -> None:
    """Check the stored log before trusting it (exit 6, log_state, naming what is wrong)."""
    from custody.service import open_reader, signed_head_file
    from custody.witness_client import check_witness_copies, witness_copies

    st = state(ctx)
    home = st.home
    log = open_reader(home)
    head = signed_head_file(home, log.trust.authority)
    policy = home.witness_policy()
    copies = witness_copies(log, policy) if policy is not None and policy.urls else []
    if adopt:
        if head.path.exists() or head.path.is_symlink():
            raise ConflictError(
                N_("{path} exists: --adopt never replaces a signed-checkpoint file"),
                hint=N_("run `custody log check` to see whether the database agrees with it"),
                path=head.path,
            )
        report = log.check_state(None, full=True)
        if report.checkpoint is None:
            raise LogStateError(N_("the log is empty: there is no checkpoint to adopt"))
        # The witnesses' copies stand in for the lost file: a database behind them is refused
        # before anything is adopted (and their copy is kept instead).
        check_witness_copies(log, copies, head)
        head.record(report.checkpoint.note)
        report = log.check_state(head, full=True)
    else:
        report = log.check_state(head, full=full)
        check_witness_copies(log, copies, head)
    body = {
        "ok": True,
        "full": full or adopt,
        "adopted": adopt,
        **report.as_dict(),
        "witnesses": [c.as_dict() for c in copies],
    }
    lines = [
        _("the log's stored state agrees with what its key signed: {n} entries").format(
            n=report.size
        ),
        st.rows(
            (
                _("checkpoint in the database"),
                report.checkpoint.describe() if report.checkpoint else "-",
            ),
            (_("signed-checkpoint file"), report.file.describe() if report.file else "-"),
            (
                _("checked"),
                _("{leaves} leaves re-hashed; {states} package states read").format(
                    leaves=report.leaves_checked, states=report.states_checked
                ),
            ),
            *((_("witness {name}").format(name=c.witness), c.detail) for c in copies),
        ),
    ]
    if adopt:
        lines.append(
            _("adopted: {path} now holds the database's last checkpoint").format(path=head.path)
        )
    st.emit(body, "\n".join(lines))


def failover(ctx: typer.Context) -> None:
    """After promoting a standby and pointing the home at it: raise the log's epoch there.

    The promoted database must hold everything this host's log key signed (the same check as at
    start); its epoch goes up by one, and this host's epoch file follows. A former primary,
    still at the old epoch, is then refused by every host that has seen the new one.
    """
    from custody.service import open_reader, signed_head_file
    from custody.store.guard import raise_epoch

    st = state(ctx)
    home = st.home
    log = open_reader(home)
    head = signed_head_file(home, log.trust.authority)
    log.check_state(head)
    with log.engine.begin() as conn:
        epoch = raise_epoch(conn)
    head.record_epoch(epoch)
    report = log.check_state(head)
    st.emit(
        {"ok": True, **report.as_dict()},
        _(
            "epoch {epoch}: this database is the log's primary; {n} entries, last checkpoint "
            "{checkpoint}"
        ).format(
            epoch=epoch,
            n=report.size,
            checkpoint=report.checkpoint.describe() if report.checkpoint else "-",
        ),
    )
