"""Builders shared by the API tests: events along a route, labels good and bad, app clients."""

from __future__ import annotations

import io
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import cbor2
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from api.app import Settings, create_app
from crypto.dsse import Envelope
from crypto.signing import SigningKey
from custody.demo import Season, seal_body
from custody.events import Kind, parse_event
from custody.package_service import label_text, seal_package
from labels.payload import (
    COSE_SIGN1_TAG,
    kid_of,
    manifest_to_cbor,
    protected_header,
    sig_structure,
    wrap_text,
)
from labels.qr import encode_qr
from labels.render import render_png
from tests.conftest import PASS
from tests.labels.fixtures import resign, typical_manifest

SEALS = ["S-001", "S-002"]
ROUTE = ["courier-sun", "courier-li", "custodian-zhou"]
STRANGER = SigningKey(bytes(range(1, 33)))  # certified by nobody


def client(season: Season, *, writable: bool = True) -> TestClient:
    settings = Settings(
        home=season.home.path,
        log_passphrase=PASS if writable else None,
        clock=lambda: season.now,
    )
    return TestClient(create_app(settings))


def people_entries(season: Season) -> int:
    """Entries on the log made by people (the incident desk's system statements left out)."""
    log = season.log()
    return sum(
        1 for i in range(log.size()) if "system" not in parse_event(log.entry(i).payload).actors
    )


def seal_event(season: Season, pkg: str = "PK-1") -> Envelope:
    start = season.now + timedelta(hours=4)
    body = seal_body(
        position="P-01",
        paper="PAPER-A",
        copies=30,
        seals=SEALS,
        window=(start, start + timedelta(hours=2)),
        route=ROUTE,
    )
    return season.event(
        Kind.SEAL,
        [pkg],
        actors={"sealer": "print-qian"},
        signers=["print-qian"],
        body=body,
        prevs={pkg: None},  # a seal starts the chain (and odd ids are never looked up here)
    )


def transfer_event(
    season: Season, kind: Kind, pkg: str, frm: str, to: str, *, signers: list[str] | None = None
) -> Envelope:
    return season.event(
        kind,
        [pkg],
        actors={"releaser": frm, "receiver": to},
        signers=signers if signers is not None else [frm, to],
        body={"seals": SEALS},
    )


def good_label(season: Season) -> str:
    """A package sealed by the printer; its label text as the QR code holds it."""
    manifest = typical_manifest(season.now)
    seal_package(season.home, manifest, season.keys["print-qian"].signing, now=season.now)
    return label_text(season.home, manifest.package_id)


def stranger_label(season: Season) -> str:
    """The manifest with its copy count changed, re-signed by a key no certificate binds."""
    return resign(typical_manifest(season.now), STRANGER, lambda f: f.update({7: 29}))


def forged_label(season: Season) -> str:
    """Claims the printer's key id but is signed by another key."""
    payload = manifest_to_cbor(typical_manifest(season.now, copy_count=29))
    protected = protected_header(kid_of(season.keys["print-qian"].signing.key_id))
    signature = STRANGER.sign(sig_structure(protected, payload))
    cose = cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))
    return wrap_text(cose)


def label_png(season: Season, text: str, dpi: int = 200) -> bytes:
    return render_png(typical_manifest(season.now), encode_qr(text), dpi=dpi)


def blank_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (200, 200), 255).save(out, format="PNG")
    return out.getvalue()


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on now, never one this process handed out before (a
    test starts several servers before any binds: two must not be told the same port). Across
    xdist workers, the kernel's random choice among ~28,000 ports keeps collisions rare."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def login_token(c: TestClient, season: Season, person: str) -> str:
    """A session token for ``person``: a fresh challenge, signed with their enrolled key."""
    from crypto.encoding import parse_time
    from custody.sessions import Challenge, sign_login

    got = c.post("/v1/login/challenge").json()
    challenge = Challenge(got["challenge"], got["origin"], parse_time(got["expires_at"]))
    statement = sign_login(challenge, season.keys[person].signing)
    r = c.post(
        "/v1/login", content=statement.to_bytes(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def as_person(c: TestClient, season: Season, person: str) -> dict[str, str]:
    """Authorization headers of a fresh session of ``person``."""
    return {"authorization": f"Bearer {login_token(c, season, person)}"}


@contextmanager
def serving_in_thread(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a thread of this process: its base URL,
    once it answers; stopped on leaving."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def labels_printed(pdf: bytes, tmp: Path) -> list[str]:
    """The label texts a printer's sheet holds, read back as a printer would: the PDF
    rasterised at 150 dpi (pdftoppm), each cell of the 2 x 5 grid decoded from its pixels."""
    from labels.scan import read_qr_texts
    from labels.sheet import COLUMNS, ROWS

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "sheet.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "150", "-png", str(tmp / "sheet.pdf"), str(tmp / "page")], check=True
    )
    texts: list[str] = []
    for page in sorted(tmp.glob("page-*.png")):
        image = Image.open(page).convert("L")
        width, height = image.size
        for row in range(ROWS):
            for col in range(COLUMNS):
                box = (
                    col * width // COLUMNS,
                    row * height // ROWS,
                    (col + 1) * width // COLUMNS,
                    (row + 1) * height // ROWS,
                )
                texts.extend(read_qr_texts(image.crop(box)))
    return texts
