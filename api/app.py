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

from fastapi import FastAPI

from api import errors, routes, web
from api.backend import Backend, Settings

__all__ = ["Settings", "create_app"]


def create_app(settings: Settings) -> FastAPI:
    backend = Backend(settings)
    app = FastAPI(
        title="custody",
        summary="Custody log of exam question papers: events, proofs, labels.",
        version="1",
        docs_url=None,  # Swagger UI loads from a CDN; the schema is at /openapi.json
        redoc_url=None,
    )
    app.state.backend = backend
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(web.router)
    return app
