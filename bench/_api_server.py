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

from api.app import Settings, create_app


def main() -> None:
    home, port, clock = sys.argv[1], int(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
    settings = Settings(
        home=Path(home),
        log_passphrase="bench passphrase",
        system_passphrase="bench passphrase",
        clock=lambda: clock,
        desk_every=0,
    )
    app = create_app(settings)

    @app.get("/bench/trivial")
    def trivial() -> dict[str, bool]:
        return {"ok": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
