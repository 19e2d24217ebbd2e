"""Every conformance vector of docs/vectors/ through the project's own parsers and rules.

The season's rehearsal home is made from the published seeds (``custody.conformance``), the
log service is opened the one way every path opens it (``custody.service.open_writer``: rules,
blocked-key gate, incident desk), and each pass submits the statements received at its clock,
as ``custody conformance --url`` does against a live service. Labels are verified with the
label codec at the vectors' clock. The committed files must be exactly what the generator
writes.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from crypto import merkle
from crypto.dsse import parse_envelope
from crypto.encoding import Fields, b64decode, parse_json_object
from crypto.note import open_checkpoint, parse_vkey
from custody.audit import load_trust_document, verify_bundle
from custody.conformance import (
    OWN_LOG_KINDS,
    Answer,
    CaseResult,
    Season,
    VectorFile,
    clocks,
    create_season_home,
    load_vectors,
    run_pass,
)
from custody.errors import CustodyError
from custody.events import leaf_bytes
from custody.home import Home
from custody.incidents.model import WatchedLog
from custody.service import ServiceSecrets, open_writer
from custody.witnesses import witness_policy_from_json
from keys.keyfile import open_keypair
from keys.trust import TrustStore, load_trust_bundle
from labels.payload import verify_label
from tests.conformance import generate

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"
PASS = "conformance vectors passphrase"


@dataclass
class LocalDoor:
    """The project's log service in process, at a clock the runner sets."""

    log: WatchedLog
    trust: TrustStore
    now: datetime

    def submit(self, envelope: Any) -> Answer:
        try:
            if not isinstance(envelope, dict):
                raise TypeError
            receipt = self.log.submit(parse_envelope(envelope), now=self.now)
        except CustodyError as e:
            return Answer(e.code)
        if receipt.duplicate:
            return Answer("<duplicate>")
        return Answer(None, tuple(sorted(f.kind for f in receipt.findings)))

    def act(self, envelope: Any) -> Answer | None:
        """An incident act, recorded as `custody incident ack|contain|resolve|unblock` does."""
        try:
            if not isinstance(envelope, dict):
                raise TypeError
            self.log.act(parse_envelope(envelope), self.now)
        except CustodyError as e:
            return Answer(e.code)
        return Answer(None)

    def offline(self, file: VectorFile, text: Any) -> Answer | None:
        try:
            if file.kind == "trust-bundle":
                load_trust_bundle(str(text).encode("utf-8"), pinned_root_id=file.extra["pin"])
            elif file.kind == "export":
                return Answer(verify_export(text, file.extra["pin"]))
            elif file.kind == "receipt":
                check_receipt(text, file.extra)
            elif file.kind == "keyfile":
                open_keypair(str(text).encode("utf-8"), file.extra["passphrase"])
            elif file.kind in ("checkpoint", "cosignature"):
                keys = [parse_vkey(k) for k in file.extra["verifier_keys"]]
                open_checkpoint(str(text), keys, origin=file.extra["origin"])
            else:
                raise AssertionError(file.kind)
        except CustodyError as e:
            return Answer(e.code)
        return Answer(None)

    def verify_label(self, text: Any) -> Answer:
        try:
            verify_label(text, self.trust, now=self.now)
        except CustodyError as e:
            return Answer(e.code)
        return Answer(None)


def check_receipt(value: Any, extra: Mapping[str, Any]) -> None:
    """What `custody log check-receipt` does, with the library functions it calls."""
    receipt, envelope = value["receipt"], value["envelope"]
    f = Fields(parse_json_object(json.dumps(receipt), what="receipt"), what="receipt")
    f.expect("format", "custody-receipt/v1")
    keys = [parse_vkey(k) for k in extra["verifier_keys"]]
    checkpoint, _ = open_checkpoint(f.text("checkpoint"), keys, origin=extra["origin"])
    env = parse_envelope(envelope)
    proof = [b64decode(h, what="receipt proof") for h in f.texts("inclusion_proof")]
    index = f.integer("index")
    received = f.time("received")
    merkle.verify_inclusion(
        merkle.leaf_hash(leaf_bytes(env, received)), index, checkpoint.size, proof, checkpoint.root
    )


def verify_export(value: Any, pin: str) -> str | None:
    """`custody verify DIR --pin ID [--since OLD.note] [--witness-policy FILE]`: the first
    problem's rule, or None."""
    policy = value.get("witness_policy")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, text in value["files"].items():
            (folder / name).write_text(text, "utf-8")
        store = load_trust_document((folder / "trust.json").read_bytes(), pinned_root_id=pin)
        report = verify_bundle(
            folder,
            store,
            since_note=value.get("since"),
            witness_policy=(
                witness_policy_from_json(json.dumps(policy).encode(), source="vector policy")
                if policy is not None
                else None
            ),
        )
    return report.problems[0].rule if report.problems else None


def run_all(tmp: Path) -> tuple[Season, list[VectorFile], list[CaseResult]]:
    """The shared log's files, then each own-log kind (incident acts) on a fresh log."""
    season, files = load_vectors(VECTORS)
    results: list[CaseResult] = []
    for name, own, chosen in (
        ("season", False, [f for f in files if f.kind not in OWN_LOG_KINDS]),
        ("own-log", True, [f for f in files if f.kind in OWN_LOG_KINDS]),
    ):
        home = Home(tmp / name)
        create_season_home(home, season, passphrase=PASS)
        log = open_writer(home, ServiceSecrets(log=PASS, system=PASS))
        door = LocalDoor(log, log.trust, season.received)
        try:
            for clock in clocks(chosen, season):
                door.now = clock
                found, _ = run_pass(door, chosen, received=clock, season=season, own_log=own)
                results.extend(found)
        finally:
            log.close()
    return season, files, results


@pytest.fixture(scope="module")
def outcome(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Season, list[VectorFile], list[CaseResult]]:
    return run_all(tmp_path_factory.mktemp("vectors"))


def test_committed_vectors_are_what_the_generator_writes() -> None:
    assert generate.main(["--out", str(VECTORS), "--check"]) == 0


def test_every_vector_gets_its_expected_answer(
    outcome: tuple[Season, list[VectorFile], list[CaseResult]],
) -> None:
    _, files, results = outcome
    assert len(results) == sum(len(f.cases) for f in files)  # each case judged exactly once
    wrong = [f"{r.kind}/{r.name}: expected {r.expected}, got {r.got}" for r in results if not r.ok]
    assert not wrong, "\n".join(wrong)
    counts = Counter(r.kind for r in results)
    print("\nvectors per kind (project's rules):")
    for kind in sorted(counts):
        print(f"  {kind}: {counts[kind]}")
    print(f"  total: {sum(counts.values())}")


def test_vectors_cover_every_kind_and_code(
    outcome: tuple[Season, list[VectorFile], list[CaseResult]],
) -> None:
    """Every event kind people or the system sign appears as an accepted input, and every
    refusal code the rules raise for an event or a label appears as an expected one."""
    _, files, _ = outcome
    kinds: set[str] = set()
    codes: set[str] = set()
    for f in files:
        for case in f.cases:
            if case.expect.code is None and f.kind.startswith("event."):
                payload = json.loads(parse_envelope(case.input).payload)
                kinds.add(payload["kind"])
            if case.expect.code is not None:
                codes.add(case.expect.code)
    assert kinds >= {
        "seal",
        "dispatch",
        "handover",
        "receive",
        "inspect",
        "patrol",
        "checkin",
        "open",
        "distribute",
        "recover",
        "return",
        "destroy",
        "freeze",
        "release",
        "compromise",
        "reroute",
        "activate_backup",
        "correction",
        "leak_report",
        "paper_act",
        "incident",
    }
    assert codes >= {
        "format",
        "signature",
        "unknown_signer",
        "duplicate_signature",
        "threshold",
        "role",
        "recused",
        "route",
        "window",
        "chain",
        "closed",
        "frozen",
        "clock",
        "mixed_packages",
        "revoked",
        "expired",
        "not_yet_valid",
        "issuer",
        "weak_key",
        "decryption",
        "log_consistency",
    }
