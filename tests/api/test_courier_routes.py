"""The courier app's files as `custody serve` sends them: only the listed files, each with its
type and a policy that allows this origin's scripts and wasm only; the vendored builds are the
ones web/vendor/build.sh wrote (SHA256SUMS), and nothing the page loads comes from elsewhere."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources

import pytest

from api.web import console_files, courier_files
from custody.demo import Season
from tests.api.helpers import client

STATIC = resources.files("api") / "static"


def test_every_listed_file_is_served_with_its_type_and_policy(season: Season) -> None:
    c = client(season, writable=False)
    for path, name in courier_files().items():
        r = c.get(f"/courier/{path}")
        assert r.status_code == 200, path
        assert r.content == (STATIC / name).read_bytes()
        policy = r.headers["content-security-policy"]
        assert "script-src 'self' 'wasm-unsafe-eval';" in policy
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert c.get("/courier/vendor/zxing_reader.wasm").headers["content-type"] == "application/wasm"
    assert c.get("/courier/sw.js").headers["content-type"].startswith("text/javascript")
    moved = c.get("/courier", follow_redirects=False)
    assert (moved.status_code, moved.headers["location"]) == (308, "/courier/")


@pytest.mark.parametrize(
    "path",
    ["nope.js", "vendor/../courier/app.js", "vendor/", "%2e%2e/web.py", "app.js/"],
    ids=["unlisted", "vendor-dotdot", "dir", "encoded-dotdot", "trailing-slash"],
)
def test_anything_not_listed_is_not_found(season: Season, path: str) -> None:
    r = client(season, writable=False).get(f"/courier/{path}")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


def test_vendored_builds_match_their_recorded_hashes() -> None:
    sums = (STATIC / "vendor" / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 4
    for line in sums:
        digest, path = line.split()
        name = path.rsplit("/", 1)[-1]
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest
    licences = (STATIC / "vendor" / "LICENSES.txt").read_text()
    for package in ("hash-wasm", "@noble/ciphers", "@noble/ed25519", "cborg", "zxing-wasm", "uqr"):
        assert f"==== {package} " in licences


def test_the_page_loads_nothing_from_another_origin() -> None:
    served = set(courier_files())
    for name in courier_files().values():
        if not name.endswith((".js", ".html", ".json", ".webmanifest")):
            continue
        text = (STATIC / name).read_text(encoding="utf-8")
        if name.startswith("vendor/"):
            continue  # bundles; they are loaded only from this origin (the policy enforces it)
        assert not re.search(r"https?://", text), name
        for ref in re.findall(r"""["'](/courier/[^"'?#]*)["']""", text):
            assert ref.removeprefix("/courier/") in served, (name, ref)
        for ref in re.findall(r"""from ["']\./([^"']+)["']""", text):
            assert ref in served, (name, ref)


def test_the_console_is_served_under_the_same_policy(season: Season) -> None:
    c = client(season, writable=False)
    for path, name in console_files().items():
        r = c.get(f"/console/{path}")
        assert r.status_code == 200, path
        assert r.content == (STATIC / name).read_bytes()
        assert "script-src 'self' 'wasm-unsafe-eval';" in r.headers["content-security-policy"]
    assert c.get("/console/secret.key").json()["error"] == "not_found"


def test_the_catalogue_has_every_string_in_both_languages() -> None:
    catalogue = json.loads((STATIC / "courier" / "i18n.json").read_text(encoding="utf-8"))
    assert set(catalogue) == {"zh-CN", "en"}
    assert set(catalogue["zh-CN"]) == set(catalogue["en"])
    used: set[str] = set()
    for name in (
        "courier/index.html",
        "courier/app.js",
        "console/index.html",
        "console/console.js",
    ):
        text = (STATIC / name).read_text(encoding="utf-8")
        used |= set(re.findall(r'data-i18n="([\w.]+)"', text))
        used |= set(re.findall(r'\bt\("([\w.]+)"', text))
    assert used, "the pages use the catalogue"
    assert used <= set(catalogue["zh-CN"]), used - set(catalogue["zh-CN"])
