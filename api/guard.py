"""Limits that hold under abuse: bodies, media types, time, rates, and the answer's headers.

Rules (the numbers are ``api.backend.Settings``, documented in docs/formats.md "Limits"):
- A request body is read with the route's cap, counted while it arrives (413 ``too_large``
  the moment it is exceeded, whatever Content-Length claimed), and must arrive whole within
  ``body_timeout`` seconds (408 ``request_timeout``): a client sending a byte every few seconds
  holds nothing for long.
- A route with a body names the media types it accepts; anything else is 415
  ``unsupported_media_type`` before a byte is read. JSON routes accept only
  ``application/json``, which a cross-site HTML form cannot send without a CORS preflight.
- Rates (the ``limits`` library, fixed windows, counted in the home's ``rates.table`` that
  every worker process of ``serve --workers N`` shares, or in the memory of a lone server
  process: ``api/rate_store.py``): every request counts
  against its client address; a logged-in read counts against its session's key, and a
  signed request (a login, events, an incident act) against each key that signed it, once
  its signatures verified on work done (``key_check`` before, ``key_count`` after): a key
  id a stranger writes on a request costs that key nothing. Over the limit answers 429
  ``rate_limited`` with ``Retry-After``. A
  window starts at the first request counted in it and lasts the rate's period; a client may
  so send up to twice the rate across the end of one window and the start of the next.
- Every answer carries ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, a
  ``frame-ancestors 'none'`` policy, ``Referrer-Policy: no-referrer`` and, for every API
  answer, ``Cache-Control: no-store`` (personal data never rests in a cache).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Sequence

from fastapi import Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse
from limits.strategies import FixedWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import TooLargeError
from api.rate_store import Counters
from custody.errors import (
    N_,
    CustodyError,
    MediaTypeError,
    Phrase,
    RateLimitError,
    RequestTimeoutError,
)
from custody.i18n import error_body, negotiate

log = logging.getLogger("custody.api")

# The health probes: never counted against an address (a full disk must not silence /readyz).
PROBES = frozenset({"/livez", "/readyz"})

# What a rate counts requests of, as a refusal names it (translated where it is read).
_COUNTED = {"address": Phrase("address"), "key": Phrase("key")}


class Limiter:
    """Fixed-window rate limits over a ``limits`` storage (the service's: the home's shared
    ``rates.table``, ``api.rate_store.SharedCounters``, for several workers; else this
    process's ``api.rate_store.ProcessCounters``)."""

    def __init__(self, storage: Counters) -> None:
        self.storage = storage
        self._limiter = FixedWindowRateLimiter(storage)
        self._items: dict[str, RateLimitItem] = {}

    def _item(self, rate: str) -> RateLimitItem:
        item = self._items.get(rate)
        if item is None:
            item = self._items[rate] = parse(rate)
        return item

    def hit(self, rate: str, kind: str, who: str) -> None:
        """Count one request of ``who``; ``RateLimitError`` once over ``rate``."""
        item = self._item(rate)
        if not self._limiter.hit(item, kind, who):
            self._refuse(item, rate, kind, who)

    def check_each(self, rate: str, kind: str, whos: Sequence[str]) -> None:
        """Refuse (``RateLimitError``) if any of ``whos`` is already at ``rate``, counting
        nothing: what a signed request does before its signatures are verified, so that a
        key id a stranger writes on a request costs that key nothing (``count_each`` counts
        once they have verified)."""
        if not whos:
            return
        item = self._item(rate)
        counts = self.storage.get_many([item.key_for(kind, who) for who in whos])
        for who, count in zip(whos, counts, strict=True):
            if count >= item.amount:
                self._refuse(item, rate, kind, who)

    def count_each(self, rate: str, kind: str, whos: Sequence[str]) -> None:
        """Count one request against each of ``whos`` (keys whose signatures verified on work
        that was done: a login, a newly appended event, a recorded act), in one turn at the
        store; never refuses (the work is done; the next request is refused by
        ``check_each``)."""
        if whos:
            item = self._item(rate)
            self.storage.incr_many([item.key_for(kind, who) for who in whos], item.get_expiry())

    def _refuse(self, item: RateLimitItem, rate: str, kind: str, who: str) -> None:
        stats = self._limiter.get_window_stats(item, kind, who)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        error = RateLimitError(
            N_("too many requests from this {kind} (at most {rate})"),
            hint=N_("retry in {wait} s"),
            kind=_COUNTED.get(kind, Phrase(kind)),
            rate=rate,
            wait=wait,
        )
        error.retry_after = wait  # type: ignore[attr-defined]
        raise error


def limiter_of(request: Request) -> Limiter:
    limiter = request.app.state.limiter
    assert isinstance(limiter, Limiter)
    return limiter


def rate_check(request: Request, rate: str, kind: str, who: str) -> None:
    limiter_of(request).hit(rate, kind, who)


def key_check(request: Request, keys: Iterable[str]) -> None:
    """Before a signed request's work: refused if one of the key ids it names is over the
    per-key rate (nothing counted: the signatures are not verified yet)."""
    limiter_of(request).check_each(_per_key(request), "key", sorted(set(keys) - {""}))


def key_count(request: Request, keys: Iterable[str]) -> None:
    """After the work: each key whose signature verified counted once. A counter store that
    cannot be written now is logged, not answered: the work is durable and the client must
    not be told otherwise (the next request's ``key_check`` reads the store and answers its
    failure)."""
    try:
        limiter_of(request).count_each(_per_key(request), "key", sorted(set(keys) - {""}))
    except CustodyError as e:
        log.warning("a per-key rate count was not written: %s", e.code)


def _per_key(request: Request) -> str:
    return str(request.app.state.backend.settings.rate_per_key)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(
    request: Request,
    limit: int,
    what: str,
    *,
    accept: Iterable[str] | None = None,
    timeout: float | None = None,
) -> bytes:
    """The request body, refused as soon as it exceeds ``limit`` bytes, if its media type is
    not one of ``accept``, or if it has not arrived whole within ``timeout`` seconds."""
    if accept is not None:
        accepted = tuple(accept)
        got = _media_type(request)
        if got not in accepted:
            raise MediaTypeError(
                N_("{what}: Content-Type {got!r} is not accepted here"),
                hint=N_("send {accepted}"),
                what=what,
                got=got or "(none)",
                accepted=" | ".join(accepted),
            )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLargeError(
            N_("{what}: {declared} bytes, more than the {limit} accepted"),
            what=what,
            declared=declared,
            limit=limit,
        )
    if timeout is None:
        timeout = float(request.app.state.backend.settings.body_timeout)
    chunks: list[bytes] = []
    total = 0

    async def collect() -> None:
        nonlocal total
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise TooLargeError(
                    N_("{what}: more than the {limit} bytes accepted"), what=what, limit=limit
                )
            chunks.append(chunk)

    try:
        async with asyncio.timeout(timeout):  # no task of its own, as wait_for makes (8 µs)
            await collect()
    except TimeoutError as e:
        raise RequestTimeoutError(
            N_("{what}: the body did not arrive within {timeout:g} s ({total} bytes came)"),
            what=what,
            timeout=timeout,
            total=total,
        ) from e
    return b"".join(chunks)


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
FRAME_POLICY = (b"content-security-policy", b"frame-ancestors 'none'")
NO_STORE = (b"cache-control", b"no-store")


class Guard:
    """Outer middleware: the per-address rate limit, and the headers every answer carries."""

    def __init__(self, app: ASGIApp, *, limiter: Limiter, rate: str) -> None:
        self.app = app
        self.limiter = limiter
        self.rate = rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "-"
        path = str(scope.get("path", ""))

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if FRAME_POLICY[0] not in names:
                    headers.append(FRAME_POLICY)
                if NO_STORE[0] not in names and not path.startswith("/scan"):
                    headers.append(NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        try:
            if path not in PROBES:  # an orchestrator's probes answer even when nothing else can
                self.limiter.hit(self.rate, "address", address)
        except CustodyError as e:  # over the rate, or its store cannot count (a full disk)
            accept = dict(scope.get("headers") or []).get(b"accept-language", b"")
            response = JSONResponse(
                error_body(e, negotiate(accept.decode("latin-1"))),
                status_code=e.http_status,
                headers={"Retry-After": str(getattr(e, "retry_after", 1))},
            )
            await response(scope, receive, guarded_send)
            return
        await self.app(scope, receive, guarded_send)


__all__ = ["Guard", "Limiter", "TooLargeError", "key_check", "key_count", "rate_check", "read_body"]
