"""The pages, served by the app: the server-side scanning page (/scan), the courier's device
(/courier/), a PWA that verifies labels and signs handovers on the phone, the secrecy officer's
console (/console/) and the proposition centre's page (/proposition/), which encrypts papers in
the browser.

Rules:
- No CDN, no build step, no third-party script: the page works on an isolated network.
- The page decodes nothing itself: it sends camera frames to ``POST /v1/labels/scan`` and shows
  every answer at once (VALID with the package's facts, REFUSED with the reason, or NOT CHECKED
  when the server or the camera failed); a frame with no code in view says so.
- A strict Content-Security-Policy allows only this origin's script and the camera stream.
- Every page file is sent gzip-compressed to a client whose ``Accept-Encoding`` takes gzip
  (compressed once per process at level 9 and kept; ``Vary: Accept-Encoding``), as is, else.
  Only these static files: API answers are never compressed (a session token next to
  reflected input would be a BREACH oracle).
- /courier/ serves only the files listed in ``_COURIER``: its own modules and the scripts and
  wasm vendored from npm (api/static/vendor/, rebuilt by web/vendor/build.sh); its policy adds
  ``'wasm-unsafe-eval'`` (Argon2id and the QR decoder are WebAssembly) and the service worker.
"""

from __future__ import annotations

import gzip
import re
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from custody.errors import N_, NotFoundError, Phrase

router = APIRouter(include_in_schema=False)

_STATIC = resources.files("api") / "static"
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _asset(name: str) -> bytes:
    return (_STATIC / name).read_bytes()


GZIP_AT_LEAST = 512  # bytes; smaller files are sent as they are
_GZIP_TOKEN = re.compile(r"(?:^|,)\s*(gzip|\*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*(?=,|$)", re.I)


@cache
def _gzipped(name: str) -> bytes:
    """The file gzip-compressed (level 9, no timestamp: the same bytes every time)."""
    return gzip.compress(_asset(name), compresslevel=9, mtime=0)


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip (``gzip`` or ``*`` with q > 0)."""
    for m in _GZIP_TOKEN.finditer(header or ""):
        try:
            if float(m.group(2) or "1") > 0:
                return True
        except ValueError:
            continue
    return False


def static_file(request: Request, name: str, media_type: str, headers: dict[str, str]) -> Response:
    """One page file, gzip-compressed when the client takes it and it is worth it."""
    body = _asset(name)
    out = {**headers, "Vary": "Accept-Encoding"}
    if len(body) >= GZIP_AT_LEAST and accepts_gzip(request.headers.get("accept-encoding")):
        return Response(
            _gzipped(name), media_type=media_type, headers={**out, "Content-Encoding": "gzip"}
        )
    return Response(body, media_type=media_type, headers=out)


@router.get("/scan", response_class=HTMLResponse)
def scan_page(request: Request) -> Response:
    return static_file(request, "scan.html", "text/html; charset=utf-8", _SECURITY_HEADERS)


@router.get("/scan.js")
def scan_script(request: Request) -> Response:
    return static_file(request, "scan.js", "text/javascript; charset=utf-8", _SECURITY_HEADERS)


@router.get("/scan.css")
def scan_style(request: Request) -> Response:
    return static_file(request, "scan.css", "text/css; charset=utf-8", _SECURITY_HEADERS)


_COURIER_POLICY = {
    **_SECURITY_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
        "connect-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
        "worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".txt": "text/plain; charset=utf-8",
}
# URL path under /courier/ -> file under api/static/. Nothing else is served from there.
_COURIER = {
    "": "courier/index.html",
    **{
        name: f"courier/{name}"
        for name in (
            "app.js",
            "lib.js",
            "trust.js",
            "label.js",
            "keyfile.js",
            "store.js",
            "sw.js",
            "i18n.json",
            "app.css",
            "manifest.webmanifest",
            "icon.svg",
        )
    },
    **{
        f"vendor/{name}": f"vendor/{name}"
        for name in ("crypto.js", "zxing.js", "qr.js", "zxing_reader.wasm", "LICENSES.txt")
    },
}


def courier_files() -> dict[str, str]:
    """The courier app's URL paths (under /courier/) and their files under api/static/."""
    return dict(_COURIER)


# URL path under /console/ -> file under api/static/ (its modules import the courier's).
_CONSOLE = {
    "": "console/index.html",
    "console.js": "console/console.js",
    "console.css": "console/console.css",
}


def console_files() -> dict[str, str]:
    """The secrecy officer's console's URL paths (under /console/) and their files."""
    return dict(_CONSOLE)


# URL path under /proposition/ -> file under api/static/ (its modules import the courier's;
# libsodium.js and pako's deflate, vendored, are served here only: the courier's first load
# stays as it was).
_PROPOSITION = {
    "": "proposition/index.html",
    "prop.js": "proposition/prop.js",
    "seal.js": "proposition/seal.js",
    "vendor/sodium.js": "vendor/sodium.js",
    "vendor/zlib.js": "vendor/zlib.js",
}


def proposition_files() -> dict[str, str]:
    """The proposition centre's page's URL paths (under /proposition/) and their files."""
    return dict(_PROPOSITION)


# Each page: its URL prefix, its files, and what a refusal calls it. One redirect (/courier ->
# /courier/) and one route per page serve only the files listed; anything else is 404.
_PAGES: tuple[tuple[str, dict[str, str], str], ...] = (
    ("courier", _COURIER, N_("the courier app")),
    ("console", _CONSOLE, N_("the console")),
    ("proposition", _PROPOSITION, N_("the proposition page")),
)


def _page_routes(prefix: str, files: dict[str, str], page: str) -> None:
    def root() -> RedirectResponse:
        return RedirectResponse(f"/{prefix}/", status_code=308)

    def asset(request: Request, path: str) -> Response:
        name = files.get(path)
        if name is None:
            raise NotFoundError(N_("no file {path} in {page}"), path=repr(path), page=Phrase(page))
        suffix = name[name.rfind(".") :]
        return static_file(request, name, _TYPES[suffix], _COURIER_POLICY)

    asset.__doc__ = f"One file of /{prefix}/; 404 for anything not listed."
    router.add_api_route(f"/{prefix}", root, methods=["GET"], name=f"{prefix}_root")
    router.add_api_route(f"/{prefix}/{{path:path}}", asset, methods=["GET"], name=f"{prefix}_asset")


for _prefix, _files, _page in _PAGES:
    _page_routes(_prefix, _files, _page)
