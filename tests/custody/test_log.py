"""The custody log: a package's whole life, every refusal the rules make, receipts and proofs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crypto import merkle
from crypto.note import NoteVerifier, open_checkpoint
from custody.demo import EXAM_ID, Season, seal_body
from custody.errors import (
    ChainError,
    ClosedError,
    FormatError,
    FrozenError,
    RecusedError,
    RevokedError,
    RouteError,
    ThresholdError,
    UnknownSignerError,
    WindowError,
)
from custody.events import Kind, parse_event
from custody.log import statement_id_of
from custody.rules import Status
from tests.conftest import PASS, revoke_now

SEALS = ["S-001", "S-002"]
ROUTE = ["courier-sun", "courier-li", "custodian-zhou"]


def seal(
    season: Season,
    pkg: str = "PK-1",
    *,
    route: list[str] = ROUTE,
    witness: bool = False,
    exam: str = EXAM_ID,
    opens_in: timedelta = timedelta(hours=4),
) -> None:
    start = season.now + opens_in
    body = seal_body(
        exam=exam,
        position="P-01",
        paper="PAPER-A",
        copies=30,
        seals=SEALS,
        window=(start, start + timedelta(hours=2)),
        route=route,
        handover_witness=witness,
    )
    season.publish_exam_policy(exam, handover_witness=witness)  # the seal follows the log's
    season.submit(
        season.event(
            Kind.SEAL, [pkg], actors={"sealer": "print-qian"}, signers=["print-qian"], body=body
        )
    )


def transfer(
    season: Season, kind: Kind, pkg: str, frm: str, to: str, seals: list[str] = SEALS, **extra: str
) -> object:
    actors = {"releaser": frm, "receiver": to, **extra}
    signers = [frm, to, *extra.values()]
    return season.submit(
        season.event(kind, [pkg], actors=actors, signers=signers, body={"seals": seals})
    )


def to_storage(season: Season, pkg: str = "PK-1") -> None:
    transfer(season, Kind.DISPATCH, pkg, "print-qian", "courier-sun")
    transfer(season, Kind.HANDOVER, pkg, "courier-sun", "courier-li")
    transfer(season, Kind.RECEIVE, pkg, "courier-li", "custodian-zhou", custodian2="custodian-wu")


EXAMINERS = {"examiner": "examiner-zheng", "supervisor": "supervisor-wang"}


def two(season: Season, kind: Kind, pkg: str, body: dict[str, object], at: object = None) -> object:
    return season.submit(
        season.event(
            kind, [pkg], actors=EXAMINERS, signers=list(EXAMINERS.values()), body=body, at=at
        )  # type: ignore[arg-type]
    )


def test_whole_life_of_a_package(season: Season) -> None:
    seal(season)
    to_storage(season)
    state = season.log().package_state("PK-1")
    assert state.status == Status.STORED
    assert state.holder == "custodian-zhou"
    season.now = state.window_start + timedelta(minutes=5)
    two(season, Kind.OPEN, "PK-1", {"seals": SEALS})
    two(season, Kind.DISTRIBUTE, "PK-1", {"copies": 30})
    receipt = two(season, Kind.RECOVER, "PK-1", {"copies": 30})
    assert receipt.findings == ()  # type: ignore[attr-defined]
    transfer(season, Kind.RETURN, "PK-1", "examiner-zheng", "custodian-zhou", seals=[])
    final = season.submit(
        season.event(
            Kind.DESTROY,
            ["PK-1"],
            actors={"officer": "destroy-feng", "witness": "supervisor-wang"},
            signers=["destroy-feng", "supervisor-wang"],
            body={"method": "shredding", "copies": {"PK-1": 30}},
        )
    )
    assert final.index == 9  # entry 0 is the exam's policy
    assert season.log().package_state("PK-1").status == Status.DESTROYED
    assert season.log().package_history("PK-1") == list(range(1, 10))

    # The receipt's checkpoint verifies under the authority's log key, and the event is in it.
    authority = season.trust().authority
    verifier = NoteVerifier(authority.log_origin, authority.log_key)
    checkpoint, _ = open_checkpoint(final.checkpoint, [verifier], origin=authority.log_origin)
    assert checkpoint.size == 10
    for index, leaf in season.log().entries():
        proof = season.log().inclusion_proof(index, checkpoint.size)
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf), index, checkpoint.size, proof, checkpoint.root
        )

    # Anything after destruction: refused.
    with pytest.raises(ClosedError):
        season.submit(
            season.event(
                Kind.INSPECT,
                ["PK-1"],
                actors={"inspector": "custodian-zhou"},
                signers=["custodian-zhou"],
            )
        )


def test_statement_indices_name_the_entries_on_the_log_and_skip_the_rest(
    season: Season,
) -> None:
    seal(season)
    to_storage(season)
    log = season.log()
    wanted = {statement_id_of(log.entry(i)): i for i in (1, 3)}
    assert log.statement_indices([*wanted, "not-a-statement-on-this-log"]) == wanted
    assert log.statement_indices([]) == {}


def test_resubmission_returns_same_receipt(season: Season) -> None:
    seal(season)
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
    )
    first = season.submit(env)
    again = season.submit(env)
    assert again.index == first.index
    assert again.statement_id == first.statement_id
    assert again.duplicate
    assert season.log().size() == 3  # the exam's policy, the seal, the dispatch


def test_receiver_off_route_refused(season: Season) -> None:
    seal(season)
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    with pytest.raises(RouteError):
        transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "custodian-wu")
    assert season.log().package_state("PK-1").holder == "courier-sun"


def test_reroute_by_secrecy_officer_allows_new_holder(season: Season) -> None:
    seal(season)
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    season.submit(
        season.event(
            Kind.REROUTE,
            ["PK-1"],
            actors={"officer": "secrecy-chen"},
            signers=["secrecy-chen"],
            body={"route": ["courier-he", "custodian-zhou"]},
        )
    )
    with pytest.raises(RecusedError):  # courier-he is withdrawn from this exam
        transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-he")


def test_handover_needs_receiver_signature(season: Season) -> None:
    seal(season)
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian"],
        body={"seals": SEALS},
    )
    with pytest.raises(ThresholdError):
        season.submit(env)


def test_supervising_witness_required_by_policy(season: Season) -> None:
    seal(season, witness=True)
    # The witness slot the policy asks for, unnamed in actors: a missing signer (422), not a
    # malformed event (docs/formats.md, "Signer slots").
    with pytest.raises(ThresholdError):
        transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun", witness="supervisor-wang")


@pytest.mark.parametrize(
    ("when", "actors", "signers", "error"),
    [
        (timedelta(hours=-1), EXAMINERS, ["examiner-zheng", "supervisor-wang"], WindowError),
        (timedelta(hours=3), EXAMINERS, ["examiner-zheng", "supervisor-wang"], WindowError),
        (timedelta(minutes=5), EXAMINERS, ["examiner-zheng"], ThresholdError),
    ],
    ids=["before-window", "after-window", "without-supervisor"],
)
def test_opening_refusals(
    season: Season, when: timedelta, actors: dict[str, str], signers: list[str], error: type
) -> None:
    seal(season)
    to_storage(season)
    start = season.log().package_state("PK-1").window_start
    season.now = start + when - timedelta(minutes=5)  # the log's clock: the next tick is then
    env = season.event(Kind.OPEN, ["PK-1"], actors=actors, signers=signers, body={"seals": SEALS})
    with pytest.raises(error):
        season.submit(env)
    assert season.log().package_state("PK-1").status == Status.STORED


def test_seal_mismatch_is_recorded_with_a_finding(season: Season) -> None:
    seal(season)
    receipt = transfer(
        season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun", seals=["S-001", "S-999"]
    )
    assert [f.kind for f in receipt.findings] == ["seal_mismatch"]  # type: ignore[attr-defined]
    log = season.log()
    assert log.findings()[0]["package_id"] == "PK-1"
    # Read by the entries they are at: only those; asked in chunks however many indices.
    at = receipt.index  # type: ignore[attr-defined]
    assert [f["idx"] for f in log.findings(at=[at])] == [at]
    assert log.findings(at=[at - 1]) == []
    assert [f["idx"] for f in log.findings(at=range(at + 1000))] == [at]
    from custody.views import Views

    shown = {e.index: e.findings for e in Views(season.home, log).timeline("PK-1")}
    assert [f["kind"] for f in shown[at]] == ["seal_mismatch"]
    assert all(not found for i, found in shown.items() if i != at)


def test_short_count_on_recovery_is_a_finding(season: Season) -> None:
    seal(season)
    to_storage(season)
    season.now = season.log().package_state("PK-1").window_start
    two(season, Kind.OPEN, "PK-1", {"seals": SEALS})
    two(season, Kind.DISTRIBUTE, "PK-1", {"copies": 30})
    receipt = two(season, Kind.RECOVER, "PK-1", {"copies": 29})
    assert [f.kind for f in receipt.findings] == ["count_mismatch"]  # type: ignore[attr-defined]


def test_frozen_package_only_goes_to_secure_custody(season: Season) -> None:
    seal(season)
    transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")
    season.submit(
        season.event(
            Kind.FREEZE,
            ["PK-1"],
            actors={"officer": "secrecy-chen"},
            signers=["secrecy-chen"],
            body={},
        )
    )
    with pytest.raises(FrozenError):
        transfer(season, Kind.HANDOVER, "PK-1", "courier-sun", "courier-li")
    transfer(
        season, Kind.RECEIVE, "PK-1", "courier-sun", "custodian-zhou", custodian2="custodian-wu"
    )


def test_wrong_previous_event_refused(season: Season) -> None:
    seal(season)
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
        prevs={"PK-1": "ab" * 32},
    )
    with pytest.raises(ChainError):
        season.submit(env)


def test_unsealed_package_refused(season: Season) -> None:
    env = season.event(
        Kind.DISPATCH,
        ["PK-X"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
    )
    with pytest.raises(ChainError):
        season.submit(env)


def test_revoked_key_refused(season: Season) -> None:
    seal(season)
    revoke_now(season)
    with pytest.raises(RevokedError):
        transfer(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun")


def test_stranger_signature_refused(season: Season) -> None:
    from crypto.signing import SigningKey

    seal(season)
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
    ).with_signature(SigningKey.generate())
    with pytest.raises(UnknownSignerError):
        season.submit(env)


def test_batch_append_accepts_and_rejects_each_alone(season: Season) -> None:
    seal(season, "PK-1")
    seal(season, "PK-2")
    good = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
    )
    bad = season.event(
        Kind.DISPATCH,
        ["PK-2"],
        actors={"releaser": "print-qian", "receiver": "courier-li"},
        signers=["print-qian", "courier-li"],
        body={"seals": SEALS},
    )
    result = season.log().submit_many([good, bad], now=season.now)
    assert [r.index for r in result.receipts] == [3]
    assert isinstance(result.rejected[0].error, RouteError)


class IncidentOnRefusal:
    """A minimal observer: every refused submission becomes a system-signed incident."""

    def __init__(self, season: Season) -> None:
        self.system = season.home.authority_key("system", PASS).signing
        self.authority = season.trust().authority.id

    def observe(self, view):  # type: ignore[no-untyped-def]
        from custody.events import Event

        out = []
        for r in view.rejected:
            ev = Event(
                kind=Kind.INCIDENT,
                authority=self.authority,
                time=view.now,
                place="",
                packages={},
                actors={"system": self.authority},
                body={
                    "refusal": r.error.code,
                    "scope": list(r.event.package_ids) if r.event else [],
                },
            )
            out.append(ev.sign([self.system]))
        return out


def test_observer_appends_system_incident_in_same_transaction(season: Season) -> None:
    from custody.log import CustodyLog

    seal(season)
    log = season.log()
    watched = CustodyLog(log.engine, log.trust, log.log_key, observers=[IncidentOnRefusal(season)])
    bad = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-li"},
        signers=["print-qian", "courier-li"],
        body={"seals": SEALS},
    )
    result = watched.submit_many([bad], now=season.now)
    assert isinstance(result.rejected[0].error, RouteError)
    assert [r.index for r in result.system] == [2]
    assert watched.size() == 3


def test_people_cannot_sign_as_the_system(season: Season) -> None:
    from custody.events import Event

    ev = Event(
        kind=Kind.INCIDENT,
        authority=season.trust().authority.id,
        time=season.now,
        place="",
        packages={},
        actors={"system": season.trust().authority.id},
        body={},
    )
    from custody.errors import SignatureError

    with pytest.raises(SignatureError):
        season.submit(ev.sign([season.keys["secrecy-chen"].signing]))


def test_corrections_name_an_earlier_statement_and_edit_nothing(
    season: Season, tmp_path: object
) -> None:
    from custody.audit import export_bundle
    from custody.demo.log import verify_export
    from custody.events import Event

    seal(season)
    wrong = transfer(
        season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun", seals=["S-001", "S-00Z"]
    )
    assert [f.kind for f in wrong.findings] == ["seal_mismatch"]  # type: ignore[attr-defined]

    def correction(corrects: str | None) -> object:
        ev = Event(
            kind=Kind.CORRECTION,
            authority=season.authority.id,
            time=season.tick(),
            place="",
            packages={"PK-1": season.prev("PK-1")},
            actors={"officer": "secrecy-chen"},
            body={"seals": SEALS},  # a reason would be sealed (custody.sealed_text)
            corrects=corrects,
        )
        return ev.sign([season.keys["secrecy-chen"].signing])

    with pytest.raises(FormatError):
        season.submit(correction(None))
    with pytest.raises(ChainError):
        season.submit(correction("ab" * 32))
    receipt = season.submit(correction(wrong.statement_id))  # type: ignore[attr-defined]
    assert parse_event(season.log().entry(receipt.index).payload).kind == Kind.CORRECTION
    # The corrected event is still in the log, unchanged; the export verifies.
    assert season.log().entry(1).payload
    out = tmp_path / "export"  # type: ignore[operator]
    export_bundle(season.log(), out)
    assert verify_export(out).ok
