"""The courier's pages, served by the app: the server-side scanning page (/scan) and the
courier's device (/courier/), a PWA that verifies labels and signs handovers on the phone.

Rules:
- No CDN, no build step, no third-party script: the page works on an isolated network.
- The page decodes nothing itself: it sends camera frames to ``POST /v1/labels/scan`` and shows
  every answer at once (VALID with the package's facts, REFUSED with the reason, or NOT CHECKED
  when the server or the camera failed); a frame with no code in view says so.
- A strict Content-Security-Policy allows only this origin's script and the camera stream.
- /courier/ serves only the files listed in ``_COURIER``: its own modules and the scripts and
  wasm vendored from npm (api/static/vendor/, rebuilt by web/vendor/build.sh); its policy adds
  ``'wasm-unsafe-eval'`` (Argon2id and the QR decoder are WebAssembly) and the service worker.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from custody.errors import NotFoundError

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


@router.get("/scan")
def scan_page() -> HTMLResponse:
    return HTMLResponse(_asset("scan.html"), headers=_SECURITY_HEADERS)


@router.get("/scan.js")
def scan_script() -> Response:
    return Response(
        _asset("scan.js"), media_type="text/javascript; charset=utf-8", headers=_SECURITY_HEADERS
    )


@router.get("/scan.css")
def scan_style() -> Response:
    return Response(
        _asset("scan.css"), media_type="text/css; charset=utf-8", headers=_SECURITY_HEADERS
    )


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


@router.get("/courier")
def courier_root() -> RedirectResponse:
    return RedirectResponse("/courier/", status_code=308)


@router.get("/courier/{path:path}")
def courier_asset(path: str) -> Response:
    """One file of the courier app; 404 for anything not listed."""
    name = _COURIER.get(path)
    if name is None:
        raise NotFoundError(f"no file {path!r} in the courier app")
    suffix = name[name.rfind(".") :]
    return Response(_asset(name), media_type=_TYPES[suffix], headers=_COURIER_POLICY)


# URL path under /console/ -> file under api/static/ (its modules import the courier's).
_CONSOLE = {
    "": "console/index.html",
    "console.js": "console/console.js",
    "console.css": "console/console.css",
}


def console_files() -> dict[str, str]:
    """The secrecy officer's console's URL paths (under /console/) and their files."""
    return dict(_CONSOLE)


@router.get("/console")
def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/{path:path}")
def console_asset(path: str) -> Response:
    """One file of the secrecy officer's console; 404 for anything not listed."""
    name = _CONSOLE.get(path)
    if name is None:
        raise NotFoundError(f"no file {path!r} in the console")
    suffix = name[name.rfind(".") :]
    return Response(_asset(name), media_type=_TYPES[suffix], headers=_COURIER_POLICY)
