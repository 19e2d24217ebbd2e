"""`custody login` (a real subprocess) against a real `custody serve`: a token for the key in
the key file, written to a private file, that reads what the person may read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from custody.demo import Season
from tests.api.helpers import seal_event
from tests.api.test_access_log import custody_cli
from tests.api.test_serve import _serve


def _key_file(season: Season, person: str) -> Path:
    kid = season.keys[person].signing.key_id
    return season.home.people_dir() / f"{person}-{kid[:8]}.key"


def test_login_writes_a_token_that_reads_what_the_person_may(
    season: Season, tmp_path: Path
) -> None:
    season.submit(seal_event(season))  # PK-1, routed through courier-sun
    proc, base = _serve(season)
    try:
        token_file = tmp_path / "token"
        done = custody_cli(
            season,
            "--json",
            "login",
            "--url",
            base,
            "--key",
            str(_key_file(season, "courier-sun")),
            "--out",
            str(token_file),
        )
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        assert (shown["subject"], shown["roles"]) == ("courier-sun", ["courier"])
        assert "token" not in shown  # written to the file, not printed
        assert os.stat(token_file).st_mode & 0o777 == 0o600
        auth = {"authorization": f"Bearer {token_file.read_text().strip()}"}
        assert httpx.get(f"{base}/v1/packages/PK-1", headers=auth).status_code == 200
        r = httpx.get(f"{base}/v1/access", headers=auth)
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")

        # a key file that is not the person's enrolled key: refused, nothing written
        done = custody_cli(season, "login", "--url", base, "--key", str(tmp_path / "missing.key"))
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_login_to_no_service_is_a_clear_error(season: Season) -> None:
    done = custody_cli(
        season,
        "login",
        "--url",
        "http://127.0.0.1:9",
        "--key",
        str(_key_file(season, "courier-sun")),
    )
    assert done.returncode == 2
    assert "cannot reach" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
