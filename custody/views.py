"""Seeing custody: packages (list, one, its timeline) and papers (list, one with its acts).

What the CLI's `package list|show|timeline` and `paper list|show` print and what the API's
read routes answer come from here, so both show the same thing.

Rules:
- The cached package state is shown as the log's rules left it; what makes a timeline
  believable is checked again each time it is shown: every event's signatures are verified
  under the certified keys, every slot the event names must be filled by that person's key,
  and the event's leaf must be included in the latest checkpoint the log key signed. A mark
  says which of these held (nothing is hidden when one fails).
- A package is overdue by the incident policy's own rule (``incidents.detect.sweep``): in one
  status longer than its dwell limit, or opened and not recovered after its window.
- Lists are paged (offset, limit at most ``MAX_PAGE``), in package id (or paper ref) order.
- Times are UTC here; the edges show them in the authority's zone (the CLI's ``State.show_time``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crypto import merkle
from crypto.dsse import Envelope, parse_envelope, verify_signatures
from crypto.encoding import format_time
from crypto.note import NoteVerifier, open_checkpoint
from custody.access import PackageFacts, seal_facts
from custody.errors import N_, CustodyError, NotFoundError, Phrase, UsageError
from custody.events import Event, Kind, parse_event, parse_leaf
from custody.home import Home
from custody.i18n import said_in
from custody.incidents.detect import DetectionKind, Watched, sweep
from custody.log import CustodyLog
from custody.paper_service import list_papers, load_state, parse_ref
from custody.rules import PackageState, Status, finding_said
from custody.service import home_policy, open_reader
from custody.store import log_reads
from custody.store import papers as paper_store
from custody.store.incidents import watched_since
from custody.store.states import state_as_dict
from keys.trust import TrustStore

MAX_PAGE = 500


def finding_words(row: Mapping[str, Any]) -> dict[str, str]:
    """A stored finding as people read it: its kind, its English ``detail`` (as stored) and
    ``detail_zh``, the same sentence from its evidence in Chinese."""
    try:
        evidence = json.loads(row.get("evidence") or "{}")
    except ValueError:
        evidence = {}
    said = finding_said(str(row["kind"]), evidence if isinstance(evidence, dict) else {})
    detail = str(row["detail"])
    return {
        "kind": str(row["kind"]),
        "detail": detail,
        "detail_zh": said_in(said, "zh") if said.template else detail,
    }


@dataclass(frozen=True)
class PackageFilter:
    """Which packages a list shows (None: any)."""

    exam: str | None = None
    status: str | None = None
    holder: str | None = None
    site: str | None = None
    overdue: bool = False


@dataclass(frozen=True)
class Page:
    """One page of a list: its items, how many match in all, and where the next page starts."""

    items: tuple[dict[str, Any], ...]
    total: int
    offset: int
    limit: int

    @property
    def next_offset(self) -> int | None:
        after = self.offset + len(self.items)
        return after if after < self.total else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": list(self.items),
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "next_offset": self.next_offset,
        }


@dataclass(frozen=True)
class Signed:
    """One signer slot of an event, as shown: who the event names and whether they signed."""

    slot: str
    person: str
    name: str
    key_id: str
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "person": self.person,
            "name": self.name,
            "key_id": self.key_id,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class TimelineEntry:
    """One event of a package's chain, with its verification marks."""

    index: int
    statement_id: str
    kind: str
    time: datetime
    received: datetime
    place: str
    signers: tuple[Signed, ...]
    body: Mapping[str, Any]
    findings: tuple[dict[str, str], ...]
    signatures_ok: bool
    included: bool
    problems: tuple[str, ...] = field(default=())

    @property
    def verified(self) -> bool:
        return self.signatures_ok and self.included

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "statement_id": self.statement_id,
            "kind": self.kind,
            "time": format_time(self.time),
            "received": format_time(self.received),
            "place": self.place,
            "signers": [s.as_dict() for s in self.signers],
            "body": _shown_body(self.body),
            "findings": list(self.findings),
            "verified": self.verified,
            "signatures_ok": self.signatures_ok,
            "included": self.included,
            "problems": list(self.problems),
        }


def _shown_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without what only machines read (an embedded label or act)."""
    return {k: v for k, v in body.items() if k not in ("act",)}


def _page(offset: int, limit: int) -> None:
    if offset < 0:
        raise UsageError(N_("offset: 0 or more"))
    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(N_("limit: 1 to {max_page}"), max_page=MAX_PAGE)


class Views:
    """The read side over one home (no key: it never writes)."""

    def __init__(self, home: Home, log: CustodyLog | None = None) -> None:
        self.home = home
        self.log = log if log is not None else open_reader(home)

    @property
    def trust(self) -> TrustStore:
        return self.log.trust

    # -- packages ------------------------------------------------------------------------

    def _states(self) -> list[PackageState]:
        return log_reads.package_states(self.log.engine)

    def _destinations(self, package_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Each package's destination (site, room) from its seal event."""
        out: dict[str, dict[str, str]] = {}
        seals = log_reads.package_entries(self.log.engine, package_ids, Kind.SEAL.value)
        for package_id, envelope in seals:
            dest = _event(envelope).body.get("destination")
            if isinstance(dest, dict):
                out[package_id] = {
                    "site": str(dest.get("site", "")),
                    "room": str(dest.get("room", "")),
                }
        return out

    def destinations(self, package_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Each package's destination (site, room) from its seal event."""
        return self._destinations(package_ids)

    def name_of(self, person: str | None) -> str:
        """A person's name as their latest certificate gives it ("" for nobody or unknown)."""
        if not person:
            return ""
        certs = self.trust.certificates_of(person)
        return certs[-1].name if certs else ""

    def overdue(self, now: datetime, only: str | None = None) -> dict[str, str]:
        """Overdue packages at ``now`` (or just ``only``), each with the reason (the incident
        policy's rule)."""
        with self.log.engine.connect() as conn:
            since = dict(watched_since(conn))
        if only is not None:
            since = {only: since[only]} if only in since else {}
            states = {only: self.log.package_state(only)} if since else {}
        else:
            states = {s.package_id: s for s in self._states() if s.package_id in since}
        watched = [Watched(s, since[pid]) for pid, s in states.items()]
        out: dict[str, str] = {}
        for d in sweep(watched, now, home_policy(self.home)):
            if d.kind == DetectionKind.OVERDUE and d.package_id is not None:
                out.setdefault(d.package_id, d.detail)
        return out

    def packages(
        self, filters: PackageFilter, *, now: datetime, offset: int = 0, limit: int = 50
    ) -> Page:
        _page(offset, limit)
        if filters.status is not None and filters.status not in {s.value for s in Status}:
            raise UsageError(
                N_("state {status!r}: one of {items}"),
                status=filters.status,
                items=", ".join(s.value for s in Status),
            )
        states = [
            s
            for s in self._states()
            if (filters.exam is None or s.exam == filters.exam)
            and (filters.status is None or s.status.value == filters.status)
            and (filters.holder is None or s.holder == filters.holder)
        ]
        overdue = self.overdue(now) if filters.overdue else {}
        if filters.overdue:
            states = [s for s in states if s.package_id in overdue]
        if filters.site is not None:
            where = self._destinations(s.package_id for s in states)
            states = [s for s in states if where.get(s.package_id, {}).get("site") == filters.site]
        chosen = states[offset : offset + limit]
        where = self._destinations(s.package_id for s in chosen)
        items = tuple(
            _summary(s, where.get(s.package_id), overdue.get(s.package_id)) for s in chosen
        )
        return Page(items, len(states), offset, limit)

    def package(self, package_id: str, *, now: datetime) -> dict[str, Any]:
        """One package: state, holder, route, seals, counts, destination, findings."""
        state = self.log.package_state(package_id)
        history = self.log.package_history(package_id)
        dest = self._destinations([package_id]).get(package_id)
        findings = [
            {"index": f["idx"], **finding_words(f)}
            for f in self.log.findings(at=history)
            if f["package_id"] == package_id
        ]
        overdue = self.overdue(now, only=package_id).get(package_id)
        return {
            **state_as_dict(state),
            "destination": dest,
            "events": len(history),
            "history": history,
            "findings": findings,
            "overdue": overdue,
        }

    def package_facts(self, package_id: str) -> PackageFacts:
        """What the access policy judges of a package (``custody.access``): its exam,
        destination site and the people on it (route, holder, sealer), from its state and its
        seal event (``NotFoundError`` if the log has no such package)."""
        state, history = self.log.package_state_and_history(package_id)
        if not history:
            raise NotFoundError(N_("no package {package_id!r} in the log"), package_id=package_id)
        exam, site, sealers = seal_facts(parse_event(self.log.entry(history[0]).payload))
        people = [*state.route, state.holder, *sealers]
        return PackageFacts.build(package_id, exam=exam or state.exam, site=site, people=people)

    def timeline(self, package_id: str, history: list[int] | None = None) -> list[TimelineEntry]:
        """Every event naming the package, in log order, each verified again as shown.

        ``history``: the package's entries as the caller already read them (the service's
        route reads them once for the policy and the answer)."""
        if history is None:
            history = self.log.package_history(package_id)
        if not history:
            raise NotFoundError(N_("no package {package_id!r} in the log"), package_id=package_id)
        size, root = self._signed_head()
        findings: dict[int, list[dict[str, str]]] = {}
        for f in self.log.findings(at=history):
            if f["package_id"] == package_id:
                findings.setdefault(int(f["idx"]), []).append(finding_words(f))
        return [self._entry(i, size, root, findings.get(i, [])) for i in history]

    def timelines(self, package_ids: Iterable[str]) -> dict[str, list[TimelineEntry]]:
        """Several packages' timelines (as ``timeline``), against one signed checkpoint and
        one read of the findings; a package the log never named gets an empty list."""
        wanted = list(dict.fromkeys(package_ids))
        size, root = self._signed_head()
        histories = {pid: self.log.package_history(pid) for pid in wanted}
        findings: dict[tuple[str, int], list[dict[str, str]]] = {}
        at = [i for history in histories.values() for i in history]
        for f in self.log.findings(at=at):
            findings.setdefault((str(f["package_id"]), int(f["idx"])), []).append(finding_words(f))
        return {
            pid: [self._entry(i, size, root, findings.get((pid, i), [])) for i in history]
            for pid, history in histories.items()
        }

    def signed_head(self) -> tuple[int, bytes]:
        """(size, root) of the log's latest checkpoint, its signature verified under the log key."""
        return self._signed_head()

    def _signed_head(self) -> tuple[int, bytes]:
        authority = self.trust.authority
        verifier = NoteVerifier(authority.log_origin, authority.log_key)
        checkpoint, _ = open_checkpoint(
            self.log.latest_checkpoint(), [verifier], origin=authority.log_origin
        )
        return checkpoint.size, checkpoint.root

    def _entry(
        self, index: int, size: int, root: bytes, findings: list[dict[str, str]]
    ) -> TimelineEntry:
        leaf = self.log.leaf(index)
        try:
            entry = parse_leaf(leaf)
            event = parse_event(entry.envelope.payload)
        except CustodyError as e:  # an edited row: shown as what it is, not hidden
            return _unreadable(index, e.message)
        problems: list[str] = []
        included = False
        if index < size:
            try:
                proof = self.log.inclusion_proof(index, size)
                merkle.verify_inclusion(merkle.leaf_hash(leaf), index, size, proof, root)
                included = True
            except CustodyError as e:
                problems.append(f"not in the signed checkpoint of size {size}: {e.message}")
        else:
            problems.append(f"after the latest signed checkpoint (size {size})")
        signers, ok, sig_problems = self._signers(event, entry.envelope)
        problems.extend(sig_problems)
        return TimelineEntry(
            index=index,
            statement_id=event.id,
            kind=event.kind.value,
            time=event.time,
            received=entry.received,
            place=event.place,
            signers=signers,
            body=event.body,
            findings=tuple(findings),
            signatures_ok=ok,
            included=included,
            problems=tuple(problems),
        )

    def _signers(self, event: Event, env: Envelope) -> tuple[tuple[Signed, ...], bool, list[str]]:
        problems: list[str] = []
        try:
            check = verify_signatures(env, self.trust.signing_keys)
        except CustodyError as e:
            return (), False, [e.message]
        if check.unmatched:
            problems.append(f"{len(check.unmatched)} signature(s) match no certified key")
        by_subject: dict[str, str] = {}
        for kid in check.signed_by:
            cert = self.trust.certificates.get(kid)
            if cert is not None:
                by_subject[cert.subject] = kid
            elif kid == self.trust.authority.system_key.key_id:
                by_subject[self.trust.authority.id] = kid
        shown: list[Signed] = []
        for slot, person in sorted(event.actors.items(), key=_slot_order):
            kid = by_subject.get(person, "")
            cert = self.trust.certificates.get(kid)
            name = cert.name if cert is not None else ""
            if slot == "system":
                name = self.trust.authority.name
            if not kid:
                problems.append(f"{slot} {person} did not sign")
            shown.append(Signed(slot, person, name, kid, bool(kid)))
        ok = not problems and bool(shown)
        return tuple(shown), ok, problems

    # -- papers --------------------------------------------------------------------------

    def papers(
        self,
        *,
        exam: str | None = None,
        offset: int = 0,
        limit: int = 50,
        proposer: str | None = None,
    ) -> Page:
        """Paper versions, paged; with ``proposer``, only those whose signed proposal (its
        signature verified again, never a column believed) that person proposed."""
        _page(offset, limit)
        rows = list_papers(self.home, exam)
        if proposer is not None:
            trust = self.log.trust
            rows = [
                r for r in rows if load_state(self.home, r.ref, trust).proposal.proposer == proposer
            ]
        chosen = rows[offset : offset + limit]
        return Page(tuple(r.__dict__ for r in chosen), len(rows), offset, limit)

    def paper(self, ref: str) -> dict[str, Any]:
        """One paper (a version, or the newest of an id) with every act on it, each act's
        signers verified again and the log entry that recorded it."""
        paper_id, version = parse_ref(ref)
        with paper_store.reading(self.home.engine) as repo:
            found = [r for r in repo.versions(paper_id) if version in (None, r.version)]
            if not found:
                raise NotFoundError(N_("no paper {ref!r}"), ref=ref)
            row = found[-1]  # the newest asked for
            acts = repo.acts_on(row.ref)
        summary = next(p for p in list_papers(self.home, row.exam) if p.ref == row.ref)
        on_log = self._paper_entries(row.ref)
        shown = [self._act(a.kind, a.at, a.envelope, on_log) for a in acts]
        proposal = self._act("proposal", row.proposed_at, row.proposal, on_log)
        return {**summary.__dict__, "proposed_at": row.proposed_at, "acts": [proposal, *shown]}

    def _paper_entries(self, ref: str) -> dict[bytes, int]:
        """The log index of every act on this paper, by the act's signed bytes."""
        out: dict[bytes, int] = {}
        for idx, envelope in log_reads.entries_of_kind(self.log.engine, Kind.PAPER_ACT.value):
            body = _event(envelope).body
            if body.get("paper") == ref and isinstance(body.get("act"), dict):
                act = parse_envelope(body["act"], what=Phrase("paper act"))
                out[act.to_bytes()] = idx
        return out

    def _act(self, kind: str, at: str, envelope: bytes, on_log: dict[bytes, int]) -> dict[str, Any]:
        env = parse_envelope(envelope, what=f"{kind} act")
        try:
            check = verify_signatures(env, self.trust.signing_keys)
            signed = sorted(check.signed_by)
            ok = bool(signed) and not check.unmatched
        except CustodyError:
            signed, ok = [], False
        people = []
        for kid in signed:
            cert = self.trust.certificates.get(kid)
            if cert is not None:
                people.append({"person": cert.subject, "name": cert.name, "key_id": kid})
        return {
            "kind": kind,
            "at": at,
            "signers": people,
            "signatures_ok": ok,
            "log_index": on_log.get(env.to_bytes()),
        }


# Signer slots in the order people act: who gives, who takes, who watches.
SLOT_ORDER = (
    "sealer", "releaser", "receiver", "custodian2", "escort", "inspector", "examiner",
    "supervisor", "officer", "witness", "reporter", "system",
)  # fmt: skip


def _slot_order(item: tuple[str, str]) -> tuple[int, str]:
    slot = item[0]
    return (SLOT_ORDER.index(slot) if slot in SLOT_ORDER else len(SLOT_ORDER), slot)


def _unreadable(index: int, why: str) -> TimelineEntry:
    epoch = datetime.fromtimestamp(0, UTC)
    return TimelineEntry(
        index=index,
        statement_id="",
        kind="unreadable",
        time=epoch,
        received=epoch,
        place="",
        signers=(),
        body={},
        findings=(),
        signatures_ok=False,
        included=False,
        problems=(f"the stored entry cannot be read: {why}",),
    )


def _event(leaf: bytes) -> Event:
    return parse_event(parse_leaf(leaf).envelope.payload)


def _summary(
    state: PackageState, destination: dict[str, str] | None, overdue: str | None
) -> dict[str, Any]:
    return {
        "package_id": state.package_id,
        "exam": state.exam,
        "position": state.position,
        "paper": state.paper,
        "status": state.status.value,
        "holder": state.holder,
        "next_holder": state.next_holder,
        "last_time": format_time(state.last_time),
        "last_place": state.last_place,
        "site": destination.get("site") if destination else None,
        "room": destination.get("room") if destination else None,
        "frozen": state.frozen,
        "compromised": state.compromised,
        "copies": state.copies,
        "distributed": state.distributed,
        "recovered": state.recovered,
        "overdue": overdue,
    }
