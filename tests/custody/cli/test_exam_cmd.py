"""`custody exam list|publish` on a home whose exams.json is gone: the policies on the log are
still listed, and nothing can be published from a draft that is not there."""

from __future__ import annotations

import json

import pytest

from crypto.encoding import format_time
from custody.cli import main
from custody.demo import Season
from tests.conftest import PASS


def test_without_exams_json_the_log_s_policies_are_listed_and_none_published(
    season: Season, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CUSTODY_LOG_PASSPHRASE", PASS)
    monkeypatch.setenv("CUSTODY_SYSTEM_PASSPHRASE", PASS)
    on_log = season.log().exam_policies()
    assert on_log, "the demo season publishes its exam's policy"
    (season.home.path / "exams.json").unlink()
    size = season.log().size()

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["--home", str(season.home.path), "--now", format_time(season.now), *args])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    code, out = run("--json", "exam", "list")
    assert code == 0, out
    listed = json.loads(out)["exams"]
    assert {e["exam"] for e in listed} == set(on_log)
    assert {e["status"] for e in listed} == {"not in exams.json"}
    code, human = run("exam", "list")
    assert code == 0 and all(exam in human for exam in on_log)

    code, out = run("exam", "publish")
    assert code == 4 and "exams.json" in out
    assert season.log().size() == size
