"""The FastAPI app factory: one authority's home served over HTTP.

Rules:
- Nothing is built at import time: ``create_app(settings)`` opens the home, loads (and so
  re-verifies) the trust store and, when a passphrase is given, unseals the log key once.
- Without the log key the service is read-only: every read works, appending answers 503
  ``read_only``.
- Time comes from ``settings.clock`` (tests fix it); the routes hold no custody rule: they parse,
  call the services the CLI calls too, and let ``api.errors`` map every failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI

from api import (
    access,
    console_routes,
    errors,
    export,
    incident_routes,
    paper_routes,
    read_routes,
    routes,
    seal_routes,
    web,
)
from api.backend import Backend, Settings
from api.guard import Guard, Limiter
from api.rate_store import RATES_FILE, ProcessCounters, SharedCounters
from custody.errors import CustodyError

log = logging.getLogger("custody.desk")


async def desk_loop(backend: Backend, every: float) -> None:
    """The desk's clock work, one round every ``every`` seconds while the service runs. A
    failed round is logged (by error code and message, which hold no secret) and retried."""
    while True:
        try:
            touched, report = await asyncio.to_thread(backend.desk_round)
            if touched or (report is not None and (report.sent or report.failed)):
                log.info(
                    "desk round: %d incident(s) touched, %d notification(s) sent, %d failed",
                    len(touched),
                    len(report.sent) if report else 0,
                    len(report.failed) if report else 0,
                )
        except CustodyError as e:
            log.warning("desk round failed (%s): %s", e.code, e.message)
        except Exception as e:  # noqa: BLE001 - a round must never stop the loop
            log.error("desk round failed: %s", type(e).__name__)
        await asyncio.sleep(every)


__all__ = ["Settings", "create_app"]


def create_app(settings: Settings) -> FastAPI:
    backend = Backend(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = None
        sender = backend.witness_sender
        thread = None
        if backend.writable and settings.desk_every > 0:
            task = asyncio.create_task(desk_loop(backend, settings.desk_every))
        if sender is not None and settings.witness_every > 0:
            # The witnesses are sent each new checkpoint from a thread of their own, so a
            # witness that is slow to answer delays neither the desk nor a request.
            thread = threading.Thread(target=sender.run, name="witnesses", daemon=True)
            thread.start()
        try:
            yield
        finally:
            if thread is not None and sender is not None:
                sender.stop()
                await asyncio.to_thread(thread.join, 10)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.to_thread(backend.close)

    app = FastAPI(
        lifespan=lifespan,
        title="custody",
        summary="Custody log of exam question papers: events, proofs, labels.",
        version="1",
        docs_url=None,  # Swagger UI loads from a CDN; the schema is at /openapi.json
        redoc_url=None,
    )
    app.state.backend = backend
    counters = (
        SharedCounters(settings.home / RATES_FILE) if settings.shared_rates else ProcessCounters()
    )
    app.state.limiter = Limiter(counters)
    errors.install(app)
    app.add_middleware(Guard, limiter=app.state.limiter, rate=settings.rate_per_address)
    app.include_router(routes.router)
    app.include_router(access.router)
    app.include_router(web.router)
    app.include_router(paper_routes.router)
    app.include_router(seal_routes.router)
    app.include_router(read_routes.router)
    app.include_router(incident_routes.router)
    app.include_router(console_routes.router)
    app.include_router(export.router)
    return app
