"""Each abuse of issue 12 replayed against a real `custody serve` process: the limit is hit,
answered with its own status and error code, and the service still answers others.

Run with ``-s`` to see each abuse's answer."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from crypto.dsse import Envelope, Signature
from crypto.encoding import parse_time
from custody.demo import Season
from custody.sessions import Challenge, sign_login
from tests.api.helpers import STRANGER, seal_event
from tests.api.test_serve import _serve

JSON = {"content-type": "application/json"}


@pytest.fixture
def served(season: Season) -> Iterator[str]:
    proc, base = _serve(
        season,
        "--body-timeout",
        "2",
        "--rate-per-address",
        "40/minute",
        "--rate-per-key",
        "3/minute",
    )
    try:
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def _others_answered(base: str) -> None:
    """Another client (its own address on loopback) is still answered."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.9")) as other:
        r = other.get(f"{base}/v1/checkpoint")
        assert r.status_code in (200, 404)


def _show(what: str, r: httpx.Response, started: float) -> None:
    code = r.json().get("error", "") if r.headers.get("content-type") == "application/json" else ""
    print(f"  {what:<44} {r.status_code} {code:<24} {time.monotonic() - started:6.2f} s")


def test_each_abuse_hits_its_limit_and_others_are_answered(season: Season, served: str) -> None:
    base = served
    print()
    c = httpx.Client(timeout=60)

    # 1. a single envelope of 8.4 MB (the formats allow 1 MiB)
    env = seal_event(season)
    big = env.to_json_obj()
    big["payload"] = "A" * (8_400_000)
    t = time.monotonic()
    r = c.post(f"{base}/v1/events", content=json.dumps(big), headers=JSON)
    _show("8.4 MB envelope", r, t)
    assert (r.status_code, r.json()["error"]) == (413, "too_large")
    _others_answered(base)

    # 2. an envelope over 1 MiB inside a batch: that item refused, the others judged
    t = time.monotonic()
    r = c.post(f"{base}/v1/events", content=json.dumps([big, env.to_json_obj()]), headers=JSON)
    _show("batch with a 8.4 MB envelope inside", r, t)
    assert r.status_code == 201
    refused = r.json()["refused"]
    assert [(x["position"], x["status"], x["error"]) for x in refused] == [(0, 413, "too_large")]
    assert [a["position"] for a in r.json()["accepted"]] == [1]

    # 3. 1,000 envelopes with 16 unhinted signatures each: refused unread, no signature tried
    sigs = tuple(Signature("", STRANGER.sign(bytes([n]))) for n in range(16))
    unhinted = Envelope(env.payload_type, env.payload, sigs).to_json_obj()
    t = time.monotonic()
    r = c.post(f"{base}/v1/events", content=json.dumps([unhinted] * 1000), headers=JSON)
    _show("1,000 envelopes x 16 unhinted signatures", r, t)
    assert r.status_code == 200
    # a signature with no hint counts for no key at the door (docs/formats.md): unknown_signer
    assert {x["error"] for x in r.json()["refused"]} == {"unknown_signer"}
    assert len(r.json()["refused"]) == 1000
    _others_answered(base)

    # 4. a PNG of 9,400 x 9,400 pixels (a few hundred KB) sent to the scanner
    png = io.BytesIO()
    Image.new("1", (9400, 9400), 1).save(png, format="PNG", optimize=True)
    t = time.monotonic()
    r = c.post(
        f"{base}/v1/labels/scan", content=png.getvalue(), headers={"content-type": "image/png"}
    )
    _show(f"{len(png.getvalue()) // 1024} KB PNG of 9,400 x 9,400 pixels", r, t)
    assert (r.status_code, r.json()["error"]) == (413, "image_too_large")
    gif = io.BytesIO()
    Image.new("L", (50, 50), 255).save(gif, format="GIF")
    r = c.post(f"{base}/v1/labels/scan", content=gif.getvalue())
    assert (r.status_code, r.json()["error"]) == (400, "format")
    _others_answered(base)

    # 5. a cross-site text/plain form posting an event
    t = time.monotonic()
    r = c.post(f"{base}/v1/events", content=env.to_bytes(), headers={"content-type": "text/plain"})
    _show("text/plain form post of an event", r, t)
    assert (r.status_code, r.json()["error"]) == (415, "unsupported_media_type")

    # 6. a body sent one byte at a time, a byte every 0.5 s (the body timeout is 2 s)
    host, port = base.removeprefix("http://").split(":")
    t = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(
            b"POST /v1/labels/verify HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 1000\r\n\r\n"
        )
        answer = b""
        for _ in range(40):
            try:
                s.sendall(b"C")
            except OSError:
                break
            s.settimeout(0.5)
            try:
                answer += s.recv(4096)
            except TimeoutError:
                continue
            if answer:
                break
        s.settimeout(30)
        while True:  # the head, then the body its content-length announces (or the close)
            head, sep, body = answer.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if sep and length is not None and len(body) >= length:
                break
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    status = answer.split(b" ", 2)[1] if answer else b"-"
    print(
        f"  {'a body one byte every 0.5 s':<44} {status.decode()} request_timeout"
        f"{'':<9} {time.monotonic() - t:6.2f} s"
    )
    assert status == b"408"
    assert b"request_timeout" in answer
    _others_answered(base)

    # 7. one key logging in over and over (3 a minute per key), another key still logs in
    def login(person: str) -> httpx.Response:
        got = c.post(f"{base}/v1/login/challenge").json()
        ch = Challenge(got["challenge"], got["origin"], parse_time(got["expires_at"]))
        statement = sign_login(ch, season.keys[person].signing)
        return c.post(f"{base}/v1/login", content=statement.to_bytes(), headers=JSON)

    # a stranger's statements naming courier-sun's key, signed by another: refused, and they
    # spend nothing of that key's rate (only a verified signature on work done counts)
    sun = season.keys["courier-sun"].signing.verify_key.key_id
    fresh = seal_event(season, "PK-FORGED")
    for _ in range(4):
        forged = Envelope(fresh.payload_type, fresh.payload, (Signature(sun, STRANGER.sign(b"x")),))
        r = c.post(f"{base}/v1/events", content=forged.to_bytes(), headers=JSON)
        assert r.status_code == 422, r.text  # refused (whichever check comes first)
        stranger = Envelope(
            "application/vnd.custody.login+json", b"{}", (Signature(sun, bytes(64)),)
        )
        assert c.post(
            f"{base}/v1/login", content=stranger.to_bytes(), headers=JSON
        ).status_code in (
            400,
            401,
            422,
        )
    answers = [login("courier-sun") for _ in range(3)]
    t = time.monotonic()
    answers.append(login("courier-sun"))
    _show("4th login of one key within a minute", answers[-1], t)
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"] == "rate_limited"
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert login("courier-li").status_code == 200

    # 8. one address flooding (40 requests a minute): 429, another address still answered
    t = time.monotonic()
    codes = [c.get(f"{base}/healthz").status_code for _ in range(40)]
    last = c.get(f"{base}/healthz")
    _show("flood of /healthz from one address", last, t)
    assert 429 in codes and last.status_code == 429
    assert last.json()["error"] == "rate_limited"
    _others_answered(base)


def test_security_headers_on_every_answer(season: Season, served: str) -> None:
    base = served
    answers = [
        httpx.get(f"{base}/healthz"),
        httpx.get(f"{base}/v1/checkpoint"),  # 404 while empty
        httpx.get(f"{base}/v1/packages/PK-1"),  # 401
        httpx.get(f"{base}/nowhere"),
        httpx.post(f"{base}/v1/events", content=b"{}", headers={"content-type": "text/plain"}),
    ]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["content-type"] == "application/json" or r.status_code == 200
