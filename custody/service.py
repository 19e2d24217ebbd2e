"""The one assembly of the custody log service: rules, blocked-key gate, incident desk.

Every path that appends to the log (``custody event submit``, ``custody serve``, the incident
commands, the demo and its simulator, the benchmarks) opens it here, so the same rules, the
same gate and the same incident desk judge every submission, whichever door it came through.

Rules:
- A writer holds the log key (it signs checkpoints) and the system key (the incident desk signs
  incident and containment statements with it); each is unsealed with its own passphrase.
- A writer checks the stored log before it may sign (``custody.store.guard``): against itself
  and against the last checkpoint its key signed, kept in a file beside the log key.
- A reader holds neither: it serves reads, proofs and exports, and refuses appends.
- The incident policy is the home's ``incidents.json`` (defaults when absent).
- A writer is a long-running process that allocates many short-lived objects per append: its
  garbage collector is set once (``tune_collector``) so that young collections are rare and the
  objects it holds for the process's life (trust, package states) are not traversed again.
- ``ServiceClock`` is the only source of "now" for a service; a fixed clock exists for the
  demo and tests, and a home that did not allow it refuses it (``clock_override``).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crypto.files import CAP_SMALL_JSON, read_optional_file
from crypto.note import NoteVerifier
from custody import identity
from custody.home import Home
from custody.incidents.model import IncidentDesk, WatchedLog, policy_from_json
from custody.incidents.policy import Policy
from custody.log import CustodyLog
from custody.store.guard import SignedHeadFile
from keys.model import Authority

POLICY_FILE = "incidents.json"


@dataclass(frozen=True)
class ServiceSecrets:
    """The passphrases a writer needs, one per authority key (never printed)."""

    log: str = field(repr=False)
    system: str = field(repr=False)


def system_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def home_policy(home: Home) -> Policy:
    """The home's incident policy (``incidents.json``), or the defaults."""
    policy_path = home.path / POLICY_FILE
    return policy_from_json(
        read_optional_file(policy_path, what="incident policy", limit=CAP_SMALL_JSON)
    )


# Young objects allocated between two collections of the youngest generation, and how many
# such collections run between two of the next (CPython's defaults: 700, 10, 10). At the
# defaults, collections cost a fifth of a batched append's CPU (213 -> 168 µs per countersigned
# handover, docs/benchmarks.md "Speed at season scale").
COLLECTOR_THRESHOLDS = (100_000, 50, 100)


def tune_collector() -> None:
    """Set this process's garbage collector for a long-running writer, once: what exists now
    (modules, trust) is frozen out of collection, and collections run less often."""
    if gc.get_threshold() == COLLECTOR_THRESHOLDS:
        return
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def open_writer(
    home: Home, secrets: ServiceSecrets, *, workers: int = 1, policy: Policy | None = None
) -> WatchedLog:
    """The log with its rules, the blocked-key gate and the incident desk attached.

    ``policy`` replaces the home's incident policy (the demo's breaches, tests). Sets the
    process's garbage collector for a writer (``tune_collector``)."""
    tune_collector()
    trust = identity.load_trust(home)
    log_key = home.authority_key("log", secrets.log).signing
    system_key = home.authority_key("system", secrets.system).signing
    policy = policy if policy is not None else home_policy(home)
    desk = IncidentDesk(trust, system_key, policy)
    log = WatchedLog(home.engine, trust, log_key, desk, workers=workers)
    # Before it may sign: the stored log agrees with itself and with the last checkpoint its
    # key signed, kept outside the database (LogStateError otherwise; nothing is signed).
    log.attach_signed_head(signed_head_file(home, trust.authority))
    return log


def signed_head_file(home: Home, authority: Authority) -> SignedHeadFile:
    """The home's file of the last checkpoint the log key signed."""
    verifier = NoteVerifier(authority.log_origin, authority.log_key)
    return SignedHeadFile(home.signed_head_path, verifier, authority.log_origin)


def open_reader(home: Home) -> CustodyLog:
    """The log for reading only (no key: appends are refused)."""
    return CustodyLog(home.engine, identity.load_trust(home), None)
