"""The courier's scanning page: static HTML and one vanilla script, served by the app.

Rules:
- No CDN, no build step, no third-party script: the page works on an isolated network.
- The page decodes nothing itself: it sends camera frames to ``POST /v1/labels/scan`` and shows
  every answer at once (VALID with the package's facts, REFUSED with the reason, or NOT CHECKED
  when the server or the camera failed); a frame with no code in view says so.
- A strict Content-Security-Policy allows only this origin's script and the camera stream.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

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
