"""The service as `custody serve` builds it (``api.app.create_app``), plus one trivial endpoint
served the same way (same app, same server, same worker count): the yardstick of bench_api.py.

    python bench/_api_server.py HOME PORT CLOCK_ISO
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn
from fastapi import Request

from api.app import Settings, create_app


def main() -> None:
    home, port, clock = sys.argv[1], int(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
    settings = Settings(
        home=Path(home),
        log_passphrase="bench passphrase",
        system_passphrase="bench passphrase",
        clock=lambda: clock,
        desk_every=0,
        # the benchmark's clients are one address and a few keys: no rate limit in the way
        rate_per_address="100000000/minute",
        rate_per_key="100000000/minute",
    )
    app = create_app(settings)

    @app.get("/bench/trivial")
    def trivial() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/bench/trivial")
    async def trivial_post(request: Request) -> dict[str, int]:
        """The same body as a submission, read and dropped: the HTTP stack's own ceiling."""
        return {"bytes": len(await request.body())}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
