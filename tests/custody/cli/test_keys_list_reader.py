"""`custody keys list` shows people as the API does (``GET /v1/trust-bundle``): without a key,
what every device's directory holds (name, roles, key, validity); organisations and recusals
only to a secrecy officer or an auditor reading with their own key, and that read recorded."""

from __future__ import annotations

import json

import pytest

from crypto.encoding import format_time
from custody.access_log import AccessLog
from custody.cli import main
from custody.demo import Season
from tests.conftest import PASS

DIRECTORY = {"subject", "name", "roles", "key_id", "not_after", "status"}


def test_keys_list_shows_the_directory_and_the_whole_certificates_to_those_whose_role_needs_them(
    season: Season, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CUSTODY_HOME", str(season.home.path))
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)
    people = ("courier-sun", "custodian-zhou", "auditor-chu", "secrecy-chen")
    key = {who: str(next(season.home.people_dir().glob(f"{who}-*.key"))) for who in people}
    at = ["--now", format_time(season.now)]
    access = AccessLog(season.home.engine, season.authority, None)
    before = access.size()
    capsys.readouterr()

    assert main(["--json", *at, "keys", "list"]) == 0  # anyone at the home: the directory
    listed = json.loads(capsys.readouterr().out)
    assert listed["view"] == "directory" and listed["keys"]
    assert all(set(row) == DIRECTORY for row in listed["keys"])
    assert main([*at, "keys", "list"]) == 0
    table = capsys.readouterr().out
    assert "courier-sun" in table and "--key" in table  # says how to see the rest
    for org in {c.organisation for c in season.trust().certificates.values()}:
        assert org not in table

    for reader in ("courier-sun", "custodian-zhou"):  # not their role: nothing shown
        assert main(["--json", *at, "keys", "list", "--key", key[reader]]) == 13
        refused = json.loads(capsys.readouterr().out)
        assert refused["error"] == "forbidden" and "keys" not in refused
        assert main([*at, "keys", "list", "--key", key[reader]]) == 13
        out, err = capsys.readouterr()
        assert "courier-sun" not in out and "full certificate list" in err
    assert access.size() == before  # nothing recorded for a directory or a refusal

    for reader in ("auditor-chu", "secrecy-chen"):
        assert main(["--json", *at, "keys", "list", "--key", key[reader]]) == 0
        whole = json.loads(capsys.readouterr().out)
        assert whole["view"] == "certificates"
        assert all(set(row) == DIRECTORY | {"organisation", "recusals"} for row in whole["keys"])
    on_log = [(r.who, r.route) for r in access.who_read(obj="people:all")]
    assert on_log == [("auditor-chu", "cli keys list"), ("secrecy-chen", "cli keys list")]
