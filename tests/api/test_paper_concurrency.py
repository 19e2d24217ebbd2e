"""One paper posted several times at once (a double click, a retrying browser) over real HTTP:
exactly one submission is accepted, the others are refused with 409, and the accepted paper's
encrypted file stays stored (a refusal never removes the file the accepted one placed)."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta

import httpx

from api.app import Settings, create_app
from custody import paper_service
from custody.demo import Season
from tests.api.helpers import as_person, client, serving_in_thread
from tests.api.paper_helpers import open_as_printer_and_log, plan_for, submission
from tests.api.test_paper_routes import PLAIN, log_key, paper_acts
from tests.conftest import PASS

ROUNDS = 35  # 35 x 8 posts stay under the per-key rate limit (300 a minute)
AT_ONCE = 8


def test_a_paper_posted_many_times_at_once_is_stored_once_with_its_file(season: Season) -> None:
    tick = itertools.count()
    # The service's clock moves by a second now and then, as a real one does: the log's
    # statements of two submissions then differ, and only the paper's own checks decide.
    app = create_app(
        Settings(
            home=season.home.path,
            log_passphrase=PASS,
            clock=lambda: season.now + timedelta(seconds=next(tick) % 2),
        )
    )
    c = client(season)
    headers = as_person(c, season, "prop-zhao")
    log_public = log_key(c, headers)
    with serving_in_thread(app) as base:
        for i in range(ROUNDS):
            plan = plan_for(season, paper_id=f"SX-INT-P{i:02}-A", position=f"P{i:02}")
            body = submission(season, PLAIN, plan=plan, log_public=log_public)
            answers: list[httpx.Response] = []
            start = threading.Barrier(AT_ONCE)

            def post(
                body: object = body,
                answers: list[httpx.Response] = answers,
                start: threading.Barrier = start,
            ) -> None:
                with httpx.Client(base_url=base, timeout=60) as h:
                    start.wait()
                    answers.append(h.post("/v1/papers", json=body, headers=headers))

            threads = [threading.Thread(target=post) for _ in range(AT_ONCE)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            statuses = sorted(r.status_code for r in answers)
            assert statuses == [201] + [409] * (AT_ONCE - 1), (i, [r.text for r in answers])
            assert {r.json()["error"] for r in answers if r.status_code == 409} == {"conflict"}
            accepted = next(r.json() for r in answers if r.status_code == 201)
            blob = paper_service.blob_path(season.home, accepted["commitment"])
            assert blob.exists(), f"round {i}: the accepted paper's file was removed"
            assert paper_acts(season) == i + 1
    folder = paper_service.papers_dir(season.home)
    assert not [p for p in folder.iterdir() if p.name.startswith(".incoming-")]
    assert open_as_printer_and_log(season, season.log(), "SX-INT-P00-A@v1") == PLAIN
