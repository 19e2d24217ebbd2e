"""The courier app's files as `custody serve` sends them: only the listed files, each with its
type and a policy that allows this origin's scripts and wasm only; the vendored builds are the
ones web/vendor/build.sh wrote (SHA256SUMS), and nothing the page loads comes from elsewhere."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources

import pytest

from api.web import accepts_gzip, console_files, courier_files, proposition_files
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
    assert len(sums) == 6  # crypto.js, zxing.js, qr.js, zxing_reader.wasm, sodium.js, zlib.js
    for line in sums:
        digest, path = line.split()
        name = path.rsplit("/", 1)[-1]
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest
    licences = (STATIC / "vendor" / "LICENSES.txt").read_text()
    packages = ("hash-wasm", "@noble/ciphers", "@noble/ed25519", "cborg", "zxing-wasm", "uqr")
    for package in (*packages, "libsodium-wrappers", "libsodium", "pako"):
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
        "proposition/index.html",
        "proposition/prop.js",
    ):
        text = (STATIC / name).read_text(encoding="utf-8")
        used |= set(re.findall(r'data-i18n="([\w.]+)"', text))
        used |= set(re.findall(r'\bt\("([\w.]+)"', text))
    assert used, "the pages use the catalogue"
    assert used <= set(catalogue["zh-CN"]), used - set(catalogue["zh-CN"])


def test_the_proposition_page_is_served_under_the_same_policy(season: Season) -> None:
    c = client(season, writable=False)
    for path, name in proposition_files().items():
        r = c.get(f"/proposition/{path}")
        assert r.status_code == 200, path
        assert r.content == (STATIC / name).read_bytes()
        assert "script-src 'self' 'wasm-unsafe-eval';" in r.headers["content-security-policy"]
    assert c.get("/proposition/%2e%2e/web.py").status_code == 404
    assert c.get("/proposition/vendor/crypto.js").json()["error"] == "not_found"
    for script in ("prop.js", "seal.js"):
        page = (STATIC / "proposition" / script).read_text(encoding="utf-8")
        assert not re.search(r"https?://", page)
        for ref in re.findall(r"""from ["'](/[^"']+)["']""", page):
            top, _, rest = ref.lstrip("/").partition("/")
            listed = {"courier": courier_files(), "proposition": proposition_files()}[top]
            assert rest in listed, ref


@pytest.mark.parametrize(
    ("header", "takes"),
    [
        ("gzip", True),
        ("gzip, deflate, br, zstd", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("x-gzip2", False),
        ("", False),
        (None, False),
        ("gzip;q=abc", False),
    ],
)
def test_which_clients_take_gzip(header: str | None, takes: bool) -> None:
    assert accepts_gzip(header) is takes


def test_the_pages_files_are_sent_compressed_to_clients_that_take_gzip(season: Season) -> None:
    import gzip

    c = client(season, writable=False)
    files = {f"/console/{p}": n for p, n in console_files().items()}
    files |= {f"/courier/{p}": n for p, n in courier_files().items()}
    for path, name in files.items():
        raw = (STATIC / name).read_bytes()
        r = c.get(path, headers={"accept-encoding": "gzip"})
        assert r.status_code == 200, path
        assert r.content == raw, path  # decoded by the client
        assert r.headers["vary"] == "Accept-Encoding"
        if len(raw) >= 512:
            assert r.headers["content-encoding"] == "gzip", path
            with c.stream("GET", path, headers={"accept-encoding": "gzip"}) as s:
                wire = b"".join(s.iter_raw())
            assert gzip.decompress(wire) == raw and len(wire) < len(raw), path
        else:
            assert "content-encoding" not in r.headers, path
        plain = c.get(path, headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == raw, path
    # API answers are never compressed (no compression oracle next to a token).
    api = c.get("/healthz", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in api.headers


def test_the_pages_read_the_authoritys_time_zone(season: Season) -> None:
    c = client(season, writable=False)
    assert c.get("/v1/time-zone").json() == {"time_zone": "Asia/Shanghai"}  # the default
    path = season.home.config_path
    config = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**config, "time_zone": "Asia/Urumqi"}), encoding="utf-8")
    c = client(season, writable=False)  # the home's settings are read when the service starts
    assert c.get("/v1/time-zone").json() == {"time_zone": "Asia/Urumqi"}


def test_the_console_s_composed_keys_are_in_the_catalogue() -> None:
    """Keys the console builds from a value (t(`role.${r}`) ...) exist for every value."""
    from custody.incidents.acts import ACTS
    from custody.incidents.detect import DetectionKind
    from custody.incidents.policy import DEFAULT_LADDER, IncidentStatus, Severity
    from keys.model import Role

    catalogue = json.loads((STATIC / "courier" / "i18n.json").read_text(encoding="utf-8"))
    wanted = {f"role.{r.value}" for r in Role}
    wanted |= {f"act.{a}" for a in ACTS}
    wanted |= {f"istatus.{s.value}" for s in IncidentStatus}
    wanted |= {f"severity.{s.value}" for s in Severity}
    wanted |= {f"ladder.{lv.name}" for lv in DEFAULT_LADDER}
    wanted |= {f"detect.{k.value}" for k in DetectionKind}
    wanted |= {f"witness.{w}" for w in ("missing", "format", "unknown_signer", "signature")}
    for lang in ("zh-CN", "en"):
        assert wanted <= set(catalogue[lang]), wanted - set(catalogue[lang])
