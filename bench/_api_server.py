"""The service as `custody serve` builds it (``api.app.create_app``), plus one trivial endpoint
served the same way (same app, same server, same worker count): the yardstick of bench_api.py.

    python bench/_api_server.py HOME PORT CLOCK_ISO [WORKERS]
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn
from fastapi import FastAPI, Request

from api.app import Settings, create_app
from api.backend import Backend
from api.writer_link import LogWriterServer


def _settings() -> Settings:
    clock = datetime.fromisoformat(os.environ["BENCH_CLOCK"])
    writer = os.environ.get("BENCH_WRITER")
    return Settings(
        home=Path(os.environ["BENCH_HOME"]),
        log_passphrase="bench passphrase",
        system_passphrase="bench passphrase",
        clock=lambda: clock,
        desk_every=0,
        # the benchmark's clients are one address and a few keys: no rate limit in the way
        rate_per_address="100000000/minute",
        rate_per_key="100000000/minute",
        # counted as `custody serve` counts: in memory alone, in rates.table with workers
        shared_rates=int(os.environ.get("BENCH_WORKERS", "1")) > 1,
        # with workers, single submissions go to the one writer in the parent process
        writer_socket=Path(writer) if writer else None,
    )


def make_app() -> FastAPI:
    """The app of one worker process (``BENCH_HOME`` and ``BENCH_CLOCK`` in the environment)."""
    app = create_app(_settings())

    @app.get("/bench/trivial")
    def trivial() -> dict[str, int]:
        """Which worker process answered: the benchmark waits until every worker has."""
        return {"pid": os.getpid()}

    @app.post("/bench/trivial")
    async def trivial_post(request: Request) -> dict[str, int]:
        """The same body as a submission, read and dropped: the HTTP stack's own ceiling."""
        return {"bytes": len(await request.body())}

    return app


def main() -> None:
    home, port, clock = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    os.environ.update(BENCH_HOME=home, BENCH_CLOCK=clock, BENCH_WORKERS=str(workers))
    if workers == 1:
        app = make_app()
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        return
    # as `custody serve --workers N`: uvicorn's worker processes, each building the app, and
    # this process the one log writer of their single submissions
    backend = Backend(_settings())
    writer = LogWriterServer(backend)
    os.environ["BENCH_WRITER"] = str(writer.path)
    try:
        uvicorn.run(
            "_api_server:make_app",
            factory=True,
            app_dir=str(Path(__file__).resolve().parent),
            workers=workers,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    finally:
        writer.close()
        backend.close()


if __name__ == "__main__":
    main()
