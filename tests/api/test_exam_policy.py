"""A seal binds to its exam's policy on the log, whatever path it comes by: through the API a
seal that contradicts the policy, or names an exam with no policy, is refused and stores
nothing; `custody exam publish` puts the home's draft on the log, and `exam list` says where
the draft and the log differ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from crypto.encoding import format_time
from custody.demo import EXAM_ID, Season, seal_body
from custody.events import Kind, parse_event
from tests.api.helpers import ROUTE, SEALS, client, people_entries
from tests.conftest import PASS


def _seal(
    season: Season, *, exam: str = EXAM_ID, witness: bool = False, pkg: str = "PK-1"
) -> bytes:
    start = season.now + timedelta(hours=4)
    body = seal_body(
        exam=exam,
        position="P-01",
        paper="PAPER-A",
        copies=30,
        seals=SEALS,
        window=(start, start + timedelta(hours=2)),
        route=ROUTE,
        handover_witness=witness,
    )
    env = season.event(
        Kind.SEAL,
        [pkg],
        actors={"sealer": "print-qian"},
        signers=["print-qian"],
        body=body,
        prevs={pkg: None},
    )
    return env.to_bytes()


def _post(season: Season, body: bytes) -> tuple[int, str]:
    r = client(season).post(
        "/v1/events", content=body, headers={"content-type": "application/json"}
    )
    return r.status_code, r.json().get("error", "") if r.status_code >= 400 else ""


def test_a_seal_that_drops_the_exams_witness_is_refused_through_the_api(season: Season) -> None:
    season.publish_exam_policy(handover_witness=True)  # the exam now needs a witness
    size = season.log().size()
    assert _post(season, _seal(season, witness=False)) == (422, "exam_policy")
    assert season.log().size() == size  # nothing stored
    assert _post(season, _seal(season, witness=True)) == (201, "")
    assert season.log().package_state("PK-1").handover_witness is True


def test_a_seal_for_an_exam_with_no_policy_on_the_log_is_refused(season: Season) -> None:
    before = people_entries(season)
    assert _post(season, _seal(season, exam="SX-2027-NOPOLICY")) == (422, "exam_policy")
    assert people_entries(season) == before


def test_only_the_system_key_publishes_an_exam_policy(season: Season) -> None:
    """A person cannot put a policy on the log (say, one without a witness)."""
    body = {"exam": EXAM_ID, "handover_witness": False, "retention_until": "2030-01-01T00:00:00Z"}
    env = season.event(
        Kind.EXAM_POLICY,
        [],
        actors={"system": season.authority.id},
        signers=["secrecy-chen"],
        body=body,
    )
    status, error = _post(season, env.to_bytes())
    assert (status, error) in ((422, "signature"), (403, "role"))


CUSTODY = "import sys; from custody.cli import main; raise SystemExit(main(sys.argv[1:]))"


def _cli(season: Season, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CUSTODY_HOME": str(season.home.path),
        "CUSTODY_LOG_PASSPHRASE": PASS,
        "CUSTODY_SYSTEM_PASSPHRASE": PASS,
    }
    return subprocess.run(
        [sys.executable, "-c", CUSTODY, "--now", format_time(season.now), "--json", *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_exam_publish_and_list_through_the_cli(season: Season) -> None:
    exams_json: Path = season.home.path / "exams.json"
    draft = json.loads(exams_json.read_text())
    draft["exams"][EXAM_ID]["handover_witness"] = True
    draft["exams"]["SX-2027-WRI"] = {
        "handover_witness": False,
        "retention_until": "2028-06-01T00:00:00Z",
    }
    exams_json.write_text(json.dumps(draft))

    listed = _cli(season, "exam", "list")
    assert listed.returncode == 0, listed.stderr
    status = {e["exam"]: e["status"] for e in json.loads(listed.stdout)["exams"]}
    assert status == {EXAM_ID: "exams.json differs: publish it", "SX-2027-WRI": "not published"}

    size = season.log().size()
    done = _cli(season, "exam", "publish", "SX-2027-WRI", "NO-SUCH-EXAM")
    assert done.returncode == 4, done.stdout  # every name checked before anything is published
    assert season.log().size() == size

    done = _cli(season, "exam", "publish")
    assert done.returncode == 0, done.stderr
    assert [e["published"] for e in json.loads(done.stdout)["exams"]] == [True, True]
    kinds = [parse_event(season.log().entry(i).payload).kind for i in range(size, size + 2)]
    assert kinds == [Kind.EXAM_POLICY, Kind.EXAM_POLICY]
    again = _cli(season, "exam", "publish")
    assert [e["published"] for e in json.loads(again.stdout)["exams"]] == [False, False]
    assert season.log().exam_policy(EXAM_ID).handover_witness is True
