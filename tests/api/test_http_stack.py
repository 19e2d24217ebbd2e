"""`custody serve` runs on uvicorn's C parser and loop (httptools, uvloop), both dependencies of
the project: with h11 and asyncio's own loop the same machine answered a third of the requests
(docs/benchmarks.md)."""

from __future__ import annotations

import sys

import pytest
from fastapi import FastAPI
from uvicorn.config import Config


def test_uvicorn_picks_the_c_parser_and_loop_the_project_installs() -> None:
    config = Config(FastAPI(), http="auto", loop="auto")  # what `custody serve` leaves to uvicorn
    config.load()
    assert config.http_protocol_class.__module__ == "uvicorn.protocols.http.httptools_impl"
    if sys.platform == "win32":  # pragma: no cover - uvloop is not installed there
        pytest.skip("uvloop does not run on Windows")
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__ == "uvloop"
    finally:
        loop.close()
